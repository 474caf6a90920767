"""Rollout collection on the env's device, with episode statistics kept as tensors.

``collect`` fills a preallocated, time-major ``[T, B, ...]`` :class:`Rollout`. Nothing inside
the loop reads a tensor on the host: episode returns and lengths are accumulated with masked
tensor arithmetic (PureJaxRL's ``LogWrapper`` idea), and read once at log time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from rlsuite.core.env import BatchedEnv
from rlsuite.engine.fastpath import FusedPolicy, fast_env

PolicyOutput = torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor]]
Policy = Callable[[torch.Tensor], PolicyOutput]
"""``policy(obs [B, ...]) -> action`` or ``(action, extras)``; extras (log-probs, values...) are
stored in the rollout, one ``[T, B, ...]`` tensor per key."""


@dataclass(frozen=True)
class EpisodeStats:
    """Running return and length of each copy's current episode (``[B]`` tensors)."""

    returns: torch.Tensor
    lengths: torch.Tensor

    @staticmethod
    def zeros(batch_size: int, device: torch.device) -> EpisodeStats:
        """Fresh statistics: every copy at the start of an episode."""
        return EpisodeStats(
            torch.zeros(batch_size, dtype=torch.float32, device=device),
            torch.zeros(batch_size, dtype=torch.int64, device=device),
        )

    def update(
        self, reward: torch.Tensor, done: torch.Tensor
    ) -> tuple[EpisodeStats, torch.Tensor, torch.Tensor]:
        """Add one step; return ``(stats, finished_return, finished_length)``.

        The finished tensors hold the whole episode's return and length where ``done`` and 0
        elsewhere (gymnasium's ``info["episode"]`` with ``done`` as its ``_episode`` mask).
        """
        returns = self.returns + reward
        lengths = self.lengths + 1
        finished_return = torch.where(done, returns, torch.zeros_like(returns))
        finished_length = torch.where(done, lengths, torch.zeros_like(lengths))
        kept = EpisodeStats(returns - finished_return, lengths - finished_length)
        return kept, finished_return, finished_length


@dataclass(frozen=True)
class RolloutState:
    """What carries over between calls of :func:`collect`: the observation to act on, the env
    state and the episode statistics."""

    obs: torch.Tensor
    env_state: Any
    episode: EpisodeStats


@dataclass
class Rollout:
    """Time-major transitions ``[T, B, ...]`` on the env's device.

    ``next_obs[t]`` is the observation the transition reached, before any autoreset (so it is
    ``obs[t + 1]`` except where an episode ended). ``episode_return[t]`` / ``episode_length[t]``
    hold the finished episode's totals where ``terminated | truncated`` and 0 elsewhere.
    """

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    next_obs: torch.Tensor
    episode_return: torch.Tensor
    episode_length: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def done(self) -> torch.Tensor:
        """``terminated | truncated``, ``[T, B]``."""
        return self.terminated | self.truncated

    @property
    def num_steps(self) -> int:
        """T: steps per copy."""
        return self.reward.shape[0]

    @property
    def num_envs(self) -> int:
        """B: copies."""
        return self.reward.shape[1]

    def finished_episodes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns and lengths of the episodes that ended in this rollout (1-D; syncs the host)."""
        mask = self.done
        return self.episode_return[mask], self.episode_length[mask]

    def info_episode(self, t: int) -> dict[str, Any]:
        """Step ``t``'s statistics in gymnasium's vector shape:
        ``{"episode": {"r": [B], "l": [B]}, "_episode": [B] bool}``."""
        return {
            "episode": {"r": self.episode_return[t], "l": self.episode_length[t]},
            "_episode": self.done[t],
        }


def start(env: BatchedEnv, params: Any, generator: torch.Generator) -> RolloutState:
    """Reset every copy and return the initial :class:`RolloutState`."""
    obs, env_state = env.reset(params, generator)
    return RolloutState(obs, env_state, EpisodeStats.zeros(obs.shape[0], obs.device))


def _buffer(t: int, like: torch.Tensor) -> torch.Tensor:
    return torch.empty((t, *like.shape), dtype=like.dtype, device=like.device)


def collect(
    env: BatchedEnv,
    state: RolloutState,
    params: Any,
    policy: Policy,
    num_steps: int,
    generator: torch.Generator,
) -> tuple[Rollout, RolloutState]:
    """Step ``B`` copies ``num_steps`` times with ``policy``, recording a time-major rollout.

    Args:
        env: the batched env.
        state: from :func:`start` or a previous ``collect``.
        params: the env's per-copy params (``B`` copies).
        policy: maps ``obs [B, ...]`` to actions, optionally with extras to store. A
            :class:`~rlsuite.engine.fastpath.FusedPolicy` also switches the env to its fused step
            (:func:`~rlsuite.engine.fastpath.fast_env`): same transitions, same generator use.
        num_steps: T.
        generator: the env's randomness (the policy owns its own).

    Returns:
        ``(rollout, state)``: the ``[T, B, ...]`` rollout and the state to continue from.
    """
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    if isinstance(policy, FusedPolicy):
        # The fast path: policy, env step and storage as one kernel per step where the env's step
        # can be fused with the policy (fused_loop); else a fused policy steps the fused env.
        # No autograd here, as in evaluate (grad mode is part of a compiled kernel's key).
        from rlsuite.engine.fused_loop import collect_fused

        fused = collect_fused(env, state, params, policy, num_steps, generator)
        if fused is not None:
            return fused
        with torch.no_grad():
            return _collect(fast_env(env), state, params, policy, num_steps, generator)
    return _collect(env, state, params, policy, num_steps, generator)


def _collect(
    env: BatchedEnv,
    state: RolloutState,
    params: Any,
    policy: Policy,
    num_steps: int,
    generator: torch.Generator,
) -> tuple[Rollout, RolloutState]:
    obs, env_state, episode = state.obs, state.env_state, state.episode
    out: Rollout | None = None
    for t in range(num_steps):
        result = policy(obs)
        action, extras = result if isinstance(result, tuple) else (result, {})
        step = env.step(env_state, action, params, generator)
        done = step.terminated | step.truncated
        episode, finished_return, finished_length = episode.update(step.reward, done)
        if out is None:  # allocate once, when the shapes of actions and extras are known
            out = Rollout(
                obs=_buffer(num_steps, obs), action=_buffer(num_steps, action),
                reward=_buffer(num_steps, step.reward),
                terminated=_buffer(num_steps, step.terminated),
                truncated=_buffer(num_steps, step.truncated),
                next_obs=_buffer(num_steps, step.final_obs),
                episode_return=_buffer(num_steps, finished_return),
                episode_length=_buffer(num_steps, finished_length),
                extras={k: _buffer(num_steps, v) for k, v in extras.items()},
            )
        out.obs[t] = obs
        out.action[t] = action
        out.reward[t] = step.reward
        out.terminated[t] = step.terminated
        out.truncated[t] = step.truncated
        out.next_obs[t] = step.final_obs
        out.episode_return[t] = finished_return
        out.episode_length[t] = finished_length
        for key, value in extras.items():
            out.extras[key][t] = value
        obs, env_state = step.obs, step.state
    assert out is not None
    return out, RolloutState(obs, env_state, episode)
