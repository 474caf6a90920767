"""Risk measures of discrete distributions, batched: CVaR, VaR, mean-CVaR, Rockafellar-Uryasev.

The suite's convention (``docs/risk.md``): agents maximize rewards, and the risk
of a *reward* looks at its lower tail; the risk of a *cost* looks at its upper tail. The two are
mirror images, ``cvar(c, level=a, tail="upper") == -cvar(-c, level=a, tail="lower")``, so the ECRM
of costs ``c`` is minus the ECRM of rewards ``-c``. ``level`` is always the tail *mass* in
``(0, 1]``: ``level=1`` gives the mean, ``level -> 0`` the worst value.

A distribution is ``values [..., N]`` with ``probs [..., N]`` (``None``: equally likely atoms, as
for quantile representations). Leading dims are batch dims; every function reduces the last one.
"""

from __future__ import annotations

from typing import Literal

import torch

Tail = Literal["lower", "upper"]


def _check_level(level: float) -> None:
    if not 0.0 < level <= 1.0:
        raise ValueError(f"level must be a tail mass in (0, 1], got level={level!r}")


def _check_tail(tail: str) -> None:
    if tail not in ("lower", "upper"):
        raise ValueError(f"tail must be 'lower' (rewards) or 'upper' (costs), got tail={tail!r}")


def _probs_like(values: torch.Tensor, probs: torch.Tensor | None) -> torch.Tensor:
    if probs is None:
        n = values.shape[-1]
        return torch.full_like(values, 1.0 / n)
    if probs.shape != values.shape:
        raise ValueError(f"probs has shape {tuple(probs.shape)} but values has {tuple(values.shape)}")
    return probs.to(values.dtype)


def cvar(values: torch.Tensor, probs: torch.Tensor | None = None, level: float = 0.1,
         tail: Tail = "lower") -> torch.Tensor:
    """Conditional value at risk: the mean of the worst ``level`` probability mass.

    ``tail="lower"`` averages the lowest values (risk of a reward), ``"upper"`` the highest (risk
    of a cost). An atom straddling the tail boundary contributes the fraction of its mass that lies
    inside the tail (the exact CVaR of a discrete distribution, Acerbi and Tasche 2002).
    """
    _check_level(level)
    _check_tail(tail)
    if tail == "upper":
        return -cvar(-values, probs, level, "lower")
    probs = _probs_like(values, probs)
    order = torch.argsort(values, dim=-1, stable=True)
    sorted_values = torch.gather(values, -1, order)
    sorted_probs = torch.gather(probs, -1, order)
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    # Mass of each atom that falls inside the lowest `level` of the distribution.
    inside = torch.clamp(torch.minimum(sorted_probs, level - mass_before), min=0.0)
    return (inside * sorted_values).sum(-1) / level


def value_at_risk(values: torch.Tensor, probs: torch.Tensor | None = None, level: float = 0.1,
                  tail: Tail = "lower") -> torch.Tensor:
    """The ``level`` quantile from the chosen tail: the smallest value whose CDF reaches ``level``
    (lower tail), or the largest whose survival function reaches it (upper tail).

    It maximizes the Rockafellar-Uryasev objective (:func:`rockafellar_uryasev`) for rewards and
    minimizes it for costs.
    """
    _check_level(level)
    _check_tail(tail)
    if tail == "upper":
        return -value_at_risk(-values, probs, level, "lower")
    probs = _probs_like(values, probs)
    order = torch.argsort(values, dim=-1, stable=True)
    sorted_values = torch.gather(values, -1, order)
    cdf = torch.cumsum(torch.gather(probs, -1, order), dim=-1)
    # A small tolerance so that a CDF of 0.3 computed as 0.29999999 still counts as reaching 0.3.
    eps = 64 * torch.finfo(values.dtype).eps
    index = torch.searchsorted(cdf, torch.full_like(cdf[..., :1], level - eps))
    return torch.gather(sorted_values, -1, index.clamp(max=values.shape[-1] - 1)).squeeze(-1)


def rockafellar_uryasev(values: torch.Tensor, probs: torch.Tensor | None, level: float,
                        threshold: torch.Tensor | float, tail: Tail = "lower") -> torch.Tensor:
    """The Rockafellar-Uryasev function of a threshold ``eta`` (Rockafellar and Uryasev 2000).

    Lower tail (rewards): ``eta + E[min(X - eta, 0)] / level``, maximized over ``eta`` by the VaR,
    where it equals the CVaR. Upper tail (costs): ``eta + E[max(X - eta, 0)] / level``, minimized
    over ``eta``. Every ``eta`` gives a bound on the CVaR (below for rewards, above for costs).
    """
    _check_level(level)
    _check_tail(tail)
    probs = _probs_like(values, probs)
    eta = torch.as_tensor(threshold, dtype=values.dtype, device=values.device)
    excess = values - eta.unsqueeze(-1) if eta.dim() else values - eta
    shortfall = excess.clamp(max=0.0) if tail == "lower" else excess.clamp(min=0.0)
    return eta + (probs * shortfall).sum(-1) / level


def mean_cvar(values: torch.Tensor, probs: torch.Tensor | None = None, level: float = 0.1,
              risk_weight: float = 0.5, tail: Tail = "lower") -> torch.Tensor:
    """``(1 - risk_weight) * mean + risk_weight * CVaR``: the mean-CVaR risk measure.

    ``risk_weight`` is the ECRM paper's lambda (``docs/ecrm.md``); distributional DP
    (``docs/risk.md``) writes the same mixture as ``m * mean + (1 - m) * CVaR`` with ``m = 1 - risk_weight``.
    """
    if not 0.0 <= risk_weight <= 1.0:
        raise ValueError(f"risk_weight must lie in [0, 1], got risk_weight={risk_weight!r}")
    mean = (_probs_like(values, probs) * values).sum(-1)
    return (1.0 - risk_weight) * mean + risk_weight * cvar(values, probs, level, tail)
