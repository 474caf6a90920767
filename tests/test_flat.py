"""Flat-block optimizers in the autograd learners: the same numbers as torch's Adam, to rounding.

torch's fused Adam kernel rounds a tensor's vectorised body and its scalar tail differently, so a
one-element bias stepped alone (its own tail) and inside the block (a vector lane) can differ in the
last bit; over many SAC updates such a bit grows, so the comparison is over a short run."""

from __future__ import annotations

import copy

import pytest
import torch

import rlsuite.envs as envs
from rlsuite.learners.flat import FlatOptimizer
from rlsuite.learners.sac import SAC, SACConfig


def _sac() -> SAC:
    env = envs.make("pendulum")
    cfg = SACConfig(hidden_sizes=[32, 32], learning_starts=64, buffer_size=4096)
    return SAC(cfg, env, env.default_params(4), seed=0)


@pytest.mark.slow  # 7-25 s; CI's slow tier runs it (default-tier budget)
def test_sac_with_flat_optimizers_learns_as_with_torch_adam() -> None:
    flat, plain = _sac(), _sac()
    assert isinstance(flat.opt.actor, FlatOptimizer) and isinstance(flat.opt.critic, FlatOptimizer)
    plain.opt.actor, plain.opt.critic = plain.opt.actor.optimizer, plain.opt.critic.optimizer
    flat.learn(200)
    plain.learn(200)
    assert flat.num_updates == plain.num_updates > 100
    for (name, a), b in zip(flat.nets.state_dict().items(), plain.nets.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7, msg=name)
    for part in ("actor", "critic"):
        sa, sb = getattr(flat.opt, part).state_dict(), getattr(plain.opt, part).state_dict()
        for i, entry in sb["state"].items():
            for key, value in entry.items():
                # The absolute tolerance scales with the tensor: a moment near zero inherits the
                # last-bit differences of its neighbours' updates (seen on one CPU: 3.7e-9 on an
                # exp_avg of scale 0.012, where a wrong beta or a skipped step is off by ~1e-3).
                scale = value.abs().max().item() if value.is_floating_point() else 0.0
                torch.testing.assert_close(sa["state"][i][key], value, rtol=1e-5, atol=1e-6 * scale,
                                           msg=f"{part} {i} {key}")


@pytest.mark.slow
def test_sac_with_flat_optimizers_survives_a_deep_copy_and_a_reload() -> None:
    a = _sac().learn(300)
    b = copy.deepcopy(a)  # standalone parameters: the copy's blocks are bound again
    c = _sac()
    c.load_state_dict(a.state_dict())
    for agent in (a, b, c):
        agent.learn(500)
    for x, y, z in zip(a.nets.parameters(), b.nets.parameters(), c.nets.parameters(), strict=True):
        assert torch.equal(x, y) and torch.equal(x, z)


def test_loading_a_live_optimizer_state_copies_its_tensors() -> None:
    """torch's Adam keeps a loaded tensor that already has the parameter's dtype and device and
    steps it in place: without the copy in load_optimizer, stepping ``b`` after loading ``a``'s
    live state would advance ``a``'s moments and step count too."""
    from rlsuite.learners.optim import load_optimizer

    p, q = torch.nn.Parameter(torch.randn(3)), torch.nn.Parameter(torch.randn(3))
    a, b = torch.optim.Adam([p], lr=0.1), torch.optim.Adam([q], lr=0.1)
    p.grad = torch.ones(3)
    a.step()
    before = copy.deepcopy(a.state_dict())
    load_optimizer(b, a.state_dict(), 0.1)
    q.grad = torch.ones(3)
    b.step()
    after = a.state_dict()["state"][0]
    assert all(torch.equal(after[k], before["state"][0][k]) for k in ("step", "exp_avg", "exp_avg_sq"))
    assert float(b.state_dict()["state"][0]["step"]) == 2.0

