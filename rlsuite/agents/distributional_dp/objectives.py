"""Objective functionals of the return distribution, as small objects passed to ``solve``.

Every objective here is an expected utility ``F(law(c + G)) = E f(c + G)`` of the stock-augmented
return (Avila Pires et al., arXiv 2501.13028, section 3; ``docs/distributional_dp.md``), possibly
wrapped in an outer search over the initial stock (CVaR and mean-CVaR through Rockafellar-Uryasev).
Each object says what the solver needs to know about its ``f``:

* ``utility(x)``: ``f`` on ``[..., d]`` stocks-plus-returns (``d = 1`` for scalar rewards),
  returning ``[...]``;
* ``homogeneous_degree``: ``deg`` with ``f(gamma x) = gamma^deg f(x)``, or ``None`` if unknown.
  Only such ``f`` are scale consistent, which the greedy stock DP needs when ``gamma < 1``
  (the rescaling condition: the step at time ``t`` works on ``gamma^-t (c_0 + G_0)``);
* ``tails``: if ``f`` is affine on ``(-inf, 0)`` and on ``[0, inf)``, the two pieces; the solver then
  clips stocks exactly (``docs/distributional_dp.md``: outside ``[-G_max(s), -G_min(s)]`` every
  action's ``E f(c + G)`` is affine in ``E G``, so the greedy action and the value are closed form);
* ``dp_stock(c0)``: the stock the DP starts from, ``outer_value``: the objective of a candidate
  initial stock (outer-search objectives only), and ``evaluate``: the objective of a given finite
  return distribution (for tests and empirical scores from rollouts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from rlsuite import risk


@dataclass(frozen=True)
class Tails:
    """``f(x) = lo_intercept + lo_slope x`` for ``x < 0`` and ``hi_intercept + hi_slope x`` for
    ``x >= 0``."""

    lo_intercept: float
    lo_slope: float
    hi_intercept: float
    hi_slope: float

    @property
    def affine(self) -> bool:
        """True when both pieces are one affine function (then every stock is a tail stock)."""
        return self.lo_intercept == self.hi_intercept and self.lo_slope == self.hi_slope


def _scalar(x: torch.Tensor) -> torch.Tensor:
    if x.shape[-1] != 1:
        raise ValueError(f"this objective needs scalar rewards; got stocks of dimension {x.shape[-1]}")
    return x[..., 0]


def _as_2d(returns: torch.Tensor) -> torch.Tensor:
    r = torch.as_tensor(returns, dtype=torch.float64)
    return r.unsqueeze(-1) if r.dim() == 1 else r


class Objective:
    """Base of the objectives (a plain expected utility; subclasses set the fields)."""

    name: str = "objective"
    homogeneous_degree: float | None = None
    tails: Tails | None = None
    outer_search: bool = False
    vector: bool = False

    def utility(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x)`` for ``x [..., d]``: ``[...]``."""
        raise NotImplementedError

    def dp_stock(self, initial_stock: torch.Tensor) -> torch.Tensor:
        """The stock ``[d]`` the DP starts from, given the user's ``c0`` (default: ``c0``)."""
        return initial_stock

    def outer_value(self, initial_stock: float, stock: torch.Tensor,
                    expected_utility: torch.Tensor) -> torch.Tensor:
        """Objective of starting the DP at ``stock`` (outer-search objectives only)."""
        raise NotImplementedError

    def evaluate(self, returns: torch.Tensor, probs: torch.Tensor | None = None,
                 initial_stock: float | torch.Tensor = 0.0) -> float:
        """``F(law(c0 + G))`` of a finite distribution: ``returns [n]`` (or ``[n, d]``) with
        ``probs [n]`` (``None``: equally likely, e.g. returns of rollouts)."""
        g = _as_2d(returns)
        p = torch.full((g.shape[0],), 1.0 / g.shape[0], dtype=torch.float64) if probs is None \
            else torch.as_tensor(probs, dtype=torch.float64)
        c0 = torch.as_tensor(initial_stock, dtype=torch.float64).reshape(-1)
        return float((p * self.utility(self.dp_stock(c0) + g)).sum())

    def check_gamma(self, gamma: float) -> None:
        """Refuse ``f`` that the greedy stock DP cannot optimize at this ``gamma``."""
        if gamma >= 1.0:
            return
        if self.homogeneous_degree is None:
            raise ValueError(
                f"{self.name}: the objective is not known to be scale consistent, so it cannot be "
                f"optimized by stock-augmented DP with gamma={gamma} < 1. The greedy step at time t "
                "ranks actions by E f(c_t + G_t) = E f(gamma^-t (c_0 + G_0)); unless f(gamma x) = "
                "k f(x) + b with k > 0 that ranking differs from the one of E f(c_0 + G_0) "
                "(Avila Pires et al. section 4; docs/distributional_dp.md). Use gamma = 1 with a horizon, "
                "or pass homogeneous_degree=... if f(gamma x) = gamma^deg f(x)."
            )


