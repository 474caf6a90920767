"""Dynamical linear bandits and DynLin-UCB (Mussi et al., ICML 2023): env, schedule, learner, baselines.

Reference numbers come from the official code (marcomussi/DLB) as recorded in
docs/dynlin_ucb.md ("Experiments", "Verification cases"): h and u* of both official systems, the noiseless
steady-state approach, the epoch count 137,206, and R(1e4) = 708 +- 2 (lambda = ln T), 1,353
(lambda = 1) on the synthetic system over 5 trials.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rlsuite.agents.dynlin.agent import DynLinUCB
from rlsuite.agents.dynlin.confidence import epoch_exponent, epoch_lengths, oful_radius
from rlsuite.agents.dynlin.config import DynLinUCBConfig
from rlsuite.agents.dynlin.run import BanditRun
from rlsuite.envs import dynamical_bandit as db

torch.set_num_threads(1)


def _official_h(system: dict) -> np.ndarray:
    """The official main.py MARKOV computation, in numpy: 1^T (D + C (I - A)^{-1} B)."""
    A, B, C, D = (np.array(system[k]) for k in "ABCD")
    return np.ones(3) @ (D + C @ np.linalg.inv(np.eye(3) - A) @ B)


# -- env --------------------------------------------------------------------------------------------


def test_markov_parameter_and_clairvoyant_of_the_official_systems() -> None:
    syn = db.dynlin_synthetic()
    p = syn.default_params(2)
    h = db.markov_parameter(p)
    assert torch.allclose(h[0], torch.tensor([0.5625, 0.5, 1 / 9], dtype=torch.float64), atol=1e-12)
    u, j = syn.optimum(p)
    assert u[0].tolist() == [1.0, 0.5, 0.0] and j[0].item() == pytest.approx(0.8125, abs=1e-12)

    adv = db.dynlin_adv()
    p = adv.default_params(1)
    h = db.markov_parameter(p)[0].numpy()
    np.testing.assert_allclose(h, _official_h(db.ADVERTISING_SYSTEM), atol=1e-12)
    np.testing.assert_allclose(h, [0.25149, -0.03627, 0.10608], atol=5e-5)
    u, j = adv.optimum(p)
    assert u[0].tolist() == [1.0, 0.0, 0.5] and j[0].item() == pytest.approx(0.304586, abs=1e-6)
    # The official action set: the 6 vertices of the budget polytope.
    assert sorted(map(tuple, syn.arms.tolist())) == sorted(
        {(0, 0.5, 1), (0, 1, 0.5), (0.5, 0, 1), (0.5, 1, 0), (1, 0, 0.5), (1, 0.5, 0)}
    )
    np.testing.assert_allclose(db.expert_allocation().numpy(), [0.0031, 0.4969, 1.0], atol=1e-4)


def test_constants_of_the_official_systems() -> None:
    c = db.system_constants(db.dynlin_adv().default_params(1))
    assert c["rho"].item() == pytest.approx(0.6669, abs=1e-4)  # modulus of 0.614 +- 0.261i
    assert c["phi"].item() == pytest.approx(2.78, abs=0.01)
    c = db.system_constants(db.dynlin_synthetic().default_params(1))
    assert c["rho"].item() == pytest.approx(0.2) and c["phi"].item() == pytest.approx(1.0)
    assert c["b"].item() == pytest.approx(0.45)
    assert db.transient_constant(torch.zeros(1, 3, 3)).item() == 1.0  # nilpotent: special-cased


def test_noiseless_steady_state_approach_on_the_synthetic_system() -> None:
    env = db.dynlin_synthetic(sigma=0.0)
    p = env.default_params(1)
    gen = env.make_generator(0)
    _, state = env.reset(p, gen)
    best = int((env.arms == torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)).all(-1).nonzero())
    for L in range(1, 10):
        step = env.step(state, torch.tensor([best]), p, gen)
        state = step.state
        # y at the L-th round holding u* from x0 = 0 (docs/dynlin_ucb.md); float32 reward of the contract
        assert step.reward.item() == pytest.approx(0.8125 - 0.5625 * 0.2 ** (L - 1), abs=1e-6)


def test_hold_equals_single_rounds_with_the_same_noise() -> None:
    env = db.dynlin_adv()
    p = env.default_params(3)
    tables = env.hold_tables(p, 30)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 3, dtype=torch.float64, generator=gen)
    u = env.arms[torch.tensor([0, 3, 5])]
    eps, eta = env.draw_noise(p, 17, gen)
    y, x_next = env.hold(x, u, 17, p, tables, eps, eta)
    ys = []
    for j in range(17):
        yj, x = env.transition(x, u, p, eps[:, j], eta[:, j])
        ys.append(yj)
    torch.testing.assert_close(torch.stack(ys, 1), y, rtol=0, atol=1e-13)
    torch.testing.assert_close(x, x_next, rtol=0, atol=1e-13)


def test_bandit_run_books_exact_rewards_and_regret() -> None:
    """BanditRun (noise response in blocks + one product per epoch) against a per-round simulation
    driven by the same noise draws."""
    env = db.dynlin_adv(sigma=0.05)
    p = env.default_params(2)
    run = BanditRun(env, p, seed=3, block=128)
    plan = [
        (torch.tensor([1, 4]), 5),
        (torch.tensor([0, 0]), 1),
        (torch.tensor([5, 2]), 70),
        (torch.tensor([3, 1]), 7),
    ]
    lasts = [run.advance(arm, L)[0] for arm, L in plan]
    # Reference: the same noise, drawn by the same generator in the same block sizes.
    gen = env.make_generator(3)
    blocks = [env.draw_noise(p, 128, gen) for _ in range(2)]
    eps = torch.cat([b[0] for b in blocks], 1)
    eta = torch.cat([b[1] for b in blocks], 1)
    x = p.x0.clone()
    t, total, h = 0, torch.zeros(2, dtype=torch.float64), db.markov_parameter(p)
    optimum = (h @ env.arms.T).max(-1).values
    regret = torch.zeros(2, dtype=torch.float64)
    for (arm, L), last in zip(plan, lasts, strict=True):
        u = env.arms[arm]
        for _ in range(L):
            y, x = env.transition(x, u, p, eps[:, t], eta[:, t])
            total += y
            regret += optimum - (h * u).sum(-1)
            t += 1
        torch.testing.assert_close(last, y, rtol=0, atol=1e-12)
    torch.testing.assert_close(run.reward_sum, total, rtol=0, atol=1e-10)
    torch.testing.assert_close(run.pseudo_regret, regret, rtol=0, atol=1e-12)
    curve = run.regret_curve(torch.tensor([0, 5, 6, 40, 83]))
    torch.testing.assert_close(curve[-1], regret)
    assert run.played().shape == (83, 2)


def test_system_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match="spectral radius"):
        db.make_params(torch.eye(2) * 1.01, torch.ones(2, 1), torch.ones(2), torch.ones(1), 0.1, 0.1)
    with pytest.raises(ValueError, match="B must be"):
        db.make_params(torch.eye(2) * 0.5, torch.ones(3, 1), torch.ones(2), torch.ones(1), 0.1, 0.1)
    with pytest.raises(ValueError, match="theta"):
        db.make_params(torch.eye(2) * 0.5, torch.ones(2, 1), torch.ones(2), torch.ones(2), 0.1, 0.1)
    with pytest.raises(ValueError, match="arms"):
        db.DynamicalLinearBandit("synthetic", arms=torch.ones(4, 2))
    with pytest.raises(ValueError, match="system="):
        db.DynamicalLinearBandit("nope")


def test_random_stable_system_has_the_requested_spectral_radius() -> None:
    gen = torch.Generator().manual_seed(0)
    for rho in (0.0, 0.3, 0.9):
        s = db.random_stable_system(4, 2, rho, gen)
        assert db.spectral_radius(s["A"]).item() == pytest.approx(rho, abs=1e-12)
    env = db.dynlin_random(n=4, d=2, spectral_radius=0.7)
    u, j = env.optimum(env.default_params(1))  # box [0, 1]^2: u*_i = 1 where h_i > 0
    h = db.markov_parameter(env.default_params(1))[0]
    assert u[0].tolist() == (h > 0).double().tolist() and j.item() == pytest.approx(
        h.clamp(min=0).sum().item()
    )


# -- DynLin-UCB -------------------------------------------------------------------------------------


def test_epoch_schedule_for_rho_bar_0_2() -> None:
    L = epoch_lengths(0.2, 10**6, official=False)
    counts = torch.bincount(L)
    assert counts[1:5].tolist() == [4, 20, 100, 500]
    assert len(L) == 137_206 and int(L.sum()) == 10**6 and int(L[-1]) == 8
    # The official 0-based counter: the first epoch has 2 rounds, the 137,206th ends at round 1e6 + 1.
    L = epoch_lengths(0.2, 10**6)
    assert int(L[0]) == 2 and len(L) == 137_206
    assert int((L.cumsum(0) <= 10**6).sum()) == 137_205
    # Real-data system (rho = 0.6669): 41,210 epochs, the last of length 27 (docs/dynlin_ucb.md).
    L = epoch_lengths(0.6669, 10**6, official=False)
    assert len(L) == 41_210 and int(L[-1]) == 27
    assert bool((epoch_lengths(0.0, 50) == 1).all()) and len(epoch_lengths(1e-7, 50)) == 50


def test_epoch_exponent_is_integer_safe_at_exact_powers() -> None:
    assert math.floor(math.log(1000) / math.log(10)) == 2  # the float trap the guard exists for
    m = torch.tensor([124, 125, 126, 15624, 15625, 999, 1000, 1001])
    assert epoch_exponent(m[:6], 0.2).tolist() == [2, 3, 3, 5, 6, 4]
    assert epoch_exponent(m[5:], 0.1).tolist() == [2, 3, 3]


def test_official_regret_at_1e4_both_lambdas() -> None:
    """Official code (5 trials, T = 1e4): 708 +- 2 (lambda = ln T), 1,353 +- 1 (lambda = 1)."""
    env = db.dynlin_synthetic()
    for lam, official in ((None, 708.0), (1.0, 1353.0)):
        agent = DynLinUCB(DynLinUCBConfig(lam=lam), env, env.default_params(5), seed=0)
        agent.learn(5 * 10**4)
        m = agent.final_metrics()
        assert m["dynlin_ucb/cumulative_regret"] == pytest.approx(official, rel=0.03)
        # ridge updates = completed epochs (official schedule: ends at rounds 2, 3, 4, ...)
        assert (
            agent.updates == int((agent.schedule.cumsum(0) <= 10**4).sum()) == m["dynlin_ucb/ridge_updates"]
        )
        assert agent.updates == 2155
        # realized regret differs from the pseudo-regret by transients and noise only
        assert abs(m["dynlin_ucb/realized_regret"] - m["dynlin_ucb/cumulative_regret"]) < 20


def test_regret_bends_at_small_t_and_the_myopic_policy_is_linear() -> None:
    """Fast version of the sublinearity check (the slow test goes to T = 1e5)."""
    env = db.dynlin_synthetic()
    agent = DynLinUCB(DynLinUCBConfig(), env, env.default_params(2), seed=1)
    agent.learn(2 * 20_000)
    r3, r4 = agent.run.regret_curve(torch.tensor([2_000, 20_000])).mean(-1).tolist()
    assert r4 / r3 < 7  # a linear learner gives 10 (official R(1e4)/R(1e3) = 5.0)
    run = BanditRun(env, env.default_params(2), seed=0)
    myopic = (run.params.theta @ env.arms.T).argmax(-1)
    run.advance(myopic, 20)
    run.advance(myopic, 180)
    c = run.regret_curve(torch.tensor([20, 200])).mean(-1)
    assert c[1] / c[0] == pytest.approx(10.0) and c[0].item() == pytest.approx(20 * 0.25694, abs=1e-3)


@pytest.mark.slow
def test_regret_is_sublinear_and_the_myopic_policy_linear() -> None:
    env = db.dynlin_synthetic()
    agent = DynLinUCB(DynLinUCBConfig(), env, env.default_params(3), seed=1)
    agent.learn(3 * 10**5)
    r3, r4, r5 = agent.run.regret_curve(torch.tensor([10**3, 10**4, 10**5])).mean(-1).tolist()
    assert r4 / r3 < 7 and r5 / r4 < 5  # official: 5.0 and 3.6
    assert r5 / 10**5 < 0.04  # per-round regret falls (official at 1e5: 0.023)
    # The myopic policy (argmax <theta, u>) pays a constant 0.2569 per round: linear regret.
    run = BanditRun(env, env.default_params(3), seed=0)
    myopic = (run.params.theta @ env.arms.T).argmax(-1)
    for _ in range(100):
        run.advance(myopic, 1000)
    c = run.regret_curve(torch.tensor([10**4, 10**5])).mean(-1)
    assert c[1] / c[0] == pytest.approx(10.0) and c[0].item() == pytest.approx(2569.4, abs=0.1)


@pytest.mark.slow
def test_misspecified_rho_bar_still_learns() -> None:
    """Official: R(1e4) = 1,076 with rho_bar = 0.4 (2x the truth), 1,134 with rho_bar ~ 0."""
    env = db.dynlin_synthetic()
    for rho_bar, official in ((0.4, 1076.0), (1e-7, 1134.0)):
        agent = DynLinUCB(DynLinUCBConfig(rho_bar=rho_bar), env, env.default_params(5), seed=0)
        agent.learn(5 * 10**4)
        assert agent.final_metrics()["dynlin_ucb/cumulative_regret"] == pytest.approx(official, rel=0.06)


def test_rho_bar_zero_without_dynamics_is_linucb() -> None:
    """rho_bar = 0 and B = 0: DynLin-UCB's arms equal a plain LinUCB (matrix inverse every round)
    given the same radius and the same noise (docs/dynlin_ucb.md)."""
    system = {
        "A": 0.5 * torch.eye(3),
        "B": torch.zeros(3, 3),
        "omega": torch.tensor([1.0, -0.5, 0.2]),
        "theta": torch.tensor([0.3, 0.25, -0.1]),
    }
    # Generic arms: the budget vertices make exact ties (equal widths and means by symmetry), which
    # SM and a fresh inverse break differently in the last bit.
    arms = torch.rand(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    env = db.DynamicalLinearBandit(system, sigma=0.3, arms=arms)
    p = env.default_params(4)
    T = 400
    agent = DynLinUCB(DynLinUCBConfig(rho_bar=0.0, horizon=T), env, p, seed=5)
    agent.learn(4 * T)
    played = agent.run.played()  # [T, 4]

    # Reference LinUCB with the same noise (BanditRun draws one block with generator seed + 1).
    gen = env.make_generator(6)
    eps, eta = env.draw_noise(p, agent.run.block, gen)
    first = torch.randint(0, 6, (4,), generator=torch.Generator().manual_seed(5))
    c = agent.constants
    lam = math.log(T)
    c1 = c.theta  # rho_bar = 0: c1 = Theta + Omega B Phi / (1 - 0) with B_bar = ||B|| = 0
    c2 = c.u * c.omega * c.phi * (c.u * c.b + c.u)
    sbar2 = c.sigma**2 * (1 + c.omega**2 * c.phi**2)
    arms = env.arms.numpy()
    x = p.x0.clone()
    margins = []
    V = [lam * np.eye(3) for _ in range(4)]
    bvec = [np.zeros(3) for _ in range(4)]
    for t in range(T):
        if t == 0:
            arm = first
        else:
            beta = (
                c1 * math.sqrt(lam)
                + c2 / math.sqrt(lam) * math.log(math.e * (t + 1))
                + torch.sqrt(2 * sbar2 * (math.log(T) + 1.5 * torch.log(1 + t * c.u**2 / (3 * lam))))
            )
            choice = []
            for k in range(4):
                Vi = np.linalg.inv(V[k])
                hk = Vi @ bvec[k]
                s = arms @ hk + beta[k].item() * np.sqrt(np.einsum("ki,ij,kj->k", arms, Vi, arms))
                choice.append(int(np.argmax(s)))
                margins.append(np.sort(s)[-1] - np.sort(s)[-2])
            arm = torch.tensor(choice)
        assert arm.tolist() == played[t].tolist(), f"round {t}"
        u = env.arms[arm]
        y, x = env.transition(x, u, p, eps[:, t], eta[:, t])
        for k in range(4):
            V[k] += np.outer(u[k], u[k])
            bvec[k] += u[k].numpy() * y[k].item()
    assert len(set(played[:, 0].tolist())) > 1  # it explores more than one arm
    assert min(margins) > 1e-9  # no near-ties: the comparison is meaningful


def test_radius_formula_matches_the_official_expression() -> None:
    one = torch.ones(1, dtype=torch.float64)
    t = torch.tensor([0, 7, 1000])
    got = oful_radius(t, 2 * one, 0.3 * one, 0.7 * one, 0.01 * one, 5 * one, 1.1 * one, 3)[:, 0]
    want = [
        0.3 * math.sqrt(2)
        + 0.7 / math.sqrt(2) * math.log(math.e * (k + 1))
        + math.sqrt(2 * 0.01 * (5 + 1.5 * math.log(1 + k * 1.21 / 6)))
        for k in (0, 7, 1000)
    ]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_resume_continues_bit_identically() -> None:
    env = db.dynlin_adv()
    cfg = DynLinUCBConfig(horizon=6000, log_every=1000)
    straight = DynLinUCB(cfg, env, env.default_params(2), seed=4).learn(2 * 6000)
    half = DynLinUCB(cfg, env, env.default_params(2), seed=4).learn(2 * 3001)
    saved = half.state_dict()
    resumed = DynLinUCB(cfg, env, env.default_params(2), seed=4)
    resumed.load_state_dict(saved)
    resumed.learn(2 * 6000)  # the whole budget, as the runner passes it on resume
    assert torch.equal(straight.run.played(), resumed.run.played())
    assert straight.final_metrics() == resumed.final_metrics()


# -- baselines --------------------------------------------------------------------------------------


def _reference_linucb(variant: str, env, p, T: int, seed: int, horizon: int) -> list[list[int]]:
    """The official LinearAgent(linucb) / DLinUCBAgent loop in numpy (inverse every round), fed the
    noise BanditRun draws (one block from the generator seeded ``seed + 1``)."""
    from rlsuite.agents.dynlin.confidence import resolve_constants

    gen = env.make_generator(seed + 1)
    eps, eta = env.draw_noise(p, 1 << 14, gen)
    b = p.x0.shape[0]
    first = torch.randint(0, 6, (b,), generator=torch.Generator().manual_seed(seed))
    c = resolve_constants(env, p)
    arms = env.arms.numpy()
    d = 3
    if variant == "linucb_log":
        lam = math.log(horizon)
        c1 = c.theta + c.omega * c.b * c.phi / (1 - c.rho)
        sbar2 = c.sigma**2 * (1 + c.omega**2 * c.phi**2 / (1 - c.rho**2))
        gamma = 1.0
    else:  # dlinucb_one
        lam, gamma = 1.0, 0.999999999
    V = [lam * np.eye(d) for _ in range(b)]
    Vt = [lam * np.eye(d) for _ in range(b)]
    bv = [np.zeros(d) for _ in range(b)]
    x = p.x0.clone()
    out = []
    for t in range(T):
        if t == 0:
            arm = first.tolist()
        else:
            arm = []
            for k in range(b):
                Vi = np.linalg.inv(V[k])
                if variant == "linucb_log":
                    beta = c1[k].item() * math.sqrt(lam) + math.sqrt(
                        2
                        * sbar2[k].item()
                        * (math.log(horizon) + d / 2 * math.log(1 + t * c.u[k].item() ** 2 / (d * lam)))
                    )
                    bonus = np.einsum("ki,ij,kj->k", arms, Vi, arms)
                else:
                    lam_t = gamma ** (-t) * lam
                    beta = c.theta[k].item() * math.sqrt(lam_t) + c.sigma[k].item() * math.sqrt(
                        2 * math.log(horizon)
                        + d * math.log(1 + 1.5**2 * (1 - gamma ** (2 * t)) / (d * lam_t * (1 - gamma**2)))
                    )
                    bonus = np.einsum("ki,ij,kj->k", arms, Vi @ Vt[k] @ Vi, arms)
                arm.append(int(np.argmax(arms @ (Vi @ bv[k]) + beta * np.sqrt(bonus))))
        out.append(arm)
        u = env.arms[torch.tensor(arm)]
        y, x = env.transition(x, u, p, eps[:, t], eta[:, t])
        for k in range(b):
            uk = u[k].numpy()
            lam_t = gamma ** (-t) * lam
            V[k] = gamma * V[k] + np.outer(uk, uk) + (1 - gamma) * lam_t * np.eye(d)
            Vt[k] = gamma**2 * Vt[k] + np.outer(uk, uk) + (1 - gamma**2) * lam_t * np.eye(d)
            bv[k] = gamma * bv[k] + uk * y[k].item()
    return out


@pytest.mark.parametrize("variant", ["linucb_log", "dlinucb_one"])
def test_linucb_variants_equal_the_official_loop(variant: str) -> None:
    from rlsuite.agents.dynlin.baselines import LinUCB
    from rlsuite.agents.dynlin.config import LinUCBConfig

    arms = torch.rand(6, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.8
    env = db.DynamicalLinearBandit("advertising", sigma=0.05, arms=arms)
    p = env.default_params(3)
    agent = LinUCB(LinUCBConfig(variant=variant, horizon=1000), env, p, seed=2)
    agent.learn(3 * 150)
    ref = _reference_linucb(variant, env, p, 150, seed=2, horizon=1000)
    assert agent.run.played().tolist() == ref


@pytest.mark.slow
def test_linucb_regret_matches_the_official_numbers_at_1e4() -> None:
    """Official (5 trials, T = 1e4, docs/dynlin_ucb.md): Lin-UCB lambda = 1: 852 +- 39; Lin-UCB lambda = ln T:
    2,273 +- 99. The latter is bimodal across noise draws: a trial locks either onto u* (about 540
    here) or onto the second-best arm (about 2,300, every official trial did), so each trial must
    be in one of the two modes and the official mode must occur."""
    from rlsuite.agents.dynlin.baselines import LinUCB
    from rlsuite.agents.dynlin.config import LinUCBConfig

    env = db.dynlin_synthetic()
    variants = ["linucb_log"] * 5 + ["linucb_one"] * 5
    agent = LinUCB(LinUCBConfig(), env, env.default_params(10), seed=0, variants=variants)
    agent.learn(10 * 10**4)
    reg = agent.run.pseudo_regret
    assert reg[5:].mean().item() == pytest.approx(852, rel=0.15)
    log_t = reg[:5]
    assert bool(((log_t < 700) | ((log_t - 2273).abs() < 0.15 * 2273)).all())
    assert bool(((log_t - 2273).abs() < 0.15 * 2273).any())


def test_exp3_probabilities() -> None:
    from rlsuite.agents.dynlin.baselines import Exp3
    from rlsuite.agents.dynlin.config import Exp3Config

    env = db.dynlin_synthetic()
    agent = Exp3(Exp3Config(horizon=10**4), env, env.default_params(3), seed=0).learn(3 * 500)
    torch.testing.assert_close(agent.p.sum(1), torch.ones(3, dtype=torch.float64))
    assert bool((agent.p >= agent.gamma / 6 - 1e-15).all()) and agent.run.t == 500
    assert agent.gamma == pytest.approx(math.sqrt(6 * math.log(6) / ((math.e - 1) * 2 * 10**4 / 3)))
    # official reward scale M = (Theta + Omega B / (1 - rho)) U
    c = db.system_constants(env.default_params(1), env.arms)
    m = (c["theta"] + c["omega"] * c["b"] / (1 - c["rho"])) * c["u"]
    torch.testing.assert_close(agent.M[:1], m)


@pytest.mark.slow
def test_exp3_regret_and_probabilities() -> None:
    """Official Exp3 at T = 1e4 (5 trials): 1,918 +- 73."""
    from rlsuite.agents.dynlin.baselines import Exp3
    from rlsuite.agents.dynlin.config import Exp3Config

    env = db.dynlin_synthetic()
    agent = Exp3(Exp3Config(), env, env.default_params(5), seed=0).learn(5 * 10**4)
    assert agent.run.pseudo_regret.mean().item() == pytest.approx(1918, rel=0.1)
    torch.testing.assert_close(agent.p.sum(1), torch.ones(5, dtype=torch.float64))
    assert bool((agent.p >= agent.gamma / 6 - 1e-15).all())
    assert agent.gamma == pytest.approx(math.sqrt(6 * math.log(6) / ((math.e - 1) * 2 * 10**4 / 3)))


def test_batch_exp3_credits_as_the_official_code() -> None:
    """The credit fires at each batch's second round with the mean of the previous batch's last
    bs - 2 rewards and the new batch's first two (official t_estimate = 1, 1 + bs, ...)."""
    from rlsuite.agents.dynlin.baselines import Exp3
    from rlsuite.agents.dynlin.config import Exp3Config

    env = db.dynlin_synthetic(sigma=0.0)
    p = env.default_params(2)
    agent = Exp3(Exp3Config(batched=True, horizon=10**4, log_every=5), env, p, seed=3)
    bs = agent.batch
    assert bs == math.ceil(math.log(len(epoch_lengths(0.2, 10**4, official=False))) / math.log(5))
    # official batch lengths at T = 1e6: 8 rounds (rho = 0.2), 27 rounds (real data, rho = 0.6669)
    assert Exp3(Exp3Config(batched=True, horizon=10**6), env, p).batch == 8
    adv = db.dynlin_adv()
    assert Exp3(Exp3Config(batched=True, horizon=10**6), adv, adv.default_params(1)).batch == 27
    probs = []
    G_ref = torch.zeros(2, 6, dtype=torch.float64)
    p_ref = torch.full((2, 6), 1 / 6, dtype=torch.float64)
    for k in range(4):
        probs.append(agent.p.clone())
        agent.learn(2 * bs * (k + 1))
    played = agent.run.played()  # [4 bs, 2]
    x = p.x0.clone()
    ys = []
    for t in range(4 * bs):
        y, x = env.transition(
            x, env.arms[played[t]], p, torch.zeros(2, 3, dtype=torch.float64), torch.zeros(2)
        )
        ys.append(y)
    ys = torch.stack(ys)  # [4 bs, 2]
    M = agent.M
    for k in range(4):
        lo = max(0, (k - 1) * bs + 2)
        r = ys[lo : k * bs + 2].sum(0) / bs
        r = (r + 2 * M) / (4 * M)
        a = played[k * bs]
        assert bool((played[k * bs : (k + 1) * bs] == a).all())
        G_ref[torch.arange(2), a] += r / p_ref[torch.arange(2), a]
        torch.testing.assert_close(p_ref, probs[k])
        p_ref = (1 - agent.gamma) * torch.softmax(agent.eta * G_ref, 1) + agent.gamma / 6
    torch.testing.assert_close(agent.G, G_ref)


