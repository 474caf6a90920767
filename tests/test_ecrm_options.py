"""ECRM agent options: the closed-form tabular NPG (its Monte-Carlo Q tables against the exact
natural gradient), exploring starts, the policy conditioned on the previous stage (the class of
the exact optimum), the log-barrier regularizer, Gaussian actors for Box actions; slow tier:
learning from a uniform policy on stochastic CliffWalking."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch
from ecrm_cases import safe_risky_mdp

from rlsuite.agents.ecrm import exact_ecrm, exact_gradients, optimal_conditioned_ecrm, softmax_gradient
from rlsuite.agents.ecrm import objective as obj
from rlsuite.agents.ecrm.agent import ECRM, reachable_states
from rlsuite.agents.ecrm.config import ECRMConfig
from rlsuite.agents.ecrm.episodes import StagePolicy, collect_first_episodes
from rlsuite.envs.tabular import TabularEnv, TabularMDP, random_mdp

F64 = torch.float64


def _later_visits(mdp: TabularMDP, pi: torch.Tensor, pi1: torch.Tensor) -> torch.Tensor:
    """``D(s) = sum_{t >= 2} gamma^(t-1) P(s_t = s)`` (the later stages' discounted visits)."""
    d = mdp.initial.unsqueeze(-1) * pi1
    out = torch.zeros(mdp.num_states, dtype=F64)
    for t in range(2, mdp.horizon + 1):
        nxt = torch.einsum("sa,sap->p", d, mdp.P_continue)
        out += mdp.gamma ** (t - 1) * nxt
        d = nxt.unsqueeze(-1) * pi
    return out


# -- closed-form NPG ------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_closed_form_npg_tables_are_the_exact_natural_gradient(seed: int) -> None:
    # 3 states, 2 actions, horizon 3, gamma 0.9, terminal outcomes: after one batch of 200k
    # episodes (npg_q_lr = 1: the batch means) the tables give Q(s, a) = dJ/dpi(a|s) / D(s), the
    # exact natural gradient of the softmax tables, for both stages (to Monte-Carlo error: the
    # standard error of a centred entry is below 0.01 here); the logit step is npg_step_size
    # times the centred Q when the trust region does not bind.
    mdp = random_mdp(3, 2, 2, seed=seed, gamma=0.9, horizon=3, terminal_prob=0.3)
    env = TabularEnv(mdp)
    cfg = ECRMConfig(variant="npg", risk_weight=0.6, alpha=0.3, gamma=0.9, npg_q_lr=1.0,
                     npg_step_size=0.1, npg={"max_kl": 1e9}, exact_every=0, chunk_steps=3)
    agent = ECRM(cfg, env, env.default_params(200_000), seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        agent.model.actor.copy_(torch.randn(3, 2, generator=g))
        agent.model.actor_first.copy_(torch.randn(3, 2, generator=g))
        low, high = agent.eta_range
        agent.model.eta.copy_(low + (high - low) * torch.rand(3, 2, generator=g))
    pi, pi1 = (t.detach().double().softmax(-1) for t in (agent.model.actor, agent.model.actor_first))
    eta = agent.model.eta.detach().double()
    before = (agent.model.actor.detach().clone(), agent.model.actor_first.detach().clone())
    agent.learn(1)  # one iteration
    grads = exact_gradients(mdp, pi, eta, 0.3, 0.6, first_policy=pi1)
    d_later = _later_visits(mdp, pi, pi1)
    q_later = grads.policy / d_later.unsqueeze(-1)
    q_first = grads.first_policy / mdp.initial.unsqueeze(-1)
    tables = agent.model.npg_q.double()
    est_later, est_first = tables[1] + tables[0], tables[2] + tables[3]
    for est, exact, ok in ((est_later, q_later, d_later > 0.05), (est_first, q_first, mdp.initial > 0.05)):
        centred = (est - est.mean(-1, keepdim=True))[ok]
        want = (exact - exact.mean(-1, keepdim=True))[ok]
        assert ok.any()
        assert torch.allclose(centred, want, atol=0.04), (centred, want)
    # the step: 0.1 * centred table (no entropy, no trust-region cut)
    pairs = ((agent.model.actor, before[0], est_later), (agent.model.actor_first, before[1], est_first))
    for table, old, est in pairs:
        step = (table.detach() - old).double()
        assert torch.allclose(step, 0.1 * (est - est.mean(-1, keepdim=True)), atol=1e-5)


def test_softmax_natural_gradient_identity() -> None:
    # The identity the closed form rests on: the pseudo-inverse of the tabular Fisher
    # d(s) (diag pi - pi pi^T) applied to the softmax gradient d(s) pi (Q - V) is Q - V (centred).
    g = torch.Generator().manual_seed(0)
    pi = torch.randn(4, 3, generator=g, dtype=F64).softmax(-1)
    q = torch.randn(4, 3, generator=g, dtype=F64)
    d = torch.tensor([0.5, 0.1, 0.3, 0.1], dtype=F64)
    grad = d.unsqueeze(-1) * softmax_gradient(pi, q)
    fisher = torch.block_diag(*[d[s] * (torch.diag(pi[s]) - torch.outer(pi[s], pi[s])) for s in range(4)])
    nat = (torch.linalg.pinv(fisher) @ grad.reshape(-1)).view(4, 3)
    assert torch.allclose(nat - nat.mean(-1, keepdim=True), q - q.mean(-1, keepdim=True), atol=1e-8)


def test_reachable_states_of_cliffwalking_and_option_errors() -> None:
    from rlsuite.envs.tabular.cliff import stochastic_cliff_walking

    reach = reachable_states(stochastic_cliff_walking())
    # 48 cells less the 10 cliff cells (never occupied) and the goal (entering it ends the episode)
    assert int(reach.sum()) == 37 and not reach[3 * 12 + 5] and not reach[3 * 12 + 11] and reach[3 * 12]
    for kw, name in (({"npg_form": "closed_form", "parameterization": "neural"}, "npg_form"),
                     ({"npg_step_size": 2.0, "ent_coef": 1.0}, "npg_step_size"),
                     ({"npg_q_lr": 0.0}, "npg_q_lr"), ({"explore_starts": -1}, "explore_starts"),
                     ({"ac_natural": True}, "ac_natural"), ({"eta_decay_by": "time"}, "eta_decay_by"),
                     ({"log_barrier": 0.1, "variant": "npg"}, "log_barrier"),
                     ({"log_barrier": -1.0}, "log_barrier")):
        with pytest.raises(ValueError, match=name):
            ECRMConfig(**kw)
    env = TabularEnv(random_mdp(3, 2, 2, seed=0, horizon=3))
    with pytest.raises(ValueError, match="explore_starts"):
        ECRM(ECRMConfig(variant="reinforce", explore_starts=8), env, env.default_params(4))


def test_exploring_starts_cover_the_reachable_states_and_stay_out_of_the_metrics() -> None:
    import rlsuite.envs as envs

    env = envs.make("cliffwalking_stochastic")
    cfg = ECRMConfig(variant="npg", explore_starts=512, exact_every=0)
    agent = ECRM(cfg, env, env.default_params(8), seed=0)
    seen = []

    class Hook:
        def on_iteration(self, a, step, metrics):
            seen.append(metrics)

    agent.learn(1, Hook())  # type: ignore[arg-type]
    ep = collect_first_episodes(env, agent.explore_params, StagePolicy(agent._act_explore),
                                env.make_generator(0), 25, 100)
    starts = torch.unique(ep.obs[0])
    assert len(starts) == 37  # 512 uniform starts hit every reachable cell
    # the Q tables have estimates well beyond the 8 real episodes' cells
    assert seen[0]["train/npg_q_coverage"] > 0.5


# -- conditioning on the previous stage -----------------------------------------------------------
def _two_predecessors() -> TabularMDP:
    """Start in sA or sB (1/2 each, reward 0). sA -> s2; sB -> s2 or s3 (1/2 each). At s2 action
    0 (safe) pays 0, action 1 (risky) pays +4 or -2 (1/2 each); s3 pays -10. Two stages.
    lam = 0.5, alpha = 0.3: after sA safe is best (rho 0 vs -1.17 p), after sB risky is (the
    -10 fills the tail either way: rho -7.5 + 0.25 p), so the optimal action at s2 depends on
    the previous state: conditioned optimum 0.5 * 0 + 0.5 * (-7.25) = -3.625, while a policy of
    s2 alone has ECRM 0.5 (-7/6 p) + 0.5 (-7.5 + 0.25 p) <= -3.75 (p = P(risky) <= 0.6; -3.875
    at p = 1)."""
    s, a, k = 4, 2, 2
    nxt = torch.zeros(s, a, k, dtype=torch.long)
    rew = torch.zeros(s, a, k, dtype=F64)
    prob = torch.zeros(s, a, k, dtype=F64)
    term = torch.zeros(s, a, k, dtype=torch.bool)
    nxt[0, :, 0], prob[0, :, 0] = 2, 1.0
    nxt[1, :, 0], nxt[1, :, 1], prob[1] = 2, 3, 0.5
    prob[2, 0, 0], term[2] = 1.0, True
    rew[2, 1], prob[2, 1] = torch.tensor([4.0, -2.0], dtype=F64), 0.5
    rew[3, :, 0], prob[3, :, 0], term[3] = -10.0, 1.0, True
    initial = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=F64)
    return TabularMDP(nxt, rew, prob, term, initial, gamma=1.0, horizon=2)


def test_conditioned_policy_ignoring_the_pair_equals_the_stationary_one() -> None:
    for seed in range(3):
        mdp = random_mdp(3, 2, 2, seed=seed, gamma=0.9, horizon=4, terminal_prob=0.2)
        g = torch.Generator().manual_seed(seed)
        pi, pi1 = (torch.randn(3, 2, generator=g, dtype=F64).softmax(-1) for _ in range(2))
        for alpha, lam in ((0.3, 0.6), (0.1, 1.0)):
            want = exact_ecrm(mdp, pi, alpha, lam, first_policy=pi1)
            got = exact_ecrm(mdp, pi.expand(3, 2, 3, 2), alpha, lam, first_policy=pi1)
            assert got.item() == pytest.approx(want.item(), abs=1e-12)
    with pytest.raises(ValueError, match="first_policy"):
        exact_ecrm(mdp, pi.expand(3, 2, 3, 2), 0.3, 0.5)


@pytest.mark.parametrize(("alpha", "lam"), [(0.3, 0.7), (0.5, 1.0)])
def test_conditioned_optimum_matches_brute_force_over_deterministic_rules(alpha: float, lam: float) -> None:
    # 2 states, 2 actions, 2 stages: every deterministic first policy (4) and rule (s, a, s') -> a'
    # (2^8); randomized rules cannot do better (for a fixed eta the objective is linear in them).
    mdp = random_mdp(2, 2, 2, seed=3, gamma=0.9, horizon=2, terminal_prob=0.2)
    best = -float("inf")
    for bits in itertools.product(range(2), repeat=8):
        rule = torch.nn.functional.one_hot(torch.tensor(bits).view(2, 2, 2), 2).to(F64)
        for fb in itertools.product(range(2), repeat=2):
            first = torch.nn.functional.one_hot(torch.tensor(fb), 2).to(F64)
            best = max(best, exact_ecrm(mdp, rule, alpha, lam, first_policy=first).item())
    value, first, rules = optimal_conditioned_ecrm(mdp, alpha, lam)
    assert value.item() == pytest.approx(best, abs=1e-12)
    assert exact_ecrm(mdp, rules[0], alpha, lam, first_policy=first).item() == pytest.approx(best, abs=1e-12)


def test_conditioning_on_the_previous_stage_strictly_helps() -> None:
    mdp, alpha, lam = _two_predecessors(), 0.3, 0.5
    value, first, rules = optimal_conditioned_ecrm(mdp, alpha, lam)
    assert value.item() == pytest.approx(-3.625)
    rule = rules[0]
    assert rule[0, 0, 2].tolist() == [1.0, 0.0] and rule[1, 0, 2].tolist() == [0.0, 1.0]  # safe after sA
    # the best policy of the state alone: a fine grid over P(risky at s2) (the rest is irrelevant)
    grid = torch.linspace(0, 1, 1001, dtype=F64)
    vals = []
    for p in grid:
        pi = torch.full((4, 2), 0.5, dtype=F64)
        pi[2] = torch.stack([1 - p, p])
        vals.append(exact_ecrm(mdp, pi, alpha, lam).item())
    assert max(vals) == pytest.approx(-3.75) and vals[0] == max(vals)
    assert vals[-1] == pytest.approx(-3.875)
    # and the hand formula below p = 0.6
    for p, v in zip(grid[:600:50].tolist(), vals[:600:50], strict=True):
        assert v == pytest.approx(-3.75 - (11 / 24) * p)
    assert value.item() > max(vals) + 0.12


@pytest.mark.slow  # ~10 s: keeps the default tier under its budget
def test_agent_conditioned_on_the_previous_threshold_reaches_the_conditioned_optimum() -> None:
    # Neural REINFORCE on the two-predecessor MDP; the conditioned actor sees eta(s_prev, a_prev)
    # (0 after sA, -10 after sB at the optimum) and is evaluated exactly as a policy of the
    # previous pair. It beats every policy of the state alone; the unconditioned one cannot.
    torch.set_num_threads(1)
    env = TabularEnv(_two_predecessors())
    out = {}
    for cond in (True, False):
        cfg = ECRMConfig(parameterization="neural", risk_weight=0.5, alpha=0.3, condition_on_prev=cond,
                         policy_lr=0.01, eta_lr=1.0, eta_lr_decay=0.0, hidden_sizes=[16],
                         baseline_lr=0.01, chunk_steps=2)
        agent = ECRM(cfg, env, env.default_params(256), seed=0).learn(256 * 2 * 300)
        out[cond] = agent.exact_value()
    assert out[True] > -3.65, out  # optimum -3.625
    assert out[False] <= -3.75 + 1e-9, out  # the best unconditioned value
    assert out[False] > -3.80, out


# -- log-barrier ------------------------------------------------------------------------------------
def test_log_barrier_gradient_is_analytic() -> None:
    g = torch.Generator().manual_seed(0)
    tables = [torch.randn(5, 3, generator=g, dtype=F64, requires_grad=True) for _ in range(2)]
    kappa = 0.7
    grads = torch.autograd.grad(obj.log_barrier(tables, kappa), tables)
    for t, gr in zip(tables, grads, strict=True):
        pi = t.detach().softmax(-1)
        assert torch.allclose(gr, kappa / 15 * (1 - 3 * pi), atol=1e-12)


@pytest.mark.slow  # ~10 s: keeps the default tier under its budget
def test_log_barrier_keeps_probabilities_at_the_predicted_floor() -> None:
    # Exact gradient ascent on J + barrier (safe/risky, lam 0.5, alpha 0.1: Q(risky) - Q(safe) =
    # -1.2 - 1 = -2.2 at s0, d(s0) = 1 for the first-step table). Stationarity of the risky logit,
    # pi (1 - pi)(-2.2) + kappa / (S A) (1 - 2 pi) = 0, fixes pi > 0; without the barrier pi -> 0.
    mdp, alpha, lam, kappa = safe_risky_mdp(), 0.1, 0.5, 0.3
    root = (2.3 - (2.3**2 - 4 * 2.2 * 0.05) ** 0.5) / (2 * 2.2)  # 2.2 pi^2 - 2.3 pi + 0.05 = 0
    for k in (kappa, 0.0):
        th1 = torch.zeros(3, 2, dtype=F64, requires_grad=True)
        th = torch.zeros(3, 2, dtype=F64, requires_grad=True)
        for _ in range(3000):
            pi, pi1 = th.softmax(-1), th1.softmax(-1)
            eta = torch.zeros(3, 2, dtype=F64)
            eta[0, 0], eta[0, 1] = 1.0, -4.0  # VaR_0.1 of R' after safe / risky (for any pi)
            grads = exact_gradients(mdp, pi.detach(), eta, alpha, lam, first_policy=pi1.detach())
            gb = torch.autograd.grad(obj.log_barrier([th, th1], k), [th, th1]) if k else (0.0, 0.0)
            with torch.no_grad():
                th += 1.0 * (softmax_gradient(pi.detach(), grads.policy) + gb[0])
                th1 += 1.0 * (softmax_gradient(pi1.detach(), grads.first_policy) + gb[1])
        p_risky = th1.detach().softmax(-1)[0, 1].item()
        if k:
            assert p_risky == pytest.approx(root, rel=1e-6)
            # the general floor kappa / (S A) / (kappa / S + d |A|max), |A| <= 2.2
            assert p_risky >= kappa / 6 / (kappa / 3 + 2.2)
            # the later table sees no signal (s1, s2 have identical actions): the barrier keeps it uniform
            assert torch.allclose(th.detach().softmax(-1), torch.full((3, 2), 0.5, dtype=F64))
        else:
            assert p_risky < 0.2 * root


@pytest.mark.slow  # ~10 s: keeps the default tier under its budget
def test_agent_log_barrier_keeps_the_risky_action_alive() -> None:
    # The sampled REINFORCE agent with the barrier settles near the stationary probability of the
    # exact test above; without it the dominated action's probability keeps falling.
    torch.set_num_threads(1)
    env = TabularEnv(safe_risky_mdp())
    out = {}
    for k in (0.3, 0.0):
        cfg = ECRMConfig(variant="reinforce", risk_weight=0.5, alpha=0.1, policy_lr=0.05, log_barrier=k,
                         chunk_steps=2)
        agent = ECRM(cfg, env, env.default_params(512), seed=0).learn(512 * 2 * 400)
        with torch.no_grad():
            out[k] = agent.model.actor_first.softmax(-1)[0, 1].item()
    root = (2.3 - (2.3**2 - 4 * 2.2 * 0.05) ** 0.5) / (2 * 2.2)
    assert 0.5 * root < out[0.3] < 2.0 * root, out
    assert out[0.0] < 0.3 * root, out


# -- Gaussian actors --------------------------------------------------------------------------------
def test_gaussian_actor_log_prob_sampling_and_threshold_input() -> None:
    import rlsuite.envs as envs

    env = envs.make("gusty_ledge", continuous=True)
    cfg = ECRMConfig(parameterization="neural", hidden_sizes=[8], init_log_std=-1.0)
    agent = ECRM(cfg, env, env.default_params(4), seed=0)
    model = agent.model
    obs = torch.tensor([[0.0, 0.5], [0.3, 0.2]])
    first = torch.tensor([True, False])
    action = torch.tensor([[0.2], [-0.4]])
    mean = torch.stack([model.actor_first(obs[:1])[0], model.actor(obs[1:])[0]])
    want = torch.distributions.Normal(mean, torch.exp(torch.tensor(-1.0))).log_prob(action).sum(-1)
    assert torch.allclose(model.log_prob(obs, first, torch.zeros(2), action), want)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    zero = torch.zeros(2)
    assert torch.equal(model.sample(obs, first, zero, g1), model.sample(obs, first, zero, g2))
    assert model.threshold_of(obs, action).shape == (2,)
    assert torch.equal(agent.act(obs, deterministic=True), model.mode(obs, torch.zeros(2, dtype=torch.bool),
                                                                      torch.zeros(2)))
    with pytest.raises(ValueError, match="Discrete action space"):
        ECRM(ECRMConfig(parameterization="neural", variant="actor_critic"), env, env.default_params(2))
    with pytest.raises(ValueError, match="Box action space needs"):
        ECRM(ECRMConfig(parameterization="softmax"), env, env.default_params(2))


def test_gaussian_reinforce_gradient_matches_the_analytic_one() -> None:
    # A one-step continuous problem (GustyLedge with 1 step, no noise, no gust, start 0.5): the
    # return is -(1 + 2 (0.5 + 0.1 a)), so dJ/dmean = -0.2 exactly (before clipping); the
    # REINFORCE estimate on 200k episodes with lam = 0 lies within 4 standard errors.
    import rlsuite.envs as envs

    env = envs.make("gusty_ledge", continuous=True, num_steps=1)
    params = env.default_params(200_000)
    params = dataclasses.replace(params, noise=torch.zeros(200_000), gust_prob=torch.zeros(200_000))
    cfg = ECRMConfig(parameterization="neural", risk_weight=0.0, alpha=1.0, baseline=False,
                     hidden_sizes=[8], init_log_std=-2.0)
    agent = ECRM(cfg, env, params, seed=0)
    from rlsuite.agents.ecrm.agent import reinforce_surrogate

    ep = collect_first_episodes(env, params, agent.stage_policy(), env.make_generator(0), 1, 1)
    # per-episode gradient wrt the first actor's output bias (= d/dmean)
    bias = agent.model.actor_first[-1].bias
    groups = 20
    ests = []
    n = 200_000 // groups
    for i in range(groups):
        cols = slice(i * n, (i + 1) * n)
        part = dataclasses.replace(ep, **{f.name: getattr(ep, f.name)[:, cols]
                                          for f in dataclasses.fields(ep) if f.name != "steps"})
        (gr,) = torch.autograd.grad(reinforce_surrogate(agent.model, part, cfg), [bias])
        ests.append(gr[0].item())
    est = torch.tensor(ests, dtype=F64)
    se = est.std() / groups**0.5
    assert abs(est.mean().item() - (-0.2)) < 4 * se.item() + 1e-3, (est.mean(), se)


# -- learning from a uniform policy (slow) -----------------------------------------------------------
FROM_SCRATCH = {"explore_starts": 256, "eta_decay_by": "visits", "ent_coef": 0.05,
                "npg": {"max_kl": 0.05}}


def _cliff_scratch(variant: str, lam: float, alpha: float, seed: int, steps: int) -> dict[str, float]:
    import rlsuite.envs as envs

    env = envs.make("cliffwalking_stochastic")
    extra = {"ac_natural": True} if variant == "actor_critic" else {}
    cfg = ECRMConfig(variant=variant, risk_weight=lam, alpha=alpha, exact_every=0, **FROM_SCRATCH, **extra)
    agent = ECRM(cfg, env, env.default_params(256), seed=seed).learn(steps)
    # CVaR of the return at one fixed level (0.1) for every setting
    ep = collect_first_episodes(env, env.default_params(8192), agent.stage_policy(),
                                env.make_generator(1000 + seed), 25, 1000)
    returns = ep.returns().double()
    from rlsuite.risk import cvar

    return {"fall": float((ep.valid & (ep.reward <= -10)).any(0).float().mean()),
            "cvar": float(cvar(returns, None, 0.1)), "mean": float(returns.mean()),
            "ecrm": agent.exact_value()}


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["npg", "actor_critic"])
def test_from_scratch_risk_aversion_moves_the_path_away_from_the_cliff(variant: str) -> None:
    # From a uniform policy (no warm start): lam = 0 learns the cliff-hugging risk-neutral optimum
    # (exact value -14.16); raising lambda (0 -> 1 at alpha 0.1) or lowering alpha (1 -> 0.05 at
    # lambda 0.5) lowers the fall rate, improves CVaR_0.1 of the return and lowers the mean, on
    # every seed.
    torch.set_num_threads(1)
    seeds = (0, 1, 2) if variant == "npg" else (0, 1)
    for seed in seeds:
        neutral = _cliff_scratch(variant, 0.0, 1.0, seed, 2_000_000)
        assert neutral["ecrm"] > -14.5, neutral
        for lam, alpha in ((1.0, 0.1), (0.5, 0.05)):
            averse = _cliff_scratch(variant, lam, alpha, seed, 2_000_000)
            assert averse["fall"] < 0.5 * neutral["fall"], (seed, lam, alpha, averse, neutral)
            assert averse["cvar"] > neutral["cvar"] + 1.0, (seed, lam, alpha, averse, neutral)
            assert averse["mean"] < neutral["mean"], (seed, lam, alpha, averse, neutral)


@pytest.mark.slow
def test_gaussian_neural_variant_climbs_away_from_the_gusts() -> None:
    import rlsuite.envs as envs

    torch.set_num_threads(1)
    out = {}
    for lam in (0.0, 1.0):
        env = envs.make("gusty_ledge", continuous=True)
        cfg = ECRMConfig(parameterization="neural", risk_weight=lam, alpha=0.1, policy_lr=3e-3,
                         eta_lr=1e-2, baseline_lr=1e-2)
        agent = ECRM(cfg, env, env.default_params(256), seed=0).learn(400_000)
        out[lam] = agent.final_metrics(env, env.default_params(8192), env.make_generator(5))
    assert out[1.0]["eval/failure_rate"] < 0.5 * out[0.0]["eval/failure_rate"], out
    assert out[1.0]["eval/return_cvar"] > out[0.0]["eval/return_cvar"] + 1.0, out
    assert out[1.0]["eval/mean_return"] < out[0.0]["eval/mean_return"], out
