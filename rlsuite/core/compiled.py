"""Fuse a pure tensor function with TorchInductor; call it for a fraction of torch.compile's cost.

An env step is a few dozen elementwise ops on ``[B]`` tensors. Fused into one loop it is cheap;
what remains at small ``B`` is the cost of calling the fused code. Through ``torch.compile`` that
call runs TorchDynamo's Python frame wrapper, its guards and the AOT runtime wrappers: on this
project's 2-core CPU a ``torch.compile``'d CartPole step cost ~150-190 us at ``B = 1``, barely
below the ~210 us of eager ops. :class:`CompiledKernel` skips TorchDynamo: it records the
function's ops once with ``make_fx`` (fake tensors, so nothing runs) and hands the graph to
``torch._inductor.compile`` (TorchInductor's documented entry point for graphs captured without
TorchDynamo). In an interleaved A/B run that cut the call of the same fused graph to ~1/3; the
fused CartPole step now costs ~57 us at ``B = 1`` (``results/benchmarks.md``).

What replaces TorchDynamo's guards: every call computes the dtypes, shapes, strides and devices of
the tensor arguments (plus a ``static`` key from the caller) and runs the version compiled for
exactly that signature, compiling a new one for a new signature. Python values the function reads
(module constants, attributes of its owner) are baked in at trace time, so the function must be
pure in its tensor arguments; whatever else it depends on goes into ``static``. Calls that need
autograd (grad mode on and an input requiring grad) run ``fn`` eagerly.

The compiled graph is then called under none of the wrappers ``torch._inductor.compile`` puts
around it (TorchDynamo's ``disable``, AOTAutograd's runtime wrapper) wherever a check on its first
call shows they change nothing (:func:`_direct_entry`): ~6-8 us of a fused rollout step.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import torch

from rlsuite.core import kernel_store
from rlsuite.core.header_record import remembered_headers
from rlsuite.core.isa_probe import remembered_probes

Signature = tuple[Any, ...]


def signature(tensors: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> Signature:
    """What compiled code is specialised to: dtype, shape, strides, device and requires_grad."""
    return tuple([(t.dtype, t.shape, t.stride(), t.device, t.requires_grad) for t in tensors])


class CompiledKernel:
    """``fn(*tensors) -> tuple of tensors``, compiled once per input signature.

    Bool outputs leave the fused code as float32 0/1 and are turned back into bool by an eager
    ``.bool()``: TorchInductor's vectorised CPU code stores bool (and uint8) lanes through a slow
    masked path, measured at ~30x the cost of a float store, while torch's float->bool conversion
    runs at full speed (~3 us for 16k elements).

    Inductor's own per-call input checks (``size_asserts``) are off by default: the signature in
    the key already pins every input's shape and strides.
    """

    def __init__(self, fn: Callable[..., tuple[torch.Tensor, ...]], options: dict | None = None):
        self.fn = fn
        self.options = {"size_asserts": False, **(options or {})}
        self._compiled: dict[Hashable, Callable[[tuple[torch.Tensor, ...]], Any]] = {}

    def __call__(self, *args: torch.Tensor, static: Hashable = None) -> list[torch.Tensor]:
        """Run the version compiled for these arguments (compiling it on first sight)."""
        return self.call(args, (static, signature(args)))

    def call(self, args: tuple[torch.Tensor, ...], key: Hashable) -> list[torch.Tensor]:
        """Run the version compiled for ``key``, which the caller guarantees determines
        :func:`signature` of ``args`` (e.g. it contains it) and every non-tensor input of ``fn``.
        """
        return self.runner(args, key)(args)

    def runner(
        self, args: tuple[torch.Tensor, ...] | list[torch.Tensor], key: Hashable
    ) -> Callable[[tuple[torch.Tensor, ...] | list[torch.Tensor]], list[torch.Tensor]]:
        """The version compiled for ``key`` (compiling it from ``args`` on first sight), to call
        directly on further argument lists with the same signature: a loop that knows its
        signatures do not change (a fused rollout) pays the key's computation once, not per step.
        """
        # Inductor's CPU code bakes in the intra-op thread count: a changed count recompiles.
        # Grad mode decides whether an input that requires grad needs the eager path (_build).
        key = (key, torch.get_num_threads(), torch.is_grad_enabled())
        run = self._compiled.get(key)
        if run is None:
            run = self._compiled[key] = self._build(tuple(args))
        return run

    def store_context(self) -> list[Any]:
        """What the compiled code depends on besides the traced ops and the inputs' signature
        (part of its key in the kernel store): the compile options and the thread count."""
        return [sorted(self.options.items()), torch.get_num_threads()]

    def cache_size(self) -> int:
        """How many versions have been compiled (one per distinct key seen)."""
        return len(self._compiled)

    def _build(self, args: tuple[torch.Tensor, ...]) -> Callable[[tuple[torch.Tensor, ...]], Any]:
        if torch.is_grad_enabled() and any(t.requires_grad for t in args):

            def eager(call_args: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
                # The key holds requires_grad and grad mode: only such calls come here.
                return list(self.fn(*call_args))

            return eager
        # One eager run on copies: the outputs' dtypes, and the key under which an earlier
        # process may have stored this kernel (core/kernel_store.py: loading it skips importing
        # TorchDynamo and TorchInductor, ~2 s of a warm start).
        store_key, eager_out, eager_inputs = kernel_store.trace(self.fn, args, self.store_context())
        as_bool = tuple(o.dtype == torch.bool for o in eager_out)
        bool_index = [i for i, b in enumerate(as_bool) if b]
        entry = kernel_store.load(store_key) if store_key is not None else None
        if entry is not None and not _matches_eager(entry, args, eager_out, eager_inputs, as_bool):
            entry = None
        stored = entry is not None
        if entry is None:
            compiled = self._inductor_compile(args, as_bool)
            entry = _direct_entry(compiled, args)
            if entry is not None and store_key is not None:
                kernel_store.save(store_key, entry[1], entry[0])
        if entry is None:

            def run(call_args: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> list[torch.Tensor]:
                out = compiled(*call_args)
                for i in bool_index:
                    out[i] = out[i].bool()
                return out

        else:
            constants, call = entry

            def run(call_args: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> list[torch.Tensor]:
                # A fresh argument list (the callee empties it); the outputs come as a tuple.
                out = list(call([*constants, *call_args]))
                for i in bool_index:
                    out[i] = out[i].bool()
                return out

        run.stored = stored  # type: ignore[attr-defined]  # loaded from the kernel store (tests)
        run.direct = entry is not None  # type: ignore[attr-defined]  # which call (tests)
        return run

    def _inductor_compile(self, args: tuple[torch.Tensor, ...],
                          as_bool: tuple[bool, ...]) -> Callable[..., Any]:
        """``self.fn`` traced with ``make_fx`` and compiled by TorchInductor (bool outputs as
        float32, see the class docstring)."""
        from torch._inductor import compile as inductor_compile
        from torch.fx.experimental.proxy_tensor import make_fx

        def flat(*inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = tuple(self.fn(*inputs))
            return tuple(o.to(torch.float32) if b else o for o, b in zip(out, as_bool, strict=True))

        # The CPU ISA probes and the C++ header preprocessing run child processes in every
        # process; where a previous process already got their answers they are reused
        # (core/isa_probe.py, core/header_record.py). Only during this compilation.
        with torch.no_grad(), remembered_probes(), remembered_headers():
            graph = make_fx(flat, tracing_mode="fake", _allow_non_fake_inputs=True)(*args)
            # TorchInductor's on-disk FX graph cache keys a graph with the shape env of the
            # tracing context and bypasses the cache where there is none (TorchDynamo sets one;
            # make_fx does not). A context with a fresh static-shape fake mode turns the cache
            # on: a warm start loads the compiled graph instead of lowering it again.
            context = _tracing_context()
            if context is None:
                return inductor_compile(graph, list(args), options=self.options)
            # Every input static: given a shape env, AOTAutograd would otherwise make every
            # dimension symbolic, and the kernels would be compiled for any size (loops not
            # specialised, sizes computed in Python on every call).
            _mark_static(context, args)
            with torch._guards.tracing(context):
                return inductor_compile(graph, list(args), options=self.options)


def output_specs(
    fn: Callable[..., tuple[torch.Tensor, ...]], args: tuple[torch.Tensor, ...] | list[torch.Tensor]
) -> list[tuple[torch.Size, torch.dtype]]:
    """Shape and dtype of each output of ``fn(*args)``, from one eager run on copies of ``args``
    (a function that writes into its inputs, such as a rollout step storing into its buffers,
    leaves them as they were).

    An eager run, not fake tensors: a function may create and cache tensors on first use (an
    env's 0-dim constants), and under a fake mode it would cache fakes.
    """
    with torch.no_grad():
        return [(o.shape, o.dtype) for o in fn(*[a.clone() for a in args])]


def _direct_entry(
    compiled: Callable[..., Any], args: tuple[torch.Tensor, ...]
) -> tuple[list[torch.Tensor], Callable[[list[torch.Tensor]], Any]] | None:
    """The compiled graph's own entry point under the wrappers of ``torch._inductor.compile``,
    with the constants it takes first: ``call([*constants, *args])`` computes ``compiled(*args)``;
    None where this torch wraps it otherwise or the two disagree on ``args``.

    ``torch._inductor.compile`` returns the graph behind TorchDynamo's ``disable`` wrapper and
    AOTAutograd's runtime wrappers (argument lists, version counters of mutated inputs, outputs
    that alias inputs): ~6-8 us of a ~60 us fused rollout step on this CPU. For a kernel with no
    autograd (built only then, see ``CompiledKernel._build``) that returns no alias of an input,
    those layers change nothing; the check below (one run of each on copies of ``args``:
    outputs and inputs written identical, no output a view of an input) keeps the wrapped call
    wherever they would. The layers are found through ``__wrapped__`` (``functools.wraps``) and
    the constants in AOTAutograd's ``params_buffers_flat``: private layout, so anything
    unexpected returns None and the public call stays.
    """
    constants, fn = None, compiled
    for _ in range(16):
        cells = _closure(fn)
        if isinstance(cells.get("params_buffers_flat"), (list, tuple)):
            constants = list(cells["params_buffers_flat"])
        inner = getattr(fn, "__wrapped__", None)
        if inner is None:
            break
        fn = inner
    call = getattr(fn, "current_callable", None)
    if constants is None or not callable(call):
        return None
    try:
        agrees = _same_results(compiled, lambda a: call([*constants, *a]), args)
    except Exception:  # noqa: BLE001 - any failure of the unwrapped call: keep the wrapped one
        return None
    return (constants, call) if agrees else None


def _closure(fn: Any) -> dict[str, Any]:
    """The closure variables of ``fn`` by name (empty where it has none)."""
    code, cells = getattr(fn, "__code__", None), getattr(fn, "__closure__", None)
    if code is None or not cells:
        return {}
    out = {}
    for name, cell in zip(code.co_freevars, cells, strict=True):
        try:
            out[name] = cell.cell_contents
        except ValueError:  # an empty cell
            continue
    return out


def _same_results(
    wrapped: Callable[..., Any], direct: Callable[[list[torch.Tensor]], Any],
    args: tuple[torch.Tensor, ...],
) -> bool:
    """Whether ``wrapped(*copies)`` and ``direct(copies)`` return equal outputs (values, dtypes,
    shapes, strides), none a view of an input, and leave their copies of ``args`` equal."""
    a, b = [t.clone() for t in args], [t.clone() for t in args]
    with torch.no_grad():
        out_a, out_b = list(wrapped(*a)), list(direct(list(b)))
    inputs = {t.untyped_storage().data_ptr() for t in a}
    return (
        len(out_a) == len(out_b)
        and all(_identical(x, y) for x, y in zip(out_a, out_b, strict=True))
        and all(_identical(x, y) for x, y in zip(a, b, strict=True))
        and not any(o.untyped_storage().data_ptr() in inputs for o in out_a)
    )


def _matches_eager(
    entry: tuple[list[torch.Tensor], Callable[[list[torch.Tensor]], Any]],
    args: tuple[torch.Tensor, ...], eager_out: list[torch.Tensor],
    eager_inputs: list[torch.Tensor], as_bool: tuple[bool, ...],
) -> bool:
    """Whether a stored kernel run on copies of ``args`` gives what the eager run gave: the same
    dtypes and shapes, integers and booleans equal, floats within rounding of fused code
    (rtol 1e-4, atol 1e-5, NaN where NaN), for its outputs and for the inputs it writes into.
    A check of the load itself (an argument out of place would show), not of the compiler."""
    constants, call = entry
    copies = [t.clone() for t in args]
    try:
        with torch.no_grad():
            out = list(call([*constants, *copies]))
    except Exception:  # noqa: BLE001 - a stored module that does not run: compile instead
        return False
    out = [o.bool() if b else o for o, b in zip(out, as_bool, strict=False)]
    return (len(out) == len(eager_out)
            and all(_close(x, y) for x, y in zip(out, eager_out, strict=True))
            and all(_close(x, y) for x, y in zip(copies, eager_inputs, strict=True)))


def _close(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Same dtype and shape; equal, or for floating point within rounding of fused code."""
    if x.dtype != y.dtype or x.shape != y.shape:
        return False
    if x.dtype.is_floating_point or x.dtype.is_complex:
        return torch.allclose(x, y, rtol=1e-4, atol=1e-5, equal_nan=True)
    return torch.equal(x, y)