def test_ar2_round_robin_start_and_fixed_policies() -> None:
    from rlsuite.agents.dynlin.baselines import AR2, FixedPolicy
    from rlsuite.agents.dynlin.config import AR2Config, FixedPolicyConfig

    env = db.dynlin_adv()
    agent = AR2(AR2Config(log_every=6), env, env.default_params(2), seed=0).learn(2 * 6)
    assert agent.run.played()[:, 0].tolist() == [5, 4, 3, 2, 1, 0]  # official: arm K + (s-1) E - t0
    assert agent.est.isfinite().all()
    agent.learn(2 * 406)
    assert agent.triggered.any()  # the trigger rule fires (c1 sigma is large in the official setting)

    with_expert = db.dynlin_adv(extra_arms=["expert"])
    for policy, per_round in (("clairvoyant", 0.0), ("expert", 0.2157), ("myopic", 0.2151)):
        fixed = FixedPolicy(
            FixedPolicyConfig(name=policy, policy=policy), with_expert, with_expert.default_params(2)
        ).learn(2 * 5000)
        assert fixed.run.pseudo_regret.mean().item() / 5000 == pytest.approx(per_round, abs=2e-4)


# The expert baseline's books before its allocation became an arm of the env (commit 7b26347: the
# agent appended it to a private copy of the env's arms), real-data system, seed 0. Per-round
# rewards of one trial over its first 20 rounds (one round per iteration), then two trials of
# 2,500 rounds in the default holds: reward sums, realized and pseudo-regret per trial.
_EXPERT_FIRST_REWARDS = [
    0.21303117192580814, 0.13555792846382955, 0.08043947345684227, 0.053400177692057904,
    -0.006645065238646941, 0.027232362390308296, 0.03997514291508075, 0.06587372902206057,
    0.11064826706896647, 0.10196465287962442, 0.08185761297066574, 0.0897243984964653,
    0.0750346757883833, 0.11361666193760223, 0.10660341873760348, 0.0839388362704907,
    0.04630328683459384, 0.09552472485823937, 0.09768135194581484, 0.0843017462875264,
]
_EXPERT_BOOKS_2500 = {
    "reward_sum": [221.53894912950184, 222.44735371238428],
    "realized": [539.9264497857581, 539.0180452028757],
    "pseudo": [539.2727766770464, 539.2727766770464],
}


