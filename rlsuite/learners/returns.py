"""Return estimators as pure functions over time-major ``[T, B]`` tensors.

Two flags, never merged: ``terminated`` stops bootstrapping (the next state is terminal, its value
is 0), and ``done = terminated | truncated`` cuts the trace (the next row belongs to another
episode). At a truncation the estimator still bootstraps from the value of the *pre-reset* next
observation (``Rollout.next_obs``), which is what a time limit means for the MDP.
"""

from __future__ import annotations

import torch


def gae(
    reward: torch.Tensor,
    value: torch.Tensor,
    next_value: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016, eq. 16).

    Args:
        reward: ``[T, B]`` rewards r_t.
        value: ``[T, B]`` V(s_t).
        next_value: ``[T, B]`` V(s'_t) of the observation each transition reached (pre-reset).
        terminated: ``[T, B]`` bool, s'_t is terminal (no bootstrap).
        truncated: ``[T, B]`` bool, the episode was cut by a time limit after this step.
        gamma: discount.
        gae_lambda: the trace parameter lambda.

    Returns:
        ``(advantages, returns)``, both ``[T, B]``; ``returns = advantages + value``.
    """
    not_terminal = (~terminated).to(value.dtype)
    continues = (~(terminated | truncated)).to(value.dtype)
    delta = reward + gamma * not_terminal * next_value - value
    advantages = torch.empty_like(value)
    running = torch.zeros_like(value[0])
    for t in range(reward.shape[0] - 1, -1, -1):
        running = delta[t] + gamma * gae_lambda * continues[t] * running
        advantages[t] = running
    return advantages, advantages + value


def discounted_returns(
    reward: torch.Tensor,
    next_value: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """Monte-Carlo returns within the rollout, bootstrapped where an episode is cut.

    G_t = r_t + gamma * G_{t+1} inside an episode; at a truncation (and at the end of the rollout)
    the tail is gamma * V(s'_t); at a termination it is 0. This is GAE with lambda = 1.

    Args:
        reward, next_value, terminated, truncated: ``[T, B]`` as in :func:`gae`.

    Returns:
        ``[T, B]`` returns.
    """
    not_terminal = (~terminated).to(next_value.dtype)
    continues = (~(terminated | truncated)).to(next_value.dtype)
    out = torch.empty_like(next_value)
    last = reward.shape[0] - 1
    running = next_value[last] * not_terminal[last]
    for t in range(last, -1, -1):
        if t < last:
            tail = continues[t] * running + (1 - continues[t]) * not_terminal[t] * next_value[t]
        else:
            tail = running
        running = reward[t] + gamma * tail
        out[t] = running
    return out
