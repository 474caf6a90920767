"""The ECRM agent: its sampled objective and gradients against the exact ones, its pure helpers,
learning on hand-solvable MDPs, registration; slow tier: stochastic CliffWalking."""

from __future__ import annotations

import pytest
import torch
from ecrm_cases import safe_risky_mdp

from rlsuite.agents.ecrm import exact_gradients, ru_objective, softmax_gradient
from rlsuite.agents.ecrm import objective as obj
from rlsuite.agents.ecrm.agent import (
    ECRM,
    reinforce_surrogate,
    risk_adjusted_rewards,
    threshold_gradient_sample,
)
from rlsuite.agents.ecrm.config import ECRMConfig
from rlsuite.agents.ecrm.episodes import collect_first_episodes
from rlsuite.envs.tabular import TabularEnv, TabularMDP, random_mdp

F64 = torch.float64


def _agent_with_tables(mdp: TabularMDP, n: int, seed: int = 0, **kw) -> tuple[ECRM, TabularEnv]:
    env = TabularEnv(mdp)
    cfg = ECRMConfig(risk_weight=0.6, alpha=0.3, gamma=mdp.gamma, baseline=False, **kw)
    agent = ECRM(cfg, env, env.default_params(n), seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        agent.model.actor.copy_(torch.randn(3, 2, generator=g))
        agent.model.actor_first.copy_(torch.randn(3, 2, generator=g))
        low, high = agent.eta_range  # the agent clips thresholds to the reward range
        agent.model.eta.copy_(low + (high - low) * torch.rand(3, 2, generator=g))
    return agent, env


def _exact(agent: ECRM, mdp: TabularMDP) -> tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]:
    pi = agent.model.actor.detach().double().softmax(-1)
    pi1 = agent.model.actor_first.detach().double().softmax(-1)
    eta = agent.model.eta.detach().double()
    cfg = agent.config
    value = ru_objective(mdp, pi, eta, cfg.alpha, cfg.risk_weight, first_policy=pi1).item()
    grads = exact_gradients(mdp, pi, eta, cfg.alpha, cfg.risk_weight, first_policy=pi1)
    return value, softmax_gradient(pi1, grads.first_policy), softmax_gradient(pi, grads.policy), grads.eta


@pytest.mark.parametrize("seed", [0, 1])
def test_sampled_objective_and_reinforce_gradient_match_the_exact_ones(seed: int) -> None:
    # 3 states, 2 actions, horizon 3, gamma 0.9, terminal outcomes (the absorbing stage) and
    # truncation at the horizon (no next stage): J and its gradients within 3 standard errors.
    mdp = random_mdp(3, 2, 2, seed=seed, gamma=0.9, horizon=3, terminal_prob=0.3)
    groups, per_group = 40, 2500
    agent, env = _agent_with_tables(mdp, groups * per_group, seed)
    ep = collect_first_episodes(env, agent.params, agent.stage_policy(), env.make_generator(seed), 8, 50)
    value, g_first, g_later, g_eta = _exact(agent, mdp)

    stage, thr, disc = risk_adjusted_rewards(ep, agent.config)
    j_samples = (disc * torch.where(ep.valid, stage + thr, 0.0)).sum(0).double()
    se = j_samples.std() / len(j_samples) ** 0.5
    assert abs(j_samples.mean().item() - value) < 3 * se.item()

    est_first, est_later, est_eta = [], [], []
    for i in range(groups):
        part = _slice(ep, slice(i * per_group, (i + 1) * per_group))
        params = [agent.model.actor_first, agent.model.actor]
        grads = torch.autograd.grad(reinforce_surrogate(agent.model, part, agent.config), params)
        est_first.append(grads[0].double())
        est_later.append(grads[1].double())
        est_eta.append(threshold_gradient_sample(part, agent.config, 3, 2).double())
    for est, exact in ((est_first, g_first), (est_later, g_later), (est_eta, g_eta)):
        stack = torch.stack(est)
        mean, stderr = stack.mean(0), stack.std(0) / groups**0.5
        assert ((mean - exact).abs() <= 3 * stderr + 1e-6).all(), (mean, exact, stderr)


def _slice(ep, cols: slice):
    from dataclasses import fields, replace

    kw = {f.name: getattr(ep, f.name)[:, cols] for f in fields(ep) if f.name != "steps"}
    return replace(ep, **kw)


# -- pure helpers ---------------------------------------------------------------------------------
def test_project_simplex_is_the_euclidean_projection() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=g, dtype=F64) * 2
    p = obj.project_simplex(x)
    assert torch.allclose(p.sum(-1), torch.ones(200, dtype=F64)) and (p >= 0).all()
    # Optimality (KKT): x - p = theta on the support, x - p <= theta off it.
    theta = (x - p)[p > 0].reshape(-1)
    for i in range(200):
        on = p[i] > 0
        th = (x[i] - p[i])[on]
        assert torch.allclose(th, th[0].expand_as(th))
        assert ((x[i] - p[i])[~on] <= th[0] + 1e-12).all()
    assert theta.numel() > 0
    q = obj.project_simplex(x, floor=0.05)
    assert torch.allclose(q.sum(-1), torch.ones(200, dtype=F64)) and (q >= 0.05 - 1e-12).all()
    inside = torch.tensor([[0.2, 0.3, 0.5, 0.0]], dtype=F64)
    assert torch.allclose(obj.project_simplex(inside), inside)


