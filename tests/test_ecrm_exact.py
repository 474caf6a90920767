"""Exact ECRM (rlsuite.agents.ecrm.exact) against brute-force enumeration, finite differences,
hand-solved examples and the invariants of docs/ecrm.md, "Verification cases"."""

from __future__ import annotations

import itertools

import pytest
import torch

from rlsuite.agents.ecrm import (
    exact_ecrm,
    exact_gradients,
    optimal_thresholds,
    ru_objective,
    softmax_gradient,
)
from rlsuite.envs.tabular import TabularMDP, random_mdp
from rlsuite.risk import cvar

F64 = torch.float64


def _mdp(seed: int, horizon: int = 3, gamma: float = 0.9, terminal_prob: float = 0.2) -> TabularMDP:
    return random_mdp(3, 2, 2, seed=seed, gamma=gamma, horizon=horizon, terminal_prob=terminal_prob)


def _random_tables(seed: int, s: int = 3, a: int = 2) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(s, a, generator=g, dtype=F64) for _ in range(3))


def _py_mean_cvar(atoms: list[tuple[float, float]], alpha: float, lam: float, tail_side: str) -> float:
    """Reference mean-CVaR of a list of (value, prob), written independently (lower tail for
    rewards, upper for costs)."""
    mean = sum(v * p for v, p in atoms)
    left, tail = alpha, 0.0
    for v, p in sorted(atoms, reverse=tail_side == "upper"):
        take = min(p, left)
        tail += take * v
        left -= take
        if left <= 0:
            break
    return (1 - lam) * mean + lam * tail / alpha


def _brute_force_ecrm(mdp: TabularMDP, pi: torch.Tensor, pi1: torch.Tensor, alpha: float,
                      lam: float, horizon: int, tail: str = "lower") -> float:
    """The definition over explicit histories: stage t's risk conditional on the whole history
    up to a_{t-1} (which, for a Markov policy, is the (s_{t-1}, a_{t-1}) conditioning)."""
    S, A, K = mdp.num_states, mdp.num_actions, mdp.num_outcomes
    P, R, N, T = mdp.prob.tolist(), mdp.reward.tolist(), mdp.next_state.tolist(), mdp.terminal.tolist()
    mu, p, p1 = mdp.initial.tolist(), pi.tolist(), pi1.tolist()
    total = sum(mu[s] * p1[s][a] * P[s][a][k] * R[s][a][k]
                for s in range(S) for a in range(A) for k in range(K))
    # prefixes: (prob, s_{t-1}, a_{t-1}) of alive histories up to the action of stage t-1
    prefixes = [(mu[s] * p1[s][a], s, a) for s in range(S) for a in range(A)]
    for t in range(2, horizon + 1):
        stage, nxt = 0.0, []
        for w, s, a in prefixes:
            if w == 0:
                continue
            atoms = []
            for k in range(K):
                if T[s][a][k]:
                    atoms.append((0.0, P[s][a][k]))
                    continue
                s2 = N[s][a][k]
                for a2, k2 in itertools.product(range(A), range(K)):
                    atoms.append((R[s2][a2][k2], P[s][a][k] * p[s2][a2] * P[s2][a2][k2]))
                    if k2 == 0:
                        nxt.append((w * P[s][a][k] * p[s2][a2], s2, a2))
            stage += w * _py_mean_cvar(atoms, alpha, lam, tail)
        total += mdp.gamma ** (t - 1) * stage
        prefixes = nxt
    return total


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("alpha", "lam"), [(0.3, 0.6), (0.05, 1.0), (0.5, 0.25)])
def test_stage_dp_equals_enumeration_of_histories(seed: int, alpha: float, lam: float) -> None:
    mdp = _mdp(seed, horizon=4)
    th1, th, _ = _random_tables(seed + 100)
    pi, pi1 = th.softmax(-1), th1.softmax(-1)
    exact = exact_ecrm(mdp, pi, alpha, lam, first_policy=pi1).item()
    assert exact == pytest.approx(_brute_force_ecrm(mdp, pi, pi1, alpha, lam, 4), abs=1e-12)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