def test_expert_arm_is_in_the_env_action_space_and_its_rewards_are_unchanged() -> None:
    """The env declares the expert allocation as arm 6 (extra_arms=["expert"]): the expert's
    action lies in the env's action space, the 6 vertices and the optimum are untouched, and the
    expert earns, round by round, what it earned when it played a private 7th arm."""
    from rlsuite.agents.dynlin.baselines import FixedPolicy
    from rlsuite.agents.dynlin.config import FixedPolicyConfig

    env, plain = db.dynlin_adv(extra_arms=["expert"]), db.dynlin_adv()
    assert env.action_space.n == 7 and plain.action_space.n == 6
    assert torch.equal(env.arms[:6], plain.arms) and torch.equal(env.arms[6], db.expert_allocation())
    p = env.default_params(2)
    for a, b in zip(env.optimum(p), plain.optimum(p), strict=True):  # inside the polytope: no new optimum
        assert torch.equal(a, b)

    cfg = FixedPolicyConfig(name="expert", policy="expert", log_every=1)
    rewards: list[float] = []

    class Rewards:
        def on_iteration(self, agent, step, metrics) -> None:
            rewards.append(metrics["rollout/reward_mean"])

    FixedPolicy(cfg, env, env.default_params(1), seed=0).learn(20, Rewards())
    torch.testing.assert_close(torch.tensor(rewards, dtype=torch.float64),
                               torch.tensor(_EXPERT_FIRST_REWARDS, dtype=torch.float64),
                               rtol=1e-12, atol=1e-15)

    agent = FixedPolicy(FixedPolicyConfig(name="expert", policy="expert"), env, p, seed=0).learn(2 * 2500)
    books = {"reward_sum": agent.run.reward_sum, "realized": agent.run.realized_regret(),
             "pseudo": agent.run.pseudo_regret}
    for key, old in _EXPERT_BOOKS_2500.items():
        torch.testing.assert_close(books[key], torch.tensor(old, dtype=torch.float64), rtol=1e-12, atol=0)
    action = agent.act(torch.zeros(2, 1))
    assert action.tolist() == [6, 6] and env.action_space.batched(2).contains(action)
    assert torch.equal(env.action_vectors(action), db.expert_allocation().expand(2, 3))
    obs, state = env.reset(p, env.make_generator(0))
    step = env.step(state, action, p, env.make_generator(0))  # the engine plays it as any arm
    assert step.reward.shape == (2,) and bool(step.reward.isfinite().all())


