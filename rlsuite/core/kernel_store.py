"""Load a kernel TorchInductor built in an earlier process without importing TorchInductor.

A warm start of the fast path used to cost ~2 s of one-off work per process on this project's
2-core CPU before the first rollout step: importing TorchDynamo (~0.9 s, which ``make_fx`` does)
and TorchInductor (~0.8 s), then tracing the function and loading the compiled graph from
TorchInductor's FX graph cache (~0.4-0.6 s for PPO's rollout and evaluation kernels), although
the compiled code itself was already on disk: a generated Python module (its ``call`` function
allocates the buffers and calls the kernels) and one C++ library per fused kernel.

This module remembers, after a compilation, where those files are, under a key computed without
TorchDynamo or TorchInductor, and loads them in later processes:

* **The key** (:func:`trace`) is a digest of the function's computation, recorded by running it
  once eagerly (the run :func:`~rlsuite.core.compiled.output_specs` needs anyway) under a
  ``TorchDispatchMode`` that writes down every ATen op with its arguments: inputs by position,
  intermediate tensors by the op that made them, any other tensor (a constant the function closes
  over) by dtype, shape and a hash of its values, and every Python scalar exactly. Beside it: the
  inputs' signature (dtypes, shapes, strides), the compile options, the intra-op thread count,
  torch's version and this CPU's feature flags. Two functions with the same key compute the same
  ops on the same constants: the graph ``make_fx`` would record is the same.
* **The record** (a JSON file per key under ``<TorchInductor cache dir>/rlsuite_kernels``) names
  the generated module with the SHA-256 of its source, the C++ libraries in the order the module
  defines them, the ``extern_kernels`` it calls (each must be the torch function of that name),
  and the constants TorchInductor lifted out of the graph (saved beside it).
* **The load** (:func:`load`) executes the module's source up to its benchmark helpers with its
  ``torch._inductor`` imports replaced by the few plain objects they provide to a CPU module
  (``AsyncCompile.cpp_pybinding``, and ``CppWrapperCodeCache.load_pybinding`` in a
  ``cpp_wrapper`` module, become "load the recorded library"), then checks the loaded
  call against the eager outputs on copies of the arguments. Anything unexpected (a file gone or
  changed, an import or kernel kind it does not know, a disagreement) returns None and the caller
  compiles as before; a record is only written for a module this loader can run.

``RLSUITE_KERNEL_STORE=0`` turns the store off (nothing read or written).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import re
import sys
import tempfile
import types
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from rlsuite.core.atomic_file import replaced_atomically, write_text_atomically

FORMAT = 1
"""Version of the record's layout and of the key's recipe (part of the key)."""

_STUBBED_IMPORTS = {"run_intermediate_hooks", "maybe_profile", "align", "AsyncCompile",
                    "extern_kernels", "CppWrapperCodeCache"}
"""Names a CPU module imports from ``torch._inductor``, replaced on load (see :func:`_namespace`)."""

_INDUCTOR_IMPORT = re.compile(r"^from torch\._inductor\.[\w.]+ import (.+)$", re.MULTILINE)
_PYBINDING = re.compile(
    r"^(\w+) = (?:async_compile\.cpp_pybinding|CppWrapperCodeCache\.load_pybinding)\(",
    re.MULTILINE)
"""A C++ library the module loads: a kernel, or (``cpp_wrapper``) the whole call in C++."""
_ASYNC_CALL = re.compile(r"async_compile\.(\w+)\(")
_EXTERN = re.compile(r"extern_kernels\.(\w+)")
_BENCHMARK_TAIL = "\ndef get_args():"


def enabled() -> bool:
    """Whether the store is on (``RLSUITE_KERNEL_STORE`` unset or not ``0``)."""
    return os.environ.get("RLSUITE_KERNEL_STORE", "1") != "0"


def store_dir() -> str:
    """``<TorchInductor cache dir>/rlsuite_kernels``: TorchInductor's own rule for its cache
    directory (``$TORCHINDUCTOR_CACHE_DIR``, else ``<tmp>/torchinductor_<user>``), computed here
    because importing ``torch._inductor.runtime.cache_dir_utils`` imports TorchInductor."""
    base = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if base is None:
        try:
            import getpass

            user = getpass.getuser()
        except (KeyError, ModuleNotFoundError, OSError):
            user = f"uid_{os.getuid()}" if hasattr(os, "getuid") else "unknown_user"
        base = os.path.join(tempfile.gettempdir(),
                            "torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user))
    return os.path.join(os.path.abspath(base), "rlsuite_kernels")


class _Unsupported(Exception):
    """An argument the op recorder cannot write down: no key, the kernel is compiled as usual."""


class _OpRecorder(TorchDispatchMode):
    """Writes down every ATen op run under it (see the module docstring for the encoding)."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a mode's __torch_dispatch__ in torch._disable_dynamo, whose first call
        # imports TorchDynamo (~0.9 s): what the store exists to avoid. This mode runs eagerly,
        # never under TorchDynamo, so there is nothing to disable.
        return False

    def __init__(self, inputs: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.ops: list[Any] = []
        self.unsupported = False
        self.labels: dict[int, str] = {}
        self.alive: list[torch.Tensor] = []  # keeps ids unique while recording
        for i, t in enumerate(inputs):
            self._label(t, f"in{i}")

    def _label(self, t: torch.Tensor, label: str) -> None:
        self.labels[id(t)] = label
        self.alive.append(t)

    def encode(self, x: Any) -> Any:
        """A JSON-able, process-independent description of one op argument."""
        if isinstance(x, torch.Tensor):
            label = self.labels.get(id(x))
            if label is None:  # a tensor from outside: a constant, baked in by value
                label = f"const:{_tensor_digest(x)}"
                self._label(x, label)
            return label
        if x is None or isinstance(x, (bool, int, str)):
            return x
        if isinstance(x, float):
            return ["float", x.hex()]
        if isinstance(x, (list, tuple)):
            return [self.encode(v) for v in x]
        if isinstance(x, (torch.dtype, torch.device, torch.layout, torch.memory_format)):
            return ["torch", str(x)]
        raise _Unsupported(type(x).__name__)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        entry = None
        if not self.unsupported:
            try:
                entry = [str(func), self.encode(list(args)),
                         sorted((k, self.encode(v)) for k, v in kwargs.items())]
            except _Unsupported:
                self.unsupported = True  # no key; the function itself still runs to the end
        out = func(*args, **kwargs)
        n = len(self.ops)
        outputs = out if isinstance(out, (list, tuple)) else [out]
        for j, o in enumerate(outputs):
            if isinstance(o, torch.Tensor) and id(o) not in self.labels:
                self._label(o, f"op{n}.{j}")
        self.ops.append(entry)
        return out


def _tensor_digest(t: torch.Tensor) -> str:
    """dtype, shape, strides and a SHA-256 of the values of ``t``."""
    try:
        # A fresh dense copy: an expanded (stride 0) tensor cannot be viewed as bytes.
        flat = torch.empty(t.numel(), dtype=t.dtype).copy_(t.detach().to("cpu").reshape(-1))
        if flat.dtype == torch.bool:
            flat = flat.to(torch.uint8)
        data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    except (RuntimeError, TypeError) as error:  # a dtype numpy cannot hold, a tensor subclass
        raise _Unsupported(str(error)) from error
    return f"{t.dtype}|{tuple(t.shape)}|{tuple(t.stride())}|{hashlib.sha256(data).hexdigest()}"


def trace(fn: Callable[..., Sequence[torch.Tensor]], args: Sequence[torch.Tensor],
          context: Sequence[Any]) -> tuple[str | None, list[torch.Tensor], list[torch.Tensor]]:
    """Run ``fn`` once eagerly on copies of ``args`` (no grad) and return ``(key, outputs,
    copies)``: the copies as ``fn`` left them (a function may write into its inputs).

    ``key`` digests the ops ``fn`` ran, the inputs' signature and ``context`` (compile options
    and anything else the compiled code depends on; JSON-able); None where an op argument has no
    stable description (then nothing is stored or loaded for this function).
    """
    copies = [a.clone() for a in args]
    if not enabled():
        with torch.no_grad():
            return None, list(fn(*copies)), copies
    recorder = _OpRecorder(copies)
    with torch.no_grad(), recorder:
        outputs = list(fn(*copies))
    if recorder.unsupported:
        return None, outputs, copies
    header = [FORMAT, torch.__version__, getattr(torch.version, "git_version", None),
              sys.version, _cpu_flags(), list(context), _compiler_settings(),
              [[str(a.dtype), list(a.shape), list(a.stride()), str(a.device)] for a in args]]
    try:
        text = json.dumps([header, recorder.ops], separators=(",", ":"))
    except TypeError:
        return None, outputs, copies
    return hashlib.sha256(text.encode()).hexdigest(), outputs, copies


def _compiler_settings() -> list[tuple[str, str]]:
    """TorchInductor's settings from the environment (``TORCHINDUCTOR_*``), which change the
    code it generates; not its cache directory, which TorchInductor itself writes into the
    environment on first use."""
    return sorted((k, v) for k, v in os.environ.items()
                  if k.startswith("TORCHINDUCTOR_") and k != "TORCHINDUCTOR_CACHE_DIR")


_CPU_FLAGS: list[str] = []


def _cpu_flags() -> str:
    """This CPU's feature flags (from ``/proc/cpuinfo`` where there is one): compiled kernels are
    specific to the vector instructions they were built for."""
    if not _CPU_FLAGS:
        flags = ""
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                for line in f:
                    if line.startswith(("flags", "Features")):
                        flags = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        _CPU_FLAGS.append(flags or platform.machine())
    return _CPU_FLAGS[0]


def _record_path(key: str) -> str:
    return os.path.join(store_dir(), key[:2], f"{key}.json")


def save(key: str, call: Callable[[list[torch.Tensor]], Any],
         constants: Sequence[torch.Tensor]) -> bool:
    """Remember the compiled module behind ``call`` (the generated module's ``call``) under
    ``key``; False (nothing written) where the module is not one :func:`load` can run or the
    cache directory is not writable."""
    if not enabled():
        return False
    recipe = _recipe(call)
    if recipe is None:
        return False
    path = _record_path(key)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if constants:
            recipe["constants"] = path[:-len(".json")] + ".pt"
            with replaced_atomically(recipe["constants"], "wb") as f:
                torch.save(list(constants), f)
        write_text_atomically(path, json.dumps(recipe))
    except OSError:
        return False
    return True


def _recipe(call: Callable[[list[torch.Tensor]], Any]) -> dict[str, Any] | None:
    """What :func:`load` needs to rebuild ``call``'s module, or None where it could not."""
    func = getattr(call, "__func__", call)
    module_globals = getattr(func, "__globals__", None)
    source_path = getattr(getattr(func, "__code__", None), "co_filename", None)
    if not isinstance(module_globals, dict) or not source_path or not os.path.isfile(source_path):
        return None
    with open(source_path, encoding="utf-8") as f:
        source = f.read()
    head = source.split(_BENCHMARK_TAIL, 1)[0]
    if _runnable_head(head) is None:
        return None
    kernels = []
    for name in _PYBINDING.findall(head):
        kernel = module_globals.get(name)
        library = getattr(kernel, "__self__", None)
        file, module_name = getattr(library, "__file__", None), getattr(library, "__name__", None)
        if not (isinstance(library, types.ModuleType) and file and os.path.isfile(file)
                and module_name and module_name.endswith((".kernel", ".inductor_entry_cpp"))):
            return None
        kernels.append([name, file, module_name])
    extern = sorted(set(_EXTERN.findall(head)))
    try:
        from torch._inductor.select_algorithm import extern_kernels
    except ImportError:
        return None
    if any(getattr(extern_kernels, n, None) is not getattr(torch, n, object()) for n in extern):
        return None
    try:
        from torch._inductor.codegen.memory_planning import _align
    except ImportError:
        return None
    return {"format": FORMAT, "source": source_path,
            "source_sha256": hashlib.sha256(source.encode()).hexdigest(),
            "kernels": kernels, "extern": extern, "align": _align(1)}


def _runnable_head(head: str) -> str | None:
    """``head`` with its ``torch._inductor`` imports blanked, or None where it imports anything
    else of TorchInductor or TorchDynamo, or compiles a kernel other than through
    ``cpp_pybinding``."""
    for match in _INDUCTOR_IMPORT.finditer(head):
        names = {part.split(" as ")[-1].strip() for part in match.group(1).split(",")}
        if not names <= _STUBBED_IMPORTS:
            return None
    blanked = _INDUCTOR_IMPORT.sub("", head)
    if "torch._inductor" in blanked or "torch._dynamo" in blanked:
        return None
    if set(_ASYNC_CALL.findall(blanked)) - {"cpp_pybinding", "wait"}:
        return None
    return blanked


def load(key: str) -> tuple[list[torch.Tensor], Callable[[list[torch.Tensor]], Any]] | None:
    """``(constants, call)`` for the module remembered under ``key`` (``call([*constants,
    *args])`` runs it, as TorchInductor's own entry point does), or None where there is no
    usable record."""
    if not enabled():
        return None
    try:
        with open(_record_path(key), encoding="utf-8") as f:
            recipe = json.load(f)
        if recipe.get("format") != FORMAT:
            return None
        with open(recipe["source"], encoding="utf-8") as f:
            source = f.read()
        if hashlib.sha256(source.encode()).hexdigest() != recipe["source_sha256"]:
            return None
        head = _runnable_head(source.split(_BENCHMARK_TAIL, 1)[0])
        if head is None:
            return None
        namespace = _namespace(recipe)
        exec(compile(head, recipe["source"], "exec"), namespace)  # noqa: S102 - the recorded module
        if namespace["async_compile_loaded"] != len(recipe["kernels"]):
            return None
        call = namespace["call"]
        constants = []
        if recipe.get("constants"):
            constants = torch.load(recipe["constants"], weights_only=True)
    except Exception:  # noqa: BLE001 - any surprise: compile as usual
        return None
    return constants, call


def _namespace(recipe: dict[str, Any]) -> dict[str, Any]:
    """Module globals standing in for what the generated module imports from TorchInductor."""
    kernels = [_load_library(file, name) for _, file, name in recipe["kernels"]]
    entries = iter(kernels)
    namespace: dict[str, Any] = {"__name__": "rlsuite_stored_kernel", "async_compile_loaded": 0}
    align_bytes = int(recipe["align"])

    class StoredKernels:
        """``AsyncCompile`` for a module whose libraries are already built: each
        ``cpp_pybinding`` call returns the next recorded library's entry point."""

        def cpp_pybinding(self, argtypes: list[str], source_code: str) -> Any:
            namespace["async_compile_loaded"] += 1
            return next(entries)

        @staticmethod
        def load_pybinding(**kwargs: Any) -> Any:  # CppWrapperCodeCache's, for cpp_wrapper
            namespace["async_compile_loaded"] += 1
            return next(entries)

        def wait(self, scope: dict[str, Any]) -> None:
            return None

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a stored rlsuite kernel called a TorchInductor debugging hook")

    namespace.update(
        AsyncCompile=StoredKernels, CppWrapperCodeCache=StoredKernels,
        run_intermediate_hooks=refuse, maybe_profile=refuse,
        align=lambda nbytes: (nbytes + align_bytes - 1) & -align_bytes,
        extern_kernels=types.SimpleNamespace(**{n: getattr(torch, n) for n in recipe["extern"]}),
    )
    return namespace


def _load_library(path: str, module_name: str) -> Any:
    """The entry point of a C++ library TorchInductor built, named by the module name's last
    part (``kernel``, or ``inductor_entry_cpp`` for a ``cpp_wrapper`` call), by TorchInductor's
    own loading steps (the library finds torch's tensor-data accessor through this variable)."""
    module = sys.modules.get(module_name)
    if module is None:
        os.environ["_TORCHINDUCTOR_PYOBJECT_TENSOR_DATA_PTR"] = str(
            torch._C._dynamo.guards._torchinductor_pyobject_tensor_data_ptr)
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[module_name] = module
    return getattr(module, module_name.rsplit(".", 1)[1])
