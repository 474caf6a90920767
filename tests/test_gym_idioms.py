"""rlsuite ids in the ecosystem's idioms: SB3 / RL Zoo build them by id, gymnasium's vector
wrappers compose on the numpy vector env, classic-control envs render ``rgb_array`` frames."""

from __future__ import annotations

import dataclasses
import math

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers import vector as vw
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv

import rlsuite.envs  # noqa: F401  (registers the ids)
from rlsuite.engine.gym_export import TorchSingleEnv, TorchVectorEnv
from rlsuite.engine.numpy_vector import NumpyVectorEnv

RENDERED = ["rlsuite/CartPole-v0", "rlsuite/ContinuousCartPole-v0", "rlsuite/Pendulum-v0",
            "rlsuite/Acrobot-v0"]


# -- SB3 and RL Zoo build rlsuite envs by id ------------------------------------------------------


# The bounds warnings gymnasium's own CartPole-v1 and Pendulum-v1 raise as well.
@pytest.mark.filterwarnings("ignore:.*infinity.*:UserWarning",
                            "ignore:.*symmetric and normalized.*:UserWarning")
@pytest.mark.parametrize("env_id", RENDERED)
def test_sb3_check_env_with_rgb_array_rendering(env_id: str) -> None:
    env = gymnasium.make(env_id, render_mode="rgb_array")
    sb3_check_env(env.unwrapped, warn=False, skip_render_check=False)
    gym_check_env(env.unwrapped)  # includes gymnasium's render checks


def test_make_vec_env_by_id_renders_where_it_can_and_falls_back_elsewhere() -> None:
    vec = make_vec_env("rlsuite/CartPole-v0", n_envs=2, seed=0)
    assert vec.get_attr("render_mode") == ["rgb_array", "rgb_array"]
    assert vec.reset().shape == (2, 4)
    frames = vec.get_images()
    assert [f.shape for f in frames] == [(400, 600, 3)] * 2
    # Taxi has no picture: SB3 catches the TypeError and builds it without render_mode
    taxi = make_vec_env("rlsuite/Taxi-v0", n_envs=2, seed=0)
    assert taxi.get_attr("render_mode") == [None, None]
    assert taxi.reset().shape == (2,)


def test_ppo_learns_from_an_id() -> None:
    model = PPO("MlpPolicy", "rlsuite/CartPole-v0", n_steps=128, batch_size=64, n_epochs=1,
                seed=0, device="cpu")
    model.learn(256)
    assert model.num_timesteps == 256
    episodes = list(model.ep_info_buffer)
    assert episodes  # Monitor saw whole episodes: CartPole's return is its length
    assert all(ep["r"] == ep["l"] for ep in episodes)


def test_rl_zoo_style_env_creation(tmp_path) -> None:
    """rl_zoo3's ExperimentManager.create_envs: make_vec_env with env_kwargs, a wrapper class,
    a monitor dir and ``vec_env_cls=DummyVecEnv`` (rl_zoo3 itself is not needed to make the same call)."""
    vec = make_vec_env(
        env_id="rlsuite/CartPole-v0", n_envs=2, seed=3,
        env_kwargs={"max_episode_steps": 10, "dtype": torch.float64},  # gymnasium's and the engine's
        monitor_dir=str(tmp_path), wrapper_class=gymnasium.wrappers.TimeAwareObservation,
        vec_env_cls=DummyVecEnv, vec_env_kwargs={}, monitor_kwargs={},
    )
    assert isinstance(vec, DummyVecEnv)
    assert vec.envs[0].unwrapped.vector.engine.dtype == torch.float64
    obs = vec.reset()
    assert obs.shape == (2, 5) and obs[:, 4].tolist() == [0.0, 0.0]  # the time feature
    ends = []
    for t in range(10):  # alternating pushes keep the pole up: every episode is truncated at 10
        obs, rewards, dones, infos = vec.step(np.full(2, t % 2))
        ends.append(dones.tolist())
    assert ends == [[False, False]] * 9 + [[True, True]]
    assert [info["episode"]["l"] for info in infos] == [10, 10]
    assert all(info["TimeLimit.truncated"] for info in infos)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.monitor.csv", "1.monitor.csv"]


# -- the numpy vector env and gymnasium's vector wrappers ----------------------------------------


def _numpy_vec(env_id: str = "rlsuite/CartPole-v0", num_envs: int = 3, **kwargs) -> NumpyVectorEnv:
    env = gymnasium.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point",
                             numpy=True, **kwargs)
    assert isinstance(env, NumpyVectorEnv)
    return env


