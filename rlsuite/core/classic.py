"""Base for envs whose state is a few float fields and whose initial states are i.i.d.

CartPole, Pendulum, Acrobot and MountainCar differ only in their transition, their observation
and their initial-state distribution. This base owns everything else once: the time limit,
autoreset (:mod:`rlsuite.core.autoreset`), a pure physics kernel that can be fused
(:mod:`rlsuite.core.compiled`), and param checks.

A subclass declares ``state_cls`` (a dataclass whose fields are the float fields named in
``state_fields``, then ``time`` and ``pool``) and implements ``_sample_initial``, ``_transition``
and ``_observe`` (and optionally ``_prepare_action``). ``_physics_kernel`` (transition, time limit,
observation) may be overridden as long as it stays a pure function of its tensor arguments:
``compile=True`` traces it.

Three ways a step runs:

* eager (default): ``_physics_kernel`` op by op, then :func:`autoreset.restart_stacked` (on CPU,
  resets found and written on the host, nothing done on a step where no episode ends; elsewhere
  ``torch.where`` with fresh draws);
* ``compile=True`` on CPU: the whole step, resets included, as one TorchInductor graph
  (:meth:`ClassicControlEnv._flat_step`), called through :class:`CompiledKernel`;
* ``compile=True`` elsewhere: ``_physics_kernel`` fused, resets by ``torch.where`` outside it.

All three consume the reset pool identically (same copies restart from the same columns).

Why it is written this way (``docs/performance.md``, "Fixed cost per op"): on CPU an eager op costs ~2-4 us
of dispatch whatever its size, so below a few thousand copies a step costs its op count, and the
step spends no op it does not need. Above that, each op streams ``B`` elements, and elementwise
float arithmetic is preferred to comparisons and selects (~4x slower per element on this CPU).
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, Generic, TypeVar

import torch

from rlsuite.core import autoreset
from rlsuite.core.compiled import CompiledKernel, signature
from rlsuite.core.env import BatchedEnv, Step

S = TypeVar("S")
P = TypeVar("P")
Fields = tuple[torch.Tensor, ...]
SMALL_BATCH = 64
"""Up to this batch size the fused CPU step counts resets with a scan fused into the step (see
:func:`_prefix_sum`) instead of ATen's cumsum."""
KernelOut = tuple[Fields, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
"""``(next fields, time, reward, terminated, truncated, observation of the next fields)``."""


def _prefix_sum(x: torch.Tensor) -> torch.Tensor:
    """Inclusive prefix sum of a 1-D integer tensor, as ``ceil(log2 n)`` shifted adds
    (Hillis-Steele): ops TorchInductor fuses, unlike ``torch.cumsum``. Exact for integers."""
    shift = 1
    while shift < x.shape[0]:
        x = x + torch.nn.functional.pad(x[:-shift], (shift, 0))
        shift *= 2
    return x


class ClassicControlEnv(BatchedEnv[S, P], Generic[S, P]):
    """Batched env with float state fields, i.i.d. initial states and an optional time limit.

    Args:
        device: where state, params and observations live.
        max_episode_steps: time limit (``None``: none); ``truncated`` is set when it is reached.
        dtype: float dtype of the state fields.
        compile: fuse the step with TorchInductor (see the module docstring); each new batch size
            or dtype compiles once, ~1-3 s on CPU (longer with a cold inductor cache).
    """

    state_cls: type
    state_fields: tuple[str, ...]

    def __init__(
        self,
        device: torch.device | str = "cpu",
        max_episode_steps: int | None = None,
        dtype: torch.dtype = torch.float32,
        compile: bool = False,
    ) -> None:
        super().__init__(device)
        self.max_episode_steps = max_episode_steps
        self.dtype = dtype
        self.compiled = compile
        # Scalars as 0-dim tensors: an op with a Python scalar pays ~2 us to wrap it, every step.
        self._one = torch.ones((), dtype=torch.int32, device=self.device)
        self._physics = self._physics_kernel
        self._fused_step = False
        if compile:
            self.enable_compile()

    def enable_compile(self) -> None:
        """Switch this env to fused steps (what ``compile=True`` does; the fast path calls it
        on a copy of an eager env, :func:`rlsuite.engine.fastpath.fast_env`)."""
        self.compiled = True
        # On CPU, compile=True fuses the whole step (_flat_step); elsewhere the physics
        # (_flat_physics), with resets by torch.where outside it.
        self._fused_step = autoreset.uses_pool(self.device)
        self._kernel = CompiledKernel(self._flat_physics)
        self._step_kernel = CompiledKernel(self._flat_step)
        # Above SMALL_BATCH the fused step calls ATen's cumsum; inductor's C++ wrapper makes
        # that call and the output allocations from C++ (measured: ~20 us less per step; it
        # compiles slower, ~4 s with a cold cache).
        self._large_step_kernel = CompiledKernel(self._flat_step, {"cpp_wrapper": True})
        self._last_params: Any = None
        self._physics = self._compiled_physics

    # -- what a subclass writes -------------------------------------------------------------
    @abc.abstractmethod
    def _sample_initial(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` i.i.d. initial states as ``[F, n]`` (rows in ``state_fields`` order)."""

    @abc.abstractmethod
    def _transition(
        self, fields: Fields, action: torch.Tensor, params: P
    ) -> tuple[Fields, torch.Tensor, torch.Tensor]:
        """Pure dynamics: ``(next fields, reward [B], terminated [B] bool)``."""

    @abc.abstractmethod
    def _observe(self, fields: Fields) -> torch.Tensor:
        """Observation ``[B, obs_dim]`` (float32) of the given state fields.

        It may share memory with the fields: resets never write into the fields it observed
        (:func:`autoreset.restart_stacked` copies them first).
        """

    def _prepare_action(self, action: torch.Tensor) -> torch.Tensor:
        """Hook to validate or convert the action before the kernels (default: unchanged)."""
        return action

    # -- the shared machinery ---------------------------------------------------------------
    def _physics_kernel(
        self, fields: Fields, action: torch.Tensor, params: P, time: torch.Tensor
    ) -> KernelOut:
        """Transition, time limit and observation: a pure function of its tensor arguments."""
        nxt, reward, terminated = self._transition(fields, action, params)
        time = time + self._one
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = time >= self._time_limit()
        if reward.dtype != torch.float32:  # a no-op .to() still costs a dispatch (~1-2 us)
            reward = reward.to(torch.float32)
        return nxt, time, reward, terminated, truncated, self._observe(nxt)

    def _time_limit(self) -> torch.Tensor:
        # Cached as a 0-dim tensor (see _one), rebuilt if max_episode_steps was reassigned.
        limit = self.max_episode_steps
        cached = getattr(self, "_limit_cache", None)
        if cached is None or cached[0] != limit:
            cached = (limit, torch.tensor(limit, dtype=torch.int32, device=self.device))
            self._limit_cache = cached
        return cached[1]

    def _flat_physics(self, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``_physics_kernel`` over flat tensors ``(*fields, action, time, *params)``.

        What ``compile=True`` fuses off the CPU, where resets then land by ``torch.where``.
        """
        f = len(self.state_fields)
        fields, action, time = flat[:f], flat[f], flat[f + 1]
        nxt, time, reward, terminated, truncated, obs = self._physics_kernel(
            fields, action, self._rebuild_params(flat[f + 2 :]), time
        )
        return (*nxt, time, reward, terminated, truncated, obs)

    def _flat_step(self, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A whole CPU step, resets included: what ``compile=True`` fuses on the CPU.

        ``flat`` is ``(*fields, action, time, pool values, cursor, *params)``. The copies that end
        take the pool's next unused columns in copy order, exactly as
        :func:`autoreset.restart_stacked` hands them out, but by arithmetic instead of by host
        indexing: the ``k``-th copy to end (``k`` from a cumsum of ``done``) takes column
        ``cursor + k``. The pool holds at least ``B`` unused columns (``ensure_pool`` ran first).
        """
        f = len(self.state_fields)
        fields, action, time, pool, cursor = flat[:f], *flat[f : f + 4]
        nxt, time, reward, terminated, truncated, final_obs = self._physics_kernel(
            fields, action, self._rebuild_params(flat[f + 4 :]), time
        )
        ended = (terminated | truncated).to(torch.int32)
        b = ended.shape[0]
        if b <= SMALL_BATCH:
            # cumsum as a log-step scan: inductor fuses it into the step (a cumsum is a call out
            # of the fused code into ATen, which costs more than these ~b log b adds). It
            # replaced a masked row sum of b * b adds, which took ~3/4 of a fused 64-copy
            # rollout step's own kernel (perf: ~8 us of ~11).
            count = _prefix_sum(ended)
        else:
            count = torch.cumsum(ended, 0, dtype=torch.int32)  # copies in 0..i that ended
        # Copies in 0..i-1 that ended. Not pad(count[:-1], (1, 0)): inductor reads that shift
        # with a vector load one element early, whose lanes past the batch read past the end
        # of count's buffer (garbage there, see below).
        before = count - ended
        # done is read back from count rather than kept from the physics: cumsum is a separate
        # kernel, and a bool crossing into the loop after it is stored through inductor's slow
        # bool path. before <= B - 1 where a copy does not end, so every column is in range.
        done = count != before
        initial = tuple(pool[:, cursor + before].unbind(0))
        fields = tuple(torch.where(done, initial[i], x) for i, x in enumerate(nxt))
        time = torch.where(done, torch.zeros_like(time), time)
        # The observation of a copy that goes on is its final observation, selected, not
        # observed again from the merged state: a vectorised sin/cos (SLEEF) takes a slower
        # argument reduction for the whole vector when any lane is out of its fast range, and
        # rounds the in-range lanes differently then. The merged state's lanes past the batch
        # come from the scan's shifted loads (whatever memory they read), so observing it gave
        # the same copies' observations 1 ulp apart from run to run, and 1 ulp from final_obs.
        # Observing the reset states and the physics' state keeps every lane a function of the
        # inputs alone.
        ended_rows = done.view(-1, *([1] * (final_obs.dim() - 1)))
        obs = torch.where(ended_rows, self._observe(initial), final_obs)
        cursor = cursor + count[-1:].sum()
        return (*fields, time, reward, terminated, truncated, final_obs, obs, cursor)

    def _rebuild_params(self, values: tuple[torch.Tensor, ...]) -> P:
        return self._params_type(**dict(zip(self._param_names, values, strict=True)))

    def _param_tensors(self, params: P) -> tuple[tuple[torch.Tensor, ...], Any]:
        """``params``' tensors in field order, and their :func:`signature`.

        Both are kept while the same params object comes back (the usual case). The object is
        held, so its id cannot be reused; a frozen dataclass cannot swap its tensors, and in-place
        writes change values, not the dtypes/shapes/strides the compiled code is specialised to.
        The values themselves are read by every call.
        """
        if params is not self._last_params:
            if type(params) is not getattr(self, "_params_type", None):
                self._bind_params_type(params)
            values = tuple([getattr(params, name) for name in self._param_names])
            self._last_params, self._param_values = params, values
            self._param_signature = signature(values)
        return self._param_values, self._param_signature

    def _compiled_physics(
        self, fields: Fields, action: torch.Tensor, params: P, time: torch.Tensor
    ) -> KernelOut:
        values, params_signature = self._param_tensors(params)
        head = (*fields, action, time)
        # The kernel bakes in the time limit, so it is part of the key.
        key = ("physics", self.max_episode_steps, params_signature, signature(head))
        out = self._kernel.call(head + values, key)
        f = len(fields)
        return tuple(out[:f]), out[f], out[f + 1], out[f + 2], out[f + 3], out[f + 4]

    def _compiled_step(
        self,
        fields: Fields,
        action: torch.Tensor,
        params: P,
        time: torch.Tensor,
        pool: autoreset.ResetPool,
    ) -> Step[S]:
        values, params_signature = self._param_tensors(params)
        head = (*fields, action, time, pool.values)
        cursor = torch.full((), pool.cursor, dtype=torch.int64)
        key = ("step", self.max_episode_steps, params_signature, signature(head))
        kernel = self._step_kernel if time.shape[0] <= SMALL_BATCH else self._large_step_kernel
        out = kernel.call((*head, cursor, *values), key)
        f = len(fields)
        time, reward, terminated, truncated, final_obs, obs, cursor = out[f:]
        # One host read of a CPU scalar (no device involved): the pool's cursor is a Python int.
        pool = autoreset.ResetPool(pool.values, int(cursor))
        state = self._make_state(tuple(out[:f]), time, pool)
        return Step(obs, state, reward, terminated, truncated, final_obs)

    def _bind_params_type(self, params: P) -> None:
        names = [f.name for f in dataclasses.fields(params)]  # type: ignore[arg-type]
        others = [n for n in names if not isinstance(getattr(params, n), torch.Tensor)]
        if others:
            raise TypeError(
                f"compile=True needs params whose fields are all tensors; "
                f"{type(params).__name__} has {others}"
            )
        self._params_type, self._param_names = type(params), tuple(names)

    def _make_state(self, fields: Fields, time: torch.Tensor, pool: autoreset.ResetPool) -> S:
        return self.state_cls(*fields, time=time, pool=pool)

    def reset(self, params: P, generator: torch.Generator) -> tuple[torch.Tensor, S]:
        """Start every copy from an i.i.d. initial state."""
        self.check_params(params)
        b = _first_dim(params)
        init = self._sample_initial(b, generator)
        fields = tuple(init.unbind(0))
        time = torch.zeros(b, dtype=torch.int32, device=self.device)
        pool = autoreset.new_pool(self._sample_initial, b, generator)
        return self._observe(fields), self._make_state(fields, time, pool)

    def step(
        self, state: S, action: torch.Tensor, params: P, generator: torch.Generator
    ) -> Step[S]:
        """Advance all copies; where an episode ends, start the next one in the same call."""
        fields = tuple([getattr(state, name) for name in self.state_fields])
        # A shape check on Python ints (no host sync): a [B, 1] action would otherwise broadcast
        # against [B] fields into a silent [B, B] result.
        b = fields[0].shape[0]
        expected = (b, *self.action_space.shape)
        if action.shape != expected:
            raise ValueError(f"action has shape {tuple(action.shape)}; expected {expected}")
        if self.check_actions:  # opt-in: a host sync per step (see BatchedEnv.check_actions)
            self.check_action_values(action)
        action = self._prepare_action(action)
        old_time = state.time  # type: ignore[attr-defined]
        pool = autoreset.ensure_pool(
            state.pool, b, self._sample_initial, generator  # type: ignore[attr-defined]
        )
        if self._fused_step:
            return self._compiled_step(fields, action, params, old_time, pool)
        nxt, time, reward, terminated, truncated, final_obs = self._physics(
            fields, action, params, old_time
        )
        if time is old_time:  # the CPU reset writes counters in place: never the previous state's
            time = time.clone()
        # restart_stacked never writes into nxt, so final_obs stays the pre-reset observation even
        # where it shares memory with nxt.
        nxt, time, pool, any_reset = autoreset.restart_stacked(
            nxt, time, terminated | truncated, pool, self._sample_initial, generator
        )
        obs = self._observe(nxt) if any_reset else final_obs
        state = self._make_state(nxt, time, pool)
        return Step(obs, state, reward, terminated, truncated, final_obs)


def _first_dim(params: Any) -> int:
    from rlsuite.core import tree

    return tree.batch_size(params)
