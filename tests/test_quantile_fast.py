"""QR-DQN's and DηN's fast update (flat parameter blocks, one fused Adam call) against the
per-tensor ``torch.optim.Adam`` it replaces: the same updates in float64 to ~1e-10 after many
steps, the same learning curves in float32 to rounding, and a validated switch."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import rlsuite.envs as envs
from rlsuite import validation as rules
from rlsuite.agents.distributional_dp.config import DetaNConfig
from rlsuite.agents.distributional_dp.deta_n import DetaN
from rlsuite.learners.flat import FlatOptimizer
from rlsuite.learners.qrdqn import QRDQN, QRDQNConfig

SMALL = dict(n_quantiles=16, hidden_sizes=[32, 32], batch_size=32, buffer_size=2000,
             learning_starts=64, num_steps=4, utd=0.25, target_update_interval=8)


def _qrdqn(fast_path: bool, **overrides) -> QRDQN:
    env = envs.make("cartpole")
    cfg = QRDQNConfig(**{**SMALL, **overrides, "fast_path": fast_path})
    return QRDQN(cfg, env, env.default_params(16), seed=0)


def _assert_same_adam(fast: FlatOptimizer, plain: torch.optim.Optimizer, rtol: float, atol: float) -> None:
    sa, sb = fast.state_dict(), plain.state_dict()
    assert sa["state"].keys() == sb["state"].keys()
    for i, entry in sb["state"].items():
        for key, value in entry.items():
            torch.testing.assert_close(sa["state"][i][key].to(value.dtype), value, rtol=rtol,
                                       atol=atol, msg=f"param {i} {key}")


@pytest.mark.parametrize("max_grad_norm", [None, 0.5])
def test_qrdqn_fast_steps_equal_torch_adam_in_float64(max_grad_norm: float | None) -> None:
    fast, plain = _qrdqn(True, max_grad_norm=max_grad_norm), _qrdqn(False, max_grad_norm=max_grad_norm)
    assert isinstance(fast.optimizer, FlatOptimizer)
    assert isinstance(plain.optimizer, torch.optim.Adam)
    for agent in (fast, plain):  # float64: the two Adams then agree far below float32's rounding
        agent.q_net.double()
        agent.target_net.double()
    data = plain.interaction.collect(plain._random_action, 8)
    plain.buffer.add_rollout(data)
    gen = torch.Generator().manual_seed(1)
    batches = [plain.buffer.sample(32, gen) for _ in range(40)]
    for batch in batches:  # 40 steps: target copies at 0, 8, ..., 32
        stats = [agent.gradient_step(batch) for agent in (fast, plain)]
        for agent in (fast, plain):
            agent.num_updates += 1
        torch.testing.assert_close(stats[0]["loss"], stats[1]["loss"], rtol=1e-10, atol=0)
    for (name, a), b in zip(fast.q_net.state_dict().items(), plain.q_net.state_dict().values(), strict=True):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=name)
    _assert_same_adam(fast.optimizer, plain.optimizer, rtol=1e-10, atol=1e-14)


def test_qrdqn_clip_takes_effect_on_the_fast_path() -> None:
    """... and a tight bound does change the update, identically on both paths."""
    runs = {}
    for bound in (None, 1e-3):
        fast, plain = _qrdqn(True, max_grad_norm=bound), _qrdqn(False, max_grad_norm=bound)
        for agent in (fast, plain):
            agent.q_net.double()
            agent.target_net.double()
        plain.buffer.add_rollout(plain.interaction.collect(plain._random_action, 8))
        batch = plain.buffer.sample(32, torch.Generator().manual_seed(2))
        fast.gradient_step(batch)
        plain.gradient_step(batch)
        grads = [torch.cat([p.grad.reshape(-1) for p in agent.q_net.parameters()]) for agent in (fast, plain)]
        torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-14)
        runs[bound] = grads[0]
    assert torch.linalg.vector_norm(runs[None]) > 1e-2
    torch.testing.assert_close(torch.linalg.vector_norm(runs[1e-3]), torch.tensor(1e-3, dtype=torch.float64),
                               rtol=1e-5, atol=0)


def test_qrdqn_fast_run_follows_the_torch_adam_run_and_resumes_exactly() -> None:
    fast, plain = _qrdqn(True), _qrdqn(False)
    fast.learn(640)
    plain.learn(640)
    assert fast.num_updates == plain.num_updates > 100
    for (name, a), b in zip(fast.q_net.state_dict().items(), plain.q_net.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)
    # A checkpoint of the fast agent loads into a fresh one, whose later steps are the same bits.
    clone = _qrdqn(True)
    clone.load_state_dict(fast.state_dict())
    fast.learn(960)
    clone.learn(960)
    for a, b in zip(fast.q_net.parameters(), clone.q_net.parameters(), strict=True):
        assert torch.equal(a, b)


def test_deta_n_fast_steps_equal_torch_adam_in_float64() -> None:
    env = envs.make("stockgrid")
    agents = []
    for fast_path in (True, False):
        cfg = DetaNConfig(hidden_sizes=[32, 32], n_quantiles=8, batch_size=32, learning_starts=32,
                          relabel_fraction=0.5, max_grad_norm=0.5, fast_path=fast_path)
        agent = DetaN(cfg, env, env.default_params(8), seed=0)
        agent.q_net.double()
        agent.target_net.double()
        agents.append(agent)
    fast, plain = agents
    assert isinstance(fast.optimizer, FlatOptimizer) and isinstance(plain.optimizer, torch.optim.Adam)
    for agent in agents:  # both, so their (identically seeded) generators stay in step
        agent.buffer.add_rollout(agent.interaction.collect(agent._random_action, 16))
    batches = [plain.buffer.sample(32, torch.Generator().manual_seed(3)) for _ in range(30)]
    for batch in batches:  # relabelling draws from each agent's own generator
        fast.gradient_step(batch)
        plain.gradient_step(batch)
    for a, b in zip(fast.q_net.parameters(), plain.q_net.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    _assert_same_adam(fast.optimizer, plain.optimizer, rtol=1e-10, atol=1e-14)


def test_flat_optimizer_clips_like_clip_grad_norm() -> None:
    torch.manual_seed(0)
    nets = [nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)).double() for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())
    flat = FlatOptimizer(torch.optim.Adam(nets[0].parameters(), fused=True))
    x = torch.randn(7, 3, dtype=torch.float64)
    flat.zero_grad()
    (nets[0](x) ** 2).sum().backward()
    (nets[1](x) ** 2).sum().backward()
    n0 = flat.clip_grad_norm_(0.1)
    n1 = nn.utils.clip_grad_norm_(nets[1].parameters(), 0.1)
    torch.testing.assert_close(n0, n1, rtol=1e-12, atol=0)
    for a, b in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=0)


@pytest.mark.parametrize("make", [lambda v: QRDQNConfig(fast_path=v), lambda v: DetaNConfig(fast_path=v)])
def test_fast_path_flag_is_validated(make) -> None:
    with pytest.raises(rules.ConfigError, match="fast_path"):
        make("yes")


def test_relu_mlp_passes_match_autograd() -> None:
    from rlsuite.learners.mlp_grad import mlp_backward, mlp_forward, mlp_layers
    from rlsuite.learners.nets import mlp

    torch.manual_seed(0)
    net = mlp(5, 6, [16, 8], activation=nn.ReLU).double()
    x = torch.randn(40, 5, dtype=torch.float64)
    grad_out = torch.randn(40, 6, dtype=torch.float64)
    layers = mlp_layers(net, "relu")
    acts = mlp_forward(layers, x, "relu")
    out = net(x)
    assert torch.equal(acts[-1], out)  # the same ops as nn.Linear + ReLU
    assert bool((acts[1] == 0).any())  # some units are off: the ReLU's derivative matters
    out.backward(grad_out)
    weight_grads = [torch.empty_like(m.weight) for m in layers]
    bias_grads = [torch.empty_like(m.bias) for m in layers]
    mlp_backward(layers, acts, grad_out, weight_grads, bias_grads, "relu")
    for m, gw, gb in zip(layers, weight_grads, bias_grads, strict=True):
        torch.testing.assert_close(gw, m.weight.grad, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(gb, m.bias.grad, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="ReLU"):
        mlp_layers(mlp(5, 6, [16]), "relu")  # a tanh MLP is not a ReLU one
    with pytest.raises(ValueError, match="activation"):
        mlp_layers(net, "gelu")


def test_qrdqn_fast_step_runs_without_an_autograd_graph() -> None:
    agent = _qrdqn(True)
    agent.buffer.add_rollout(agent.interaction.collect(agent._random_action, 8))
    batch = agent.buffer.sample(32, torch.Generator().manual_seed(0))
    before = [p.detach().clone() for p in agent.q_net.parameters()]
    stats = agent.gradient_step(batch)
    assert not stats["loss"].requires_grad and agent._fast_step is not None
    assert all(not torch.equal(a, p) for a, p in zip(before, agent.q_net.parameters(), strict=True))
    flat = agent.optimizer.flat
    assert all(p.grad is g for p, g in zip(flat.params, flat.grads, strict=True))
