"""The online learners on each device they claim: PPO's fast path, SAC and QR-DQN on CUDA.

Every test takes ``device``: the ``cpu`` variant runs in the default tier (it proves the test's
logic on any machine), the ``cuda`` one is marked ``gpu`` and skipped without CUDA
(``scripts/gpu/check.sh`` runs them on a GPU machine). Where a region must not synchronise with
the host, :func:`checked_region` guards it with :func:`~rlsuite.engine.syncguard.no_host_sync`
and, on CUDA, with ``torch.cuda.set_sync_debug_mode("error")`` as well (the intended syncs,
marked :func:`~rlsuite.engine.syncguard.host_sync_point`, suspend the latter).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

import rlsuite.envs as envs
from rlsuite.core import autoreset
from rlsuite.engine import syncguard
from rlsuite.engine.evaluate import evaluate
from rlsuite.engine.syncguard import host_sync_point, no_host_sync
from rlsuite.learners.ppo import PPO, PPOConfig
from rlsuite.learners.qrdqn import QRDQN, QRDQNConfig
from rlsuite.learners.sac import SAC, SACConfig
from rlsuite.training import TrainingHooks

CUDA = pytest.param("cuda", marks=[
    pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")])
DEVICES = ["cpu", CUDA]


@contextmanager
def checked_region(device: str) -> Iterator[None]:
    """No host synchronisation inside: :func:`no_host_sync` everywhere, CUDA's own sync debug
    mode ``"error"`` too on a CUDA device."""
    with no_host_sync():
        if torch.device(device).type != "cuda":
            yield
            return
        torch.cuda.set_sync_debug_mode("error")
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode("default")


class Record(TrainingHooks):
    """Keeps each iteration's metrics (host floats)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_iteration(self, agent, step, metrics) -> None:
        self.rows.append(dict(metrics))


def _finite(rows: list[dict[str, float]]) -> bool:
    return all(math.isfinite(v) for row in rows for k, v in row.items() if k != "time/fps")


