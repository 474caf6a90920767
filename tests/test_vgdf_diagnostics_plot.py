"""``scripts/vgdf_diagnostics_plot.py``: a PNG from tiny synthetic ``metrics.csv`` files."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
pytest.importorskip("matplotlib")  # the dev extra

import vgdf_diagnostics_plot as vplot  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(path: Path, rows: list[str]) -> Path:
    path.mkdir()
    header = ("step,vgdf/accept_ratio,vgdf/value_kept,vgdf/value_rejected,eval/target_return,"
              "vgdf/fvp_median,vgdf/fvp_iqr,vgdf/fvp_std,vgdf/fvp_min,vgdf/fvp_max")
    fvp = ",0.5,0.2,0.3,0.0,1.0"  # five keys in one panel: every line style
    (path / "metrics.csv").write_text("\n".join([header, *(r + fvp for r in rows)]) + "\n")
    return path


def test_writes_a_png_from_two_runs(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", ["10,1.0,-1.0,-2.0,", "20,0.25,-0.5,-1.5,-300"])
    b = _run(tmp_path / "b", ["10,1.0,,,", "20,0.25,-0.7,,"])  # sparse: empty cells skipped
    out = vplot.main([str(a), str(b), "--out", str(tmp_path / "plots" / "diag.png")])
    png = tmp_path / "plots" / "diag.png"
    assert out == 0 and png.stat().st_size > 1000 and png.read_bytes()[:8] == PNG_MAGIC


def test_series_skips_rows_without_the_key_and_thins() -> None:
    rows = [{"step": 1.0, "k": 1.0}, {"step": 2.0}, {"step": 3.0, "k": 3.0}, {"step": 4.0, "k": 4.0}]
    assert vplot.series(rows, "k") == ([1.0, 3.0, 4.0], [1.0, 3.0, 4.0])
    assert vplot.series(rows, "k", every=2) == ([1.0, 4.0], [1.0, 4.0])


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no metrics.csv"):
        vplot.plot([tmp_path], tmp_path / "x.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metrics.csv").write_text("step,train/loss\n1,0.5\n")
    with pytest.raises(ValueError, match="no vgdf/ diagnostics"):
        vplot.plot([empty], tmp_path / "x.png")
