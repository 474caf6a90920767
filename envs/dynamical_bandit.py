"""Dynamical linear bandits (Mussi, Metelli, Restelli, ICML 2023), batched over independent trials.

A hidden state ``x`` in R^n moves under the action ``u`` in R^d; the learner sees only a scalar reward::

    y_t     = <omega, x_t> + <theta, u_t> + eta_t          (observed before the state moves)
    x_{t+1} = A x_t + B u_t + eps_t

(P2 section 2; the official code, marcomussi/DLB ``dynlinucb/experimental/environment.py``, computes
the output from the current state, then advances the state). The official configs write the system
in control form ``y_vec = C x + D u + noise_vec`` with the output map ``1^T`` (p = m = n = 3), so
``omega = C^T 1``, ``theta = D^T 1`` and the scalar reward noise is the sum of ``m`` independent
N(0, sigma^2) draws, i.e. N(0, m sigma^2); the state noise is N(0, sigma^2 I_n).

The batch dimension ``B`` runs independent trials, and every copy may hold its own system
(:class:`DynLinParams`). Actions are arm indices into a finite action set ``arms [K, d]`` (the
official experiments: the 6 vertices of the budget polytope, :func:`budget_vertices`) or vectors of
a box ``[low, high]^d``. Besides the one-round :meth:`DynamicalLinearBandit.step` of the engine
contract, :meth:`DynamicalLinearBandit.hold` plays one constant action for ``L`` rounds in closed
form (a handful of batched tensor ops instead of ``L`` steps), which is what epoch-based learners
(DynLin-UCB, Batch-Exp3, fixed policies) need.

Exact quantities (P2 section 2): the steady-state value of a constant action is ``<h, u>`` with the
cumulative Markov parameter ``h = theta + B^T (I - A)^{-T} omega``; the clairvoyant policy plays
``u* = argmax_u <h, u>``. Regret is reported both as the paper plots it (steady-state
pseudo-regret ``sum_t J* - <h, u_t>``, official ``scripts/main.py``) and as realized reward against
the clairvoyant policy (``t J* - sum_t y_t``), see :func:`pseudo_regret`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rlsuite.core import spaces
from rlsuite.core.env import BatchedEnv, Step
from rlsuite.core.params import validate_params

DTYPE = torch.float64

# Official configs (marcomussi/DLB config/testcase_synt_sigma0dot01.json and testcase_realdata.json).
SYNTHETIC_SYSTEM = {
    "A": [[0.2, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.1]],
    "B": [[0.45, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.1]],
    "C": [[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.1]],
    "D": [[0.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.1]],
}
"""The synthetic system of the main text (rho(A) = 0.2, h = (0.5625, 0.5, 0.1111))."""
ADVERTISING_SYSTEM = {
    "A": [[0.38, 0.33, 0.6], [0.07, 0.76, -0.54], [0.18, 0.34, 0.05]],
    "B": [[0.14, 0.34, -0.05], [-0.17, 0.03, -0.01], [0.04, -0.09, 0.17]],
    "C": [[0.25, -0.14, 0.01], [-0.55, 0.2, -0.13], [-0.31, -0.1, -0.01]],
    "D": [[0.11, 0.1, 0.01], [0.01, 0.36, 0.01], [0.01, -0.05, 0.0]],
}
"""The advertising system identified from real campaign data (rho(A) = 0.6669, complex eigenvalues)."""
EXPERT_SPEND = (1641952.0, 259591273.0, 716354611.0)
"""Historical spend per campaign of the real-data config (the expert allocation's input)."""
BUDGET = {"total": 1.5, "per_campaign": 1.0, "minimum": 0.0}
"""Daily budget of the official configs (max_daily_budget, max_camp_budget, min_camp_budget)."""


@dataclass(frozen=True)
class DynLinParams:
    """One dynamical linear system per copy (float64)."""

    A: torch.Tensor
    """``[B, n, n]`` state transition, spectral radius < 1."""
    B: torch.Tensor
    """``[B, n, d]`` input matrix."""
    omega: torch.Tensor
    """``[B, n]`` state-to-reward weights (``C^T 1`` in control form)."""
    theta: torch.Tensor
    """``[B, d]`` immediate action-to-reward weights (``D^T 1``)."""
    state_sigma: torch.Tensor
    """``[B]`` std of each coordinate of the state noise eps_t."""
    reward_sigma: torch.Tensor
    """``[B]`` std of the scalar reward noise eta_t (``sqrt(m) sigma`` for m summed outputs)."""
    x0: torch.Tensor
    """``[B, n]`` initial state (0 in the official experiments)."""


@dataclass(frozen=True)
class DynLinState:
    """Hidden state ``x [B, n]`` (float64) and rounds played in the episode ``time [B]`` (int64)."""

    x: torch.Tensor
    time: torch.Tensor


@dataclass(frozen=True)
class HoldTables:
    """Per-copy tables that play a constant action for up to ``max_len`` rounds in closed form.

    With ``S_j = sum_{k<j} A^k``, holding ``u`` from ``x_s`` gives
    ``y_{s+j} = (omega^T A^j) x_s + (omega^T S_j B + theta^T) u + sum_{i<j} omega^T A^{j-1-i} eps_i + eta_j``
    and ``x_{s+L} = A^L x_s + S_L B u + sum_{i<L} A^{L-1-i} eps_i``.
    """

    wx: torch.Tensor
    """``[B, Lmax, n]`` omega^T A^j."""
    wu: torch.Tensor
    """``[B, Lmax, d]`` omega^T S_j B + theta^T."""
    wn: torch.Tensor
    """``[B, Lmax, Lmax, n]`` omega^T A^{j-1-i} for i < j, else 0 (noise to reward)."""
    powers: torch.Tensor
    """``[B, Lmax + 1, n, n]`` A^j."""
    sb: torch.Tensor
    """``[B, Lmax + 1, n, d]`` S_j B."""

    @property
    def max_len(self) -> int:
        """Longest hold these tables serve."""
        return self.wx.shape[1]


# --------------------------------------------------------------------------------------------------
# Systems: construction, validation, exact quantities


def spectral_radius(A: torch.Tensor) -> torch.Tensor:
    """``max |eig(A)|`` per copy (``[..., n, n] -> [...]``). The modulus matters: the real-data A has
    complex eigenvalues 0.614 +- 0.261i, and the official code's ``max(eigvals)`` is complex (B7)."""
    return torch.linalg.eigvals(A.to(DTYPE)).abs().amax(-1)


def transient_constant(A: torch.Tensor, max_power: int = 999) -> torch.Tensor:
    """``Phi(A) = max_{1 <= i <= max_power} ||A^i||_2 / rho(A)^i`` per copy (official ``core/utils.py
    spectr``); 1 where rho(A) = 0 (a nilpotent A, where the official formula divides by zero)."""
    A = A.to(DTYPE)
    single = A.dim() == 2
    A = A.unsqueeze(0) if single else A
    rho = spectral_radius(A)
    nilpotent = rho < 1e-12
    # Normalise A by rho so that powers neither under- nor overflow over 999 steps (batched).
    M = A / torch.where(nilpotent, torch.ones_like(rho), rho)[:, None, None]
    P = torch.eye(A.shape[-1], dtype=DTYPE, device=A.device).expand_as(A)
    best = torch.zeros_like(rho)
    for _ in range(max_power):
        P = P @ M
        best = torch.maximum(best, torch.linalg.matrix_norm(P, ord=2))
    out = torch.where(nilpotent, torch.ones_like(rho), best)
    return out[0] if single else out


def check_system(A: torch.Tensor, B: torch.Tensor, omega: torch.Tensor, theta: torch.Tensor) -> None:
    """Raise a ValueError naming the field if the (batched) system is malformed or unstable."""
    if A.dim() != 3 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"A must be [B, n, n]; got shape {tuple(A.shape)}")
    b, n = A.shape[0], A.shape[-1]
    if B.dim() != 3 or B.shape[:2] != (b, n):
        raise ValueError(f"B must be [B, n={n}, d] with batch {b}; got shape {tuple(B.shape)}")
    d = B.shape[-1]
    if tuple(omega.shape) != (b, n):
        raise ValueError(f"omega must be [B, n] = ({b}, {n}); got shape {tuple(omega.shape)}")
    if tuple(theta.shape) != (b, d):
        raise ValueError(f"theta must be [B, d] = ({b}, {d}); got shape {tuple(theta.shape)}")
    for name, t in (("A", A), ("B", B), ("omega", omega), ("theta", theta)):
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} has non-finite entries")
    rho = spectral_radius(A)
    bad = (rho >= 1).nonzero().flatten().tolist()
    if bad:
        raise ValueError(
            f"A must be stable (spectral radius < 1); copy {bad[0]} has rho(A) = {float(rho[bad[0]]):.6g}"
        )


