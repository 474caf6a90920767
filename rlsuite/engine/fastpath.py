"""The fast path: policies and env steps as fused kernels, compile time shown and counted.

An eager rollout step costs its op count: on this project's 2-core CPU the policy forward and
sampling through ``nn.Module`` and ``torch.distributions`` took ~1.5 ms of a ~1.7 ms PPO step. On
the fast path a policy is a pure function of ``(weights..., obs, noise)`` fused by TorchInductor
(:class:`~rlsuite.core.compiled.CompiledKernel`, one call of ~20-40 us), and a classic-control
env steps through its own fused step (``compile=True``, :func:`fast_env`). The randomness never
enters compiled code: the caller draws the step's uniforms / normals from its generator with the
same calls the eager policy makes, so the random streams are those of the eager path. Where the
env's CPU step can be fused too, a whole rollout or evaluation step (policy, env step, autoreset,
bookkeeping, buffer writes) is one kernel: :mod:`rlsuite.engine.fused_loop`.

What it costs: every new kernel signature (policy and env, batch size, rollout or evaluation)
compiles once, a few seconds on this CPU with a cold cache (the first compilation of a process
also imports TorchDynamo and TorchInductor, ~2 s). Later processes load it from the kernel store
(:mod:`rlsuite.core.kernel_store`, ~0.01-0.02 s per kernel, nothing imported), or failing that
from TorchInductor's FX graph cache (a fraction of the cold time plus the imports); both live
under ``$TORCHINDUCTOR_CACHE_DIR``, default ``/tmp/torchinductor_$USER``. Each kernel prints
``rlsuite: compiling <what> ... <s> s`` (or ``loading stored <what>``) to stderr and its time is
added to :func:`compile_seconds`. Where compilation fails (no C++ compiler, an op inductor cannot
trace) the kernel warns once and runs eagerly.
"""

from __future__ import annotations

import copy
import sys
import time
import warnings
import weakref
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rlsuite.core.compiled import CompiledKernel, signature
from rlsuite.engine.syncguard import HostSyncError

_COMPILE_SECONDS = [0.0]
_WARNED: set[str] = set()
VERBOSE = True
"""Print each compilation phase to stderr (``rlsuite: compiling ...``)."""


def compile_seconds() -> float:
    """Seconds this process has spent compiling fast-path kernels so far."""
    return _COMPILE_SECONDS[0]


def _warn_once(what: str, error: BaseException) -> None:
    if what not in _WARNED:
        _WARNED.add(what)
        warnings.warn(
            f"rlsuite fast path: compiling {what} failed ({type(error).__name__}: {error}); "
            "running it eagerly", RuntimeWarning, stacklevel=3,
        )


def _announce(line: str) -> None:
    """Print ``line`` to stderr on its own line, above the CLI's progress bar if one is shown."""
    try:
        from tqdm import tqdm
    except ImportError:  # a dependency of rlsuite; kept optional for this message
        print(line, file=sys.stderr, flush=True)
    else:
        tqdm.write(line, file=sys.stderr)


