"""Remember TorchInductor's CPU vector-ISA load probes across processes.

Before its first CPU kernel of a process, TorchInductor checks each vector ISA the CPU reports
(AVX2, AVX-512, AVX-512 BF16, AMX) by building a test library (cached on disk after the first
time) and then proving it loads: one fresh Python child process per ISA that ``dlopen``s it
(``VecISA._probe_load``). ``cpp.vec_isa_ok`` skips the base check but not those of the AVX-512
BF16 and AMX subclasses. With a warm cache those children were ~0.3-0.4 s of a process's first
kernel on this project's 2-core CPU, repeated in every process for the same answer.

:func:`remembered_probes` replaces that method, only while rlsuite compiles a kernel, with one
that returns a recorded success instead of spawning the child: the record is keyed by torch's
version, the Python interpreter and the test library's path, size and modification time (its
path already hashes the test code, flags and compiler), and kept as JSON in TorchInductor's
cache directory. Only successes are recorded: a failed probe is run again next time, so a
record can never turn an ISA off that the live probe would allow, and nothing the record
allows has not loaded in a child before.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import torch

from rlsuite.core.atomic_file import write_text_atomically
from rlsuite.core.patching import patched

RECORD_NAME = "rlsuite_isa_probes.json"
"""The record's file name inside TorchInductor's cache directory."""


def record_path() -> str:
    """Where the record lives: ``<TorchInductor cache dir>/rlsuite_isa_probes.json``."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return os.path.join(cache_dir(), RECORD_NAME)


def probe_key(library: str) -> str | None:
    """The record's key for a test library: torch version, interpreter, path, size and mtime
    (None where the library does not exist, so it is never looked up or recorded)."""
    try:
        stat = os.stat(library)
    except OSError:
        return None
    return "|".join([torch.__version__, sys.executable, os.path.abspath(library),
                     str(stat.st_size), str(stat.st_mtime_ns)])


def read_record(path: str) -> dict[str, Any]:
    """The JSON object stored at ``path`` (empty where there is none or it is unreadable)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):  # none yet, or unreadable: probe as if none
        return {}
    return data if isinstance(data, dict) else {}


def write_record(path: str, data: dict[str, Any]) -> None:
    """Replace the record atomically (a concurrent reader sees the old or the new file)."""
    try:
        write_text_atomically(path, json.dumps(data))
    except OSError:  # a read-only cache: the probe still ran, it is just not remembered
        pass


def remembering(probe: Callable[[Any, str], bool],
                path: Callable[[], str] = record_path) -> Callable[[Any, str], bool]:
    """``probe(isa, library)`` that first looks the library up in the record at ``path()`` and
    records each success of the real ``probe``."""

    def remembered(isa: Any, library: str) -> bool:
        key = probe_key(library)
        if key is not None and read_record(path()).get(key) is True:
            return True
        ok = probe(isa, library)
        key = probe_key(library)  # after the probe: the library as it was loaded
        if ok and key is not None:
            where = path()
            write_record(where, {**read_record(where), key: True})
        return ok

    remembered.rlsuite_remembered = True  # type: ignore[attr-defined]  # (tests)
    return remembered


@contextlib.contextmanager
def remembered_probes() -> Iterator[None]:
    """Within the block, TorchInductor's ISA load probes use the record (see the module doc);
    the original method is restored on exit, so torch behaves as before outside rlsuite's
    compilation. A torch without this method is left alone."""
    try:
        from torch._inductor.cpu_vec_isa import VecISA
    except ImportError:
        yield
        return
    with patched(VecISA, "_probe_load", remembering):
        yield
