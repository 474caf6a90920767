"""Base for envs whose state is a few float fields and whose initial states are i.i.d.

CartPole, Pendulum, Acrobot and MountainCar differ only in their transition, their observation
and their initial-state distribution. This base owns everything else once: the time limit,
autoreset (:mod:`rlsuite.core.autoreset`), a pure physics kernel that ``torch.compile`` can
fuse, and param checks.

A subclass declares ``state_cls`` (a dataclass whose fields are the float fields named in
``state_fields``, then ``time`` and ``pool``) and implements ``_sample_initial``, ``_transition``
and ``_observe``.
"""

from __future__ import annotations

import abc
from typing import Any, Generic, TypeVar

import torch

from rlsuite.core import autoreset
from rlsuite.core.env import BatchedEnv, Step

S = TypeVar("S")
P = TypeVar("P")
Fields = tuple[torch.Tensor, ...]


class ClassicControlEnv(BatchedEnv[S, P], Generic[S, P]):
    """Batched env with float state fields, i.i.d. initial states and an optional time limit."""

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
        # The physics (transition, time limit, observation) is one pure kernel that
        # torch.compile fuses; resets stay outside it (they index by data on CPU).
        self._physics = self._physics_kernel
        if compile:
            self._physics = torch.compile(self._physics_kernel, dynamic=False, fullgraph=True)

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
        """Observation ``[B, obs_dim]`` (float32) of the given state fields."""

    def _prepare_action(self, action: torch.Tensor) -> torch.Tensor:
        """Hook to validate or convert the action before the kernels (default: unchanged)."""
        return action

    # -- the shared machinery ---------------------------------------------------------------
    def _physics_kernel(
        self, fields: Fields, action: torch.Tensor, params: P, time: torch.Tensor
    ) -> tuple[Fields, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        nxt, reward, terminated = self._transition(fields, action, params)
        time = time + 1
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = time >= self.max_episode_steps
        return nxt, time, reward.to(torch.float32), terminated, truncated, self._observe(nxt)

    def _make_state(self, fields: Fields, time: torch.Tensor, pool: autoreset.ResetPool) -> S:
        return self.state_cls(*fields, time=time, pool=pool)

    def reset(self, params: P, generator: torch.Generator) -> tuple[torch.Tensor, S]:
        """Start every copy from an i.i.d. initial state."""
        self.check_params(params)
        b = _first_dim(params)
        init = self._sample_initial(b, generator)
        fields = tuple(init[i] for i in range(init.shape[0]))
        time = torch.zeros(b, dtype=torch.int32, device=self.device)
        pool = autoreset.new_pool(self._sample_initial, b, generator)
        return self._observe(fields), self._make_state(fields, time, pool)

    def step(self, state: S, action: torch.Tensor, params: P, generator: torch.Generator) -> Step[S]:
        """Advance all copies; where an episode ends, start the next one in the same call."""
        fields = tuple(getattr(state, name) for name in self.state_fields)
        action = self._prepare_action(action)
        nxt, time, reward, terminated, truncated, final_obs = self._physics(
            fields, action, params, state.time  # type: ignore[attr-defined]
        )
        # apply_resets may write in place on CPU: never into the previous state's tensors.
        nxt = tuple(n.clone() if any(n is f for f in fields) else n for n in nxt)
        nxt, time, pool, any_reset = autoreset.apply_resets(
            nxt, time, terminated | truncated, state.pool,  # type: ignore[attr-defined]
            self._sample_initial, generator,
        )
        obs = self._observe(nxt) if any_reset else final_obs
        return Step(obs, self._make_state(nxt, time, pool), reward, terminated, truncated, final_obs)


def _first_dim(params: Any) -> int:
    from rlsuite.core import tree

    return tree.batch_size(params)
