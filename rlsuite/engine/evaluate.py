"""Score a policy on every copy of a batched env: one rollout evaluates a whole params grid."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlsuite.core.env import BatchedEnv
from rlsuite.engine.fastpath import FastKernel, FusedPolicy, fast_env
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
    if isinstance(policy, FusedPolicy):  # the fast path: one fused kernel per step if it can
        from rlsuite.engine.fused_loop import evaluate_fused

        fused = evaluate_fused(policy, env, params, episodes, generator, max_steps, CHECK_EVERY)
        if fused is not None:
            return _result(*fused, episodes, max_steps)
        env = fast_env(env)  # else a fused policy steps the fused env
    obs, env_state = env.reset(params, generator)
    b = obs.shape[0]
    device = obs.device
    returns = torch.zeros(b, episodes + 1, dtype=torch.float32, device=device)
    lengths = torch.zeros(b, episodes + 1, dtype=torch.int64, device=device)
    count = torch.zeros(b, dtype=torch.int64, device=device)
    stats = EpisodeStats.zeros(b, device)
    rows = torch.arange(b, device=device)
    # On the fast path the per-step bookkeeping below is one fused kernel (_bookkeeping).
    record = _RECORD_KERNEL if isinstance(policy, FusedPolicy) else None
    with torch.no_grad():
        for t in range(max_steps):
            result = policy(obs)
            action = result[0] if isinstance(result, tuple) else result
            step = env.step(env_state, action, params, generator)
            if record is not None:
                returns, lengths, count, ep_return, ep_length = record(
                    returns, lengths, count, stats.returns, stats.lengths, step.reward,
                    step.terminated, step.truncated,
                )
                stats = EpisodeStats(ep_return, ep_length)
            else:
                returns, lengths, count, stats = _bookkeeping(
                    returns, lengths, count, stats, step.reward, step.terminated | step.truncated,
                    rows, episodes,
                )
            obs, env_state = step.obs, step.state
            if (t + 1) % CHECK_EVERY == 0:
                with host_sync_point():  # the loop's one intended sync, every CHECK_EVERY steps
                    if bool((count >= episodes).all()):
                        break
    return _result(returns, lengths, count, episodes, max_steps)


def _result(returns: torch.Tensor, lengths: torch.Tensor, count: torch.Tensor, episodes: int,
            max_steps: int) -> EvalResult:
    """The first ``episodes`` of each copy, or the error that some copies did not finish."""
    with host_sync_point():
        missing = int((count < episodes).sum())
    if missing:
        raise ValueError(f"evaluate: {missing} copies did not finish {episodes} episodes "
                         f"within max_steps={max_steps}")
    return EvalResult(returns[:, :episodes], lengths[:, :episodes])


def _bookkeeping(
    returns: torch.Tensor,
    lengths: torch.Tensor,
    count: torch.Tensor,
    stats: EpisodeStats,
    reward: torch.Tensor,
    done: torch.Tensor,
    rows: torch.Tensor,
    episodes: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, EpisodeStats]:
    """Add one step to the running episodes; file the finished ones in their copy's next slot.

    ``returns`` / ``lengths`` are ``[B, episodes + 1]``: column ``episodes`` is a sink for episodes
    beyond those requested. Writes into ``returns`` and ``lengths`` in place and returns them.
    """
    stats, finished_return, finished_length = stats.update(reward, done)
    slot = torch.clamp(count, max=episodes)
    returns[rows, slot] = torch.where(done, finished_return, returns[rows, slot])
    lengths[rows, slot] = torch.where(done, finished_length, lengths[rows, slot])
    return returns, lengths, count + done.long(), stats


def _record_step(
    returns: torch.Tensor, lengths: torch.Tensor, count: torch.Tensor, ep_return: torch.Tensor,
    ep_length: torch.Tensor, reward: torch.Tensor, terminated: torch.Tensor,
    truncated: torch.Tensor,
) -> tuple[torch.Tensor, ...]:
    """:func:`_bookkeeping` as a pure function of tensors (out of place), for fusing."""
    rows = torch.arange(returns.shape[0], device=returns.device)
    returns, lengths = returns.clone(), lengths.clone()
    returns, lengths, count, stats = _bookkeeping(
        returns, lengths, count, EpisodeStats(ep_return, ep_length), reward,
        terminated | truncated, rows, returns.shape[1] - 1,
    )
    return returns, lengths, count, stats.returns, stats.lengths


_RECORD_KERNEL = FastKernel("evaluation bookkeeping", _record_step)
