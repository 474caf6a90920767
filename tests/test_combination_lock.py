"""The continuous combination lock (HNPG's benchmark) and its epsilon-greedy offline data."""

from __future__ import annotations

import math

import pytest
import torch

import rlsuite.envs as envs
from rlsuite.agents.hnpg.offline_data import collect_offline
from rlsuite.core import tree
from rlsuite.core.checker import check_env
from rlsuite.envs.combination_lock import (
    CombinationLock,
    hadamard,
    observation_dim,
)


def _lock(horizon: int, **kw) -> tuple[CombinationLock, object]:
    env = CombinationLock(horizon=horizon, **kw)
    return env, env.default_params(1)


@pytest.mark.parametrize(("horizon", "dim"), [(5, 16), (10, 16), (15, 32), (30, 64), (50, 64), (100, 128)])
def test_observation_size_is_the_official_power_of_two(horizon: int, dim: int) -> None:
    env = envs.make("comblock", horizon=horizon)
    assert observation_dim(horizon) == dim and env.observation_space.shape == (dim,)
    obs, _ = env.reset(env.default_params(3), env.make_generator(0))
    assert obs.shape == (3, dim) and obs.dtype == torch.float32
    # honest spaces: unbounded, because the observations (+-2 plus noise) and actions are
    assert torch.isinf(env.observation_space.low).all() and torch.isinf(env.action_space.high).all()


def test_hadamard_is_sylvesters_matrix() -> None:
    h = hadamard(4)
    assert h.tolist() == [[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]]
    assert torch.equal(hadamard(16) @ hadamard(16).T, 16 * torch.eye(16))


def test_zero_noise_recovers_the_one_hot_exactly() -> None:
    env = CombinationLock(horizon=5, noise_std=0.0)
    params = env.default_params(64)
    gen = env.make_generator(0)
    obs, state = env.reset(params, gen)
    action_gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        v = env.decode(obs)
        want = torch.zeros(64, env.obs_dim)
        want[torch.arange(64), state.latent] += 1
        want[torch.arange(64), 3 + state.h] += 1
        assert torch.equal(v, want)
        step = env.step(state, torch.randn(64, 10, generator=action_gen), params, gen)
        obs, state = step.obs, step.state
    # the terminal observation carries h = H and the final latent state
    fv = env.decode(step.final_obs)
    assert torch.equal(fv[:, 3 + 5], torch.ones(64)) and torch.equal(fv[:, 3:8].sum(1), torch.zeros(64))


def test_noise_has_the_official_scale() -> None:
    env = CombinationLock(horizon=5)
    obs, state = env.reset(env.default_params(20000), env.make_generator(0))
    v = env.decode(obs)
    clean = torch.zeros_like(v)
    clean[torch.arange(20000), state.latent] += 1
    clean[torch.arange(20000), 3] += 1
    noise = v - clean
    assert noise[:, :8].std().item() == pytest.approx(0.1, rel=0.02)  # first H + 3 coordinates
    assert noise[:, 8:].abs().max().item() < 1e-6  # rounding only: no noise past H + 3
    # each observed coordinate carries std 0.1 * sqrt(H + 3)
    assert (obs - clean @ env.rotation).std().item() == pytest.approx(0.1 * math.sqrt(8), rel=0.02)


def test_uniform_policy_succeeds_with_probability_ten_to_minus_h() -> None:
    # Zero action vectors make the temperature softmax exactly uniform over the 10 latent actions.
    env = CombinationLock(horizon=3)
    n = 400_000
    params = env.default_params(n)
    gen = env.make_generator(3)
    _, state = env.reset(params, gen)
    total = torch.zeros(n)
    for _ in range(3):
        step = env.step(state, torch.zeros(n, 10), params, gen)
        total += step.reward
        state = step.state
    assert bool(step.terminated.all())
    successes = int((step.reward >= 1).sum())
    assert abs(successes - 400) < 4 * math.sqrt(400)  # 1e-3 +- 4 sigma
    # return = 1 w.p. 1e-3, else 0.1 w.p. 1/2: mean 0.05 + 0.95e-3, std ~0.058 per episode
    assert total.mean().item() == pytest.approx(0.05 + 0.95e-3, abs=4 * 0.058 / math.sqrt(n))


def test_latent_action_follows_the_temperature_softmax() -> None:
    env = CombinationLock(horizon=2)
    n = 200_000
    params = env.default_params(n)
    a = torch.linspace(0.0, 0.3, 10)
    probs = torch.softmax(a / 0.1, 0)
    chosen = env.latent_action(a.expand(n, 10), params, env.make_generator(0))
    freq = torch.bincount(chosen, minlength=10).float() / n
    assert torch.allclose(freq, probs, atol=4 * torch.sqrt(probs * (1 - probs) / n).max().item())


