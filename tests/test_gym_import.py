"""GymnasiumEnv: gymnasium ids behind the engine contract, checked against a hand-driven
gymnasium SyncVectorEnv with the same seed and actions."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch

from rlsuite.core import spaces
from rlsuite.engine._convert import space_from_gymnasium
from rlsuite.engine.gym_import import GymnasiumEnv, GymnasiumParams, gymnasium_seed

B = 4
IDS = ["CartPole-v1", "Pendulum-v1", "FrozenLake-v1"]
STEPS = {"CartPole-v1": 100, "Pendulum-v1": 205, "FrozenLake-v1": 100}
"""Enough steps for episodes to end: Pendulum only truncates, at 200; random play ends the others
within a few dozen steps."""


def _reference(env_id: str) -> gymnasium.vector.SyncVectorEnv:
    return gymnasium.vector.SyncVectorEnv(
        [lambda: gymnasium.make(env_id) for _ in range(B)],
        autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP,
    )


@pytest.mark.parametrize("env_id", IDS)
def test_transitions_equal_a_hand_driven_sync_vector_env(env_id: str) -> None:
    env = GymnasiumEnv(env_id, B)
    ref = _reference(env_id)
    params = env.default_params()
    obs, state = env.reset(params, torch.Generator().manual_seed(7))
    ref_obs, _ = ref.reset(seed=gymnasium_seed(torch.Generator().manual_seed(7)))
    np.testing.assert_array_equal(obs.numpy(), ref_obs)

    ref.action_space.seed(3)
    ends = 0
    gen = torch.Generator().manual_seed(0)
    for _ in range(STEPS[env_id]):
        action = ref.action_space.sample()
        step = env.step(state, torch.as_tensor(action), params, gen)
        ref_obs, ref_rew, ref_term, ref_trunc, info = ref.step(action)
        np.testing.assert_array_equal(step.obs.numpy(), ref_obs)
        np.testing.assert_array_equal(step.reward.numpy(), ref_rew.astype(np.float32))
        np.testing.assert_array_equal(step.terminated.numpy(), ref_term)
        np.testing.assert_array_equal(step.truncated.numpy(), ref_trunc)
        ended = info.get("_final_obs", np.zeros(B, dtype=bool))
        for i in range(B):
            expected = info["final_obs"][i] if ended[i] else ref_obs[i]
            np.testing.assert_array_equal(step.final_obs[i].numpy(), expected)
        np.testing.assert_array_equal(ended, (step.terminated | step.truncated).numpy())
        ends += int(ended.sum())
        state = step.state
    assert ends > 0


def test_dtypes_and_spaces() -> None:
    cart, pend, lake = (GymnasiumEnv(i, 2) for i in IDS)
    assert isinstance(cart.action_space, spaces.Discrete) and cart.action_space.n == 2
    np.testing.assert_array_equal(
        cart.observation_space.high.numpy(),
        gymnasium.make("CartPole-v1").observation_space.high,
    )
    assert isinstance(pend.action_space, spaces.Box)
    assert pend.action_space.shape == (1,)
    assert pend.action_space.low.tolist() == [-2.0] and pend.action_space.high.tolist() == [2.0]
    assert isinstance(lake.observation_space, spaces.Discrete) and lake.observation_space.n == 16
    limits = (cart.max_episode_steps, pend.max_episode_steps, lake.max_episode_steps)
    assert limits == (500, 200, 100)

    gen = torch.Generator().manual_seed(0)
    obs, state = lake.reset(lake.default_params(), gen)
    assert obs.dtype == torch.int64 and obs.shape == (2,)
    step = pend.step(
        pend.reset(pend.default_params(), gen)[1], torch.zeros(2, 1), pend.default_params(), gen
    )
    assert step.obs.dtype == torch.float32 and step.reward.dtype == torch.float32
    assert step.terminated.dtype == torch.bool and step.truncated.dtype == torch.bool


def test_final_obs_is_the_pre_reset_observation() -> None:
    env = GymnasiumEnv("CartPole-v1", B)
    params, gen = env.default_params(), torch.Generator().manual_seed(1)
    _, state = env.reset(params, gen)
    push_right = torch.ones(B, dtype=torch.int64)  # always pushing right tips the pole in ~10 steps
    steps = 0
    while steps < 40:
        step = env.step(state, push_right, params, gen)
        state, steps = step.state, steps + 1
        if bool(step.terminated.any()):
            break
    done = step.terminated
    # The episode ended outside the thresholds; the new episode starts within +-0.05.
    ended = step.final_obs[done]
    assert bool(((ended[:, 0].abs() > 2.4) | (ended[:, 2].abs() > 12 * 2 * np.pi / 360)).all())
    assert bool((step.obs[done].abs() <= 0.05).all())
    assert step.state.time[done].tolist() == [0] * int(done.sum())
    assert step.state.time[~done].tolist() == [steps] * int((~done).sum())
    assert torch.equal(step.final_obs[~done], step.obs[~done])


def test_same_torch_seed_same_trajectory() -> None:
    def run(seed: int) -> torch.Tensor:
        env = GymnasiumEnv("Pendulum-v1", B)
        params, gen = env.default_params(), torch.Generator().manual_seed(seed)
        obs, state = env.reset(params, gen)
        seen = [obs]
        for _ in range(5):
            step = env.step(state, torch.full((B, 1), 0.5), params, gen)
            seen.append(step.obs)
            state = step.state
        return torch.stack(seen)

    assert torch.equal(run(11), run(11))
    assert not torch.equal(run(11), run(12))


def test_stale_state_is_refused() -> None:
    env = GymnasiumEnv("CartPole-v1", 2)
    params, gen = env.default_params(), torch.Generator().manual_seed(0)
    _, state = env.reset(params, gen)
    env.step(state, torch.zeros(2, dtype=torch.int64), params, gen)
    with pytest.raises(RuntimeError, match="stateful"):
        env.step(state, torch.zeros(2, dtype=torch.int64), params, gen)


def test_bad_params_and_actions_name_the_problem() -> None:
    env = GymnasiumEnv("CartPole-v1", 3)
    gen = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="params.index has batch size 2"):
        env.reset(GymnasiumParams(torch.arange(2)), gen)
    _, state = env.reset(env.default_params(), gen)
    with pytest.raises(ValueError, match=r"action has shape \(2,\); expected \(3,\)"):
        env.step(state, torch.zeros(2, dtype=torch.int64), env.default_params(), gen)
    with pytest.raises(TypeError, match="must be integers"):
        env.step(state, torch.zeros(3), env.default_params(), gen)


def test_space_conversion_refuses_what_it_cannot_represent() -> None:
    with pytest.raises(ValueError, match="start=1"):
        space_from_gymnasium(gymnasium.spaces.Discrete(3, start=1))
    with pytest.raises(TypeError, match="only gymnasium Box and Discrete"):
        space_from_gymnasium(gymnasium.spaces.MultiDiscrete([2, 3]))
    box = space_from_gymnasium(gymnasium.spaces.Box(0, 255, (2, 3), dtype=np.uint8))
    assert box.dtype == torch.float32 and box.shape == (2, 3)
    assert float(box.high.max()) == 255.0


def _resume_matches_uninterrupted(env_id: str, num_envs: int, before: int, after: int,
                                  tmp_path, **kwargs) -> None:
    """Collect ``before`` steps, checkpoint the Interaction through a weights-only file, load it
    into a freshly built env and collect ``after`` more: the same transitions as going straight on."""
    from rlsuite import checkpoint
    from rlsuite.engine.interaction import Interaction

    def build() -> Interaction:
        env = GymnasiumEnv(env_id, num_envs, **kwargs)
        return Interaction(env, env.default_params(), seed=3)

    def policy_for(inter: Interaction):
        space = inter.env.action_space

        def policy(obs: torch.Tensor) -> torch.Tensor:  # deterministic in the observation
            return torch.tanh(obs[:, : space.shape[0]] * 0.7) * torch.as_tensor(space.high)
        return policy

    first = build()
    first.collect(policy_for(first), before)
    checkpoint.save(tmp_path / "ck", {"interaction": first.state_dict()}, {})
    straight = first.collect(policy_for(first), after)
    second = build()
    second.load_state_dict(checkpoint.load(tmp_path / "ck")["agent"]["interaction"])
    resumed = second.collect(policy_for(second), after)
    for name in ("obs", "action", "reward", "terminated", "truncated", "next_obs", "episode_return"):
        assert torch.equal(getattr(resumed, name), getattr(straight, name)), name


def test_a_resumed_classic_control_run_steps_on_exactly(tmp_path) -> None:
    # Pendulum-v1 truncates at 200 steps: the resumed copies cross an autoreset (which draws from
    # the restored numpy generators) at the same step as the uninterrupted ones.
    _resume_matches_uninterrupted("Pendulum-v1", 3, 150, 120, tmp_path)


def test_a_resumed_mujoco_run_steps_on_exactly(tmp_path) -> None:
    pytest.importorskip("mujoco")
    _resume_matches_uninterrupted("HalfCheetah-v5", 2, 60, 40, tmp_path, max_episode_steps=80)


def test_an_env_whose_state_cannot_be_saved_says_so() -> None:
    env = GymnasiumEnv("FrozenLake-v1", 2)
    env.reset(env.default_params(), torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match=r"GymnasiumEnv\('FrozenLake-v1'\): cannot save the state of "
                                        r"FrozenLakeEnv"):
        env.simulator_state()
