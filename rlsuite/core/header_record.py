"""Skip TorchInductor's C++ header preprocessing where a previous process already did it.

Before loading (or building) a CPU kernel's library, TorchInductor finds the precompiled header
for it (``codecache._precompile_header``): it runs the C++ preprocessor over the prefix header
and hashes the output with ``openssl`` (two child processes) to name the ``.gch``, and builds
that ``.gch`` if absent. It does so even on a cache hit, where the kernel's library already
exists and nothing is compiled (the library's name does not depend on the header's): ~0.2 s
of each process's first kernel on this project's 2-core CPU.

:func:`remembered_headers` replaces that function, only while rlsuite compiles a kernel, with
one that returns the header path a previous process got for the same request, provided the
header and its ``.gch`` still exist. The request's key holds torch's version, the header, the
compile command, and the C++ compiler's path, size and modification time. What it no longer
notices: a system header (libc, libstdc++) changed under an unchanged compiler binary; such a
stale ``.gch`` would only be used to compile a new kernel. Delete the record
(:func:`record_path`) after such an upgrade, or set ``TORCHINDUCTOR_CACHE_DIR``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import torch

from rlsuite.core.isa_probe import read_record, write_record
from rlsuite.core.patching import patched

RECORD_NAME = "rlsuite_headers.json"
"""The record's file name inside TorchInductor's cache directory."""


def record_path() -> str:
    """Where the record lives: ``<TorchInductor cache dir>/rlsuite_headers.json``."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    return os.path.join(cache_dir(), RECORD_NAME)


def _compiler_stamp() -> list[str]:
    """The C++ compiler TorchInductor uses: path, size, modification time (empty if unknown)."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        compiler = shutil.which(get_cpp_compiler()) or get_cpp_compiler()
        stat = os.stat(os.path.realpath(compiler))
    except Exception:  # noqa: BLE001 - no compiler found: key that, the live call decides
        return []
    return [os.path.realpath(compiler), str(stat.st_size), str(stat.st_mtime_ns)]


def header_key(header: str, command_line: str, options: dict[str, Any]) -> str:
    """The record's key for one ``_precompile_header(header, command_line, **options)`` call."""
    return json.dumps([torch.__version__, header, command_line,
                       sorted((k, _stable(v)) for k, v in options.items()), _compiler_stamp()])


def _stable(value: Any) -> str:
    """A text for ``value`` that is the same in every process: type and ``str`` (a VecISA's
    ``repr`` holds a function's address; its ``str`` is its name, e.g. ``avx512``)."""
    return f"{type(value).__name__}:{value}"


def remembering(precompile: Callable[..., str],
                path: Callable[[], str] = record_path) -> Callable[..., str]:
    """``precompile(header, command_line, **options)`` answered from the record at ``path()``
    where it holds a path whose header and ``.gch`` exist; otherwise the real call, recorded."""

    def remembered(header: str, command_line: str, **options: Any) -> str:
        key = header_key(header, command_line, options)
        known = read_record(path()).get(key)
        if isinstance(known, str) and os.path.isfile(known) and os.path.isfile(known + ".gch"):
            return known
        result = precompile(header, command_line, **options)
        if isinstance(result, str) and os.path.isfile(result + ".gch"):
            where = path()
            write_record(where, {**read_record(where), key: result})
        return result

    remembered.rlsuite_remembered = True  # type: ignore[attr-defined]  # (tests)
    return remembered


@contextlib.contextmanager
def remembered_headers() -> Iterator[None]:
    """Within the block, TorchInductor's header precompilation uses the record (module doc);
    the original function is restored on exit. A torch without it is left alone."""
    try:
        from torch._inductor import codecache
    except ImportError:
        yield
        return
    with patched(codecache, "_precompile_header", remembering):
        yield