@pytest.mark.parametrize("seed", range(5))
def test_analytic_gradients_match_central_differences(seed: int) -> None:
    # Notes E-4: 3 states, 2 actions, T = 3, gamma = 0.9, lam = 0.6, alpha = 0.3.
    mdp = _mdp(seed)
    alpha, lam, eps = 0.3, 0.6, 1e-6
    th1, th, eta = _random_tables(seed)

    def objective(t1: torch.Tensor, t: torch.Tensor, e: torch.Tensor) -> float:
        return ru_objective(mdp, t.softmax(-1), e, alpha, lam, first_policy=t1.softmax(-1)).item()

    def central(which: int) -> torch.Tensor:
        out = torch.zeros(3, 2, dtype=F64)
        for i, j in itertools.product(range(3), range(2)):
            args_p = [th1.clone(), th.clone(), eta.clone()]
            args_m = [th1.clone(), th.clone(), eta.clone()]
            args_p[which][i, j] += eps
            args_m[which][i, j] -= eps
            out[i, j] = (objective(*args_p) - objective(*args_m)) / (2 * eps)
        return out

    grads = exact_gradients(mdp, th.softmax(-1), eta, alpha, lam, first_policy=th1.softmax(-1))
    assert _rel_err(softmax_gradient(th1.softmax(-1), grads.first_policy), central(0)) < 1e-6
    assert _rel_err(softmax_gradient(th.softmax(-1), grads.policy), central(1)) < 1e-6
    assert _rel_err(grads.eta, central(2)) < 1e-6