def _run_fixed(env: CombinationLock, params, wrong_at: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One episode per copy; correct actions (logit 100) except a wrong one at step ``wrong_at``."""
    gen = env.make_generator(0)
    obs, state = env.reset(params, gen)
    b = params.p_switch.shape[0]
    rewards = []
    for h in range(env.horizon):
        target = env.correct_action(state, params)
        if h == wrong_at:
            target = (target + 1) % 10
        step = env.step(state, 100.0 * torch.nn.functional.one_hot(target, 10).float(), params, gen)
        rewards.append(step.reward)
        state = step.state
    assert rewards[0].shape == (b,)
    return torch.stack(rewards), step.terminated


@pytest.mark.parametrize(
    ("mode", "dense", "wrong_at", "expected"),
    [
        ("final", False, None, [0, 0, 0, 1]),
        ("final", False, 1, [0, 0, 0, 0.1]),  # official: anti-reward only at the last step
        ("final", False, 3, [0, 0, 0, 0.1]),
        ("transition", False, None, [0, 0, 0, 1]),
        ("transition", False, 1, [0, 0.1, 0, 0]),  # paper/Hy-Q: paid on falling into C
        ("transition", False, 3, [0, 0, 0, 0.1]),
        ("final", True, None, [0.1, 0.1, 0.1, 1]),
        ("final", True, 2, [0.1, 0.1, 0, 0]),
    ],
)
def test_rewards_by_hand(mode: str, dense: bool, wrong_at: int | None, expected: list[float]) -> None:
    env = CombinationLock(horizon=4, reward_mode=mode, dense=dense, anti_reward_prob=1.0, seed=7)
    rewards, terminated = _run_fixed(env, env.default_params(16), wrong_at)
    assert bool(terminated.all())
    assert torch.allclose(rewards, torch.tensor(expected, dtype=torch.float32).unsqueeze(1).expand(4, 16))


def test_anti_reward_is_paid_half_the_time() -> None:
    env = CombinationLock(horizon=3)
    rewards, _ = _run_fixed(env, env.default_params(40_000), wrong_at=0)
    assert (rewards[-1] > 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    final = rewards[-1]
    assert bool(((final == 0) | torch.isclose(final, torch.tensor(0.1))).all())


def test_secret_combination_comes_from_the_seed() -> None:
    a, b, c = (
        CombinationLock(horizon=20, seed=1),
        CombinationLock(horizon=20, seed=1),
        CombinationLock(horizon=20, seed=2),
    )
    assert torch.equal(a.combos, b.combos) and not torch.equal(a.combos, c.combos)
    assert a.combos.shape == (2, 20) and int(a.combos.min()) >= 0 and int(a.combos.max()) <= 9


def test_engine_contract_and_bad_input() -> None:
    env = CombinationLock(horizon=5)
    check_env(env, batch_size=8)
    check_env(CombinationLock(horizon=5, max_episode_steps=3), batch_size=4)
    with pytest.raises(ValueError, match="reward_mode"):
        CombinationLock(reward_mode="sparse")
    with pytest.raises(ValueError, match="horizon"):
        CombinationLock(horizon=0)
    params = env.default_params(2)
    bad = tree.map_tensors(lambda x: x, params)
    object.__setattr__(bad, "combos", torch.full_like(params.combos, 10))
    with pytest.raises(ValueError, match="combos"):
        env.reset(bad, env.make_generator(0))


def test_offline_data_matches_the_epsilon_greedy_success_rate() -> None:
    env = CombinationLock(horizon=5, seed=0)
    data = collect_offline(env, 50_000, seed=0)
    q = (1 - 1 / 5) * math.exp(10) / (math.exp(10) + 9) + (1 / 5) * 0.1
    assert q**5 == pytest.approx(0.370, abs=5e-4)
    assert data.metadata["success_fraction"] == pytest.approx(0.370, abs=0.005)
    assert len(data) == 250_000
    ts = data.data.extras["timestep"]
    assert torch.equal(torch.bincount(ts), torch.full((5,), 50_000))
    assert torch.equal(data.data.terminated, ts == 4)  # terminated exactly at the last step
    assert not bool(data.data.truncated.any())
    # success fraction recomputed from the stored final rewards
    final = data.data.reward[ts == 4]
    assert (final >= 1).float().mean().item() == data.metadata["success_fraction"]
    # the next observation of step h is the observation of step h + 1 in the same episode
    first, second = data.data.next_obs[ts == 0], data.data.obs[ts == 1]
    assert torch.equal(first, second)
    # greedy actions are one-hot, exploratory ones uniform on [0, 1]^10: about 1/H of them
    onehot = (data.data.action.max(1).values == 1) & (data.data.action.sum(1) == 1)
    assert (~onehot).float().mean().item() == pytest.approx(0.2, abs=0.005)


def test_envs_depend_on_nothing_above_them() -> None:
    """Envs sit below learners and agents: no module under envs/ imports rlsuite.learners or
    rlsuite.agents (HNPG's offline data, which builds a learner's dataset, lives in the agent)."""
    import ast
    from pathlib import Path

    root = Path(envs.__file__).resolve().parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.relative_to(root)}: {n}" for n in names
                          if n.startswith(("rlsuite.learners", "rlsuite.agents"))]
    assert offenders == []
