"""The sampled ECRM objective: risk-adjusted stage rewards, reward-to-go, threshold targets.

All functions are pure and work on time-major ``[T, B]`` tensors of the first episode of each
copy (``valid`` marks its steps). In the rewards convention (``docs/ecrm.md``, "Objective"),
step ``t`` (0-based) of an episode earns::

    k_t = R_t                                                 (t = 0, the first stage: its mean)
        = (1 - lam) R_t + (lam / alpha) min(R_t - eta_{t-1}, 0)   (t >= 1)
        + lam gamma eta_t                                     (unless the episode is truncated at t)
        + gamma (lam / alpha) min(0 - eta_t, 0)               (if it terminates at t: the absorbing
                                                               stage after it pays reward 0)

with ``eta_t = eta(s_t, a_t)``. ``E[sum_t gamma^t k_t] = J(pi, eta)`` of
:func:`rlsuite.agents.ecrm.exact.ru_objective`, a lower bound on the ECRM that is tight at
``eta = VaR``. The score-function gradient pairs ``log pi(a_t | s_t)`` with the reward-to-go from
``t`` *including* ``k_t`` (it depends on ``a_t`` through ``R_t``: causality).
"""

from __future__ import annotations

import torch


def first_episode_mask(terminated: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """``[T, B]`` bool: step ``t`` belongs to the copy's first episode (up to its first end)."""
    done = (terminated | truncated).to(torch.int64)
    ended_before = torch.cumsum(done, 0) - done
    return ended_before == 0


def stage_rewards(
    reward: torch.Tensor, eta_prev: torch.Tensor, first: torch.Tensor, lam: float, alpha: float
) -> torch.Tensor:
    """Each step's own risk-adjusted reward: ``R_t`` at the first step, else
    ``(1 - lam) R_t + (lam / alpha) min(R_t - eta_{t-1}, 0)``."""
    later = (1.0 - lam) * reward + (lam / alpha) * (reward - eta_prev).clamp(max=0.0)
    return torch.where(first, reward, later)


def threshold_terms(
    eta: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    lam: float,
    alpha: float,
    gamma: float,
) -> torch.Tensor:
    """The part of ``k_t`` that step ``t``'s threshold brings: ``lam gamma eta_t``, plus the
    absorbing stage's ``gamma (lam / alpha) min(-eta_t, 0)`` on termination; 0 at truncation (no
    next stage)."""
    absorbing = torch.where(terminated, gamma * (lam / alpha) * (-eta).clamp(max=0.0), 0.0)
    return torch.where(truncated, 0.0, lam * gamma * eta + absorbing)


def reward_to_go(k: torch.Tensor, valid: torch.Tensor, gamma: float) -> torch.Tensor:
    """``G_t = sum_{j >= t} gamma^(j - t) k_j`` over the valid steps (0 elsewhere)."""
    k = torch.where(valid, k, 0.0)
    out = torch.zeros_like(k)
    running = torch.zeros_like(k[0])
    for t in range(k.shape[0] - 1, -1, -1):
        running = k[t] + gamma * running * valid[t]
        out[t] = running
    return torch.where(valid, out, 0.0)


def next_rewards(
    reward: torch.Tensor, terminated: torch.Tensor, truncated: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sample ``R'`` that trains ``eta(s_t, a_t)`` and where one exists: ``R_{t+1}`` if the
    episode goes on, 0 if it terminates at ``t`` (absorbing stage), none if truncated at ``t``."""
    following = torch.cat([reward[1:], torch.zeros_like(reward[:1])], 0)
    target = torch.where(terminated, 0.0, following)
    has = valid & ~truncated
    if reward.shape[0] > 0:
        # The last collected step has no successor in the buffer unless it ended the episode.
        has[-1] &= terminated[-1]
    return target, has


def quantile_direction(target: torch.Tensor, eta: torch.Tensor, alpha: float) -> torch.Tensor:
    """``alpha - 1{R' < eta}``: the ascent direction of the RU function in ``eta`` times
    ``alpha`` (minus the pinball-loss gradient); zero in expectation at the lower
    ``alpha``-quantile."""
    return alpha - (target < eta).to(eta.dtype)


def project_simplex(x: torch.Tensor, floor: float = 0.0) -> torch.Tensor:
    """Euclidean projection of each row of ``x [..., A]`` onto ``{p : sum p = 1, p >= floor}``
    (sort-based, Duchi et al. 2008, on ``x - floor`` with mass ``1 - A floor``)."""
    a = x.shape[-1]
    mass = 1.0 - a * floor
    if mass <= 0:
        raise ValueError(f"project_simplex: floor = {floor} leaves no mass for {a} actions")
    y = x - floor
    u, _ = torch.sort(y, dim=-1, descending=True)
    css = torch.cumsum(u, -1) - mass
    idx = torch.arange(1, a + 1, dtype=x.dtype, device=x.device)
    cond = u - css / idx > 0
    rho = cond.to(torch.int64).cumsum(-1).argmax(-1, keepdim=True)  # last True
    theta = css.gather(-1, rho) / (rho + 1).to(x.dtype)
    return (y - theta).clamp(min=0.0) + floor


def log_barrier(logits: list[torch.Tensor], kappa: float) -> torch.Tensor:
    """Agarwal et al.'s (2021, sec. 5.2) log-barrier regularizer of softmax tables, added to the
    objective (rewards convention): ``sum_tables kappa / (S A) sum_{s, a} log pi(a | s)``.

    Its gradient is ``kappa / (S A) (1 - A pi(a | s))`` per logit, which pushes every table row
    towards uniform; at a stationary point of ``J + barrier`` every probability is bounded below,
    ``pi(a|s) = (kappa / (S A)) / (kappa / S - g(s, a))`` where ``g(s, a) = dJ/dtheta(s, a) /
    pi(a|s)`` (= ``d(s) A(s, a)``, the visit-weighted advantage), so no action's probability can
    vanish, which is what the analysis needs for its gradient-domination bound
    (Agarwal et al., Theorem 5.3).
    """
    total = torch.zeros((), dtype=logits[0].dtype, device=logits[0].device)
    for table in logits:
        total = total + kappa / table.numel() * torch.log_softmax(table, -1).sum()
    return total
