"""Score a policy on every copy of a batched env: one rollout evaluates a whole params grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlsuite.core.env import BatchedEnv
from rlsuite.engine.fastpath import FusedPolicy, fast_env
from rlsuite.engine.rollout import EpisodeStats, Policy
from rlsuite.engine.syncguard import host_sync_point

CHECK_EVERY = 32
"""Steps between the (host-syncing) checks whether every copy has finished."""


@dataclass(frozen=True)
class EvalResult:
    """Per-copy results: ``returns`` and ``lengths`` are ``[B, episodes]``."""

    returns: torch.Tensor
    lengths: torch.Tensor

    @property
    def mean_return(self) -> torch.Tensor:
        """``[B]`` mean return of each copy (each params setting)."""
        return self.returns.mean(dim=1)


def evaluate(
    policy: Policy,
    env: BatchedEnv,
    params: Any,
    episodes: int,
    generator: torch.Generator,
    max_steps: int | None = None,
) -> EvalResult:
    """Run every copy until it has finished ``episodes`` episodes; return per-copy results.

    Copy ``i`` runs with ``params[i]``, so scoring a policy on a grid of dynamics is one call
    with grid params (see :func:`rlsuite.core.params.grid_params`).

    Args:
        policy: ``obs -> action`` (or ``(action, extras)``; extras are ignored).
        episodes: episodes per copy.
        max_steps: cap on steps per copy; defaults to ``episodes * env.max_episode_steps``.

    Raises:
        ValueError: when the env has no time limit and ``max_steps`` is not given, or when the
            cap is reached before every copy finished its episodes.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if max_steps is None:
        if env.max_episode_steps is None:
            raise ValueError("evaluate: the env has no time limit; pass max_steps")
        max_steps = episodes * env.max_episode_steps
    if isinstance(policy, FusedPolicy):  # the fast path: a fused policy steps a fused env
        env = fast_env(env)
    obs, env_state = env.reset(params, generator)
    b = obs.shape[0]
    device = obs.device
    returns = torch.zeros(b, episodes + 1, dtype=torch.float32, device=device)
    lengths = torch.zeros(b, episodes + 1, dtype=torch.int64, device=device)
    count = torch.zeros(b, dtype=torch.int64, device=device)
    stats = EpisodeStats.zeros(b, device)
    rows = torch.arange(b, device=device)
    with torch.no_grad():
        for t in range(max_steps):
            result = policy(obs)
            action = result[0] if isinstance(result, tuple) else result
            step = env.step(env_state, action, params, generator)
            done = step.terminated | step.truncated
            stats, finished_return, finished_length = stats.update(step.reward, done)
            # Column `episodes` is a sink for episodes beyond those requested.
            slot = torch.clamp(count, max=episodes)
            returns[rows, slot] = torch.where(done, finished_return, returns[rows, slot])
            lengths[rows, slot] = torch.where(done, finished_length, lengths[rows, slot])
            count = count + done.long()
            obs, env_state = step.obs, step.state
            if (t + 1) % CHECK_EVERY == 0:
                with host_sync_point():  # the loop's one intended sync, every CHECK_EVERY steps
                    if bool((count >= episodes).all()):
                        break
    with host_sync_point():
        missing = int((count < episodes).sum())
    if missing:
        raise ValueError(f"evaluate: {missing} copies did not finish {episodes} episodes "
                         f"within max_steps={max_steps}")
    return EvalResult(returns[:, :episodes], lengths[:, :episodes])
