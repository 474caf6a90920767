"""DηN's written-out gradient step (rlsuite.agents.distributional_dp.deta_n_fast) against the eager
one: parity over several updates from the same state, the categorical head's fallback to the
eager step, and ``fast_path=False`` keeping the eager step untouched."""

from __future__ import annotations

import pytest
import torch
from test_deta_n import _same  # the recursive bit-for-bit comparison of states

from rlsuite.agents.distributional_dp import deta_n_fast
from rlsuite.agents.distributional_dp.deta_n import DetaN, DetaNConfig, deta_n_loss
from rlsuite.envs.tabular.stock_grid import stock_grid_env
from rlsuite.learners.nets import polyak_update
from rlsuite.learners.qrdqn import clipped_step


def _agent(fast_path: bool, **overrides: object) -> DetaN:
    """A small DηN on the stochastic stock grid with its replay buffer filled by random actions
    (the same rows for the same seed, whatever ``fast_path``)."""
    env = stock_grid_env(stochastic=True)
    cfg = DetaNConfig(hidden_sizes=[32, 32], n_quantiles=16, batch_size=32, buffer_size=1000,
                      relabel_fraction=0.75, fast_path=fast_path, **overrides)
    agent = DetaN(cfg, env, env.default_params(8), seed=3)
    for _ in range(8):
        agent.buffer.add_rollout(agent.interaction.collect(agent._random_action, 4))
    return agent


def _updates(agent: DetaN, n: int) -> list[tuple[object, dict[str, torch.Tensor]]]:
    """``n`` gradient steps on batches sampled from the agent's own buffer and generator;
    returns ``(batch, stats)`` per step."""
    out = []
    for _ in range(n):
        batch = agent.buffer.sample(agent.config.batch_size, agent.policy_generator)
        out.append((batch, agent.gradient_step(batch)))
    return out


def _close(a: object, b: object, tol: float) -> None:
    """Nested tensors equal in dtype and shape and within ``tol`` (relative to the scale)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape
        if a.is_floating_point():
            scale = max(1.0, float(b.abs().max())) if b.numel() else 1.0
            assert torch.allclose(a, b, rtol=tol, atol=tol * scale), float((a - b).abs().max())
        else:
            assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys()
        for k in a:
            _close(a[k], b[k], tol)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _close(x, y, tol)
    else:
        assert a == b


@pytest.mark.parametrize("overrides", [
    {"kappa": 1.0, "objective": "cvar"},
    {"kappa": 0.0, "objective": "target", "time_one_hot": True},
    {"kappa": 0.0, "objective": "cvar", "max_grad_norm": 0.05},  # every step clipped
    {"kappa": 1.0, "objective": "target", "time_one_hot": True, "max_grad_norm": None},
], ids=["kappa1", "kappa0_one_hot", "kappa0_clipped", "kappa1_one_hot_noclip"])
def test_fast_step_matches_the_eager_step_over_several_updates(overrides: dict) -> None:
    """From the same state the written-out step and the eager one (``fast_path=False``: autograd,
    ``torch.optim.Adam``) sample the same batches (same generator states throughout) and reach the
    same online and target weights, Adam moments and step counts, and loss statistics, to float32
    rounding over 12 updates."""
    fast, eager = _agent(True, **overrides), _agent(False, **overrides)
    _close(fast.q_net.state_dict(), eager.q_net.state_dict(), 0.0)  # the same start
    fast_rows, eager_rows = _updates(fast, 12), _updates(eager, 12)
    assert isinstance(fast._fast_step, deta_n_fast.FastDetaNStep) and eager._fast_step is None
    for (b_fast, s_fast), (b_eager, s_eager) in zip(fast_rows, eager_rows, strict=True):
        assert torch.equal(b_fast.obs, b_eager.obs) and torch.equal(b_fast.action, b_eager.action)
        _close(s_fast, s_eager, 1e-5)
    assert torch.equal(fast.policy_generator.get_state(), eager.policy_generator.get_state())
    _close(fast.q_net.state_dict(), eager.q_net.state_dict(), 1e-5)
    _close(fast.target_net.state_dict(), eager.target_net.state_dict(), 1e-5)
    _close(fast.optimizer.state_dict()["state"], eager.optimizer.state_dict()["state"], 1e-4)
    # the weights did move (the comparison is not between two untrained networks)
    moved = _agent(False, **overrides).q_net.state_dict()
    assert any(not torch.allclose(moved[k], v) for k, v in eager.q_net.state_dict().items())


def _eager_reference(agent: DetaN, n: int) -> list[dict[str, torch.Tensor]]:
    """DηN's eager update written out here (relabel, :func:`deta_n_loss`, backward, clipped Adam
    step, Polyak), with the agent's own optimizer, on batches from its buffer."""
    from rlsuite.agents.distributional_dp.deta_n import relabel_stocks

    cfg, rows = agent.config, []
    for _ in range(n):
        batch = agent.buffer.sample(cfg.batch_size, agent.policy_generator)
        batch = relabel_stocks(batch, agent.stock_col, cfg.gamma, cfg.stock_low, cfg.stock_high,
                               cfg.relabel_fraction, agent.policy_generator, agent.env._clip,
                               agent.stock_col + 1)
        loss, stats = deta_n_loss(agent.q_net, agent.target_net, batch, agent.objective,
                                  agent.stock_col, cfg.gamma, agent.head, cfg.include_time)
        agent.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clipped_step(agent.optimizer, agent.q_net, cfg.max_grad_norm)
        polyak_update(agent.q_net.parameters(), agent.target_net.parameters(), cfg.tau)
        rows.append(stats)
    return rows


def test_categorical_head_falls_back_to_exactly_the_eager_step() -> None:
    """With the categorical head the fast path does not apply: ``gradient_step`` is the eager
    update (with the flat Adam), bit for bit."""
    overrides = {"representation": "categorical", "n_atoms": 11}
    agent, reference = _agent(True, **overrides), _agent(True, **overrides)
    assert not deta_n_fast.fast_step_applies(agent.q_net, agent.head, agent.optimizer)
    rows = [stats for _, stats in _updates(agent, 6)]
    assert agent._fast_step is False
    assert _same(rows, _eager_reference(reference, 6))
    assert _same(agent.state_dict(), reference.state_dict())


def test_fast_step_applies_only_to_float32_cpu_relu_quantile_networks() -> None:
    agent = _agent(True)
    assert deta_n_fast.fast_step_applies(agent.q_net, agent.head, agent.optimizer)
    eager = _agent(False)
    assert not deta_n_fast.fast_step_applies(eager.q_net, eager.head, eager.optimizer)  # torch Adam
    agent.q_net.double()
    assert not deta_n_fast.fast_step_applies(agent.q_net, agent.head, agent.optimizer)


def test_fast_path_false_uses_nothing_new(monkeypatch: pytest.MonkeyPatch) -> None:
    """``fast_path=False`` never builds or asks about the written-out step, and its updates are the
    eager update bit for bit (today's numbers)."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("fast_path=False touched deta_n_fast")

    monkeypatch.setattr(deta_n_fast, "FastDetaNStep", refuse)
    monkeypatch.setattr(deta_n_fast, "fast_step_applies", refuse)
    agent, reference = _agent(False), _agent(False)
    rows = [stats for _, stats in _updates(agent, 6)]
    assert agent._fast_step is None
    assert _same(rows, _eager_reference(reference, 6))
    assert _same(agent.state_dict(), reference.state_dict())
