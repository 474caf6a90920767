"""VGDF's two domains: where the agent steps, evaluates and what it predicts terminal.

:class:`ShiftDomains` is the engine path: one env (Pendulum, ContinuousCartPole) whose source and
target are two params (:func:`rlsuite.envs.shifts.domain_params`). :class:`GymnasiumDomains` is
the MuJoCo path: two gymnasium env ids (the paper's tasks: the stock env and a target from
:mod:`rlsuite.envs.mujoco_shifts`), each run through :class:`rlsuite.engine.gym_import.GymnasiumEnv`.
Gymnasium envs are stateful, so evaluation gets its own env per (domain, number of copies) instead
of sharing the interaction's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rlsuite.core import tree
from rlsuite.core.env import BatchedEnv
from rlsuite.envs.shifts import FIELDS_FROM_OBS, TERMINAL_FNS, domain_params, shifted_env, step_from_obs

TerminalFn = Callable[[torch.Tensor], torch.Tensor]
DOMAINS = ("source", "target")


def _check_domain(domain: str) -> None:
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")


class ShiftDomains:
    """Source and target as two params of one engine env's shift-capable twin.

    Args:
        env: the engine env (its twin from :func:`rlsuite.envs.shifts.shifted_env` is used).
        params: the source params; their batch size is the number of source copies.
        target_envs: target copies stepped together.
        shift: the target's overrides (``"action_low=0"``).
    """

    def __init__(self, env: BatchedEnv, params: Any, target_envs: int, shift: str) -> None:
        self.env = shifted_env(env)
        self.shift = shift
        self.source_env = self.target_env = self.env
        self.source_params = domain_params(env, params, tree.batch_size(params), {})
        self.target_params = domain_params(env, params, target_envs, shift)
        self.terminal: TerminalFn | None = TERMINAL_FNS.get(type(self.env))
        self.target_step_unavailable: str | None = (
            None if type(self.env) in FIELDS_FROM_OBS else
            f"{type(self.env).__name__} cannot rebuild a state from an observation")
        """Why :meth:`target_next_obs` cannot run (None: it can)."""
        self._target_copies: dict[int, Any] = {}

    def target_next_obs(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """The next observations ``[N, d]`` the *target* dynamics reach from the states of ``obs
        [N, d]`` under ``action [N, k]`` (no generator draw: the engine env is stateless)."""
        n = obs.shape[0]
        if n not in self._target_copies:  # N copies of the target params, built once per N
            self._target_copies[n] = domain_params(self.env, self.target_params, n, {})
        return step_from_obs(self.env, self._target_copies[n], obs, action)

    def eval_env(self, domain: str, copies: int) -> tuple[BatchedEnv, Any]:
        """The env and ``copies`` params of ``domain`` for a greedy evaluation."""
        _check_domain(domain)
        return self.env, domain_params(self.env, self.source_params, copies,
                                       self.shift if domain == "target" else {})


class GymnasiumDomains:
    """Source and target as two gymnasium env ids with the same spaces.

    Args:
        source_id / target_id: registered gymnasium ids (``"HalfCheetah-v5"`` and
            ``"rlsuite/HalfCheetah-BrokenBackThigh-v5"``).
        num_source / target_envs: copies stepped together in each domain.
        terminal: the predicate applied to model-predicted observations (None: never terminal).
        device: where the tensors live.
        **kwargs: passed to every ``gymnasium.make_vec`` (both domains).
    """

    def __init__(self, source_id: str, target_id: str, num_source: int, target_envs: int,
                 terminal: TerminalFn | None = None, device: torch.device | str = "cpu",
                 **kwargs: Any) -> None:
        from rlsuite.engine.gym_import import GymnasiumEnv

        self._make = GymnasiumEnv
        self.ids = {"source": source_id, "target": target_id}
        self.kwargs = kwargs
        self.device = torch.device(device)
        self.source_env = GymnasiumEnv(source_id, num_source, self.device, **kwargs)
        self.target_env = GymnasiumEnv(target_id, target_envs, self.device, **kwargs)
        src, tar = self.source_env, self.target_env
        for what in ("observation_space", "action_space"):
            a, b = getattr(src, what), getattr(tar, what)
            same = a.shape == b.shape and all(
                torch.equal(getattr(a, k), getattr(b, k)) for k in ("low", "high") if hasattr(a, k))
            if not same:
                raise ValueError(f"GymnasiumDomains: {source_id} and {target_id} have different "
                                 f"{what}s: {a} vs {b}")
        self.env = self.source_env
        self.source_params = src.default_params()
        self.target_params = tar.default_params()
        self.terminal = terminal
        self.target_step_unavailable: str | None = (
            "gymnasium MuJoCo envs cannot be set to a state rebuilt from an observation (it omits "
            "the root position and the simulator keeps its own state)")
        """Why the target's next state of a source transition cannot be computed."""
        self._eval: dict[tuple[str, int], BatchedEnv] = {}

    @classmethod
    def for_task(cls, task: str, num_source: int, target_envs: int,
                 device: torch.device | str = "cpu", **kwargs: Any) -> GymnasiumDomains:
        """The pair of one of the paper's MuJoCo tasks (:data:`rlsuite.envs.mujoco_shifts.TASKS`),
        with the source robot's terminal predicate."""
        from rlsuite.envs import mujoco_shifts

        t = mujoco_shifts.get_task(task)
        return cls(t.source_id, t.target_id, num_source, target_envs,
                   mujoco_shifts.TERMINAL_FNS.get(t.source_id), device, **{**dict(t.env_kwargs), **kwargs})

    def eval_env(self, domain: str, copies: int) -> tuple[BatchedEnv, Any]:
        """A dedicated env of ``copies`` copies of ``domain`` (built once, then reused)."""
        _check_domain(domain)
        key = (domain, copies)
        if key not in self._eval:
            self._eval[key] = self._make(self.ids[domain], copies, self.device, **self.kwargs)
        env = self._eval[key]
        return env, env.default_params()

    def close(self) -> None:
        """Close every gymnasium env."""
        for env in (self.source_env, self.target_env, *self._eval.values()):
            env.close()
