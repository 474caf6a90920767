"""HNPG: stacked networks, the batched per-step NPG step, the hybrid critic fit, the agent."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from script_module import load_script
from torch import nn

from rlsuite.agents.hnpg import HNPG, HNPGConfig, npg_update
from rlsuite.agents.hnpg.block_npg import block_conjugate_gradient, from_blocks, to_blocks
from rlsuite.agents.hnpg.critic import (
    CriticBatch,
    CriticSettings,
    _adam_loop,
    fit_critic,
    fit_steps,
    offline_targets,
)
from rlsuite.agents.hnpg.fisher import StackedGaussianFisher
from rlsuite.agents.hnpg.nets import (
    StackedGaussianPolicy,
    StackedQ,
    gaussian_kl,
    gaussian_log_prob,
    per_sample_forward,
    q_forward,
    stacked_forward,
)
from rlsuite.agents.hnpg.offline_data import collect_offline
from rlsuite.envs.combination_lock import CombinationLock
from rlsuite.learners import npg
from rlsuite.learners.returns import discounted_returns

F64 = torch.float64


def _policy(h: int = 3, d: int = 4, a: int = 2, seed: int = 0) -> StackedGaussianPolicy:
    return StackedGaussianPolicy(h, d, a, 8, 0.1, 0.0, torch.Generator().manual_seed(seed), F64)


def _problem(h: int = 3, n: int = 64, d: int = 4, a: int = 2, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    states = torch.randn(h, n, d, generator=g, dtype=F64)
    actions = torch.randn(h, n, a, generator=g, dtype=F64)
    adv = torch.randn(h, n, generator=g, dtype=F64) + actions[..., 0]  # correlated: a real signal
    return states, actions, adv


# -- networks -------------------------------------------------------------------------------------
def test_stacked_networks_match_the_per_step_modules() -> None:
    policy = _policy()
    x = torch.randn(3, 5, 4, dtype=F64)
    for h in range(3):
        ref = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2)).double()
        for i, lin in enumerate([ref[0], ref[2], ref[4]]):
            lin.weight.data = policy.mean_net.weights[i][h].T.clone()
            lin.bias.data = policy.mean_net.biases[i][h, 0].clone()
        assert torch.allclose(policy(x)[0][h], ref(x[h]), atol=1e-12)
    # official init: output layer weights within 0.1/sqrt(fan_in), bias 0, log-std 0
    assert policy.mean_net.weights[2].abs().max() <= 0.1 / math.sqrt(8)
    assert torch.equal(policy.mean_net.biases[2], torch.zeros(3, 1, 2, dtype=F64))
    assert torch.equal(policy.log_std, torch.zeros(3, 1, 2, dtype=F64))
    # per-sample dispatch (act) picks network h for row i
    idx = torch.tensor([2, 0, 1, 2, 0])
    out = per_sample_forward(policy.mean_net.layers(), x[0], idx)
    full = stacked_forward(policy.mean_net.layers(), x[0].expand(3, 5, 4))
    assert torch.allclose(out, full[idx, torch.arange(5)], atol=1e-12)


def test_official_sizes() -> None:
    env = CombinationLock(horizon=5)
    agent = HNPG(HNPGConfig(offline_episodes=10), env, env.default_params(1), seed=0)
    assert [tuple(w.shape) for w in agent.policy.mean_net.weights] == [(5, 16, 16), (5, 16, 16), (5, 16, 10)]
    assert [tuple(w.shape) for w in agent.q.net.weights] == [(5, 26, 64), (5, 64, 64), (5, 64, 1)]
    assert agent.policy.log_std.dtype == F64 and agent.num_envs == 200
    assert (
        math.ceil(1000 / 15)
        == HNPG(
            HNPGConfig(offline_episodes=10),
            CombinationLock(horizon=15),
            CombinationLock(horizon=15).default_params(1),
        ).num_envs
        == 67
    )


def test_gaussian_formulas() -> None:
    m0, m1 = torch.randn(7, 3, dtype=F64), torch.randn(7, 3, dtype=F64)
    s0, s1 = torch.randn(7, 3, dtype=F64) * 0.3, torch.randn(7, 3, dtype=F64) * 0.3
    ref = torch.distributions.kl_divergence(
        torch.distributions.Independent(torch.distributions.Normal(m0, s0.exp()), 1),
        torch.distributions.Independent(torch.distributions.Normal(m1, s1.exp()), 1),
    )
    assert torch.allclose(gaussian_kl(m0, s0, m1, s1), ref, atol=1e-12)
    x = torch.randn(7, 3, dtype=F64)
    ref_lp = torch.distributions.Normal(m0, s0.exp()).log_prob(x).sum(-1)
    assert torch.allclose(gaussian_log_prob(x, m0, s0), ref_lp, atol=1e-12)


# -- the batched NPG step ----------------------------------------------------------------------------
def test_block_cg_equals_the_shared_cg_per_block() -> None:
    g = torch.Generator().manual_seed(0)
    mats = []
    for _ in range(3):
        m = torch.randn(6, 6, generator=g, dtype=F64)
        mats.append(m @ m.T + 0.1 * torch.eye(6, dtype=F64))
    a = torch.stack(mats)
    b = torch.randn(3, 6, generator=g, dtype=F64)
    b[1] = 0.0  # a block that is converged from the start stays at x = 0
    x = block_conjugate_gradient(lambda v: torch.einsum("hij,hj->hi", a, v), b, iters=4)
    for h in range(3):
        ref, _ = npg.conjugate_gradient(lambda v, h=h: a[h] @ v, b[h], iters=4)
        assert torch.allclose(x[h], ref, atol=1e-12)
    blocks = torch.randn(3, 11, dtype=F64)
    like = [torch.zeros(3, 2, 4), torch.zeros(3, 1, 3)]
    assert torch.equal(to_blocks(from_blocks(blocks, like)), blocks)


def test_block_step_equals_the_shared_trpo_step_on_each_policy() -> None:
    states, actions, adv = _problem()
    policy = _policy()
    before = copy.deepcopy(policy)
    cfg = npg.NPGConfig(max_kl=0.01, damping=0.1)
    result = npg_update(policy, states, actions, adv, cfg)
    assert bool(result.accepted.all())
    for h in range(3):
        single = _policy(h=1)
        with torch.no_grad():
            for dst, src in zip(single.parameters(), before.parameters(), strict=True):
                dst.copy_(src[h : h + 1])
        ref = npg_update(single, states[h : h + 1], actions[h : h + 1], adv[h : h + 1], cfg)
        # and the shared npg.trpo_step on the same single policy gives the same step
        shared = _policy(h=1)
        shared.load_state_dict(
            before.state_dict() | {k: v[h : h + 1] for k, v in before.state_dict().items()}
        )
        with torch.no_grad():
            mean0, ls0 = shared(states[h : h + 1])
            ls0 = ls0.clone()
            lp0 = gaussian_log_prob(actions[h : h + 1], mean0, ls0)

        def surrogate(shared=shared, h=h, lp0=lp0):
            mean, ls = shared(states[h : h + 1])
            return (adv[h : h + 1] * torch.exp(gaussian_log_prob(actions[h : h + 1], mean, ls) - lp0)).mean()

        def kl(shared=shared, h=h, mean0=mean0, ls0=ls0):
            mean, ls = shared(states[h : h + 1])
            return gaussian_kl(mean0, ls0, mean, ls.expand_as(mean)).mean()

        out = npg.trpo_step(shared, surrogate, kl, cfg)
        assert out.accepted and out.step_fraction == pytest.approx(float(result.step_fraction[h]))
        assert out.kl == pytest.approx(float(result.kl[h]), rel=1e-8)
        for p_all, p_ref, p_shared in zip(
            policy.parameters(), single.parameters(), shared.parameters(), strict=True
        ):
            assert torch.allclose(p_all[h : h + 1], p_ref, atol=1e-12)
            assert torch.allclose(p_all[h : h + 1], p_shared, atol=1e-10)
        assert float(ref.kl[0]) == pytest.approx(float(result.kl[h]), rel=1e-10)


def test_closed_form_gradient_and_fisher_equal_double_backprop() -> None:
    states, actions, adv = _problem(h=3, n=50)
    policy = _policy()
    with torch.no_grad():  # move away from the init so that the bias and log-std terms matter
        for p in policy.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(5), dtype=F64))
    params = [*policy.mean_net.layers(), policy.log_std]
    with torch.no_grad():
        mean0 = policy(states)[0]
        ls0 = policy.log_std.detach().clone()
        lp0 = gaussian_log_prob(actions, mean0, ls0)

    def surrogate():
        mean, ls = policy(states)
        return (adv * torch.exp(gaussian_log_prob(actions, mean, ls) - lp0)).mean(1)

    def kl():
        mean, ls = policy(states)
        return gaussian_kl(mean0, ls0, mean, ls.expand_as(mean)).mean(1)

    products = StackedGaussianFisher(policy.mean_net.layers(), policy.log_std, states)
    assert torch.equal(products.mean, mean0)
    grad_ref = to_blocks(list(torch.autograd.grad(surrogate().sum(), params)))
    grad = to_blocks(products.surrogate_gradient(actions, adv))
    assert torch.allclose(grad, grad_ref, rtol=1e-12, atol=1e-14)
    fvp_ref = npg.fisher_vector_product(lambda: kl().sum(), params, 0.0)
    v = torch.randn(grad_ref.shape, generator=torch.Generator().manual_seed(2), dtype=F64)
    flat = torch.cat([p.reshape(-1) for p in from_blocks(v, params)])
    parts = torch.split(fvp_ref(flat), [p.numel() for p in params])
    ref = to_blocks([t.reshape(p.shape) for t, p in zip(parts, params, strict=True)])
    got = to_blocks(products.fisher_product(from_blocks(v, params)))
    assert torch.allclose(got, ref, rtol=1e-11, atol=1e-13)
    # block h of F v depends on block h of v only (independent policies)
    v2 = v.clone()
    v2[1] = 0.0
    got2 = to_blocks(products.fisher_product(from_blocks(v2, params)))
    assert torch.equal(got2[0], got[0]) and torch.equal(got2[1], torch.zeros_like(got2[1]))


def test_closed_form_and_autograd_npg_steps_agree() -> None:
    states, actions, adv = _problem()
    cfg = npg.NPGConfig(max_kl=0.01, damping=0.1)
    a, b = _policy(), _policy()
    ra = npg_update(a, states, actions, adv, cfg, closed_form=True)
    rb = npg_update(b, states, actions, adv, cfg, closed_form=False)
    assert torch.equal(ra.step_fraction, rb.step_fraction)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("check_kl", [True, False])
def test_npg_step_keeps_kl_in_bound_and_never_lowers_the_surrogate(check_kl: bool) -> None:
    # The HNPG policy on lock observations, with on-policy + offline-like states per step.
    env = CombinationLock(horizon=4)
    agent = HNPG(HNPGConfig(offline_episodes=200, linesearch_kl_check=check_kl), env, env.default_params(1))
    data = collect_offline(env, 300, seed=3)
    states = data.data.obs.view(4, 300, -1).to(F64)
    g = torch.Generator().manual_seed(0)
    for trial in range(5):
        actions = agent.policy.sample(states, g)
        adv = torch.randn(4, 300, generator=g, dtype=F64) * (trial + 1) + actions[..., trial % 10]
        old = copy.deepcopy(agent.policy)
        result = npg_update(agent.policy, states, actions, adv, agent.npg, check_kl)
        with torch.no_grad():
            m0, s0 = old(states)
            m1, s1 = agent.policy(states)
            kl = gaussian_kl(m0, s0.expand_as(m0), m1, s1.expand_as(m1)).mean(1)
            lp0 = gaussian_log_prob(actions, m0, s0)
            after = (adv * torch.exp(gaussian_log_prob(actions, m1, s1) - lp0)).mean(1)
        assert torch.allclose(kl, result.kl, atol=1e-12)
        limit = 0.01 if check_kl else 0.0105  # without the check: the quadratic model's accuracy
        assert bool((kl <= limit).all()), kl
        assert bool((after >= adv.mean(1) - 1e-12).all())  # surrogate before the step is mean(A)
        assert bool((result.surrogate_after >= result.surrogate_before).all())
        assert bool(result.accepted.any())


def test_rejected_blocks_are_restored_exactly() -> None:
    states, actions, adv = _problem()
    adv[1] = 0.0  # zero gradient for policy 1: degenerate direction, nothing may change
    policy = _policy()
    before = copy.deepcopy(policy)
    result = npg_update(policy, states, actions, adv, npg.NPGConfig())
    assert result.accepted.tolist() == [True, False, True]
    for p, q in zip(policy.parameters(), before.parameters(), strict=True):
        assert torch.equal(p[1], q[1]) and not torch.equal(p[0], q[0])


# -- the critic ----------------------------------------------------------------------------------------
def _critic_batch(h: int = 3, n_on: int = 20, n_off: int = 30, d: int = 4, a: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)

    def r(*s):
        return torch.randn(*s, generator=g, dtype=F64)

    term = torch.zeros(h, n_off, dtype=torch.bool)
    term[-1] = True
    return CriticBatch(
        r(h, n_on, d),
        r(h, n_on, a),
        r(h, n_on),
        r(h, n_off, d),
        r(h, n_off, a),
        r(h, n_off),
        r(h, n_off, d),
        term,
    )


@pytest.mark.parametrize(
    ("hybrid", "on_weight", "l2"), [(True, 1.0, 0.0), (False, 1.0, 0.0), (True, 0.3, 1e-2)]
)
def test_hand_written_critic_gradient_and_adam_match_autograd(
    hybrid: bool, on_weight: float, l2: float
) -> None:
    q = StackedQ(3, 4, 2, 16, 0.1, torch.Generator().manual_seed(0), F64)
    ref_layers = [t.detach().clone().requires_grad_(True) for t in q.net.layers()]
    batch = _critic_batch()
    target = torch.randn(3, 30, dtype=F64)
    settings = CriticSettings(steps=7, lr=1e-2, on_weight=on_weight, hybrid=hybrid, l2=l2)
    on, off = fit_steps(q, slice(0, 3), batch, target, settings)
    # reference: autograd + torch.optim.Adam, each step fitted alone (official update_q)
    opt = torch.optim.Adam(ref_layers, lr=1e-2)
    for _ in range(7):
        x_on = torch.cat([batch.on_obs, batch.on_action], -1)
        x_off = torch.cat([batch.off_obs, batch.off_action], -1)
        ref_on = (stacked_forward(ref_layers, x_on).squeeze(-1) - batch.on_return).pow(2).mean(1)
        ref_off = (stacked_forward(ref_layers, x_off).squeeze(-1) - target).pow(2).mean(1)
        loss = on_weight * ref_on + (ref_off if hybrid else 0) + l2 * ref_layers[-1].pow(2).flatten(1).sum(1)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    for got, want in zip(q.net.layers(), ref_layers, strict=True):
        assert torch.allclose(got, want, atol=1e-10)
    assert torch.allclose(on, ref_on.detach(), atol=1e-10) and torch.allclose(
        off, ref_off.detach(), atol=1e-10
    )


@pytest.mark.parametrize(
    ("dtype", "l2", "steps"), [(torch.float32, 0.0, slice(1, 2)), (F64, 1e-2, slice(0, 3))]
)
def test_scripted_critic_loop_equals_eager_bit_for_bit(dtype: torch.dtype, l2: float, steps: slice) -> None:
    assert isinstance(_adam_loop(True), torch.jit.ScriptFunction)  # the speed-up is really on
    batch = _critic_batch()
    target = torch.randn(steps.stop - steps.start, 30, dtype=F64)
    out = []
    for scripted in (True, False):
        q = StackedQ(3, 4, 2, 16, 0.1, torch.Generator().manual_seed(0), dtype)
        losses = fit_steps(q, steps, batch, target, CriticSettings(steps=7, l2=l2, scripted=scripted))
        out.append((q.net.layers(), losses))
    for a, b in zip(out[0][0] + list(out[0][1]), out[1][0] + list(out[1][1]), strict=True):
        assert torch.equal(a, b)


def test_offline_targets_by_hand() -> None:
    policy = _policy()
    with torch.no_grad():
        policy.log_std.fill_(-40.0)  # a' = mean_{h+1}(s') exactly
    q = StackedQ(3, 4, 2, 16, 0.1, torch.Generator().manual_seed(0), F64)
    batch = _critic_batch()
    y = offline_targets(policy, q, batch, slice(0, 3), 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(y[2], batch.off_reward[2])  # last step: the reward alone
    for h in range(2):
        a_next = stacked_forward(
            [t[h + 1 : h + 2] for t in policy.mean_net.layers()], batch.off_next_obs[h : h + 1]
        )
        q_next = q_forward([t[h + 1 : h + 2] for t in q.net.layers()], batch.off_next_obs[h : h + 1], a_next)[
            0
        ]
        assert torch.allclose(y[h], batch.off_reward[h] + q_next, atol=1e-12)
    one = offline_targets(policy, q, batch, slice(1, 2), 0.5, torch.Generator().manual_seed(0))
    assert torch.allclose(one[0], batch.off_reward[1] + 0.5 * (y[1] - batch.off_reward[1]), atol=1e-12)


def test_critic_fits_mc_returns_and_td_targets() -> None:
    # Two tight clusters of inputs: on-policy returns 0.7, offline targets 0.3 (last step, so the
    # TD target is the reward); a long fit must reproduce both; without hybrid only the MC part.
    h, d, a = 2, 4, 2
    policy = _policy(h=h, d=d, a=a)
    g = torch.Generator().manual_seed(0)
    on_obs = 1.0 + 0.01 * torch.randn(h, 40, d, generator=g, dtype=F64)
    off_obs = -1.0 + 0.01 * torch.randn(h, 40, d, generator=g, dtype=F64)
    act = torch.zeros(h, 40, a, dtype=F64)
    term = torch.ones(h, 40, dtype=torch.bool)
    batch = CriticBatch(
        on_obs,
        act,
        torch.full((h, 40), 0.7, dtype=F64),
        off_obs,
        act,
        torch.full((h, 40), 0.3, dtype=F64),
        off_obs,
        term,
    )
    for hybrid in (True, False):
        q = StackedQ(h, d, a, 16, 0.1, torch.Generator().manual_seed(0), F64)
        settings = CriticSettings(steps=600, lr=2e-2, hybrid=hybrid)
        on, off = fit_critic(policy, q, batch, settings, g, sweep="backward")
        assert bool((on < 1e-4).all())
        assert bool((off < 1e-4).all()) == hybrid
        assert torch.allclose(q(on_obs, act), torch.full((h, 40), 0.7, dtype=F64), atol=0.01)


def test_backward_sweep_uses_the_refitted_next_critic() -> None:
    policy = _policy()
    batch = _critic_batch()
    settings = CriticSettings(steps=5, lr=1e-2)
    q_seq = StackedQ(3, 4, 2, 16, 0.1, torch.Generator().manual_seed(0), F64)
    q_par = copy.deepcopy(q_seq)
    fit_critic(policy, q_seq, batch, settings, torch.Generator().manual_seed(0), "backward")
    fit_critic(policy, q_par, batch, settings, torch.Generator().manual_seed(0), "parallel")
    # the last step has no bootstrap, so both schedules fit it identically; earlier steps differ
    assert torch.allclose(q_seq.net.weights[0][2], q_par.net.weights[0][2], atol=1e-12)
    assert not torch.allclose(q_seq.net.weights[0][0], q_par.net.weights[0][0])


def test_monte_carlo_returns_are_rewards_to_go() -> None:
    r = torch.tensor([[0.0, 0.0], [0.0, 0.1], [1.0, 0.0]], dtype=F64)
    term = torch.tensor([[False, False], [False, False], [True, True]])
    g = discounted_returns(r, torch.zeros_like(r), term, torch.zeros_like(term), 1.0)
    assert torch.equal(g, torch.tensor([[1.0, 0.1], [1.0, 0.1], [1.0, 0.0]], dtype=F64))


# -- the agent -------------------------------------------------------------------------------------------
SMALL = dict(offline_episodes=300, batch_steps=60, eval_episodes=4)


def test_agent_is_deterministic_and_resumes_exactly(tmp_path: Path) -> None:
    env = CombinationLock(horizon=3)
    a = HNPG(HNPGConfig(**SMALL), env, env.default_params(1), seed=5).learn(120)
    b = HNPG(HNPGConfig(**SMALL), env, env.default_params(1), seed=5).learn(120)
    for p, q in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        assert torch.equal(p, q)
    path = tmp_path / "agent.pt"
    torch.save(a.state_dict(), path)
    c = HNPG(HNPGConfig(**SMALL), env, env.default_params(1), seed=5)
    c.load_state_dict(torch.load(path, weights_only=True))
    a.learn(240)
    c.learn(240)
    assert a.global_step == c.global_step == 240 and a.iteration == c.iteration == 4
    for p, q in zip(
        list(a.policy.parameters()) + list(a.q.parameters()),
        list(c.policy.parameters()) + list(c.q.parameters()),
        strict=True,
    ):
        assert torch.equal(p, q)


def test_metrics_offline_batch_sizes_and_act() -> None:
    env = CombinationLock(horizon=3)
    agent = HNPG(HNPGConfig(**SMALL), env, env.default_params(1), seed=0)
    seen = []

    class Hooks:
        def on_iteration(self, ag, step, metrics):
            seen.append((step, metrics))

    agent.learn(60, Hooks())
    step, m = seen[0]
    assert step == 60 and m["hnpg/online_samples"] == 60.0
    for key in (
        "rollout/ep_rew_mean",
        "eval/mean_reward",
        "hnpg/train_return_ma",
        "hnpg/test_return_ma",
        "hnpg/success_rate",
        "hnpg/success_rate_ma",
        "train/on_critic_loss",
        "train/off_critic_loss",
        "train/loss_before",
        "train/loss_after",
        "train/npg_kl",
    ):
        assert math.isfinite(m[key]), key
    assert m["train/loss_after"] <= m["train/loss_before"]
    off = agent.sampler.sample(agent.num_envs, torch.Generator().manual_seed(0), F64)
    assert off["obs"].shape == (3, 20, env.obs_dim)  # m_off = m_on = 20 per step
    for h in range(3):  # every sampled offline state belongs to its step
        _, steps = env.decode_latent_and_step(off["obs"][h].float())
        assert bool((steps == h).all())
    obs, _ = env.reset(env.default_params(5), env.make_generator(0))
    act = agent.act(obs, deterministic=True)
    want = stacked_forward([t[0:1] for t in agent.policy.mean_net.layers()], obs.to(F64).unsqueeze(0))[0]
    assert act.shape == (5, 10) and act.dtype == env.action_space.dtype
    assert torch.allclose(act, want.to(act.dtype))
    metrics = agent.final_metrics(env, env.default_params(8), env.make_generator(1))
    assert list(metrics)[0] == "eval/success_rate" and metrics["hnpg/samples_to_success"] == -1.0


def test_bad_config_names_the_field() -> None:
    with pytest.raises(ValueError, match="critic_sweep"):
        HNPGConfig(critic_sweep="forward")
    with pytest.raises(ValueError, match="offline_actor_actions"):
        HNPGConfig(offline_actor_actions="behaviour")


def test_cli_runs_hnpg_on_the_lock(tmp_path: Path) -> None:
    from rlsuite.runner import compose, run

    cfg = compose(
        [
            "agent=hnpg",
            "env=comblock",
            "env.horizon=3",
            "total_steps=120",
            "agent.batch_steps=60",
            "agent.offline_episodes=200",
            "eval_episodes=8",
            "progress=false",
            "device=cpu",
            f"run_dir={tmp_path}",
            "tensorboard=false",
        ]
    )
    score = run(cfg)
    assert 0.0 <= score <= 1.0
    assert (tmp_path / "metrics.csv").exists()


# -- learning (slow tier) ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_hnpg_solves_h5_within_100k_samples_and_trpo_does_not() -> None:
    env = CombinationLock(horizon=5, seed=0)
    hnpg = HNPG(HNPGConfig(), env, env.default_params(1), seed=0).learn(100_000)
    assert hnpg.solved_at is not None and hnpg.solved_at <= 100_000
    trpo = HNPG(HNPGConfig(hybrid=False, offline_episodes=10), env, env.default_params(1), seed=0).learn(
        100_000
    )
    assert trpo.solved_at is None
    assert sum(trpo.train_returns) / len(trpo.train_returns) < 0.1  # random: 0.05
    assert sum(trpo.successes) / len(trpo.successes) < 0.02


# -- the RLPD-style baseline ----------------------------------------------------------------------------
@pytest.mark.slow
def test_rlpd_batches_are_half_offline_half_online(monkeypatch) -> None:
    import rlsuite.agents.hnpg.rlpd as rlpd_mod
    from rlsuite.agents.hnpg.rlpd import RLPD, RLPDConfig

    env = CombinationLock(horizon=3)
    agent = RLPD(RLPDConfig(offline_episodes=40, sac={"hidden_sizes": [16, 16]}, num_envs=4), env,
                 env.default_params(1))
    batches = []
    real = rlpd_mod.sac_update

    def spy(nets, opt, batch, *args):
        batches.append(batch)
        return real(nets, opt, batch, *args)

    monkeypatch.setattr(rlpd_mod, "sac_update", spy)
    agent.learn(12)
    assert agent.global_step == 12 and agent.num_updates == 12 and len(batches) == 12  # UTD 1
    assert len(agent.buffer) == 12
    offline_obs = agent.offline.data.obs
    online_obs = agent.buffer.ordered().obs
    for batch in batches:
        assert len(batch) == 128
        in_off = (batch.obs[:64, None] == offline_obs[None]).all(-1).any(1)
        in_on = (batch.obs[64:, None] == online_obs[None]).all(-1).any(1)
        assert bool(in_off.all()) and bool(in_on.all())
    # actions are squashed into [-1, 1]^10, where the offline actions also lie
    obs, _ = env.reset(env.default_params(6), env.make_generator(0))
    act = agent.act(obs)
    assert act.shape == (6, 10) and bool((act.abs() <= 1).all())
    assert bool((agent.offline.data.action >= 0).all()) and bool((agent.offline.data.action <= 1).all())


@pytest.mark.slow
def test_rlpd_is_deterministic_and_registered(tmp_path: Path) -> None:
    from rlsuite.agents.hnpg.rlpd import RLPD, RLPDConfig
    from rlsuite.runner import compose, run

    env = CombinationLock(horizon=3)
    cfg = RLPDConfig(offline_episodes=40, sac={"hidden_sizes": [16, 16]}, num_envs=4)
    a = RLPD(cfg, env, env.default_params(1), seed=2).learn(8)
    b = RLPD(cfg, env, env.default_params(1), seed=2).learn(8)
    for p, q in zip(a.nets.parameters(), b.nets.parameters(), strict=True):
        assert torch.equal(p, q)
    run_cfg = compose(
        [
            "agent=rlpd",
            "env=comblock",
            "env.horizon=3",
            "total_steps=8",
            "agent.num_envs=4",
            "agent.offline_episodes=40",
            "agent.sac.hidden_sizes=[16,16]",
            "eval_episodes=8",
            "progress=false",
            "device=cpu",
            f"run_dir={tmp_path}",
            "tensorboard=false",
        ]
    )
    score = run(run_cfg)
    assert 0.0 <= score <= 1.0


def test_step_sampler_groups_shuffled_data_by_step() -> None:
    from rlsuite.agents.hnpg.agent import StepSampler
    from rlsuite.learners.buffers import OfflineDataset

    env = CombinationLock(horizon=4, noise_std=0.0)
    data = collect_offline(env, 50, seed=0)
    shuffled = OfflineDataset(
        data.data.index(torch.randperm(len(data), generator=torch.Generator().manual_seed(0)))
    )
    sampler = StepSampler(shuffled, 4)
    assert sampler.counts.tolist() == [50] * 4
    batch = sampler.sample(30, torch.Generator().manual_seed(1), F64)
    for h in range(4):
        _, steps = env.decode_latent_and_step(batch["obs"][h].float())
        assert bool((steps == h).all()) and bool((batch["terminated"][h] == (h == 3)).all())
    with pytest.raises(ValueError, match="cover steps"):
        StepSampler(data, 5)


@pytest.mark.slow  # 7-25 s; CI's slow tier runs it (default-tier budget)
def test_rlpd_rounds_per_iteration_change_only_the_bookkeeping() -> None:
    # sac.num_steps rounds (one step + its update) per iteration: the same samples, updates and
    # random stream as one round per iteration; fewer iterations (hook calls, NaN checks).
    from rlsuite.agents.hnpg.rlpd import RLPD, RLPDConfig
    from rlsuite.training import TrainingHooks

    env = CombinationLock(horizon=3)
    calls: dict[int, list[int]] = {}

    def run(rounds: int) -> RLPD:
        class Count(TrainingHooks):
            def on_iteration(self, agent, step, metrics) -> None:
                calls.setdefault(rounds, []).append(step)

        cfg = RLPDConfig(offline_episodes=40, num_envs=2, stop_on_success=False,
                         sac={"hidden_sizes": [16, 16], "num_steps": rounds})
        return RLPD(cfg, env, env.default_params(1), seed=3).learn(30, Count())

    one, five = run(1), run(5)
    assert one.global_step == five.global_step == 30 and one.num_updates == five.num_updates
    for p, q in zip(one.nets.parameters(), five.nets.parameters(), strict=True):
        assert torch.equal(p, q)
    assert one.generator.get_state().equal(five.generator.get_state())
    assert calls[1] == list(range(2, 31, 2)) and calls[5] == [10, 20, 30]


def test_rlpd_nests_the_shared_sac_config_keeping_its_table_2_defaults() -> None:
    """A partial ``sac`` mapping (what library code passes) changes only its own fields: the rest
    stay RLPD's Table 2 values, not SACConfig's defaults."""
    from rlsuite.agents.hnpg.config import RLPDConfig
    from rlsuite.learners.sac import SACConfig

    cfg = RLPDConfig(sac={"hidden_sizes": [64, 64]})
    assert cfg.sac == SACConfig(learning_rate=1e-3, gamma=0.99, tau=0.005, init_alpha=0.1,
                                batch_size=128, hidden_sizes=[64, 64], buffer_size=1_000_000, utd=1.0)
    assert RLPDConfig().sac.hidden_sizes == [256, 256]


def _paper_record(paper, job_tag: str, result: dict, metrics: list | None = None, cpu: float = 0.0):
    from rlsuite.reproduce import Record

    job = next(j for j in paper.plan(quick=False) if j.tag == job_tag)
    timing = [{"wall_s": cpu, "cpu_s": cpu, "commit": "abc"}] if cpu else []
    return Record(job, Path("."), result, metrics or [], timing)


def test_results_page_rows_for_solved_unsolved_and_unfinished_runs(tmp_path: Path) -> None:
    """scripts/papers/hnpg.py renders each run's outcome from its record: samples to success, the
    budget when never solved, how far an interrupted run got, and 'not run' for a missing one."""
    from rlsuite.reproduce import load_paper

    paper = load_paper("hnpg")
    done = {"status": "completed", "global_step": 56_000,
            "metrics": {"eval/success_rate": 0.99, "eval/greedy_success_rate": 1.0,
                        "hnpg/samples_to_success": 56_000.0}}
    budget = {"status": "completed", "global_step": 200_000,
              "metrics": {"eval/success_rate": 0.0, "eval/greedy_success_rate": 0.5,
                          "hnpg/samples_to_success": -1.0}}
    rows = [{"step": 1000, "hnpg/success_rate_ma": 0.0}, {"step": 2000, "hnpg/success_rate_ma": 0.25}]
    records = {
        "hnpg_H5_s0": _paper_record(paper, "hnpg_H5_s0", done, cpu=5.6),
        "hnpg_H5_s1": _paper_record(paper, "hnpg_H5_s1", {**done, "global_step": 60_000, "metrics": {
            **done["metrics"], "hnpg/samples_to_success": 60_000.0}}, cpu=6.0),
        "trpo_H5_s0": _paper_record(paper, "trpo_H5_s0", budget, cpu=20.0),
        "hnpg_H50_s0": _paper_record(paper, "hnpg_H50_s0", {"status": "preempted"}, rows),
    }
    text = paper.render(records, quick=False, out=tmp_path)["samples"]
    lines = {line.split("|")[1].strip() + line.split("|")[2].strip(): line for line in text.splitlines()
             if line.startswith("| hnpg") or line.startswith("| trpo")}
    assert "| 2/5 (3 not run) | 58,000 +- 2,000 | s0: 56,000, s1: 60,000, s2: not run," in lines["hnpg5"]
    # CPU per 1,000 samples: the median of 5.6 / 56 and 6.0 / 60 seconds
    assert "| 200,000 | 0.1 | solves (< 1e6, not readable) |" in lines["hnpg5"]
    assert "| 0/5 (4 not run) | - | s0: > 200,000 (budget), s1: not run," in lines["trpo5"]
    assert "| 0.5 | 200,000 | 0.1 | fails (> 1e8) | [4] |" in lines["trpo5"]
    assert "s0: not complete: 2,000 so far (best success MA 0.25), s1: not run" in lines["hnpg50"]
    assert "| 0/2 (1 not complete, 1 not run) |" in lines["hnpg50"] and "~3e7" in lines["hnpg50"]
    assert "preempted" in text  # the run list marks the run that did not complete
    assert (tmp_path / "hnpg_samples.png").exists() and (tmp_path / "hnpg_curves.png").exists()


def test_a_partly_timed_run_divides_its_cpu_by_the_samples_its_timing_covers(tmp_path: Path) -> None:
    """H=50 seed 0's timing holds only the segment that continued from 9,400,000 samples: its CPU per
    1k samples divides by the 1,244,000 samples of that segment and the run list says so; the same
    tag timed at another commit (a run made again from scratch) is not corrected."""
    from rlsuite.reproduce import load_paper

    paper = load_paper("hnpg")
    solved = {"status": "completed", "global_step": 10_644_000,
              "metrics": {"eval/greedy_success_rate": 0.94, "hnpg/samples_to_success": 10_644_000.0}}
    record = _paper_record(paper, "hnpg_H50_s0", solved, cpu=426.1)
    record.timing[0]["commit"] = "5db4c555c74038797d6f8dca4084e2974ccb9f0c"
    assert paper.module.cpu_per_1k(record) == pytest.approx(426.1 / 1244)
    text = paper.render({"hnpg_H50_s0": record}, quick=False, out=tmp_path)["samples"]
    row = next(line for line in text.splitlines() if line.startswith("| hnpg | 50 |"))
    assert "| 40,000,000 | 0.34 | ~3e7 |" in row
    assert "[1]'s CPU seconds cover only its samples after 9,400,000" in text
    assert "divides by those 1,244,000." in text
    record.timing[0]["commit"] = "abc"
    assert paper.module.cpu_per_1k(record) == pytest.approx(426.1 / 10_644)
    assert "cover only" not in paper.render({"hnpg_H50_s0": record}, quick=False, out=tmp_path)["samples"]


def test_timing_benchmark_compares_cpu_with_the_official_cpu_time_and_refuses_bad_input() -> None:
    bench = load_script("bench_hnpg.py")
    case = {"setup_cpu_s": 0.3, "iter_cpu_s": 0.11, "iter_wall_s": 0.5, "other_cores": 1.5}
    text = bench.markdown({"10": {"backward": case, "parallel": case},
                           "5": {"backward": case, "parallel": case}}, "cmd")
    rows = [line for line in text.splitlines() if line.startswith("| 5") or line.startswith("| 10")]
    # H ascending; the official code's 2.2 CPU s at H=5 against 0.11 CPU s: 20x; no figure at H=10
    assert rows[0] == "| 5 | 0.30 | 0.110 / 0.500 | 0.110 / 0.500 | 2.2 | 20x | 1.5 |"
    assert rows[1] == "| 10 | 0.30 | 0.110 / 0.500 | 0.110 / 0.500 | - | - | 1.5 |"
    with pytest.raises(SystemExit):
        bench.main(["--horizons", "0"])