class Mean(Objective):
    """``E[c0 + G]``: risk-neutral control (``f(x) = x``)."""

    name = "mean"
    homogeneous_degree = 1.0
    tails = Tails(0.0, 1.0, 0.0, 1.0)

    def utility(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x) = x``."""
        return _scalar(x)


class ExpectedUtility(Objective):
    """``E f(c0 + G)`` for a user function ``f`` (elementwise on float64 tensors).

    Args:
        f: the utility.
        homogeneous_degree: ``deg`` if ``f(g x) = g^deg f(x)`` for ``g > 0`` (checked numerically);
            needed for ``gamma < 1``. ``None``: refused there.
        tails: the affine pieces of ``f`` around 0, if it has them (enables exact stock clipping).

    ``ExpectedUtility(lambda x: -x.abs(), 1.0)`` with ``initial_stock=-2.0`` targets a return of 2.
    """

    def __init__(self, f: Callable[[torch.Tensor], torch.Tensor],
                 homogeneous_degree: float | None = None, tails: Tails | None = None,
                 name: str = "expected_utility") -> None:
        self.f, self.homogeneous_degree, self.tails, self.name = f, homogeneous_degree, tails, name

    def utility(self, x: torch.Tensor) -> torch.Tensor:
        """The user's ``f``."""
        return self.f(_scalar(x))

    def check_gamma(self, gamma: float) -> None:
        """Refuse unknown scaling for ``gamma < 1``; check a declared degree on probe points."""
        super().check_gamma(gamma)
        if gamma < 1.0 and self.homogeneous_degree is not None:
            x = torch.linspace(-10.0, 10.0, 41, dtype=torch.float64)
            lhs, rhs = self.f(gamma * x), gamma ** self.homogeneous_degree * self.f(x)
            if not torch.allclose(lhs, rhs, rtol=1e-9, atol=1e-12):
                raise ValueError(
                    f"{self.name}: f(gamma x) != gamma^{self.homogeneous_degree} f(x) on probe "
                    f"points in [-10, 10] (gamma={gamma}), so f is not homogeneous of the declared "
                    "degree and the stock DP cannot optimize it for gamma < 1 (docs/distributional_dp.md)"
                )


@dataclass(eq=False)
class ReturnTargeting(Objective):
    """``E[-|c0 + G - target|]``: generate the return ``target`` (paper section 7.1).

    The same as ``ExpectedUtility(-|x|)`` started at stock ``c0 - target``.
    """

    target: float = 0.0
    name: str = "return_targeting"
    homogeneous_degree: float | None = 1.0
    tails: Tails | None = field(default=Tails(0.0, 1.0, 0.0, -1.0))

    def utility(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x) = -|x|``."""
        return -_scalar(x).abs()

    def dp_stock(self, initial_stock: torch.Tensor) -> torch.Tensor:
        """``c0 - target``."""
        return initial_stock - self.target


@dataclass(eq=False)
class ProbabilityOfThreshold(Objective):
    """``P(c0 + G >= threshold)`` (``f(x) = 1{x >= 0}`` from stock ``c0 - threshold``; degree 0)."""

    threshold: float = 0.0
    name: str = "probability_of_threshold"
    homogeneous_degree: float | None = 0.0
    tails: Tails | None = field(default=Tails(0.0, 0.0, 1.0, 0.0))

    def utility(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x) = 1{x >= 0}``."""
        return (_scalar(x) >= 0).to(torch.float64)

    def dp_stock(self, initial_stock: torch.Tensor) -> torch.Tensor:
        """``c0 - threshold``."""
        return initial_stock - self.threshold