def _actions(steps: int, num_envs: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, (steps, num_envs))


def _engine_episodes(num_envs: int, actions: np.ndarray, seed: int, limit: int) -> list[tuple]:
    """(step, copy, return, length) of every episode the engine's own statistics report."""
    env = TorchVectorEnv("cartpole", num_envs, max_episode_steps=limit)
    env.reset(seed=seed)
    out = []
    for t, a in enumerate(actions):
        info = env.step(torch.as_tensor(a))[4]
        for i in torch.nonzero(info["_episode"]).flatten().tolist():
            out.append((t, i, float(info["episode"]["r"][i]), int(info["episode"]["l"][i])))
    return out


def test_make_vec_numpy_metadata_and_dtypes() -> None:
    env = _numpy_vec()
    assert env.metadata["autoreset_mode"] is AutoresetMode.NEXT_STEP
    assert _numpy_vec(autoreset_mode="same_step").metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == (3, 4) and info == {}
    obs, reward, terminated, truncated, info = env.step(np.array([0, 1, 0]))
    assert (obs.dtype, reward.dtype, terminated.dtype, truncated.dtype) == (
        np.float32, np.float64, np.bool_, np.bool_)
    with pytest.raises(ValueError, match="autoreset_mode='sometimes'"):
        _numpy_vec(autoreset_mode="sometimes")


def test_record_episode_statistics_same_step_equals_the_engine() -> None:
    actions = _actions(120, 3)
    env = vw.RecordEpisodeStatistics(_numpy_vec(autoreset_mode="same_step", max_episode_steps=25))
    env.reset(seed=7)
    seen = []
    for t, a in enumerate(actions):
        info = env.step(a)[4]
        if "episode" in info:
            for i in np.flatnonzero(info["_episode"]):
                seen.append((t, int(i), float(info["episode"]["r"][i]), int(info["episode"]["l"][i])))
    expected = _engine_episodes(3, actions, seed=7, limit=25)
    assert len(expected) >= 6 and seen == expected


def test_record_episode_statistics_next_step_equals_the_engine() -> None:
    # One copy: the extra reset step of next_step shifts time but not the episodes themselves.
    actions = _actions(150, 1, seed=1)
    env = vw.RecordEpisodeStatistics(_numpy_vec(num_envs=1, max_episode_steps=25))
    env.reset(seed=5)
    returns = []
    engine_actions = []
    pending = False
    for a in actions:
        _, _, terminated, truncated, info = env.step(a)
        if not pending:  # the step after an end is the reset step: its action is ignored
            engine_actions.append(a)
        pending = bool(terminated[0] or truncated[0])
        if "episode" in info:
            returns.append(float(info["episode"]["r"][0]))
    expected = [r for _, _, r, _ in _engine_episodes(1, np.array(engine_actions), 5, 25)]
    assert len(expected) >= 4 and returns == expected


def test_next_step_shows_the_final_then_the_reset_observation() -> None:
    env = _numpy_vec(num_envs=2, max_episode_steps=3)
    torch_env = env.torch_env
    env.reset(seed=0)
    for _ in range(2):
        env.step(np.array([0, 1]))
    obs, reward, terminated, truncated, _ = env.step(np.array([0, 1]))
    assert truncated.tolist() == [True, True] and reward.tolist() == [1.0, 1.0]
    engine_reset_obs = env._reset_obs.numpy().copy()  # what the engine began the new episodes with
    assert not np.array_equal(obs, engine_reset_obs)  # the step shows where the episodes ended
    state = torch_env.state
    obs2, reward2, terminated2, truncated2, _ = env.step(np.array([1, 1]))
    assert np.array_equal(obs2, engine_reset_obs)
    assert reward2.tolist() == [0.0, 0.0] and not terminated2.any() and not truncated2.any()
    # the engine state stays where the reset put it (that step is undone), step counter included
    for name in ("x", "x_dot", "theta", "theta_dot", "time"):
        assert torch.equal(getattr(torch_env.state, name), getattr(state, name)), name
    obs3 = env.step(np.array([1, 1]))[0]
    assert not np.array_equal(obs3, obs2)  # the new episode moves on from its first step


