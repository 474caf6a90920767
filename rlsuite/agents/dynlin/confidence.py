"""The confidence algebra of the dynamical-linear-bandit learners: the system constants they are
given, ridge updates (Sherman-Morrison), UCB scores, OFUL radii with DynLin-UCB's transient term,
and DynLin-UCB's epoch schedule (Mussi et al., ICML 2023; see :mod:`.agent`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rlsuite.envs.dynamical_bandit import (
    DTYPE,
    DynamicalLinearBandit,
    DynLinParams,
    system_constants,
)

NO_EPOCHS_BELOW = 1e-6
"""``rho_bar`` below this: every round is its own epoch (official DynLinUCBAgent's epsilon)."""


@dataclass(frozen=True)
class Constants:
    """Per-copy ``[B]`` bounds the learners are given (P2 section 2 assumptions; official main.py
    passes the true values): ``rho`` >= rho(A), ``phi`` >= Phi(A), ``omega`` >= ||omega||,
    ``theta`` >= ||theta||, ``b`` >= ||B||_2, ``u`` >= max ||u||, ``sigma`` noise std."""

    rho: torch.Tensor
    phi: torch.Tensor
    omega: torch.Tensor
    theta: torch.Tensor
    b: torch.Tensor
    u: torch.Tensor
    sigma: torch.Tensor


def resolve_constants(env: DynamicalLinearBandit, params: DynLinParams, **given: float | None) -> Constants:
    """Constants computed from the known system, each replaced by ``given[name]`` when not None.

    A misspecified value (e.g. ``rho`` below the true spectral radius) is allowed on purpose: the
    learners then run with wrong epochs / radii, as in the paper's sensitivity discussion.
    """
    if env.arms is None:
        raise ValueError(
            "the dynamical-bandit learners need a finite action set (env arms); discretise the box into arms"
        )
    true = system_constants(params, env.arms)
    out = {}
    for name, value in true.items():
        g = given.get(name)
        if g is not None:
            if not math.isfinite(float(g)) or float(g) < 0:
                raise ValueError(f"constant {name}={g} must be finite and >= 0")
            value = torch.full_like(value, float(g))
        out[name] = value
    if bool((out["rho"] >= 1).any()):
        raise ValueError(f"rho_bar must be < 1; got {out['rho'].max().item()}")
    return Constants(**out)


def sherman_morrison(v_inv: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """``(V + u u^T)^{-1}`` from ``V^{-1} [B, d, d]`` and ``u [B, d]`` (one rank-one update)."""
    vu = torch.bmm(v_inv, u.unsqueeze(-1))  # [B, d, 1]
    denom = torch.bmm(u.unsqueeze(1), vu) + 1.0  # [B, 1, 1]
    return torch.baddbmm(v_inv, vu / denom, vu.transpose(1, 2), alpha=-1.0)


def ucb_scores(
    h_hat: torch.Tensor, v_inv: torch.Tensor, arms_t: torch.Tensor, beta: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Optimistic indices ``<h_hat, u_k> + beta ||u_k||_{V^{-1}}`` for every arm: ``([B, K], widths [B, K])``
    with ``widths = ||u_k||_{V^{-1}}``; ``arms_t [d, K]`` (one matrix product for all arms and copies)."""
    width = ((v_inv @ arms_t) * arms_t).sum(-2).sqrt()  # [B, K]; V^{-1} is positive definite
    return torch.addcmul(h_hat @ arms_t, beta.unsqueeze(1), width), width


def oful_radius(
    t: torch.Tensor,
    lam: torch.Tensor,
    c1: torch.Tensor,
    c2: torch.Tensor,
    sigma_bar_sq: torch.Tensor,
    log_inv_delta: torch.Tensor,
    u_bar: torch.Tensor,
    d: int,
    gamma: float | None = None,
) -> torch.Tensor:
    """The radius of official ``LinearAgent._beta_t`` (DynLin-UCB when c2 > 0, Lin-UCB when c2 = 0)::

        beta_t = c1 sqrt(lam) + c2 / sqrt(lam) ln(e (t + 1))
                 + sqrt(2 sigma_bar^2 (ln(1/delta) + d/2 ln(1 + g_t t U^2 / (d lam))))

    with ``g_t = (1 - gamma^{2t}) / (1 - gamma^2)`` for the official D-Lin-UCB (lambda = ln T)
    variant, else 1. ``t`` ``[T]`` rounds (0-based, as the official counter), the rest ``[B]``;
    returns ``[T, B]``.
    """
    t = t.to(DTYPE)[:, None]
    growth = 1.0 + t * u_bar**2 / (d * lam)
    if gamma is not None:
        growth = 1.0 + t * u_bar**2 / (d * lam) * (1 - gamma ** (2 * t)) / (1 - gamma**2)
    return (
        c1 * lam.sqrt()
        + c2 / lam.sqrt() * torch.log(math.e * (t + 1))
        + torch.sqrt(2 * sigma_bar_sq * (log_inv_delta + d / 2 * torch.log(growth)))
    )


def dynlin_coefficients(c: Constants) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(c1, c2, sigma_bar^2)`` of the DynLin-UCB radius (official agents.py, P2 Theorem 1)::

    X = U / (1 - rho);  c1 = Theta + Omega B Phi / (1 - rho)
    c2 = U Omega Phi (U B / (1 - rho) + X);  sigma_bar^2 = sigma^2 (1 + Omega^2 Phi^2 / (1 - rho^2))
    """
    x_bar = c.u / (1 - c.rho)
    c1 = c.theta + c.omega * c.b * c.phi / (1 - c.rho)
    c2 = c.u * c.omega * c.phi * (c.u * c.b / (1 - c.rho) + x_bar)
    sigma_bar_sq = c.sigma**2 * (1 + c.omega**2 * c.phi**2 / (1 - c.rho**2))
    return c1, c2, sigma_bar_sq


def epoch_exponent(m: torch.Tensor, rho_bar: float) -> torch.Tensor:
    """``floor(ln m / ln(1/rho_bar))`` made integer-safe: a ratio within 1e-9 of an integer is that
    integer (at exact powers ``m = rho_bar^-k`` floating error can land on either side)."""
    ratio = torch.log(m.to(DTYPE)) / math.log(1.0 / rho_bar)
    near = torch.round(ratio)
    exact = (ratio - near).abs() <= 1e-9 * near.clamp(min=1.0)
    return torch.where(exact, near, torch.floor(ratio)).to(torch.int64)


def epoch_lengths(rho_bar: float, horizon: int, official: bool = True) -> torch.Tensor:
    """Epoch lengths ``[M]`` (int64) whose sum first reaches ``horizon`` rounds.

    ``L_m = 1 + floor(ln m / ln(1/rho_bar))`` (``m = 1, 2, ...``); all ones when
    ``rho_bar < NO_EPOCHS_BELOW``. ``official``: the first epoch gets one extra round (official code).
    """
    if not 0.0 <= rho_bar < 1.0:
        raise ValueError(f"rho_bar must be in [0, 1); got {rho_bar}")
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1; got {horizon}")
    if rho_bar < NO_EPOCHS_BELOW:
        return torch.ones(horizon, dtype=torch.int64)
    lengths = 1 + epoch_exponent(torch.arange(1, horizon + 1), rho_bar)
    if official:
        lengths[0] += 1
    count = int(torch.searchsorted(lengths.cumsum(0), torch.tensor(horizon))) + 1
    return lengths[:count]