def make_params(
    A: torch.Tensor,
    B: torch.Tensor,
    omega: torch.Tensor,
    theta: torch.Tensor,
    state_sigma: float | torch.Tensor,
    reward_sigma: float | torch.Tensor,
    x0: torch.Tensor | None = None,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
) -> DynLinParams:
    """Validated params from one system (``A [n, n]`` ...) repeated ``batch_size`` times, or from
    already batched tensors (``A [B, n, n]`` ...)."""

    def t(x: float | torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(x, dtype=DTYPE, device=device)

    A, B, omega, theta = t(A), t(B), t(omega), t(theta)
    if A.dim() == 2:
        if B.dim() != 2 or omega.dim() != 1 or theta.dim() != 1:
            raise ValueError("give all of A [n, n], B [n, d], omega [n], theta [d] unbatched, or all batched")
        k = batch_size or 1
        A, B = A.expand(k, *A.shape).clone(), B.expand(k, *B.shape).clone()
        omega, theta = omega.expand(k, -1).clone(), theta.expand(k, -1).clone()
    check_system(A, B, omega, theta)
    k, n = A.shape[0], A.shape[-1]
    x0 = torch.zeros(k, n, dtype=DTYPE, device=device) if x0 is None else t(x0).expand(k, n).clone()
    ss, rs = t(state_sigma).expand(k).clone(), t(reward_sigma).expand(k).clone()
    for name, s in (("state_sigma", ss), ("reward_sigma", rs)):
        if bool((s < 0).any()):
            raise ValueError(f"{name} must be >= 0; got {s.min().item()}")
    return DynLinParams(A=A, B=B, omega=omega, theta=theta, state_sigma=ss, reward_sigma=rs, x0=x0)


def from_control_form(
    system: dict,
    sigma: float,
    batch_size: int = 1,
    output_map: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> DynLinParams:
    """Params from ``{"A", "B", "C", "D"}`` (official config layout) with output map ``1^T``:
    ``omega = C^T 1``, ``theta = D^T 1``, state noise std ``sigma``, reward noise std ``sqrt(m) sigma``
    (the sum of the ``m`` output noises of the official environment)."""
    A, B, C, D = (torch.as_tensor(system[k], dtype=DTYPE) for k in "ABCD")
    if C.shape[-1] != A.shape[0] or D.shape[0] != C.shape[0] or D.shape[1] != B.shape[1]:
        raise ValueError(
            f"C {tuple(C.shape)} / D {tuple(D.shape)} do not fit A {tuple(A.shape)}, B {tuple(B.shape)}"
        )
    m = C.shape[0]
    out = torch.ones(m, dtype=DTYPE) if output_map is None else torch.as_tensor(output_map, dtype=DTYPE)
    return make_params(
        A,
        B,
        C.T @ out,
        D.T @ out,
        sigma,
        math.sqrt(float((out**2).sum())) * sigma,
        batch_size=batch_size,
        device=device,
    )


def random_stable_system(
    n: int, d: int, spectral_radius_target: float, generator: torch.Generator, scale: float = 1.0
) -> dict[str, torch.Tensor]:
    """A random system ``{"A", "B", "omega", "theta"}`` whose A has exactly the given spectral radius.

    A is a Gaussian matrix rescaled by ``target / rho``; B, omega, theta are Gaussian times
    ``scale / sqrt(n)`` so that ``h`` stays of order ``scale``.
    """
    if not 0.0 <= spectral_radius_target < 1.0:
        raise ValueError(f"spectral_radius_target must be in [0, 1); got {spectral_radius_target}")
    G = torch.randn(n, n, generator=generator, dtype=DTYPE)
    rho = float(spectral_radius(G))
    A = G * (spectral_radius_target / rho) if rho > 0 else torch.zeros(n, n, dtype=DTYPE)
    s = scale / math.sqrt(n)
    return {
        "A": A,
        "B": torch.randn(n, d, generator=generator, dtype=DTYPE) * s,
        "omega": torch.randn(n, generator=generator, dtype=DTYPE) * s,
        "theta": torch.randn(d, generator=generator, dtype=DTYPE) * s,
    }


def markov_parameter(params: DynLinParams) -> torch.Tensor:
    """``h = theta + B^T (I - A)^{-T} omega`` per copy ``[B, d]``: ``J(u) = <h, u>`` is the long-run
    mean reward of the constant action ``u`` (official main.py: ``1^T (D + C (I - A)^{-1} B)``)."""
    n = params.A.shape[-1]
    eye = torch.eye(n, dtype=DTYPE, device=params.A.device)
    z = torch.linalg.solve((eye - params.A).transpose(-1, -2), params.omega.unsqueeze(-1))  # (I-A)^{-T} w
    return params.theta + (params.B.transpose(-1, -2) @ z).squeeze(-1)


def budget_vertices(
    p: int = 3, total: float = 1.5, per_campaign: float = 1.0, minimum: float = 0.0
) -> torch.Tensor:
    """The official action set (scripts/main.py): fill the campaigns greedily in every permutation
    order up to ``per_campaign`` until ``total`` is spent; unique rows, sorted ``[K, p]``."""
    rows = set()
    for order in itertools.permutations(range(p)):
        budget = total - p * minimum
        u = [minimum] * p
        for i in range(p):
            delta = min(budget, per_campaign - u[order[i]])
            u[order[i]] += delta
            budget -= delta
        rows.add(tuple(u))
    return torch.tensor(sorted(rows), dtype=DTYPE)


def expert_allocation(
    spend: tuple[float, ...] = EXPERT_SPEND,
    per_campaign: float = 1.0,
    total: float = 1.5,
    minimum: float = 0.0,
) -> torch.Tensor:
    """The official ExpertAgent's fixed allocation: historical spend shares, clipped to
    ``[minimum / per_campaign, per_campaign / total]``, the unclipped shares rescaled to sum to 1,
    times ``total``. For the real-data config: (0.0031, 0.4969, 1.0)."""
    share = torch.tensor(spend, dtype=DTYPE)
    share = share / share.sum()
    lo, hi = minimum / per_campaign, per_campaign / total
    clipped = (share < lo) | (share > hi)
    share = share.clamp(lo, hi)
    free = ~clipped
    share[free] *= (1 - share[clipped].sum()) / share[free].sum()
    return share * total


NAMED_ARMS = {"expert": expert_allocation}
"""Action vectors an env can take by name as extra arms (:class:`DynamicalLinearBandit`
``extra_arms``): ``expert`` is the official ExpertAgent's allocation, which the ``expert`` baseline
plays."""


def extra_arm_vectors(extra_arms: Sequence[str | Sequence[float]] | torch.Tensor, d: int) -> torch.Tensor:
    """``[E, d]`` float64 action vectors of ``extra_arms``: each a name of :data:`NAMED_ARMS` or a
    length-``d`` vector. Raises a ValueError naming ``extra_arms`` and the offending entry."""
    if isinstance(extra_arms, torch.Tensor):
        rows = extra_arms.to(DTYPE)
        if rows.dim() != 2 or rows.shape[1] != d:
            raise ValueError(f"extra_arms must be [E, d={d}]; got shape {tuple(rows.shape)}")
        return rows
    out = []
    for i, entry in enumerate(extra_arms):
        if isinstance(entry, str):
            if entry not in NAMED_ARMS:
                raise ValueError(f"extra_arms[{i}]={entry!r}: unknown arm name; known: {sorted(NAMED_ARMS)}")
            vector = NAMED_ARMS[entry]()
        else:
            vector = torch.as_tensor([float(v) for v in entry], dtype=DTYPE)
        if vector.shape != (d,):
            raise ValueError(
                f"extra_arms[{i}]={entry!r}: an arm must have d={d} entries; got {vector.numel()}"
            )
        out.append(vector)
    return torch.stack(out) if out else torch.zeros(0, d, dtype=DTYPE)


def arm_values(params: DynLinParams, arms: torch.Tensor) -> torch.Tensor:
    """Steady-state value ``<h, u_k>`` of every arm per copy ``[B, K]``."""
    return markov_parameter(params) @ arms.to(DTYPE).T


def clairvoyant_arm(params: DynLinParams, arms: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(index [B], J* [B])`` of the arm maximising ``<h, u>`` (the official Clairvoyant)."""
    values = arm_values(params, arms)
    best = values.argmax(-1)
    return best, values.gather(-1, best[:, None])[:, 0]


def clairvoyant_box(
    params: DynLinParams, low: torch.Tensor, high: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(u* [B, d], J* [B])`` over a box: the linear objective picks ``high`` where ``h > 0``."""
    h = markov_parameter(params)
    u = torch.where(h > 0, high.to(DTYPE), low.to(DTYPE))
    return u, (h * u).sum(-1)


def pseudo_regret(params: DynLinParams, played: torch.Tensor, optimum: torch.Tensor) -> torch.Tensor:
    """Per-round steady-state pseudo-regret ``J* - <h, u_t>`` (the paper's plotted metric).

    Args:
        played: ``[B, T, d]`` actions played.
        optimum: ``[B]`` J*.
    """
    h = markov_parameter(params)
    return optimum[:, None] - torch.einsum("btd,bd->bt", played.to(DTYPE), h)


def system_constants(params: DynLinParams, arms: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The constants DynLin-UCB is given in the official experiments, per copy ``[B]``:
    ``rho`` = rho(A), ``phi`` = Phi(A), ``omega`` = ||omega||, ``theta`` = ||theta||, ``b`` = ||B||_2,
    ``u`` = max arm norm (``arms`` given), ``sigma`` = the state noise std (official: noise_sigma)."""
    out = {
        "rho": spectral_radius(params.A),
        "phi": transient_constant(params.A),
        "omega": params.omega.norm(dim=-1),
        "theta": params.theta.norm(dim=-1),
        "b": torch.linalg.matrix_norm(params.B, ord=2),
        "sigma": params.state_sigma.clone(),
    }
    if arms is not None:
        out["u"] = arms.to(DTYPE).norm(dim=-1).max().expand_as(out["rho"]).clone()
    return out


# --------------------------------------------------------------------------------------------------
# The env


class DynamicalLinearBandit(BatchedEnv[DynLinState, DynLinParams]):
    """Batched dynamical linear bandit; each copy is an independent trial with its own system.

    Args:
        system: ``"synthetic"`` or ``"advertising"`` (official configs), or a dict with ``A, B, C, D``
            (control form) or ``A, B, omega, theta``.
        sigma: noise std (official ``noise_sigma``: state noise std; the reward noise std is
            ``sqrt(m) sigma`` in control form, ``sigma`` otherwise).
        arms: finite action set ``[K, d]`` (default: :func:`budget_vertices`); ignored if ``box``.
        extra_arms: arms appended after ``arms`` (indices ``K, K+1, ...``), each a name of
            :data:`NAMED_ARMS` or a length-``d`` vector. ``["expert"]`` gives the ``expert``
            baseline its allocation as arm ``K`` (the official ExpertAgent plays that vector,
            which is not a vertex). A point of the budget polytope never changes the optimum
            ``max_k <h, u_k>`` (a linear function peaks at a vertex), so the regret of the other
            arms is unchanged; a vector outside the polytope may become the optimum.
        box: ``(low, high)`` for a continuous action set ``[low, high]^d`` instead of arms.
        max_episode_steps: optional time limit (the state returns to ``x0``); None: no limit.
        device: where state and params live.

    The state is hidden: the observation ``[B, 1]`` is the reward just received (0 after a reset),
    so the learner sees only rewards.
    """

    name = "dynlin"

    def __init__(
        self,
        system: str | dict = "synthetic",
        sigma: float = 0.01,
        arms: torch.Tensor | list | None = None,
        extra_arms: Sequence[str | Sequence[float]] | torch.Tensor | None = None,
        box: tuple[float, float] | None = None,
        max_episode_steps: int | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(device)
        if isinstance(system, str):
            table = {"synthetic": SYNTHETIC_SYSTEM, "advertising": ADVERTISING_SYSTEM}
            if system not in table:
                raise ValueError(f"system={system!r}: expected one of {sorted(table)} or a dict")
            system = table[system]
        self.system = dict(system)
        self.sigma = float(sigma)
        base = self.default_params(1)
        d = base.B.shape[-1]
        self.max_episode_steps = max_episode_steps
        self.observation_space = spaces.Box.make(-math.inf, math.inf, (1,), device=self.device)
        # kept (as given, a config's ListConfig as a list) for error messages that name them
        self.extra_arms = extra_arms if isinstance(extra_arms, torch.Tensor) else list(extra_arms or [])
        if box is not None:
            if len(self.extra_arms):
                raise ValueError(
                    f"extra_arms={list(self.extra_arms)!r}: needs a finite action set, not a box"
                )
            self.arms = None
            self.low = torch.full((d,), float(box[0]), dtype=DTYPE, device=self.device)
            self.high = torch.full((d,), float(box[1]), dtype=DTYPE, device=self.device)
            self.action_space = spaces.Box.make(float(box[0]), float(box[1]), (d,), device=self.device)
        else:
            arms_t = budget_vertices(d) if arms is None else torch.as_tensor(arms, dtype=DTYPE)
            if arms_t.dim() != 2 or arms_t.shape[1] != d:
                raise ValueError(f"arms must be [K, d={d}]; got shape {tuple(arms_t.shape)}")
            arms_t = torch.cat([arms_t, extra_arm_vectors(self.extra_arms, d)])
            self.arms = arms_t.to(self.device)
            self.low = self.high = None
            self.action_space = spaces.Discrete(int(arms_t.shape[0]), device=self.device)

    # -- params -----------------------------------------------------------------------------------

    def default_params(self, batch_size: int = 1) -> DynLinParams:
        """The env's system repeated for ``batch_size`` independent trials."""
        s = self.system
        if "C" in s:
            return from_control_form(s, self.sigma, batch_size, device=self.device)
        return make_params(
            s["A"],
            s["B"],
            s["omega"],
            s["theta"],
            self.sigma,
            self.sigma,
            batch_size=batch_size,
            device=self.device,
        )

    def check_params(self, params: DynLinParams, batch_size: int | None = None) -> None:
        """Shapes as the default params, and every A stable."""
        validate_params(params, self.default_params(1), batch_size)
        check_system(params.A, params.B, params.omega, params.theta)

    # -- actions ----------------------------------------------------------------------------------

    def action_vectors(self, action: torch.Tensor) -> torch.Tensor:
        """``[B, d]`` float64 action vectors from arm indices ``[B]`` (finite) or vectors ``[B, d]``."""
        if self.arms is not None:
            return self.arms[action.long()]
        return torch.minimum(torch.maximum(action.to(DTYPE), self.low), self.high)

    def optimum(self, params: DynLinParams) -> tuple[torch.Tensor, torch.Tensor]:
        """``(u* [B, d], J* [B])``: the clairvoyant constant action and its steady-state value."""
        if self.arms is not None:
            best, value = clairvoyant_arm(params, self.arms)
            return self.arms[best], value
        return clairvoyant_box(params, self.low, self.high)

    # -- dynamics ---------------------------------------------------------------------------------

    def reset(self, params: DynLinParams, generator: torch.Generator) -> tuple[torch.Tensor, DynLinState]:
        """Every copy starts at its ``x0`` (the official experiments: 0)."""
        b = params.x0.shape[0]
        state = DynLinState(x=params.x0.clone(), time=torch.zeros(b, dtype=torch.int64, device=self.device))
        return torch.zeros(b, 1, dtype=torch.float32, device=self.device), state

    def draw_noise(
        self, params: DynLinParams, rounds: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(eps [B, L, n], eta [B, L])`` for ``L`` rounds, already scaled by the per-copy stds."""
        b, n = params.x0.shape
        eps = torch.randn(b, rounds, n, generator=generator, dtype=DTYPE, device=self.device)
        eta = torch.randn(b, rounds, generator=generator, dtype=DTYPE, device=self.device)
        return eps * params.state_sigma[:, None, None], eta * params.reward_sigma[:, None]

    def transition(
        self, x: torch.Tensor, u: torch.Tensor, params: DynLinParams, eps: torch.Tensor, eta: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One round with given noise ``eps [B, n]``, ``eta [B]``: ``(y [B], x' [B, n])``, float64."""
        y = (params.omega * x).sum(-1) + (params.theta * u).sum(-1) + eta
        x_next = (params.A @ x.unsqueeze(-1)).squeeze(-1) + (params.B @ u.unsqueeze(-1)).squeeze(-1) + eps
        return y, x_next

    def step(
        self, state: DynLinState, action: torch.Tensor, params: DynLinParams, generator: torch.Generator
    ) -> Step[DynLinState]:
        """One round for every copy: the reward is paid on the current state, then the state moves."""
        u = self.action_vectors(action)
        eps, eta = self.draw_noise(params, 1, generator)
        y, x_next = self.transition(state.x, u, params, eps[:, 0], eta[:, 0])
        time = state.time + 1
        b = x_next.shape[0]
        terminated = torch.zeros(b, dtype=torch.bool, device=self.device)
        if self.max_episode_steps is not None:
            truncated = time >= self.max_episode_steps
            x_next = torch.where(truncated[:, None], params.x0, x_next)
            time = torch.where(truncated, torch.zeros_like(time), time)
        else:
            truncated = terminated.clone()
        obs = y.to(torch.float32)[:, None]
        return Step(
            obs=torch.where(truncated[:, None], torch.zeros_like(obs), obs),
            state=DynLinState(x=x_next, time=time),
            reward=y.to(torch.float32),
            terminated=terminated,
            truncated=truncated,
            final_obs=obs,
        )

    # -- holding one action for many rounds --------------------------------------------------------

    def hold_tables(self, params: DynLinParams, max_len: int) -> HoldTables:
        """Tables for :meth:`hold` with holds of up to ``max_len`` rounds (built once per params)."""
        A, Bm, om = params.A, params.B, params.omega
        b, n = params.x0.shape
        powers = [torch.eye(n, dtype=DTYPE, device=self.device).expand(b, n, n)]
        sums = [torch.zeros_like(A)]
        for _ in range(max_len):
            sums.append(sums[-1] + powers[-1])
            powers.append(powers[-1] @ A)
        P = torch.stack(powers, 1)  # [B, L+1, n, n]
        S = torch.stack(sums, 1)
        sb = S @ Bm[:, None]  # [B, L+1, n, d]
        wx = (om[:, None, None, :] @ P[:, :max_len]).squeeze(-2)  # [B, L, n]
        wu = (om[:, None, None, :] @ sb[:, :max_len]).squeeze(-2) + params.theta[:, None]
        j = torch.arange(max_len, device=self.device)
        lag = j[:, None] - 1 - j[None, :]  # j - 1 - i
        wn = wx[:, lag.clamp(min=0)] * (lag >= 0)[None, :, :, None]
        return HoldTables(wx=wx, wu=wu, wn=wn, powers=P, sb=sb)

    def hold(
        self,
        x: torch.Tensor,
        u: torch.Tensor,
        rounds: int,
        params: DynLinParams,
        tables: HoldTables,
        eps: torch.Tensor,
        eta: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Play ``u [B, d]`` for ``rounds`` rounds from ``x [B, n]`` with given noise
        (``eps [B, L, n]``, ``eta [B, L]``, see :meth:`draw_noise`).

        Returns ``(rewards [B, L], x after the L rounds [B, n])``, float64, equal (to rounding) to
        ``L`` calls of :meth:`transition`.
        """
        L = rounds
        if L > tables.max_len:
            raise ValueError(f"rounds={L} exceeds the hold tables' max_len={tables.max_len}")
        y = (tables.wx[:, :L] @ x.unsqueeze(-1)).squeeze(-1) + (tables.wu[:, :L] @ u.unsqueeze(-1)).squeeze(
            -1
        )
        y = y + torch.einsum("bjin,bin->bj", tables.wn[:, :L, :L], eps) + eta
        # sum_{i<L} A^{L-1-i} eps_i = sum_k A^k eps_{L-1-k}
        noise_x = torch.einsum("bknm,bkm->bn", tables.powers[:, :L], eps.flip(1))
        x_next = (tables.powers[:, L] @ x.unsqueeze(-1) + tables.sb[:, L] @ u.unsqueeze(-1)).squeeze(-1)
        return y, x_next + noise_x


def dynlin_synthetic(
    sigma: float = 0.01, device: torch.device | str = "cpu", **kwargs
) -> DynamicalLinearBandit:
    """The synthetic system of the paper's main text (official config testcase_synt_sigma0dot01)."""
    env = DynamicalLinearBandit("synthetic", sigma=sigma, device=device, **kwargs)
    env.name = "dynlin_synthetic"
    return env


def dynlin_adv(sigma: float = 0.01, device: torch.device | str = "cpu", **kwargs) -> DynamicalLinearBandit:
    """The advertising system identified from real data (official config testcase_realdata)."""
    env = DynamicalLinearBandit("advertising", sigma=sigma, device=device, **kwargs)
    env.name = "dynlin_adv"
    return env


def dynlin_random(
    n: int = 3,
    d: int = 3,
    spectral_radius: float = 0.5,
    system_seed: int = 0,
    sigma: float = 0.01,
    device: torch.device | str = "cpu",
    **kwargs,
) -> DynamicalLinearBandit:
    """A random stable system with the given spectral radius (:func:`random_stable_system`); the
    action set defaults to the budget vertices when d = 3, else the box [0, 1]^d."""
    g = torch.Generator().manual_seed(int(system_seed))
    system = random_stable_system(n, d, spectral_radius, g)
    if d != 3 and "arms" not in kwargs and "box" not in kwargs:
        kwargs["box"] = (0.0, 1.0)
    env = DynamicalLinearBandit(system, sigma=sigma, device=device, **kwargs)
    env.name = "dynlin_random"
    return env