@dataclass(eq=False)
class CVaR(Objective):
    """Lower-tail ``CVaR_level(c0 + G)`` (the mean of the worst ``level`` of the returns).

    Rockafellar-Uryasev: ``CVaR_a(Z) = max_b b + E[min(Z - b, 0)] / a``, so with the stock
    ``x = c0 - b`` the optimum is ``max_x (c0 - x) + max_pi E[min(x + G, 0)] / a``: the DP runs
    with ``f(x) = min(x, 0) / a`` (degree 1) from every candidate ``x`` at once and the best one is
    kept (Baeuerle and Ott 2011). The reported value is the CVaR itself.
    """

    level: float = 0.1
    name: str = "cvar"
    homogeneous_degree: float | None = 1.0
    outer_search: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.level <= 1.0:
            raise ValueError(f"CVaR.level = {self.level!r} must be a tail mass in (0, 1]")
        self.tails = Tails(0.0, 1.0 / self.level, 0.0, 0.0)

    def utility(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x) = min(x, 0) / level``."""
        return _scalar(x).clamp(max=0.0) / self.level

    def outer_value(self, initial_stock: float, stock: torch.Tensor,
                    expected_utility: torch.Tensor) -> torch.Tensor:
        """``(c0 - x) + E f(x + G)``."""
        return (initial_stock - stock) + expected_utility

    def evaluate_many(self, returns: torch.Tensor, probs: torch.Tensor,
                      initial_stock: float) -> torch.Tensor:
        """:meth:`evaluate` of ``M`` laws on shared atoms ``returns [J]``, ``probs [M, J]``."""
        g = (returns + initial_stock).expand_as(probs)
        return risk.cvar(g, probs, self.level, tail="lower")

    def evaluate(self, returns: torch.Tensor, probs: torch.Tensor | None = None,
                 initial_stock: float | torch.Tensor = 0.0) -> float:
        """``CVaR_level(c0 + G)`` by :func:`rlsuite.risk.cvar`."""
        g = _scalar(_as_2d(returns)) + float(initial_stock)
        p = None if probs is None else torch.as_tensor(probs, dtype=torch.float64)
        return float(risk.cvar(g, p, self.level, tail="lower"))


@dataclass(eq=False)
class MeanCVaR(Objective):
    """``m E[c0 + G] + (1 - m) CVaR_level(c0 + G)`` with ``m = mean_weight``.

    Through RU as :class:`CVaR`, with ``f(x) = w_L min(x, 0) + w_R max(x, 0)``,
    ``w_L = m + (1 - m) / level``, ``w_R = m`` (the weights of RIGOR's ``qrdqn_mean_cvar.py``).
    """

    level: float = 0.1
    mean_weight: float = 0.5
    name: str = "mean_cvar"
    homogeneous_degree: float | None = 1.0
    outer_search: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.level <= 1.0:
            raise ValueError(f"MeanCVaR.level = {self.level!r} must be a tail mass in (0, 1]")
        if not 0.0 <= self.mean_weight <= 1.0:
            raise ValueError(f"MeanCVaR.mean_weight = {self.mean_weight!r} must lie in [0, 1]")
        m = self.mean_weight
        self.tails = Tails(0.0, m + (1.0 - m) / self.level, 0.0, m)

    def utility(self, x: torch.Tensor) -> torch.Tensor:
        """``w_L min(x, 0) + w_R max(x, 0)``."""
        v = _scalar(x)
        return self.tails.lo_slope * v.clamp(max=0.0) + self.tails.hi_slope * v.clamp(min=0.0)

    def outer_value(self, initial_stock: float, stock: torch.Tensor,
                    expected_utility: torch.Tensor) -> torch.Tensor:
        """``(c0 - x) + E f(x + G)``."""
        return (initial_stock - stock) + expected_utility

    def evaluate_many(self, returns: torch.Tensor, probs: torch.Tensor,
                      initial_stock: float) -> torch.Tensor:
        """:meth:`evaluate` of ``M`` laws on shared atoms ``returns [J]``, ``probs [M, J]``."""
        g = (returns + initial_stock).expand_as(probs)
        return risk.mean_cvar(g, probs, self.level, 1.0 - self.mean_weight, tail="lower")

    def evaluate(self, returns: torch.Tensor, probs: torch.Tensor | None = None,
                 initial_stock: float | torch.Tensor = 0.0) -> float:
        """By :func:`rlsuite.risk.mean_cvar` (its ``risk_weight`` is ``1 - mean_weight``)."""
        g = _scalar(_as_2d(returns)) + float(initial_stock)
        p = None if probs is None else torch.as_tensor(probs, dtype=torch.float64)
        return float(risk.mean_cvar(g, p, self.level, 1.0 - self.mean_weight, tail="lower"))


@dataclass(eq=False)
class Homeostatic(Objective):
    """Homeostatic regulation: ``E[-||c0 + G - setpoint||]`` with vector rewards and stock.

    The rewards are the changes of ``d`` internal variables and the stock tracks them relative to
    the setpoint; ``-||x||`` (``norm="l2"`` or ``"l1"``) is homogeneous of degree 1, so it is
    admissible for any ``gamma`` (a reconstruction, ``docs/distributional_dp.md``).
    """

    setpoint: tuple[float, ...] = ()
    norm: str = "l2"
    name: str = "homeostatic"
    homogeneous_degree: float | None = 1.0
    vector: bool = True

    def __post_init__(self) -> None:
        if self.norm not in ("l1", "l2"):
            raise ValueError(f"Homeostatic.norm = {self.norm!r} must be 'l1' or 'l2'")

    def utility(self, x: torch.Tensor) -> torch.Tensor:
        """``-||x||``."""
        return -(x.abs().sum(-1) if self.norm == "l1" else x.norm(dim=-1))

    def dp_stock(self, initial_stock: torch.Tensor) -> torch.Tensor:
        """``c0 - setpoint``."""
        if not self.setpoint:
            return initial_stock
        return initial_stock - torch.as_tensor(self.setpoint, dtype=torch.float64)