def _identical(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Same dtype, shape, strides and values (NaN equal to NaN)."""
    return (x.dtype == y.dtype and x.shape == y.shape and x.stride() == y.stride()
            and torch.equal(torch.where(x != x, 0, x), torch.where(y != y, 0, y))
            and torch.equal(x != x, y != y))


def _mark_static(context: Any, args: tuple[torch.Tensor, ...]) -> None:
    """Register every input with ``context`` as static in all its dimensions (what TorchDynamo
    records for a tensor it specialises)."""
    from torch._dynamo.source import LocalSource
    from torch.fx.experimental.symbolic_shapes import DimDynamic, StatefulSymbolicContext

    for i, a in enumerate(args):
        if a not in context.tensor_to_context:
            context.tensor_to_context[a] = StatefulSymbolicContext(
                dynamic_sizes=[DimDynamic.STATIC] * a.dim(),
                dynamic_strides=[DimDynamic.INFER_STRIDE] * a.dim(),
                constraint_sizes=[None] * a.dim(), constraint_strides=[None] * a.dim(),
                tensor_source=LocalSource(f"rlsuite_input_{i}"),
            )


def _tracing_context() -> Any:
    """A TorchDynamo-style tracing context (static shapes) for TorchInductor's FX graph cache,
    or None where this torch has no such API."""
    try:
        from torch._subclasses.fake_tensor import FakeTensorMode
        from torch.fx.experimental.symbolic_shapes import ShapeEnv

        return torch._guards.TracingContext(FakeTensorMode(shape_env=ShapeEnv(), static_shapes=True))
    except (AttributeError, ImportError, TypeError):
        return None