def test_expert_reproduces_the_published_real_data_numbers() -> None:
    """The expert's real-data numbers published by the earlier T = 1e6 run (10 trials, seed 0,
    commit 98b3293's scripts/reproduce_dynlin.py; ``results/dynlin_ucb.md``, "Earlier runs"),
    from the expert playing the env's declared arm."""
    from rlsuite.agents.dynlin.baselines import FixedPolicy
    from rlsuite.agents.dynlin.config import FixedPolicyConfig

    published = {"final_mean": 215709.11067081708, "realized_mean": 215714.91546501248,
                 "realized_se": 7.480221869912998}
    T, trials = 10**6, 10
    env = db.dynlin_adv(sigma=0.01, extra_arms=["expert"])
    agent = FixedPolicy(FixedPolicyConfig(name="expert", policy="expert", log_every=T), env,
                        env.default_params(trials), seed=0).learn(T * trials)
    final, realized = agent.run.regret_curve(torch.tensor([T]))[0], agent.run.realized_regret()
    assert float(final.mean()) == pytest.approx(published["final_mean"], rel=1e-12)
    assert float(realized.mean()) == pytest.approx(published["realized_mean"], rel=1e-12)
    se = realized.std(correction=0) / math.sqrt(trials)  # the script took numpy's std (ddof 0)
    assert float(se) == pytest.approx(published["realized_se"], rel=1e-9)


