"""Configs of the dynamical-linear-bandit agents: DynLin-UCB (:mod:`.agent`) and the paper's
baselines (:mod:`.baselines`). Light on purpose: :mod:`rlsuite.config` reads these schemas
without loading the agents."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rlsuite import validation as rules
from rlsuite.envs.dynamical_bandit import BUDGET

RHO_BAR = rules.real(0.0, 1.0, high_open=True)
"""A bound on the spectral radius of a stable system: in [0, 1) (0: no dynamics, plain LinUCB)."""

LINUCB_VARIANTS = ("linucb_log", "linucb_one", "dlinucb_log", "dlinucb_one")
"""The Lin-UCB variants of the official code (see :mod:`.baselines`)."""


@dataclass
class DynLinUCBConfig:
    """DynLin-UCB; defaults reproduce the official ``lambda = ln T`` run with the true constants."""

    name: str = "dynlin_ucb"
    """Registry name of the agent."""
    lam: float | None = None
    """Ridge regularisation lambda; None: ln T (the paper's second variant uses 1)."""
    delta: float | None = None
    """Confidence level; None: 1/T (both official variants)."""
    horizon: int | None = None
    """T used in lambda = ln T and delta = 1/T; None: the rounds of the first ``learn`` call."""
    rho_bar: float | None = None
    """Upper bound on rho(A); None: the true max |eig(A)| (largest over copies)."""
    phi_bar: float | None = None
    """Upper bound on Phi(A) = sup ||A^i|| / rho^i; None: the true value (official spectr)."""
    omega_bar: float | None = None
    """Upper bound on ||omega||; None: true."""
    theta_bar: float | None = None
    """Upper bound on ||theta||; None: true."""
    b_bar: float | None = None
    """Upper bound on ||B||_2; None: true."""
    u_bar: float | None = None
    """Upper bound on the action norm; None: the largest arm norm."""
    sigma: float | None = None
    """Noise std the radius assumes; None: the env's state-noise std (official: noise_sigma)."""
    transient_term: bool = True
    """Keep the c2 term of the radius (False: c2 = 0, e.g. to compare with plain LinUCB)."""
    official_schedule: bool = True
    """First epoch one round longer, as the official 0-based counter makes it."""
    log_every: int = 10_000
    """Rounds per iteration (one logging call and one possible checkpoint)."""

    CHECKS: ClassVar[rules.Checks] = {
        "lam": rules.optional(rules.POSITIVE),
        "delta": rules.optional(rules.real(0.0, 1.0, low_open=True, high_open=True)),
        "horizon": rules.optional(rules.POSITIVE_INT), "rho_bar": rules.optional(RHO_BAR),
        "phi_bar": rules.optional(rules.POSITIVE), "omega_bar": rules.optional(rules.NONNEG),
        "theta_bar": rules.optional(rules.NONNEG), "b_bar": rules.optional(rules.NONNEG),
        "u_bar": rules.optional(rules.NONNEG), "sigma": rules.optional(rules.NONNEG),
        "transient_term": rules.FLAG, "official_schedule": rules.FLAG, "log_every": rules.POSITIVE_INT,
    }

    def __post_init__(self) -> None:
        rules.validate(self)


@dataclass
class LinUCBConfig:
    """Lin-UCB / D-Lin-UCB on raw rewards (official variants; see the module docstring)."""

    name: str = "lin_ucb"
    """Registry name of the agent."""
    variant: str = "linucb_log"
    """One of linucb_log, linucb_one, dlinucb_log, dlinucb_one."""
    horizon: int | None = None
    """T in lambda = ln T, delta = 1/T and the radii; None: the rounds of the first ``learn`` call."""
    rho_bar: float | None = None
    """Bound on rho(A) used by the radius constants; None: true."""
    sigma: float | None = None
    """Noise std assumed; None: the env's state-noise std."""
    budget: float = BUDGET["total"]
    """Action-norm bound of the ``*_one`` radii (official: the daily budget 1.5)."""
    log_every: int = 10_000
    """Rounds per iteration."""

    CHECKS: ClassVar[rules.Checks] = {
        "variant": rules.choice(*LINUCB_VARIANTS), "horizon": rules.optional(rules.POSITIVE_INT),
        "rho_bar": rules.optional(RHO_BAR), "sigma": rules.optional(rules.NONNEG),
        "budget": rules.POSITIVE, "log_every": rules.POSITIVE_INT,
    }

    def __post_init__(self) -> None:
        rules.validate(self)


@dataclass
class Exp3Config:
    """Exp3 / Batch-Exp3 as the official script configures them."""

    name: str = "exp3"
    """Registry name (``exp3`` or ``batch_exp3``)."""
    batched: bool = False
    """Batch-Exp3: one arm per batch of ceil(ln M_T / ln(1/rho)) rounds."""
    horizon: int | None = None
    """T of the learning rates; None: the rounds of the first ``learn`` call."""
    rho_bar: float | None = None
    """rho used in the reward scale and the batch length; None: max |eig(A)|."""
    log_every: int = 10_000
    """Rounds per iteration."""

    CHECKS: ClassVar[rules.Checks] = {
        "batched": rules.FLAG, "horizon": rules.optional(rules.POSITIVE_INT),
        "rho_bar": rules.optional(RHO_BAR), "log_every": rules.POSITIVE_INT,
    }

    def __post_init__(self) -> None:
        rules.validate(self)


@dataclass
class AR2Config:
    """AR2 (Chen, Golrezaei, Bouneffouf 2023) with the official script's constants."""

    name: str = "ar2"
    """Registry name of the agent."""
    rho_bar: float | None = None
    """alpha (the AR coefficient); None: max |eig(A)|."""
    sigma: float | None = None
    """Noise std; None: the env's state-noise std."""
    log_every: int = 10_000
    """Rounds per iteration."""

    CHECKS: ClassVar[rules.Checks] = {
        "rho_bar": rules.optional(RHO_BAR), "sigma": rules.optional(rules.NONNEG),
        "log_every": rules.POSITIVE_INT,
    }

    def __post_init__(self) -> None:
        rules.validate(self)


@dataclass
class FixedPolicyConfig:
    """A constant action: ``clairvoyant`` (argmax <h, u>), ``myopic`` (argmax <theta, u>) or
    ``expert`` (the real-data config's historical budget split, an arm the env must declare:
    ``env.extra_arms=[expert]``)."""

    name: str = "clairvoyant"
    """Registry name of the agent."""
    policy: str = "clairvoyant"
    """clairvoyant, myopic or expert."""
    log_every: int = 10_000
    """Rounds per iteration."""

    CHECKS: ClassVar[rules.Checks] = {
        "policy": rules.choice("clairvoyant", "myopic", "expert"), "log_every": rules.POSITIVE_INT,
    }

    def __post_init__(self) -> None:
        rules.validate(self)