def test_masks_reward_to_go_and_next_rewards_by_hand() -> None:
    term = torch.tensor([[False, False], [True, False], [False, False]])
    trunc = torch.tensor([[False, False], [False, False], [False, True]])
    valid = obj.first_episode_mask(term, trunc)
    assert valid.tolist() == [[True, True], [True, True], [False, True]]
    k = torch.tensor([[1.0, 1.0], [2.0, 2.0], [4.0, 4.0]])
    g = obj.reward_to_go(k, valid, 0.5)
    assert g.tolist() == [[2.0, 3.0], [2.0, 4.0], [0.0, 4.0]]
    reward = torch.tensor([[-1.0, -1.0], [-2.0, -3.0], [-4.0, -5.0]])
    target, has = obj.next_rewards(reward, term, trunc, valid)
    # copy 0: R' = -2 after step 0, 0 (absorbing) after its terminal step 1; copy 1: -3, -5, none.
    assert has.tolist() == [[True, True], [True, True], [False, False]]
    assert target[:2].tolist() == [[-2.0, -3.0], [0.0, -5.0]]


def test_config_rejects_bad_values_by_name() -> None:
    for kw, name in (({"variant": "ppo"}, "variant"), ({"alpha": 0.0}, "alpha"),
                     ({"risk_weight": 2.0}, "risk_weight"),
                     ({"variant": "npg", "parameterization": "direct"}, "npg"),
                     ({"condition_on_prev": True}, "condition_on_prev")):
        with pytest.raises(ValueError, match=name):
            ECRMConfig(**kw)


# -- learning -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("variant", "param", "extra"), [
    ("reinforce", "softmax", {}), ("actor_critic", "softmax", {}), ("npg", "softmax", {}),
    ("npg", "softmax", {"ent_coef": 0.01}), ("reinforce", "softmax", {"eta_weighting": "objective"}),
    ("reinforce", "direct", {}), ("reinforce", "neural", {}),
    ("reinforce", "neural", {"condition_on_prev": True, "share_first_policy": True}),
])
def test_first_step_switches_from_risky_to_safe_with_lambda(variant: str, param: str, extra: dict) -> None:
    env = TabularEnv(safe_risky_mdp())
    chosen = {}
    for lam in (0.0, 0.5):  # switch point at alpha = 0.1: 3/28
        cfg = ECRMConfig(variant=variant, parameterization=param, risk_weight=lam, alpha=0.1,
                         policy_lr=0.2, npg={"max_kl": 0.05},
                         hidden_sizes=[16], eta_lr=0.5 if param != "neural" else 0.05, **extra)
        agent = ECRM(cfg, env, env.default_params(128), seed=0).learn(128 * 2 * 150)
        with torch.no_grad():
            s0 = torch.zeros(1, dtype=torch.long)
            p = agent.model.probs(s0, torch.ones(1, dtype=torch.bool), torch.zeros(1))
        chosen[lam] = p[0, 1].item()  # probability of the risky action
    assert chosen[0.0] > 0.85, chosen
    assert chosen[0.5] < 0.15, chosen


def test_state_dict_round_trip_continues_identically() -> None:
    mdp = random_mdp(3, 2, 2, seed=0, gamma=0.9, horizon=4, terminal_prob=0.2)
    env = TabularEnv(mdp)
    cfg = ECRMConfig(variant="actor_critic")
    a = ECRM(cfg, env, env.default_params(16), seed=3).learn(16 * 4 * 3)
    b = ECRM(cfg, env, env.default_params(16), seed=99)
    b.load_state_dict(torch.load(_save(a.state_dict()), weights_only=True))
    a.learn(a.global_step + 16 * 4 * 2)
    b.learn(b.global_step + 16 * 4 * 2)
    for (name, pa), pb in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert a.global_step == b.global_step and a.iteration == b.iteration


def _save(state: dict) -> str:
    import tempfile

    path = tempfile.mktemp(suffix=".pt")
    torch.save(state, path)
    return path


def test_cli_runs_and_scores_the_exact_ecrm(tmp_path) -> None:
    from rlsuite.runner import compose, run

    cfg = compose(["agent=ecrm", "env=cliffwalking_stochastic", "num_envs=16", "total_steps=3000",
                   "eval_episodes=32", "progress=false", "tensorboard=false", "device=cpu",
                   f"run_dir={tmp_path}", "agent.variant=npg"])
    score = run(cfg)
    from rlsuite.logging import read_metrics

    rows = read_metrics(tmp_path)
    assert rows[-1]["eval/ecrm_exact"] == score
    assert "ecrm/failure_rate" in rows[0] and "ecrm/eta_below_rate" in rows[0]


# The CliffWalking learning check (raising lambda / lowering alpha moves the path away from the
# cliff) learns from a uniform policy: tests/test_ecrm_options.py,
# test_from_scratch_risk_aversion_moves_the_path_away_from_the_cliff.


@pytest.mark.slow
def test_neural_variant_climbs_away_from_the_gusts() -> None:
    # GustyLedge (continuous state): lam = 1, alpha = 0.1 against lam = 0, neural REINFORCE.
    import rlsuite.envs as envs

    torch.set_num_threads(1)
    out = {}
    for lam in (0.0, 1.0):
        env = envs.make("gusty_ledge")
        cfg = ECRMConfig(parameterization="neural", risk_weight=lam, alpha=0.1, policy_lr=3e-3,
                         eta_lr=1e-2, baseline_lr=1e-2)
        agent = ECRM(cfg, env, env.default_params(256), seed=0).learn(400_000)
        out[lam] = agent.final_metrics(env, env.default_params(8192), env.make_generator(5))
    assert out[1.0]["eval/failure_rate"] < 0.3 * out[0.0]["eval/failure_rate"], out
    assert out[1.0]["eval/return_cvar"] > out[0.0]["eval/return_cvar"] + 1.0, out
    assert out[1.0]["eval/mean_return"] < out[0.0]["eval/mean_return"], out