class FastKernel:
    """A :class:`CompiledKernel` with a name: compilations are timed, printed and counted, and a
    failed compilation falls back to running ``fn`` eagerly (one warning per name).

    Args:
        name: shown in the ``compiling ...`` line and the warning.
        fn: pure function of its tensor arguments returning a tuple of tensors.
        options: TorchInductor options (see ``CompiledKernel``).
    """

    def __init__(self, name: str, fn: Callable[..., tuple[torch.Tensor, ...]],
                 options: dict | None = None) -> None:
        self.name = name
        self.fn = fn
        # vec_isa_ok: trust the CPU's reported vector ISA instead of proving it by building and
        # loading a test library in a fresh Python subprocess, per ISA, in every process
        # (measured ~3-7 s of each cold start on this machine).
        self._kernel = CompiledKernel(fn, {"cpp.vec_isa_ok": True, **(options or {})})
        self._failed = False

    def call(self, args: tuple[torch.Tensor, ...], key: Hashable) -> Sequence[torch.Tensor]:
        """Run on ``args``; ``key`` must determine their signature (see ``CompiledKernel.call``)."""
        return self.runner(args, key)(args)

    def runner(
        self, args: tuple[torch.Tensor, ...] | list[torch.Tensor], key: Hashable
    ) -> Callable[[tuple[torch.Tensor, ...] | list[torch.Tensor]], Sequence[torch.Tensor]]:
        """The callable compiled for ``key`` (see ``CompiledKernel.runner``), or ``fn`` run eagerly
        where compilation failed."""
        if self._failed:
            return self._eager
        before = self._kernel.cache_size()
        tic = time.perf_counter()
        try:
            run = self._kernel.runner(args, key)
        except HostSyncError:
            raise  # compiling inside no_host_sync: the caller's error, not the compiler's
        except Exception as error:  # noqa: BLE001 - any compiler failure: fall back, once
            self._failed = True
            _warn_once(self.name, error)
            return self._eager
        seconds = time.perf_counter() - tic
        if self._kernel.cache_size() > before:
            _COMPILE_SECONDS[0] += seconds
            if VERBOSE:
                what = "loading stored" if getattr(run, "stored", False) else "compiling"
                _announce(f"rlsuite: {what} {self.name} ... {seconds:.2f} s")
        return run

    def _eager(self, args: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> list[torch.Tensor]:
        return list(self.fn(*args))

    def __call__(self, *args: torch.Tensor, static: Hashable = None) -> Sequence[torch.Tensor]:
        """Run on ``args`` (their signature computed here)."""
        return self.call(args, (static, signature(args)))


_TWINS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def fast_env(env: Any) -> Any:
    """``env`` with its step fused: a ``compile=True`` twin of a classic-control env (cached per
    env object), ``env`` itself for any other env or one already compiled.

    The twin shares everything with ``env`` (spaces, constants, time limit) and steps the same
    transitions; only how the step runs differs (``core/classic.py``).
    """
    from rlsuite.core.classic import ClassicControlEnv

    if not isinstance(env, ClassicControlEnv) or env.compiled:
        return env
    twin = _TWINS.get(env)
    if twin is None:
        twin = copy.copy(env)
        twin.enable_compile()
        # The twin's kernels, named: their compilation is shown and counted like the policy's.
        name = getattr(env, "name", type(env).__name__)
        twin._kernel = FastKernel(f"{name} physics", twin._flat_physics)
        twin._step_kernel = FastKernel(f"{name} step", twin._flat_step)
        twin._large_step_kernel = FastKernel(f"{name} step", twin._flat_step,
                                             {"cpp_wrapper": True})
        _TWINS[env] = twin
    twin.max_episode_steps = env.max_episode_steps  # follow a reassigned time limit
    return twin


@dataclass(frozen=True)
class Noise:
    """A policy step's randomness: ``width`` uniforms (U[0, 1)) or standard normals per copy,
    drawn from a generator outside compiled code.

    :meth:`draw` is the one place these draws are made, for the eager and the fused path alike,
    so both consume a generator identically.
    """

    kind: str
    """``"uniform"`` or ``"normal"``."""
    width: int
    """Draws per copy and step."""

    def __post_init__(self) -> None:
        if self.kind not in ("uniform", "normal"):
            raise ValueError(f"Noise.kind must be 'uniform' or 'normal', got {self.kind!r}")
        if self.width < 1:
            raise ValueError(f"Noise.width must be >= 1, got {self.width}")

    def draw(self, batch: int, generator: torch.Generator, device: torch.device,
             steps: int | None = None) -> torch.Tensor:
        """``[batch, width]`` draws, or ``[steps, batch, width]`` for ``steps`` steps at once
        (only where :meth:`splits_evenly` says that equals ``steps`` single-step draws)."""
        shape = (batch, self.width) if steps is None else (steps, batch, self.width)
        if self.kind == "uniform":
            return torch.rand(shape, generator=generator, device=device)
        return torch.randn(shape, generator=generator, device=device)

    def splits_evenly(self, batch: int, device: torch.device) -> bool:
        """Whether one draw of ``T`` steps is bit for bit the ``T`` single-step draws in order.

        On CPU, uniforms are drawn one number at a time, so any split is the same stream.
        Normals are made 16 at a time (Box-Muller over blocks of 16, ``normal_fill``), with a
        short tail redone from fresh numbers: a block of steps equals the steps drawn one by one
        only when each step is a whole number of such blocks. Elsewhere (CUDA's Philox offsets)
        the split changes the stream: never.
        """
        if device.type != "cpu":
            return False
        return self.kind == "uniform" or (batch * self.width) % 16 == 0


class FusedPolicy:
    """A policy whose step is one fused kernel: ``kernel(*weights, obs, noise) -> outputs``.

    Callable as an engine :data:`~rlsuite.engine.rollout.Policy` (``obs -> (action, extras)``),
    so the eager ``collect`` and ``evaluate`` accept it unchanged; they recognise it and take the
    fast path (the fused env step).

    Args:
        kernel: the fused step; outputs are ``(env_action, *extras)`` in ``extras`` order.
        weights: returns the weight tensors, read at every call (once per fused rollout or
            evaluation): the live parameters or a fresh layout of them, so optimizer steps and
            ``load_state_dict`` are seen (the kernel runs without autograd).
        noise: the step's randomness (None: deterministic), drawn with :meth:`Noise.draw`.
        generator: the policy's generator (None for a deterministic policy).
        extras: names of the extra outputs.
        static: a hashable that, with the argument signatures, selects the compiled version.
    """

    def __init__(
        self,
        kernel: FastKernel,
        weights: Callable[[], tuple[torch.Tensor, ...]],
        noise: Noise | None,
        generator: torch.Generator | None,
        extras: tuple[str, ...],
        static: Hashable,
    ) -> None:
        self.kernel = kernel
        self.weights = weights
        self.noise = noise
        self.generator = generator
        self.extras = extras
        self.static = static
        self._weights_key: tuple[tuple[torch.Tensor, ...], Any] | None = None

    def _args_and_key(self, obs: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], Hashable]:
        weights, weights_signature = self.weights_and_signature()
        if self.noise is None:
            tail: tuple[torch.Tensor, ...] = (obs,)
        else:
            tail = (obs, self.draw(obs))
        return (*weights, *tail), (self.static, weights_signature, signature(tail))

    def draw(self, obs: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """The randomness of one step for ``obs`` (or of ``steps`` steps, see :class:`Noise`)."""
        assert self.noise is not None and self.generator is not None
        return self.noise.draw(obs.shape[0], self.generator, obs.device, steps)

    def weights_and_signature(self) -> tuple[tuple[torch.Tensor, ...], Any]:
        """The live weight tensors and their :func:`signature` (recomputed only when the tuple
        of tensors changes, not when their values do)."""
        weights = self.weights()
        cached = self._weights_key
        if cached is None or len(cached[0]) != len(weights) or any(
            a is not b for a, b in zip(cached[0], weights, strict=True)
        ):
            cached = self._weights_key = (weights, signature(weights))
        return cached

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``(env_action, extras)`` for a batch of observations."""
        args, key = self._args_and_key(obs)
        out = self.kernel.call(args, key)
        return out[0], dict(zip(self.extras, out[1:], strict=True))
