"""The batched environment contract.

An env is a stateless object: all that changes lives in ``State``, all that is constant per copy
lives in ``Params``, and all randomness comes from the ``torch.Generator`` passed in::

    obs, state = env.reset(params, generator)
    step = env.step(state, action, params, generator)   # -> Step

Every tensor has a leading batch dimension ``B``; copy ``i`` steps with ``params[i]``, so one call
can run ``B`` different physics. Autoreset happens inside ``step`` by ``torch.where`` (same-step
mode): where an episode ends, ``step.obs`` and ``step.state`` already belong to the next episode and
``step.final_obs`` holds the observation the episode ended on. ``terminated`` (a terminal state of
the MDP, do not bootstrap) and ``truncated`` (time limit, bootstrap) are reported separately and
follow gymnasium's ``TimeLimit`` semantics: both may be true on the same step.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch

from rlsuite.core import spaces
from rlsuite.core.params import check_values, validate_params

S = TypeVar("S")
P = TypeVar("P")


@dataclass(frozen=True)
class Step(Generic[S]):
    """What ``env.step`` returns; every tensor is ``[B, ...]``.

    Attributes:
        obs: observation to act on next (the first observation of a new episode where one ended).
        state: the env state matching ``obs``.
        reward: ``[B]`` float32 reward of the transition.
        terminated: ``[B]`` bool, the transition reached a terminal state.
        truncated: ``[B]`` bool, the episode hit its time limit.
        final_obs: ``[B, ...]`` the observation reached by the transition, before any reset.
    """

    obs: torch.Tensor
    state: S
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_obs: torch.Tensor

    @property
    def done(self) -> torch.Tensor:
        """``terminated | truncated``: the copies that were reset in this step."""
        return self.terminated | self.truncated


class BatchedEnv(abc.ABC, Generic[S, P]):
    """Base of the engine envs: holds the static description, subclasses write the dynamics.

    Subclasses set ``name``, ``observation_space``, ``action_space`` (single-copy spaces on
    ``device``) and ``max_episode_steps`` (``None`` for no time limit), and implement
    :meth:`default_params`, :meth:`reset` and :meth:`step`.
    """

    name: str = "env"
    observation_space: spaces.Space
    action_space: spaces.Space
    max_episode_steps: int | None = None
    finite_params: tuple[str, ...] = ()
    """Params fields that must be finite in every copy (checked by :meth:`check_params`)."""
    positive_params: tuple[str, ...] = ()
    """Params fields that must be finite and > 0 in every copy (masses, lengths, time steps)."""
    nonnegative_params: tuple[str, ...] = ()
    """Params fields that must be finite and >= 0 in every copy (speed and torque limits)."""
    unit_params: tuple[str, ...] = ()
    """Params fields that must lie in [0, 1] in every copy (probabilities)."""
    check_actions: bool = os.environ.get("RLSUITE_CHECK_ACTIONS", "0") not in ("", "0")
    """Refuse action values outside the action space in ``step`` (:meth:`check_action_values`).
    Off by default for the classic-control envs: the test needs a host sync per step, which the
    engine avoids (on a GPU it would stall every step). Turn it on per env (``env.check_actions =
    True``) or for a whole process with ``RLSUITE_CHECK_ACTIONS=1`` while debugging; the env
    checker turns it on. The tabular envs keep their own CPU-only check, on by default."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)

    @abc.abstractmethod
    def default_params(self, batch_size: int = 1) -> P:
        """The env's standard constants (gymnasium's values), repeated for ``batch_size`` copies."""

    @abc.abstractmethod
    def reset(self, params: P, generator: torch.Generator) -> tuple[torch.Tensor, S]:
        """Start an episode in every copy: ``(obs [B, ...], state)``."""

    @abc.abstractmethod
    def step(self, state: S, action: torch.Tensor, params: P, generator: torch.Generator) -> Step[S]:
        """Advance every copy by one transition, autoresetting the copies whose episode ended."""

    def check_params(self, params: P, batch_size: int | None = None) -> None:
        """Raise a ValueError naming the field if ``params`` does not fit this env: shapes, dtypes
        and device, then (see :meth:`check_param_values`) the values. Envs call this at ``reset``,
        never per step.

        Reading the values is one host sync, so here it happens only where the engine already
        reads the host at reset (the CPU's reset pool, :func:`rlsuite.core.autoreset.uses_pool`)
        or with :attr:`check_actions` on: on a GPU a reset stays sync-free. The runner checks the
        values once before training (:meth:`check_param_values`), on every device."""
        from rlsuite.core.autoreset import uses_pool

        validate_params(params, self.default_params(1), batch_size)
        if uses_pool(self.device) or self.check_actions:
            self.check_param_values(params)

    def check_param_values(self, params: P) -> None:
        """Raise a ConfigError naming the field, the value and the copy if a value of
        :attr:`finite_params` is not finite, one of :attr:`positive_params` /
        :attr:`nonnegative_params` is not positive / non-negative, or one of :attr:`unit_params`
        lies outside [0, 1] (one host sync)."""
        check_values(params, self.finite_params, self.positive_params, self.nonnegative_params,
                     self.unit_params)

    def check_action_values(self, action: torch.Tensor) -> None:
        """Raise a ValueError naming the first copy whose action lies outside the action space:
        a Discrete index outside ``0 .. n-1``, or a NaN/inf entry of a Box action (finite values
        outside a Box are the env's to clip, as gymnasium's envs do). One host sync."""
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            bad = (action < 0) | (action >= space.n)
            allowed = f"integers in [0, {space.n})"
        else:
            bad = ~torch.isfinite(action)
            allowed = "finite values"
        bad = bad.reshape(action.shape[0], -1).any(-1)
        if bool(bad.any()):
            copy = int(bad.nonzero()[0, 0])
            value = action[copy].tolist()
            raise ValueError(f"{self.name} action {value} of copy {copy} is outside the action "
                             f"space ({allowed})")

    def make_generator(self, seed: int) -> torch.Generator:
        """A generator on this env's device, seeded with ``seed``."""
        return torch.Generator(device=self.device).manual_seed(int(seed))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device})"


def num_copies(params: Any) -> int:
    """Batch size of a params object."""
    from rlsuite.core import tree

    return tree.batch_size(params)
