"""``rollout/ep_rew_mean`` is the mean return of the last 100 completed episodes in every agent
(SB3's ``stats_window_size``), HNPG and ECRM included."""

from __future__ import annotations

import pytest
import torch

import rlsuite.agents.ecrm.agent as ecrm_agent
from rlsuite.agents.ecrm.agent import ECRM
from rlsuite.agents.ecrm.config import ECRMConfig
from rlsuite.agents.hnpg import HNPG, HNPGConfig
from rlsuite.engine.episode_window import EPISODE_WINDOW, EpisodeWindow
from rlsuite.envs.combination_lock import CombinationLock
from rlsuite.envs.tabular import TabularEnv, random_mdp


class Record:
    """Training hooks that keep each iteration's metrics."""

    def __init__(self) -> None:
        self.metrics: list[dict[str, float]] = []

    def on_iteration(self, agent, step: int, metrics: dict[str, float]) -> None:
        self.metrics.append(dict(metrics))


def _window_means(returns_per_iteration: list[list[float]]) -> list[float]:
    """The expected tag after each iteration: the mean of the last 100 returns so far."""
    seen: list[float] = []
    out = []
    for returns in returns_per_iteration:
        seen += returns
        last = seen[-EPISODE_WINDOW:]
        out.append(sum(last) / len(last))
    return out


def test_window_keeps_the_last_100_episodes() -> None:
    window = EpisodeWindow()
    assert window.metrics() == {}  # nothing logged before the first episode ends
    window.add(torch.arange(1.0, 61.0), torch.full((60,), 5))
    m = window.add([float(k) for k in range(61, 151)], [7] * 90)
    assert m["rollout/ep_rew_mean"] == sum(range(51, 151)) / 100 == 100.5
    assert m["rollout/ep_len_mean"] == (10 * 5 + 90 * 7) / 100
    restored = EpisodeWindow()
    restored.load_state_dict(window.state_dict())
    assert restored.metrics() == m
    with pytest.raises(ValueError, match="3 episode returns but 2 lengths"):
        window.add([1.0, 2.0, 3.0], [1, 2])
    with pytest.raises(ValueError, match="size must be >= 1, got 0"):
        EpisodeWindow(0)


def test_hnpg_reports_the_100_episode_window() -> None:
    env = CombinationLock(horizon=3)
    agent = HNPG(HNPGConfig(offline_episodes=300, batch_steps=60, eval_episodes=4), env,
                 env.default_params(1), seed=0)
    per_iteration: list[list[float]] = []
    collect = agent.interaction.collect

    def recording_collect(policy, num_steps):
        data = collect(policy, num_steps)
        per_iteration.append(data.finished_episodes()[0].double().tolist())
        return data

    agent.interaction.collect = recording_collect
    hooks = Record()
    agent.learn(60 * 7, hooks)  # 20 episodes per iteration: the window slides after the fifth
    assert [len(r) for r in per_iteration] == [20] * 7
    assert len({r for rs in per_iteration for r in rs}) > 1  # not a constant sequence
    logged = [m["rollout/ep_rew_mean"] for m in hooks.metrics]
    assert logged == pytest.approx(_window_means(per_iteration), rel=1e-12)
    # the per-iteration mean, which HNPG logged before, differs once the window holds more
    assert logged[-1] != pytest.approx(sum(per_iteration[-1]) / 20, rel=1e-9)
    assert all(m["rollout/ep_len_mean"] == 3.0 for m in hooks.metrics)


def test_ecrm_reports_the_100_episode_window(monkeypatch) -> None:
    mdp = random_mdp(3, 2, 2, seed=0, gamma=0.9, horizon=4, terminal_prob=0.2)
    env = TabularEnv(mdp)
    agent = ECRM(ECRMConfig(variant="actor_critic"), env, env.default_params(16), seed=3)
    per_iteration: list[list[float]] = []
    lengths: list[list[float]] = []
    collect = ecrm_agent.collect_first_episodes

    def recording_collect(*args, **kwargs):
        ep = collect(*args, **kwargs)
        per_iteration.append(ep.returns().double().tolist())
        lengths.append(ep.valid.sum(0).double().tolist())
        return ep

    monkeypatch.setattr(ecrm_agent, "collect_first_episodes", recording_collect)
    hooks = Record()
    while len(hooks.metrics) < 8:  # 16 episodes per iteration: the window slides after the 7th
        agent.learn(agent.global_step + 1, hooks)
    assert len(per_iteration) == len(hooks.metrics) == 8
    assert len({r for rs in per_iteration for r in rs}) > 1
    logged = [m["rollout/ep_rew_mean"] for m in hooks.metrics]
    assert logged == pytest.approx(_window_means(per_iteration), rel=1e-12)
    assert [m["rollout/ep_len_mean"] for m in hooks.metrics] == pytest.approx(
        _window_means(lengths), rel=1e-12)
    # the window survives a checkpoint round trip
    fresh = ECRM(ECRMConfig(variant="actor_critic"), env, env.default_params(16), seed=99)
    fresh.load_state_dict(agent.state_dict())
    assert fresh.interaction.episodes.metrics()["rollout/ep_rew_mean"] == pytest.approx(logged[-1])