def test_normalize_observation_composes_with_next_step() -> None:
    actions = _actions(40, 3, seed=2)
    raw_env = _numpy_vec(max_episode_steps=15)
    raw = [raw_env.reset(seed=3)[0]] + [raw_env.step(a)[0] for a in actions]
    env = vw.NormalizeObservation(_numpy_vec(max_episode_steps=15))
    out = [env.reset(seed=3)[0]] + [env.step(a)[0] for a in actions]
    stacked = np.concatenate(raw).astype(np.float64)
    count = 1e-4 + len(stacked)  # RunningMeanStd starts from mean 0, var 1, count 1e-4
    mean = stacked.sum(0) / count
    np.testing.assert_allclose(env.obs_rms.mean, mean, rtol=1e-5, atol=1e-7)
    last = (raw[-1] - env.obs_rms.mean) / np.sqrt(env.obs_rms.var + 1e-8)
    np.testing.assert_allclose(out[-1], last, rtol=1e-5, atol=1e-6)
    # gymnasium's observation wrappers refuse the engine's same-step mode; that is the reason
    # for next_step being the numpy env's default
    with pytest.raises(ValueError, match="NEXT_STEP"):
        vw.NormalizeObservation(_numpy_vec(autoreset_mode="same_step"))


@pytest.mark.parametrize("mode", ["same_step", "next_step"])
def test_normalize_reward_tracks_the_discounted_return(mode: str) -> None:
    gamma, actions = 0.9, _actions(60, 2, seed=4)
    env = vw.NormalizeReward(_numpy_vec(num_envs=2, autoreset_mode=mode, max_episode_steps=12),
                             gamma=gamma)
    env.reset(seed=1)
    acc, returns = np.zeros(2), []
    prev_done = np.zeros(2, dtype=bool)
    for a in actions:
        _, scaled, terminated, truncated, _ = env.step(a)
        active = np.ones(2, dtype=bool) if mode == "same_step" else ~prev_done
        # CartPole's raw reward is 1 on every step but next_step's reset step (0)
        reward = np.where(prev_done & (mode == "next_step"), 0.0, 1.0)
        acc[active] = acc[active] * gamma * (1 - terminated[active]) + reward[active]
        returns.extend(acc[active].tolist())
        done = terminated | truncated
        if mode == "same_step":
            acc[done] = 0.0
        prev_done = done
        np.testing.assert_allclose(scaled, reward / np.sqrt(env.return_rms.var + 1e-8), rtol=1e-12)
    values = np.array(returns)
    np.testing.assert_allclose(env.return_rms.mean, values.sum() / (len(values) + 1e-4), rtol=1e-6)


def test_dict_info_to_list_same_step_carries_the_final_observations() -> None:
    actions = _actions(30, 3, seed=6)
    env = vw.DictInfoToList(vw.RecordEpisodeStatistics(
        _numpy_vec(autoreset_mode="same_step", max_episode_steps=10)))
    reference = TorchVectorEnv("cartpole", 3, max_episode_steps=10)
    env.reset(seed=2)
    reference.reset(seed=2)
    ended = 0
    for a in actions:
        _, _, terminated, truncated, infos = env.step(a)
        ref = reference.step(torch.as_tensor(a))[4]
        assert isinstance(infos, list) and len(infos) == 3
        for i, info in enumerate(infos):
            if terminated[i] or truncated[i]:
                ended += 1
                np.testing.assert_array_equal(info["final_obs"], ref["final_obs"][i].numpy())
                assert info["episode"]["r"] == pytest.approx(float(ref["episode"]["r"][i]))
                assert info["episode"]["l"] == int(ref["episode"]["l"][i])
            else:
                assert "final_obs" not in info and "episode" not in info
    assert ended >= 6


def test_clip_action_on_pendulum() -> None:
    inner = _numpy_vec("rlsuite/Pendulum-v0", num_envs=2)
    received = []
    step = inner.step
    inner.step = lambda a: (received.append(np.array(a)), step(a))[1]  # record what reaches the env
    clipped = vw.ClipAction(inner)
    plain = _numpy_vec("rlsuite/Pendulum-v0", num_envs=2)
    clipped.reset(seed=9)
    plain.reset(seed=9)
    for big in ([[5.0], [-7.0]], [[-3.0], [0.5]]):
        a = np.array(big, dtype=np.float32)
        obs, reward = clipped.step(a)[:2]
        ref_obs, ref_reward = plain.step(np.clip(a, -2.0, 2.0))[:2]
        np.testing.assert_array_equal(obs, ref_obs)
        np.testing.assert_array_equal(reward, ref_reward)
    assert [r.ravel().tolist() for r in received] == [[2.0, -2.0], [-2.0, 0.5]]