def test_direct_gradient_matches_differences_along_the_simplex() -> None:
    mdp = _mdp(7)
    _, th, eta = _random_tables(7)
    pi = th.softmax(-1)
    grads = exact_gradients(mdp, pi, eta, 0.3, 0.6)
    eps = 1e-6
    for s in range(3):
        d = torch.zeros(3, 2, dtype=F64)
        d[s, 0], d[s, 1] = eps, -eps  # stays on the simplex
        fd = (ru_objective(mdp, pi + d, eta, 0.3, 0.6) - ru_objective(mdp, pi - d, eta, 0.3, 0.6)) / (2 * eps)
        # With a shared first-step policy the gradient is the sum of both partials.
        analytic = (grads.policy + grads.first_policy)[s, 0] - (grads.policy + grads.first_policy)[s, 1]
        assert float(analytic) == pytest.approx(float(fd), rel=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_best_threshold_recovers_the_exact_ecrm(seed: int) -> None:
    # Notes E-5 (rewards convention: J(pi, eta) <= ECRM, equality at eta* = VaR).
    mdp = _mdp(seed)
    th1, th, eta = _random_tables(seed)
    pi, pi1 = th.softmax(-1), th1.softmax(-1)
    exact = exact_ecrm(mdp, pi, 0.3, 0.6, first_policy=pi1)
    star = optimal_thresholds(mdp, pi, 0.3)
    at_star = ru_objective(mdp, pi, star, 0.3, 0.6, first_policy=pi1).item()
    assert at_star == pytest.approx(exact.item(), abs=1e-12)
    assert ru_objective(mdp, pi, eta, 0.3, 0.6, first_policy=pi1).item() < exact.item()
    # Ascent on eta alone along the quantile-regression direction (the exact gradient without its
    # occupancy weight, the agent's "uniform" eta step) with a diminishing step converges to it.
    from rlsuite.agents.ecrm.exact import next_reward_distribution
    values, probs = next_reward_distribution(mdp, pi)
    e, avg = torch.zeros(3, 2, dtype=F64), torch.zeros(3, 2, dtype=F64)
    for k in range(20000):
        below = torch.where(values < e.unsqueeze(-1), probs, 0.0).sum(-1)
        e = e + 0.5 / (k + 1) ** 0.7 * (1.0 - below / 0.3)
        if k >= 10000:  # Polyak-Ruppert averaging of the second half
            avg += e / 10000
    found = ru_objective(mdp, pi, avg, 0.3, 0.6, first_policy=pi1).item()
    assert found == pytest.approx(exact.item(), abs=1e-3)


def _policy_evaluation(mdp: TabularMDP, pi: torch.Tensor, pi1: torch.Tensor, horizon: int) -> float:
    v = torch.zeros(mdp.num_states, dtype=F64)
    for _ in range(horizon - 1):
        v = (pi * mdp.backup(v)).sum(-1)
    return float((mdp.initial * (pi1 * mdp.backup(v)).sum(-1)).sum())


@pytest.mark.parametrize("seed", range(4))
def test_no_risk_gives_the_expected_return(seed: int) -> None:
    mdp = _mdp(seed, horizon=5)
    th1, th, _ = _random_tables(seed)
    pi, pi1 = th.softmax(-1), th1.softmax(-1)
    expected = _policy_evaluation(mdp, pi, pi1, 5)
    assert exact_ecrm(mdp, pi, 0.2, 0.0, first_policy=pi1).item() == pytest.approx(expected, abs=1e-12)
    assert exact_ecrm(mdp, pi, 1.0, 0.8, first_policy=pi1).item() == pytest.approx(expected, abs=1e-12)


def test_infinite_horizon_linear_solve_is_the_limit_of_long_horizons() -> None:
    mdp = random_mdp(4, 2, 3, seed=3, gamma=0.8, horizon=None, terminal_prob=0.1)
    _, th, _ = _random_tables(3, 4, 2)
    pi = th.softmax(-1)
    inf = exact_ecrm(mdp, pi, 0.25, 0.7).item()
    assert exact_ecrm(mdp, pi, 0.25, 0.7, horizon=200).item() == pytest.approx(inf, abs=1e-12)
    with pytest.raises(ValueError, match="gamma < 1"):
        exact_ecrm(random_mdp(3, 2, gamma=1.0, horizon=None), torch.full((3, 2), 0.5), 0.2, 0.5)


@pytest.mark.parametrize("seed", range(4))
def test_ecrm_is_non_increasing_in_lambda_and_below_the_mean(seed: int) -> None:
    mdp = _mdp(seed, horizon=4)
    th1, th, _ = _random_tables(seed)
    pi, pi1 = th.softmax(-1), th1.softmax(-1)
    lams = torch.linspace(0, 1, 11).tolist()
    values = [exact_ecrm(mdp, pi, 0.2, lam, first_policy=pi1).item() for lam in lams]
    assert all(b <= a + 1e-12 for a, b in zip(values, values[1:], strict=False))
    assert values[-1] < values[0]


def test_cost_convention_is_the_mirror_image() -> None:
    # ECRM of costs c (upper-tail mean-CVaR, minimized) = -ECRM of rewards -c (rewards convention).
    mdp = _mdp(2)
    th1, th, _ = _random_tables(2)
    pi, pi1 = th.softmax(-1), th1.softmax(-1)
    costs = TabularMDP(mdp.next_state, -mdp.reward, mdp.prob, mdp.terminal, mdp.initial,
                       mdp.gamma, mdp.horizon)
    cost_ecrm = _brute_force_ecrm(costs, pi, pi1, 0.3, 0.6, 3, tail="upper")
    assert cost_ecrm == pytest.approx(-exact_ecrm(mdp, pi, 0.3, 0.6, first_policy=pi1).item(), abs=1e-12)
    # costs: ECRM >= expected cost, with equality at lam = 0
    assert cost_ecrm > _brute_force_ecrm(costs, pi, pi1, 0.3, 0.0, 3, tail="upper")


# -- hand-solvable examples -----------------------------------------------------------------------
def _safe_risky(gamma: float = 1.0) -> TabularMDP:
    """Stage 1 at s0: a=0 (safe) -> s1, a=1 (risky) -> s2, reward 0. Stage 2 (both actions the
    same): s1 pays 1; s2 pays 3 w.p. 0.8 and -4 w.p. 0.2 (mean 1.6). Then the episode ends."""
    S, A, K = 3, 2, 2
    nxt = torch.zeros(S, A, K, dtype=torch.long)
    rew = torch.zeros(S, A, K, dtype=F64)
    prob = torch.zeros(S, A, K, dtype=F64)
    term = torch.zeros(S, A, K, dtype=torch.bool)
    nxt[0, 0, 0], nxt[0, 1, 0] = 1, 2
    prob[0, :, 0] = 1.0
    rew[1, :, 0], prob[1, :, 0], term[1, :, 0] = 1.0, 1.0, True
    rew[2, :, 0], prob[2, :, 0], term[2, :, :] = 3.0, 0.8, True
    rew[2, :, 1], prob[2, :, 1] = -4.0, 0.2
    return TabularMDP(nxt, rew, prob, term, torch.tensor([1.0, 0, 0]), gamma=gamma, horizon=2)


@pytest.mark.parametrize("alpha", [0.1, 0.5])
def test_safe_risky_switch_point(alpha: float) -> None:
    mdp = _safe_risky(gamma=0.9)
    cvar_risky = -4.0 if alpha <= 0.2 else (0.2 * -4.0 + (alpha - 0.2) * 3.0) / alpha
    switch = 0.6 / (1.6 - cvar_risky)  # risky is better iff (1 - lam) 1.6 + lam CVaR > 1
    stay = torch.full((3, 2), 0.5, dtype=F64)
    safe = torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]], dtype=F64)
    risky = torch.tensor([[0.0, 1.0], [0.5, 0.5], [0.5, 0.5]], dtype=F64)
    for lam in (0.0, 0.5 * switch, 0.999 * switch, 1.001 * switch, 1.0):
        v_safe = exact_ecrm(mdp, stay, alpha, lam, first_policy=safe).item()
        v_risky = exact_ecrm(mdp, stay, alpha, lam, first_policy=risky).item()
        assert v_safe == pytest.approx(0.9)
        assert v_risky == pytest.approx(0.9 * ((1 - lam) * 1.6 + lam * cvar_risky))
        assert (v_risky > v_safe) == (lam < switch)
    # the switch points worked out by hand: 3/28 at alpha = 0.1, 3/7 at alpha = 0.5
    assert switch == pytest.approx(3 / 28 if alpha == 0.1 else 3 / 7)


