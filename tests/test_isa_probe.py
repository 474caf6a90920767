"""The records of TorchInductor's per-process start-up work (CPU ISA probes, C++ header
preprocessing): an answer seen by one process is reused by the next, a failure or a changed file
is redone, and torch's own functions are patched only during rlsuite's compile."""

from __future__ import annotations

import json
import os

import torch

from rlsuite.core import isa_probe
from rlsuite.core.compiled import CompiledKernel


def _library(tmp_path, content: bytes = b"\x7fELF test") -> str:
    path = tmp_path / "probe.so"
    path.write_bytes(content)
    return str(path)


def _counting(result: bool) -> tuple[list[str], object]:
    calls: list[str] = []

    def probe(isa: object, library: str) -> bool:
        calls.append(library)
        return result

    return calls, probe


def test_a_recorded_success_skips_the_probe_in_a_later_process(tmp_path) -> None:
    record = str(tmp_path / "record.json")
    library = _library(tmp_path)
    calls, probe = _counting(True)
    assert isa_probe.remembering(probe, lambda: record)(None, library) is True
    assert calls == [library]
    # A later process: a fresh wrapper, only the file carries over.
    assert isa_probe.remembering(probe, lambda: record)(None, library) is True
    assert calls == [library]
    with open(record, encoding="utf-8") as f:
        assert json.load(f) == {isa_probe.probe_key(library): True}


def test_a_failure_is_not_recorded_and_is_probed_again(tmp_path) -> None:
    record = str(tmp_path / "record.json")
    library = _library(tmp_path)
    calls, probe = _counting(False)
    wrapped = isa_probe.remembering(probe, lambda: record)
    assert wrapped(None, library) is False and wrapped(None, library) is False
    assert calls == [library, library]
    assert not os.path.exists(record)


def test_a_rebuilt_library_is_probed_again(tmp_path) -> None:
    record = str(tmp_path / "record.json")
    library = _library(tmp_path)
    calls, probe = _counting(True)
    isa_probe.remembering(probe, lambda: record)(None, library)
    _library(tmp_path, b"\x7fELF another build")  # new size and mtime
    isa_probe.remembering(probe, lambda: record)(None, library)
    assert calls == [library, library]


def test_a_missing_library_or_a_corrupt_record_falls_back_to_the_probe(tmp_path) -> None:
    record = tmp_path / "record.json"
    record.write_text("not json")
    calls, probe = _counting(True)
    wrapped = isa_probe.remembering(probe, lambda: str(record))
    library = _library(tmp_path)
    assert wrapped(None, library) is True and calls == [library]
    assert isa_probe.probe_key(str(tmp_path / "absent.so")) is None
    assert wrapped(None, str(tmp_path / "absent.so")) is True and len(calls) == 2


def test_torch_probe_is_patched_only_inside_the_block() -> None:
    from torch._inductor.cpu_vec_isa import VecISA

    original = VecISA.__dict__["_probe_load"]
    with isa_probe.remembered_probes():
        patched = VecISA.__dict__["_probe_load"]
        assert patched is not original and patched.rlsuite_remembered
        with isa_probe.remembered_probes():  # nested: not wrapped twice
            assert VecISA.__dict__["_probe_load"] is patched
        assert VecISA.__dict__["_probe_load"] is patched
    assert VecISA.__dict__["_probe_load"] is original


def test_compiling_a_kernel_runs_under_the_record_and_restores_torch(monkeypatch) -> None:
    monkeypatch.setenv("RLSUITE_KERNEL_STORE", "0")  # compile: no earlier build loaded
    from torch._inductor.cpu_vec_isa import VecISA

    seen: list[bool] = []
    original = VecISA.__dict__["_probe_load"]
    import torch._inductor as inductor
    from torch._inductor import codecache

    real_compile = inductor.compile

    def spy(*args, **kwargs):
        seen.append(getattr(VecISA.__dict__["_probe_load"], "rlsuite_remembered", False)
                    and getattr(codecache._precompile_header, "rlsuite_remembered", False))
        return real_compile(*args, **kwargs)

    monkeypatch.setattr(inductor, "compile", spy)
    kernel = CompiledKernel(lambda x: (x * 3.0 + 1.0,))
    (y,) = kernel(torch.tensor([1.0, 2.0]))
    assert y.tolist() == [4.0, 7.0]
    assert seen == [True]
    assert VecISA.__dict__["_probe_load"] is original
    assert not hasattr(codecache._precompile_header, "rlsuite_remembered")


# The C++ header record (rlsuite/core/header_record.py), same pattern.


def _precompiler(tmp_path, calls: list[str]):
    def precompile(header: str, command_line: str, **options) -> str:
        calls.append(header)
        out = tmp_path / "pch.h"
        out.write_text(f"#include <{header}>\n")
        (tmp_path / "pch.h.gch").write_bytes(b"gch")
        return str(out)

    return precompile


def test_a_recorded_header_skips_the_preprocessing_in_a_later_process(tmp_path) -> None:
    from rlsuite.core import header_record

    record = str(tmp_path / "headers.json")
    calls: list[str] = []
    precompile = _precompiler(tmp_path, calls)
    first = header_record.remembering(precompile, lambda: record)("a.h", "g++ x", vec_isa=1)
    again = header_record.remembering(precompile, lambda: record)("a.h", "g++ x", vec_isa=1)
    assert first == again == str(tmp_path / "pch.h") and calls == ["a.h"]
    # Another command line is another header; a deleted .gch is built again.
    header_record.remembering(precompile, lambda: record)("a.h", "g++ y", vec_isa=1)
    (tmp_path / "pch.h.gch").unlink()
    header_record.remembering(precompile, lambda: record)("a.h", "g++ x", vec_isa=1)
    assert calls == ["a.h", "a.h", "a.h"]


def test_header_key_is_the_same_in_every_process() -> None:
    # A VecISA's repr holds a function address; the key must not.
    from torch._inductor.cpu_vec_isa import pick_vec_isa

    from rlsuite.core import header_record

    key = header_record.header_key("h", "cmd", {"vec_isa": pick_vec_isa(), "extra_flags": ()})
    assert "0x" not in key


def test_torch_header_function_is_patched_only_inside_the_block() -> None:
    from torch._inductor import codecache

    from rlsuite.core import header_record

    original = codecache._precompile_header
    with header_record.remembered_headers():
        assert codecache._precompile_header.rlsuite_remembered
    assert codecache._precompile_header is original