BOTH_MODES = [
    (vw.RecordEpisodeStatistics, {}), (vw.NormalizeReward, {}), (vw.DictInfoToList, {}),
    (vw.TransformReward, {"func": lambda r: 2 * r}), (vw.ClipReward, {"min_reward": -1.0}),
    (vw.ClipAction, {}), (vw.RescaleAction, {"min_action": np.float32(-1), "max_action": np.float32(1)}),
]
OBSERVATION = [
    (vw.NormalizeObservation, {}), (vw.FlattenObservation, {}),
    (vw.DtypeObservation, {"dtype": np.float32}), (vw.TransformObservation, {"func": lambda o: o}),
]


@pytest.mark.parametrize("wrapper, kwargs", BOTH_MODES + OBSERVATION,
                         ids=[w.__name__ for w, _ in BOTH_MODES + OBSERVATION])
def test_which_wrappers_take_which_mode(wrapper, kwargs) -> None:
    """The table in rlsuite/engine/numpy_vector.py's docstring."""
    for mode in ("next_step", "same_step"):
        env = _numpy_vec("rlsuite/Pendulum-v0", num_envs=2, autoreset_mode=mode, max_episode_steps=3)
        if mode == "same_step" and (wrapper, kwargs) in OBSERVATION:
            with pytest.raises(ValueError, match="NEXT_STEP"):
                wrapper(env, **kwargs)
            continue
        wrapped = wrapper(env, **kwargs)
        wrapped.reset(seed=0)
        for _ in range(4):  # across an episode's end
            obs = wrapped.step(np.zeros((2, 1), dtype=np.float32))[0]
        assert np.all(np.isfinite(obs))


# -- rgb_array frames -----------------------------------------------------------------------------


def _frame_at(env: TorchSingleEnv, **state: float) -> np.ndarray:
    env.reset(seed=0)
    fields = {k: torch.full_like(getattr(env.vector.state, k), v) for k, v in state.items()}
    env.vector.state = dataclasses.replace(env.vector.state, **fields)
    return env.render()


def test_cartpole_frame_shows_the_cart_and_the_pole() -> None:
    env = TorchSingleEnv("cartpole", render_mode="rgb_array")
    assert env.metadata["render_modes"] == ["rgb_array"] and env.metadata["render_fps"] == 50
    frame = _frame_at(env, x=1.0, theta=0.3)
    assert frame.shape == (400, 600, 3) and frame.dtype == np.uint8
    scale = 600 / 4.8
    col = int(300 + 1.0 * scale)
    assert frame[400 - 100, col].tolist() == [0, 0, 0]  # the cart's centre
    assert frame[400 - 100, 300].tolist() == [0, 0, 0]  # the track line through the cart's middle
    axle_y = 100 + 30 / 4
    mid = (col + 0.5 * 125 * math.sin(0.3), 400 - (axle_y + 0.5 * 125 * math.cos(0.3)))
    assert frame[int(mid[1]), int(mid[0])].tolist() == [202, 152, 101]  # the pole, tilted right
    mirror = (col - 0.5 * 125 * math.sin(0.3), mid[1])
    assert frame[int(mirror[1]), int(mirror[0])].tolist() == [255, 255, 255]


def test_pendulum_and_acrobot_frames_follow_the_angles() -> None:
    pend = TorchSingleEnv("pendulum", render_mode="rgb_array")
    frame = _frame_at(pend, th=math.pi / 2)  # counter-clockwise from up: the rod points left
    scale = 500 / 4.4
    assert frame[250, int(250 - 0.5 * scale)].tolist() == [204, 77, 77]
    assert frame[250, int(250 + 0.5 * scale)].tolist() == [255, 255, 255]
    acro = TorchSingleEnv("acrobot", render_mode="rgb_array")
    frame = _frame_at(acro, theta1=0.0, theta2=math.pi / 2)  # link 1 down, link 2 to the right
    scale = 500 / 4.4
    assert frame[int(250 + 0.5 * scale), 250].tolist() == [0, 204, 204]
    assert frame[int(250 + 1.0 * scale), int(250 + 0.5 * scale)].tolist() == [0, 204, 204]
    assert frame[int(250 - 0.5 * scale), 250].tolist() == [255, 255, 255]


def test_render_without_a_mode_is_none() -> None:
    env = TorchSingleEnv("cartpole")
    env.reset(seed=0)
    assert env.render() is None and env.render_mode is None
    with pytest.raises(RuntimeError, match="before reset"):
        TorchSingleEnv("cartpole", render_mode="rgb_array").render()
