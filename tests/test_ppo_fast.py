"""PPO's fast update (closed-form gradients, flat block, fused Adam) against the eager autograd one,
and its building blocks: the hand-written MLP passes and the flat Adam."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import rlsuite.envs as envs
from rlsuite.learners.flat import FlatAdam, FlatParams
from rlsuite.learners.mlp_grad import mlp_backward, mlp_forward, tanh_mlp_layers
from rlsuite.learners.nets import mlp
from rlsuite.learners.ppo import PPO, PPOConfig


def _float64_agent(env_name: str, fast: bool, **config) -> PPO:
    env = envs.make(env_name)
    cfg = PPOConfig(num_steps=32, num_minibatches=4, update_epochs=3, fast_path=fast, **config)
    agent = PPO(cfg, env, env.default_params(8), seed=3)
    agent.model.double()
    # ActorCritic.features casts to float32; the float64 check feeds the observations as they are.
    agent.model.features = lambda obs: obs.reshape(obs.shape[0], -1)
    return agent


def _fixed_batch(agent: PPO, n: int = 256) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(11)
    obs_dim = agent.env.observation_space.shape[0]
    obs = torch.randn(n, obs_dim, generator=g, dtype=torch.float64)
    with torch.no_grad():
        action, log_prob = agent.model.sample(obs, g)
    return {
        "obs": obs,
        "action": action,
        # old log-probs off the current ones, so that some ratios leave the clip range
        "log_prob": log_prob + 0.3 * torch.randn(n, generator=g, dtype=torch.float64),
        "advantage": torch.randn(n, generator=g, dtype=torch.float64),
        "return": torch.randn(n, generator=g, dtype=torch.float64),
    }


@pytest.mark.parametrize("env_name", ["cartpole", "pendulum"])  # categorical, Gaussian head
@pytest.mark.parametrize("extra", [{}, {"ent_coef": 0.05, "norm_adv": False, "vf_coef": 0.7}])
def test_fast_update_equals_the_eager_autograd_update_in_float64(env_name: str, extra: dict) -> None:
    eager, fast = _float64_agent(env_name, False, **extra), _float64_agent(env_name, True, **extra)
    batch = _fixed_batch(eager)
    for agent in (eager, fast):
        agent.policy_generator.manual_seed(7)  # the same minibatch order
    stats_eager = eager._update(batch)
    stats_fast = fast._update(batch)
    assert fast._fast_update is not None and eager._fast_update is None
    for (name, a), b in zip(eager.model.state_dict().items(), fast.model.state_dict().values(),
                            strict=True):
        assert a.dtype == b.dtype == torch.float64
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-9, msg=name)
    assert stats_fast.keys() == stats_eager.keys()
    for key in stats_eager:
        torch.testing.assert_close(stats_fast[key], stats_eager[key], rtol=1e-6, atol=1e-9,
                                   check_dtype=False, msg=key)  # eager: clip_fraction is float32
    # some ratios were clipped, so both branches of the surrogate were exercised
    assert 0 < float(stats_eager["clip_fraction"]) < 1
    state_eager, state_fast = eager.optimizer.state_dict(), fast.optimizer.state_dict()
    for i, s in state_eager["state"].items():
        assert float(state_fast["state"][i]["step"]) == float(s["step"]) == 12
        torch.testing.assert_close(state_fast["state"][i]["exp_avg"], s["exp_avg"],
                                   rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("env_name", ["cartpole", "pendulum"])
def test_fast_and_eager_agree_under_the_zoo_switches_in_float64(env_name: str) -> None:
    # RL Zoo's setting: minibatches given as a size (here 128 of the 256 rows), an annealed clip
    # coefficient passed to the update (0.07: more ratios clipped than at 0.2).
    extra = {"minibatch_size": 128, "anneal_clip": True,
             "schedule_progress": "sb3", "vf_coef": 1.0}
    eager, fast = _float64_agent(env_name, False, **extra), _float64_agent(env_name, True, **extra)
    batch = _fixed_batch(eager)
    for agent in (eager, fast):
        agent.policy_generator.manual_seed(7)
    stats_eager, stats_fast = eager._update(batch, 0.07), fast._update(batch, 0.07)
    for (name, a), b in zip(eager.model.state_dict().items(), fast.model.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-9, msg=name)
    for key in stats_eager:
        torch.testing.assert_close(stats_fast[key], stats_eager[key], rtol=1e-6, atol=1e-9,
                                   check_dtype=False, msg=key)
    assert 0 < float(stats_eager["clip_fraction"]) < 1
    # 3 epochs of 256 / 128 = 2 minibatches: the size, not num_minibatches = 4, set the split
    for agent in (eager, fast):
        assert float(agent.optimizer.state_dict()["state"][0]["step"]) == 6


def test_fast_update_survives_a_cast_and_an_optimizer_reload() -> None:
    # A cast replaces the parameters' storage and load_state_dict the Adam moments: the flat
    # blocks are bound again, and the agent goes on as a freshly loaded one does.
    env = envs.make("cartpole")
    cfg = PPOConfig(num_steps=16, num_minibatches=2, update_epochs=2)
    a = PPO(cfg, env, env.default_params(8), seed=0).learn(256)
    b = PPO(cfg, env, env.default_params(8), seed=1)
    b.learn(128)  # b's fast update is bound to b's own state before the load
    b.load_state_dict(a.state_dict())
    a.learn(512)
    b.learn(512)
    for (name, wa), wb in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(wa, wb), name
    a.model.double()
    a.model.float()  # new storage: FlatParams must notice and rebind
    before = [p.detach().clone() for p in a.model.parameters()]
    a.learn(768)
    assert all(not torch.equal(p, q) for p, q in zip(a.model.parameters(), before, strict=True))


def test_mlp_passes_equal_autograd() -> None:
    torch.manual_seed(0)
    for hidden in ([16, 8], []):
        net = mlp(5, 3, hidden).double()
        x = torch.randn(40, 5, dtype=torch.float64)
        grad_out = torch.randn(40, 3, dtype=torch.float64)
        layers = tanh_mlp_layers(net)
        acts = mlp_forward(layers, x)
        out = net(x)
        torch.testing.assert_close(acts[-1], out.detach(), rtol=1e-12, atol=0)
        out.backward(grad_out)
        weight_grads = [torch.empty_like(m.weight) for m in layers]
        bias_grads = [torch.empty_like(m.bias) for m in layers]
        mlp_backward(layers, acts, grad_out, weight_grads, bias_grads)
        for m, gw, gb in zip(layers, weight_grads, bias_grads, strict=True):
            torch.testing.assert_close(gw, m.weight.grad, rtol=1e-12, atol=1e-14)
            torch.testing.assert_close(gb, m.bias.grad, rtol=1e-12, atol=1e-14)


def test_tanh_mlp_layers_rejects_other_architectures() -> None:
    with pytest.raises(ValueError, match="Linear \\(Tanh Linear\\)"):
        tanh_mlp_layers(mlp(4, 2, [8], activation=nn.ReLU))


def test_flat_adam_steps_as_torch_fused_adam_and_its_state_loads_anywhere() -> None:
    torch.manual_seed(0)
    net_a = mlp(4, 2, [8])
    net_b = copy.deepcopy(net_a)
    opt_a = torch.optim.Adam(net_a.parameters(), lr=3e-3, eps=1e-5, fused=True)
    opt_b = torch.optim.Adam(net_b.parameters(), lr=3e-3, eps=1e-5, fused=True)
    flat = FlatParams(net_b.parameters())
    adam = FlatAdam(opt_b, flat)
    for step in range(5):
        grads = [torch.randn_like(p) for p in net_a.parameters()]
        for p, g in zip(net_a.parameters(), grads, strict=True):
            p.grad = g.clone()
        for view, g in zip(flat.grads, grads, strict=True):
            view.copy_(g)
        opt_a.step()
        adam.step()
        if step == 2:  # halfway, B's optimizer reloads its own saved state (new tensors)
            opt_b.load_state_dict(copy.deepcopy(opt_b.state_dict()))
    for p, q in zip(net_a.parameters(), net_b.parameters(), strict=True):
        # to the last bit but for the fused kernel's tail rounding (see tests/test_flat.py)
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-8)
    # B's saved state (views of the moment blocks, one step counter per parameter) loads into a
    # plain Adam that then steps as A does.
    opt_c = torch.optim.Adam(copy.deepcopy(net_b).parameters(), lr=3e-3, eps=1e-5, fused=True)
    opt_c.load_state_dict(copy.deepcopy(opt_b.state_dict()))
    steps = [s["step"] for s in opt_c.state.values()]
    assert len({id(s) for s in steps}) == len(steps) and {float(s) for s in steps} == {5.0}


def test_flat_clip_scales_to_the_max_norm() -> None:
    net = mlp(3, 1, [4])
    flat = FlatParams(net.parameters())
    flat.grad.copy_(torch.arange(flat.grad.numel(), dtype=torch.float32))
    norm = float(torch.linalg.vector_norm(flat.grad))
    assert float(flat.clip_grad_norm_(0.5)) == pytest.approx(norm)
    assert float(torch.linalg.vector_norm(flat.grad)) == pytest.approx(0.5, rel=1e-5)
    flat.clip_grad_norm_(10.0)  # under the bound: unchanged
    assert float(torch.linalg.vector_norm(flat.grad)) == pytest.approx(0.5, rel=1e-5)


@pytest.mark.parametrize("env_name", ["cartpole", "pendulum"])  # categorical, Gaussian head
def test_the_compiled_minibatch_gradient_equals_the_eager_one(env_name: str) -> None:
    from rlsuite.learners.ppo_fast import COMPILE_MIN_ROWS, FastPPOUpdate

    env = envs.make(env_name)
    agent = PPO(PPOConfig(hidden_sizes=[16, 16], ent_coef=0.01), env, env.default_params(4), seed=5)
    batch = {k: v.float() if v.is_floating_point() else v
             for k, v in _fixed_batch(agent, COMPILE_MIN_ROWS).items()}
    update = FastPPOUpdate(agent.model, agent.optimizer, agent.config)
    x = agent.model.features(batch["obs"])
    with torch.no_grad():
        stats_eager = update._eager_gradient(x, batch, None)
        grad_eager = update.flat.grad.clone()
        update.flat.grad.zero_()
        stats_compiled = update._compiled_gradient(x, batch, None)
    assert update.compiled.kernel._kernel.cache_size() == 1  # it ran compiled, not eagerly
    torch.testing.assert_close(update.flat.grad, grad_eager, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(stats_compiled, stats_eager, rtol=1e-4, atol=1e-6)
    # the clipping coefficient is an input: another value, no new kernel, another gradient
    with torch.no_grad():
        update._compiled_gradient(x, batch, 0.05)
    assert update.compiled.kernel._kernel.cache_size() == 1
    assert not torch.equal(update.flat.grad, grad_eager)