def _three_stage() -> TabularMDP:
    """One action. s0 (reward 0) -> s1 or s2 w.p. 1/2; s1 pays +1 -> s3; s2 pays -1 -> s4;
    s3 pays +2 or -2 w.p. 1/2; s4 pays +1; both end the episode."""
    S, K = 5, 2
    nxt = torch.zeros(S, 1, K, dtype=torch.long)
    rew = torch.zeros(S, 1, K, dtype=F64)
    prob = torch.zeros(S, 1, K, dtype=F64)
    term = torch.zeros(S, 1, K, dtype=torch.bool)
    nxt[0, 0] = torch.tensor([1, 2])
    prob[0, 0] = 0.5
    nxt[1, 0, 0], rew[1, 0, 0], prob[1, 0, 0] = 3, 1.0, 1.0
    nxt[2, 0, 0], rew[2, 0, 0], prob[2, 0, 0] = 4, -1.0, 1.0
    rew[3, 0], prob[3, 0], term[3, 0] = torch.tensor([2.0, -2.0]), 0.5, True
    rew[4, 0, 0], prob[4, 0, 0], term[4, 0] = 1.0, 1.0, True
    return TabularMDP(nxt, rew, prob, term, torch.tensor([1.0, 0, 0, 0, 0]), gamma=1.0, horizon=3)


def test_three_stage_ecrm_static_and_nested_cvar_differ() -> None:
    mdp, alpha = _three_stage(), 0.5
    pi = torch.ones(5, 1, dtype=F64)
    # ECRM (lam = 1): 0 + CVaR(+-1) + [0.5 CVaR(+-2) + 0.5 * 1] = 0 - 1 - 0.5.
    ecrm = exact_ecrm(mdp, pi, alpha, 1.0).item()
    assert ecrm == pytest.approx(-1.5)
    # Static CVaR of the total: totals 3 (1/4), -1 (1/4), 0 (1/2) -> lowest half averages -0.5.
    totals = torch.tensor([3.0, -1.0, 0.0], dtype=F64)
    static = cvar(totals, torch.tensor([0.25, 0.25, 0.5], dtype=F64), alpha)
    assert static.item() == pytest.approx(-0.5)
    # Nested CVaR: V(s3) = -2, V(s4) = 1, V(s1) = 1 - 2 = -1, V(s2) = -1 + 1 = 0, V(s0) = CVaR{-1, 0}.
    v3 = cvar(torch.tensor([2.0, -2.0], dtype=F64), None, alpha)
    v1, v2 = 1.0 + v3, -1.0 + 1.0
    nested = cvar(torch.tensor([v1, v2], dtype=F64), None, alpha)
    assert nested.item() == pytest.approx(-1.0)
    assert len({round(ecrm, 9), round(static.item(), 9), round(nested.item(), 9)}) == 3


def test_bad_input_names_the_field() -> None:
    mdp = _mdp(0)
    with pytest.raises(ValueError, match="policy has shape"):
        exact_ecrm(mdp, torch.full((2, 2), 0.5), 0.3, 0.5)
    with pytest.raises(ValueError, match=r"policy\[0\] sums to"):
        exact_ecrm(mdp, torch.full((3, 2), 0.4), 0.3, 0.5)
    with pytest.raises(ValueError, match="alpha"):
        exact_ecrm(mdp, torch.full((3, 2), 0.5), 0.0, 0.5)
    with pytest.raises(ValueError, match="lam"):
        exact_ecrm(mdp, torch.full((3, 2), 0.5), 0.3, 1.5)
