"""The shared atomic file replacement: old or new content, never half, and no temp file left."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlsuite.core.atomic_file import remove_stale_temps, replaced_atomically, write_text_atomically


def test_a_write_replaces_the_content_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "record.json"
    write_text_atomically(path, "old")
    assert write_text_atomically(path, json.dumps({"a": 1})) == path
    assert json.loads(path.read_text()) == {"a": 1}
    assert sorted(p.name for p in path.parent.iterdir()) == ["record.json"]


def test_an_error_mid_write_keeps_the_old_file_and_removes_the_temp(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_text("step\n1\n")
    with pytest.raises(RuntimeError, match="disk full"):
        with replaced_atomically(path, "w", newline="") as f:
            f.write("step\n1\n2\n")
            raise RuntimeError("disk full")
    assert path.read_text() == "step\n1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]


def test_binary_durable_writes_and_a_bad_mode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    with replaced_atomically(path, "wb", durable=True) as f:
        f.write(b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb', got 'a'"):
        with replaced_atomically(path, "a"):
            pass
    assert path.read_bytes() == b"\x00\x01"


def test_stale_temps_are_removed_by_name_and_other_files_stay(tmp_path: Path) -> None:
    kept = [tmp_path / "metrics.csv", tmp_path / ".other.json.x1.tmp", tmp_path / "notes.tmp"]
    stale = [tmp_path / ".metrics.csv.ab12.tmp", tmp_path / ".result.json.cd34.tmp"]
    for p in kept + stale:
        p.write_text("")
    assert remove_stale_temps(tmp_path, names=("metrics.csv", "result.json")) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    assert remove_stale_temps(tmp_path) == [tmp_path / ".other.json.x1.tmp"]  # every name
    assert remove_stale_temps(tmp_path / "missing") == []