def test_expert_needs_its_arm_declared_by_the_env(tmp_path) -> None:
    """Without the arm the expert refuses to build, naming the env field that adds it; bad extra
    arms are refused by the env and by the CLI's config check."""
    from rlsuite import runner
    from rlsuite.agents.dynlin.baselines import FixedPolicy
    from rlsuite.agents.dynlin.config import FixedPolicyConfig
    from rlsuite.validation import ConfigError

    env = db.dynlin_adv()
    with pytest.raises(ConfigError, match=r"env\.extra_arms=\[\]: .*env\.extra_arms=\[expert\]"):
        FixedPolicy(FixedPolicyConfig(name="expert", policy="expert"), env, env.default_params(1))
    with pytest.raises(ValueError, match=r"extra_arms\[0\]='nope': unknown arm name"):
        db.dynlin_adv(extra_arms=["nope"])
    with pytest.raises(ValueError, match=r"extra_arms\[1\]=\[1.0, 0.5\]: an arm must have d=3"):
        db.dynlin_adv(extra_arms=["expert", [1.0, 0.5]])
    with pytest.raises(ValueError, match="not a box"):
        db.DynamicalLinearBandit("synthetic", box=(0.0, 1.0), extra_arms=["expert"])
    assert db.dynlin_synthetic(extra_arms=[[0.5, 0.5, 0.5]]).arms[6].tolist() == [0.5, 0.5, 0.5]

    bad = runner.compose(["agent=expert", "env=dynlin_adv", "env.extra_arms=[nope]", f"run_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"env\.extra_arms=\['nope'\]: must be a list, each one of 'exp"):
        runner.check_config(bad)
    refused = runner.compose(["agent=expert", "env=dynlin_adv", "num_envs=1", "total_steps=10",
                              "progress=false", "tensorboard=false", f"run_dir={tmp_path / 'refused'}"])
    with pytest.raises(ConfigError) as err:  # refused before the run claims its directory
        runner.run(refused)
    assert err.value.field == "env.extra_arms" and not (tmp_path / "refused").exists()
    cfg = runner.compose(["agent=expert", "env=dynlin_adv", "env.extra_arms=[expert]", f"run_dir={tmp_path}"])
    runner.check_config(cfg)
    built = runner.build_env(cfg.env, torch.device("cpu"))
    assert built.action_space.n == 7 and torch.equal(built.arms[6], db.expert_allocation())


def test_cli_runs_dynlin_ucb(tmp_path) -> None:
    from rlsuite.logging import read_metrics
    from rlsuite.runner import compose, run

    cfg = compose(
        [
            "agent=dynlin_ucb",
            "env=dynlin_synthetic",
            "num_envs=2",
            "total_steps=4000",
            "progress=false",
            "device=cpu",
            f"run_dir={tmp_path}",
            "agent.log_every=500",
            "tensorboard=true",
        ]
    )
    score = run(cfg)
    rows = read_metrics(tmp_path)
    assert "dynlin_ucb/confidence_width" in rows[0] and "dynlin_ucb/arm" in rows[0]
    assert rows[-1]["dynlin_ucb/cumulative_regret"] == score > 0
    assert [r["step"] for r in rows[:-1]] == [1000.0 * k for k in range(1, 5)]


def test_act_does_not_move_the_learners_random_stream() -> None:
    env = db.dynlin_synthetic()
    plain = DynLinUCB(DynLinUCBConfig(horizon=500), env, env.default_params(3), seed=7).learn(3 * 500)
    probed = DynLinUCB(DynLinUCBConfig(horizon=500), env, env.default_params(3), seed=7)
    first = probed.act(torch.zeros(3, 1))
    assert torch.equal(first, probed.act(torch.zeros(3, 1)))
    probed.learn(3 * 500)
    assert torch.equal(plain.run.played(), probed.run.played())
    assert torch.equal(probed.run.played()[0], first)  # act() showed the arm learn() then played


# -- the numpy per-round engine ---------------------------------------------------------------------


def _mixed_params(n_adv: int, n_syn: int, sigma_adv: float = 0.05, sigma_syn: float = 0.05):
    """Real-data and synthetic copies stacked in one batch (two distinct systems, as the script runs)."""
    from rlsuite.agents.dynlin.run import concat_params

    adv, syn = db.dynlin_adv(sigma=sigma_adv), db.dynlin_synthetic(sigma=sigma_syn)
    return adv, concat_params([adv.default_params(n_adv), syn.default_params(n_syn)])


def test_round_kernel_books_what_advance_books() -> None:
    """RoundKernel (numpy, one round or one closed-form hold at a time) against BanditRun.advance on
    the same noise: rewards, reward sums, state, played arms and regret, with two systems stacked."""
    from rlsuite.agents.dynlin.run import RoundKernel

    env, p = _mixed_params(2, 2)
    plan = [([1, 4, 0, 5], 1), ([0, 0, 3, 3], 2), ([5, 2, 1, 0], 1), ([3, 1, 4, 2], 9), ([2, 2, 2, 2], 1)]
    ref = BanditRun(env, p, seed=3)
    run = BanditRun(env, p, seed=3)
    kern = RoundKernel(run)
    kern.begin(sum(L for _, L in plan))
    ref_sum_before = ref.reward_sum.numpy().copy()
    for arm, L in plan:
        y_ref, _ = ref.advance(torch.tensor(arm), L)
        if L == 1:
            y, idx = kern.step(np.array(arm))
            assert idx.tolist() == [k * 6 + a for k, a in enumerate(arm)]
        else:
            y, total = kern.hold(np.array(arm), L)
            np.testing.assert_allclose(total, ref.reward_sum.numpy() - ref_sum_before, rtol=0, atol=1e-12)
        np.testing.assert_allclose(y, y_ref.numpy(), rtol=0, atol=1e-12)
        ref_sum_before = ref.reward_sum.numpy().copy()
    kern.end()
    assert run.t == ref.t == 14
    assert torch.equal(run.played(), ref.played())
    torch.testing.assert_close(run.reward_sum, ref.reward_sum, rtol=0, atol=1e-12)
    torch.testing.assert_close(run.xu, ref.xu, rtol=0, atol=1e-12)
    torch.testing.assert_close(run.pseudo_regret, ref.pseudo_regret, rtol=0, atol=1e-12)
    # the run goes on with advance() after a kernel block
    y1, _ = run.advance(torch.tensor([0, 1, 2, 3]), 4)
    y2, _ = ref.advance(torch.tensor([0, 1, 2, 3]), 4)
    torch.testing.assert_close(y1, y2, rtol=0, atol=1e-12)


def _reference_ar2(env, p, T: int, seed: int, sigma: torch.Tensor) -> list[list[int]]:
    """The official AR2Agent.pull_arm / update in plain Python, one copy at a time, fed the noise
    BanditRun draws and the learner's uniforms (the explore draw maps u to the floor(u * count)-th
    earliest triggered arm, in index order)."""
    gen = env.make_generator(seed + 1)
    eps, eta = env.draw_noise(p, 1 << 14, gen)
    uniforms = torch.rand(
        T, p.x0.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )
    b, K = p.x0.shape[0], 6
    alphas = db.system_constants(p, env.arms)["rho"]
    agents = []
    for k in range(b):
        alpha, sg = alphas[k].item(), sigma[k].item()
        size = math.ceil(K * alpha**-3 * sg**-3)
        c0 = math.sqrt(4 * math.log(1 / (alpha * sg)) + 4 * math.log(size) + 2 * math.log(4 * K))
        agents.append(
            {
                "alpha": alpha,
                "size": size,
                "c1s": 24 * c0 * sg,
                "t0": 1,
                "s": 1,
                "trig": [],
                "tau_trig": [math.inf] * K,
                "tau": [math.inf] * K,
                "est": [math.inf] * K,
                "last": None,
                "ll": None,
            }
        )
    x, out = p.x0.clone(), []
    for t in range(T):
        arms = []
        for k, ag in enumerate(agents):
            t0, a2, init_end = ag["t0"], ag["alpha"] ** 2, K + (ag["s"] - 1) * ag["size"]
            if t0 <= init_end:
                arm = init_end - t0
            else:
                est = ag["est"]
                i_sup = ag["last"] if est[ag["last"]] >= est[ag["ll"]] else ag["ll"]
                for i in range(K):
                    if i == i_sup or i in ag["trig"] or ag["tau"][i] == math.inf:
                        continue
                    bound = ag["c1s"] * math.sqrt(
                        (a2 - ag["alpha"] ** (2 * (t0 - ag["tau"][i] + 1))) / (1 - a2)
                    )
                    if est[i_sup] - est[i] <= bound:
                        ag["trig"].append(i)
                        ag["tau_trig"][i] = t0
                if ag["trig"] and t0 % 2 == 1:
                    first = min(ag["tau_trig"])
                    earliest = [i for i in range(K) if ag["tau_trig"][i] == first]
                    arm = earliest[min(int(uniforms[t, k].item() * len(earliest)), K - 1)]
                else:
                    arm = i_sup
            ag["ll"], ag["last"] = ag["last"], arm
            arms.append(arm)
        out.append(arms)
        y, x = env.transition(x, env.arms[torch.tensor(arms)], p, eps[:, t], eta[:, t])
        for k, ag in enumerate(agents):
            t0, arm, init_end = ag["t0"], arms[k], K + (ag["s"] - 1) * ag["size"]
            ag["tau"][arm] = t0
            if t0 < init_end:
                ag["est"][arm] = ag["alpha"] ** (K - t0 + ag["tau"][arm] - 1) * y[k].item()
            else:
                ag["est"] = [e * ag["alpha"] for e in ag["est"]]
                ag["est"][arm] = ag["alpha"] * y[k].item()
                if t0 % ag["size"] == 0:
                    ag["s"] += 1
            ag["t0"] += 1
    return out


@pytest.mark.parametrize("case", ["epochs", "untriggered"])
def test_ar2_equals_the_official_rule(case: str) -> None:
    """Arm for arm against a plain transcription of the official AR2Agent. "epochs": learner
    sigma = 1 makes the real-data epochs 21 rounds long (round-robin restarts at every epoch end);
    "untriggered": synthetic sigma = 0.001 copies (never triggered) beside sigma = 0.01 copies
    (triggered), so the lean rounds still test triggers."""
    from rlsuite.agents.dynlin.baselines import AR2
    from rlsuite.agents.dynlin.config import AR2Config

    T = 130
    if case == "epochs":
        env, p = _mixed_params(2, 1)
        cfg = AR2Config(sigma=1.0, log_every=T)
        sigma = torch.ones(3, dtype=torch.float64)
    else:
        from rlsuite.agents.dynlin.run import concat_params

        env = db.dynlin_synthetic(sigma=0.001)
        p = concat_params([env.default_params(2), db.dynlin_synthetic(sigma=0.01).default_params(2)])
        cfg = AR2Config(log_every=T)
        sigma = p.state_sigma
    agent = AR2(cfg, env, p, seed=4).learn(p.x0.shape[0] * T)
    ref = _reference_ar2(env, p, T, seed=4, sigma=sigma)
    assert agent.run.played().tolist() == ref
    if case == "epochs":
        assert agent.s[:2].tolist() == [7.0, 7.0] and agent.epoch_size[0].item() == 21
        assert ref[21][:2] == [5, 5] and ref[26][:2] == [0, 0]  # round-robin after the first epoch
    else:
        assert not agent.triggered[:2].any() and agent.triggered[2:].any(1).all()


def test_dynlin_per_copy_lambdas_share_a_loop() -> None:
    """lams=[ln T, 1]: each copy plays exactly what it plays in a run where every copy has its lambda."""
    env = db.dynlin_synthetic()
    p = env.default_params(2)
    T = 3000
    mixed = DynLinUCB(DynLinUCBConfig(horizon=T), env, p, seed=2, lams=[None, 1.0]).learn(2 * T)
    log_t = DynLinUCB(DynLinUCBConfig(horizon=T), env, p, seed=2).learn(2 * T)
    one = DynLinUCB(DynLinUCBConfig(horizon=T, lam=1.0), env, p, seed=2).learn(2 * T)
    played = mixed.run.played()
    assert torch.equal(played[:, 0], log_t.run.played()[:, 0])
    assert torch.equal(played[:, 1], one.run.played()[:, 1])
    assert mixed.lam.tolist() == [math.log(T), 1.0]
    with pytest.raises(ValueError, match="one lambda per copy"):
        DynLinUCB(DynLinUCBConfig(), env, p, lams=[1.0])


@pytest.mark.parametrize("kind", ["linucb_log", "dlinucb_one", "exp3", "batch_exp3", "ar2"])
def test_baselines_resume_bit_identically(kind: str, tmp_path) -> None:
    """The numpy loops hand their state back as tensors each iteration: a run saved (torch.save,
    weights_only load) and resumed plays exactly the arms of a straight run."""
    from rlsuite.agents.dynlin import baselines as bl

    env, p = _mixed_params(2, 1)
    bs = bl.Exp3(bl.Exp3Config(batched=True, horizon=600), env, p).batch  # Batch-Exp3 stops at batch ends

    def make():
        if kind in ("linucb_log", "dlinucb_one"):
            return bl.LinUCB(bl.LinUCBConfig(variant=kind, horizon=600, log_every=200), env, p, seed=1)
        if kind == "ar2":
            return bl.AR2(bl.AR2Config(log_every=200), env, p, seed=1)
        batched = kind == "batch_exp3"
        cfg = bl.Exp3Config(batched=batched, horizon=600, log_every=4 * bs if batched else 200)
        return bl.Exp3(cfg, env, p, seed=1)

    rounds = 16 * bs if kind == "batch_exp3" else 600
    straight = make().learn(3 * rounds)
    half = make().learn(3 * rounds // 2)
    torch.save(half.state_dict(), tmp_path / "a.pt")
    resumed = make()
    resumed.load_state_dict(torch.load(tmp_path / "a.pt", weights_only=True))
    resumed.learn(3 * rounds)
    assert resumed.run.t == straight.run.t == rounds
    assert torch.equal(straight.run.played(), resumed.run.played())
    # the books are summed over differently cut blocks: equal up to rounding
    assert resumed.final_metrics() == pytest.approx(straight.final_metrics(), rel=1e-12)