def _copies(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _on(module: torch.nn.Module, device: str) -> bool:
    return all(p.device.type == device for p in module.parameters())


def _ppo(device: str, monkeypatch) -> tuple[PPO, object]:
    """A fast-path PPO on ``device``'s CartPole, 16 copies, 32-step rollouts. On CPU the device
    path (resets by ``torch.where``, as on CUDA): the CPU reset pool reads its cursor on the host
    by design. On CUDA the patch changes nothing."""
    monkeypatch.setattr(autoreset, "uses_pool", lambda _device: False)
    env = envs.make("cartpole", device=device)
    agent = PPO(PPOConfig(num_steps=32), env, env.default_params(16), seed=0)
    assert agent.config.fast_path
    return agent, env


@pytest.mark.parametrize("device", DEVICES)
def test_ppo_fast_path_trains_on_the_device_and_its_updates_never_sync(
    device: str, monkeypatch
) -> None:
    agent, _ = _ppo(device, monkeypatch)
    initial = _copies(agent.model)
    # Every update after the first (which builds and compiles the fast update) runs checked: the
    # iteration's one host sync is the bookkeeping after the update, not inside it.
    update, updated = agent._update, []  # updated: the iterations whose update ran

    def checked_update(flat, clip=None):
        updated.append(agent.iteration)
        if len(updated) == 1:
            return update(flat, clip)
        with checked_region(device):
            return update(flat, clip)

    monkeypatch.setattr(agent, "_update", checked_update)
    record = Record()
    agent.learn(3 * 16 * 32, record)  # three iterations of 16 copies x 32 steps
    assert updated == [0, 1, 2] and agent.global_step == 3 * 16 * 32
    assert len(record.rows) == 3 and _finite(record.rows)
    assert _on(agent.model, device)
    assert all(not torch.equal(a, b) for a, b in zip(initial, _copies(agent.model), strict=True))


@pytest.mark.parametrize("device", DEVICES)
def test_ppo_fast_path_collects_and_evaluates_without_host_sync(device: str, monkeypatch) -> None:
    agent, env = _ppo(device, monkeypatch)
    params = env.default_params(16)
    policy, greedy = agent.rollout_policy(), agent.greedy_policy()
    agent.interaction.collect(policy, 32)  # compile both kernels outside the checked regions
    evaluate(greedy, env, params, 1, env.make_generator(3))
    regions = {
        "collect": lambda: agent.interaction.collect(agent.rollout_policy(), 32),
        "evaluate": lambda: evaluate(greedy, env, params, 1, env.make_generator(3)),
    }
    out, failed = {}, {}
    for name, region in regions.items():  # each region checked alone: a report names them all
        try:
            with checked_region(device):
                out[name] = region()
        except Exception as error:  # noqa: BLE001 (any failure is reported with its region)
            failed[name] = f"{type(error).__name__}: {error}"
    assert not failed, failed
    data, result = out["collect"], out["evaluate"]
    assert data.obs.device.type == device and tuple(data.obs.shape) == (32, 16, 4)
    assert result.returns.device.type == device and tuple(result.returns.shape) == (16, 1)
    # CartPole pays 1 per step, the terminating one included: a return is its episode's length.
    assert bool((result.lengths >= 1).all())
    assert torch.equal(result.returns, result.lengths.float())


@pytest.mark.parametrize("device", DEVICES)
def test_sac_takes_its_updates_on_the_device(device: str) -> None:
    env = envs.make("pendulum", device=device)
    cfg = SACConfig(hidden_sizes=[16, 16], batch_size=32, learning_starts=16, num_steps=4)
    agent = SAC(cfg, env, env.default_params(2), seed=0)
    initial = _copies(agent.nets)
    record = Record()
    agent.learn(96, record)  # 12 iterations of 2 copies x 4 steps; utd 1 after 16 steps
    assert agent.num_updates == 96 - 16 and len(record.rows) == 12 and _finite(record.rows)
    assert _on(agent.nets, device)
    assert any(not torch.equal(a, b) for a, b in zip(initial, _copies(agent.nets), strict=True))
    obs = torch.zeros(3, 3, device=device)
    action = agent.act(obs, deterministic=True)
    assert action.device.type == device and bool((action.abs() <= 2).all())


@pytest.mark.parametrize("device", DEVICES)
def test_qrdqn_takes_its_updates_on_the_device(device: str) -> None:
    env = envs.make("cartpole", device=device)
    cfg = QRDQNConfig(n_quantiles=16, hidden_sizes=[32, 32], batch_size=32, buffer_size=2000,
                      learning_starts=64, num_steps=4, utd=0.25, target_update_interval=8)
    agent = QRDQN(cfg, env, env.default_params(16), seed=0)
    initial = _copies(agent.q_net)
    record = Record()
    agent.learn(640, record)  # 10 iterations of 16 copies x 4 steps; utd 0.25 after 64 steps
    assert agent.num_updates == (640 - 64) // 4 and len(record.rows) == 10
    assert _finite(record.rows) and record.rows[-1]["train/n_updates"] == agent.num_updates
    assert _on(agent.q_net, device)
    assert any(not torch.equal(a, b) for a, b in zip(initial, _copies(agent.q_net), strict=True))
    action = agent.act(torch.zeros(5, 4, device=device))
    assert action.device.type == device and bool(((action >= 0) & (action < 2)).all())


def test_host_sync_point_suspends_cuda_sync_debug_mode_and_restores_it(monkeypatch) -> None:
    # What the CUDA variants above rely on, checked here without a GPU: inside a marked sync
    # CUDA's debug mode is off; after it, the mode that was set is back.
    mode, calls = [2], []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_sync_debug_mode", lambda: mode[0])

    def set_mode(value) -> None:
        calls.append(value)
        mode[0] = value

    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", set_mode)
    with host_sync_point():
        assert mode[0] == 0
        with host_sync_point():  # nested: the inner one finds the mode off and leaves it
            assert mode[0] == 0
        assert mode[0] == 0
    assert mode[0] == 2 and calls == [0, 2]
    mode[0] = 0
    with host_sync_point():
        pass
    assert calls == [0, 2]  # mode "default": nothing set
    # Without a CUDA context nothing is queried (a CPU-only run pays one cheap check).
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_sync_debug_mode", lambda: pytest.fail("queried"))
    with host_sync_point():
        assert syncguard._ALLOWED[0] == 1
    assert syncguard._ALLOWED[0] == 0
