"""Engine envs as gymnasium envs: make_vec -> TorchVectorEnv, make -> TorchSingleEnv, check_env."""

from __future__ import annotations

import dataclasses
import warnings

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

from rlsuite import envs
from rlsuite.core import params as P
from rlsuite.engine.gym_export import (
    TorchSingleEnv,
    TorchVectorEnv,
    gymnasium_id,
    register_gymnasium_envs,
)

NAMES = envs.names()


def _random_actions(env: TorchVectorEnv, gen: torch.Generator) -> torch.Tensor:
    return env.engine.action_space.batched(env.num_envs).sample(gen)


def test_ids_are_namespaced_camel_case() -> None:
    assert gymnasium_id("cartpole") == "rlsuite/CartPole-v0"
    assert set(register_gymnasium_envs()) == {gymnasium_id(n) for n in NAMES}
    assert all(gymnasium_id(n) in gymnasium.registry for n in NAMES)


def test_registration_is_idempotent_and_silent() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns "Overriding environment" on re-register
        first = register_gymnasium_envs()
        assert register_gymnasium_envs() == first


def test_make_vec_returns_the_torch_vector_env() -> None:
    env = gymnasium.make_vec("rlsuite/CartPole-v0", num_envs=8, device="cpu")
    assert isinstance(env, TorchVectorEnv)
    assert env.num_envs == 8 and env.spec is not None and env.spec.id == "rlsuite/CartPole-v0"
    assert env.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP
    assert env.engine.max_episode_steps == 500  # the spec's limit reaches the engine env
    assert env.single_observation_space == gymnasium.make("CartPole-v1").observation_space
    assert env.single_action_space == gymnasium.spaces.Discrete(2)
    assert env.observation_space.shape == (8, 4) and env.action_space.shape == (8,)

    obs, info = env.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.device.type == "cpu" and obs.shape == (8, 4)
    assert obs.dtype == torch.float32 and info == {}
    # numpy actions from the gymnasium action space are accepted as well as tensors
    env.action_space.seed(0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    for x, dtype in ((obs, torch.float32), (reward, torch.float32),
                     (terminated, torch.bool), (truncated, torch.bool)):
        assert isinstance(x, torch.Tensor) and x.dtype == dtype and x.device.type == "cpu"
    assert set(info) == {"final_obs", "_final_obs", "final_info", "_final_info",
                         "episode", "_episode"}
    assert isinstance(info["final_obs"], torch.Tensor) and info["final_obs"].shape == (8, 4)


def test_make_vec_passes_kwargs_to_the_engine_env() -> None:
    env = gymnasium.make_vec("rlsuite/CartPole-v0", num_envs=2, max_episode_steps=7)
    assert env.engine.max_episode_steps == 7
    env.reset(seed=0)
    alternate = [torch.tensor([0, 0]), torch.tensor([1, 1])]
    for t in range(7):
        _, _, terminated, truncated, info = env.step(alternate[t % 2])
    assert truncated.tolist() == [True, True] and terminated.tolist() == [False, False]
    assert info["episode"]["l"].tolist() == [7, 7]


@pytest.mark.parametrize("name", NAMES)
def test_vector_env_equals_the_engine_driven_by_hand(name: str) -> None:
    vec = gymnasium.make_vec(gymnasium_id(name), num_envs=4, max_episode_steps=30)
    engine = envs.make(name, max_episode_steps=30)
    params = engine.default_params(4)
    gen = engine.make_generator(5)
    obs, state = engine.reset(params, gen)
    vobs, _ = vec.reset(seed=5)
    assert torch.equal(vobs, obs)
    act_gen = torch.Generator().manual_seed(0)
    for _ in range(35):
        action = _random_actions(vec, act_gen)
        step = engine.step(state, action, params, gen)
        vobs, reward, terminated, truncated, info = vec.step(action)
        assert torch.equal(vobs, step.obs) and torch.equal(reward, step.reward)
        assert torch.equal(terminated, step.terminated) and torch.equal(truncated, step.truncated)
        assert torch.equal(info["final_obs"], step.final_obs)
        assert torch.equal(info["_final_obs"], step.terminated | step.truncated)
        state = step.state


@pytest.mark.parametrize("name", NAMES)
def test_episode_statistics_sum_the_rewards(name: str) -> None:
    vec = gymnasium.make_vec(gymnasium_id(name), num_envs=3, max_episode_steps=25)
    vec.reset(seed=1)
    gen = torch.Generator().manual_seed(1)
    total = np.zeros(3, dtype=np.float32)  # summed in float32 in step order, as the env does
    length = np.zeros(3, dtype=np.int64)
    finished = 0
    for _ in range(60):
        _, reward, terminated, truncated, info = vec.step(_random_actions(vec, gen))
        total += reward.numpy()
        length += 1
        done = (terminated | truncated).numpy()
        assert info["_episode"].numpy().tolist() == done.tolist()
        ep = info["episode"]
        assert ep["r"].dtype == torch.float32 and ep["l"].dtype == torch.int64
        np.testing.assert_array_equal(ep["r"].numpy(), np.where(done, total, np.float32(0)))
        np.testing.assert_array_equal(ep["l"].numpy(), np.where(done, length, 0))
        t = ep["t"].numpy()
        assert (t[done] > 0).all() and (t[~done] == 0).all()
        total[done], length[done] = 0.0, 0
        finished += int(done.sum())
    assert finished >= 3  # every copy ends at least one episode (25-step limit)


def test_reset_options_swap_the_params() -> None:
    vec = TorchVectorEnv("cartpole", 2)
    heavy = P.with_values(vec.engine.default_params(2), masspole=1.0)
    vec.reset(seed=3)
    light_next, *_ = vec.step(torch.tensor([1, 1]))
    vec.reset(seed=3, options={"params": heavy})
    assert vec.params is heavy
    heavy_next, *_ = vec.step(torch.tensor([1, 1]))
    # Same initial state, same push: the heavier pole slows the cart less (x_dot differs).
    assert not torch.equal(light_next, heavy_next)
    with pytest.raises(ValueError, match="batch size 3; expected 2"):
        vec.reset(options={"params": vec.engine.default_params(3)})
    with pytest.raises(ValueError, match=r"unknown reset option\(s\) \['reset_mask'\]"):
        vec.reset(options={"reset_mask": np.ones(2, dtype=bool)})


def test_seeding_rules() -> None:
    vec = TorchVectorEnv("cartpole", 4)
    a, _ = vec.reset(seed=9)
    b, _ = vec.reset()  # continues the generator: a different start
    c, _ = vec.reset(seed=9)
    assert torch.equal(a, c) and not torch.equal(a, b)
    with pytest.raises(RuntimeError, match="before reset"):
        TorchVectorEnv("cartpole", 2).step(torch.tensor([0, 1]))


@pytest.mark.parametrize("name", NAMES)
def test_single_env_passes_gymnasiums_checker(name: str) -> None:
    wrapped = gymnasium.make(gymnasium_id(name))
    env = wrapped.unwrapped
    assert isinstance(env, TorchSingleEnv)
    # gymnasium's TimeLimit owns the limit, as for its own classic-control envs
    engine_limit = envs.factory(name)().max_episode_steps
    assert wrapped.spec.max_episode_steps == engine_limit
    assert env.vector.engine.max_episode_steps is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=True)
    # The only warnings allowed are about the spaces' bounds, which gymnasium's own
    # CartPole-v1 (infinite velocity bounds) and Pendulum-v1 (torque in [-2, 2]) also raise.
    for w in caught:
        assert "infinity" in str(w.message) or "symmetric and normalized" in str(w.message), w


@pytest.mark.parametrize("name", NAMES)
def test_single_env_passes_sb3s_checker(name: str) -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    sb3_check_env(gymnasium.make(gymnasium_id(name)).unwrapped, warn=False)


def test_single_env_returns_the_final_observation_and_python_scalars() -> None:
    env = gymnasium.make("rlsuite/CartPole-v0")
    obs, info = env.reset(seed=4)
    again, _ = env.reset(seed=4)
    assert obs.dtype == np.float32 and obs.shape == (4,) and np.array_equal(obs, again)
    assert info == {}
    for _ in range(100):
        obs, reward, terminated, truncated, info = env.step(1)
        assert type(reward) is float and type(terminated) is bool and type(truncated) is bool
        if terminated:
            break
    assert terminated and info == {}
    # the observation the episode ended on, outside CartPole's thresholds (not a fresh start)
    assert abs(obs[0]) > 2.4 or abs(obs[2]) > 12 * 2 * np.pi / 360


def test_single_env_time_limit_follows_gymnasium_make() -> None:
    env = gymnasium.make("rlsuite/CartPole-v0", max_episode_steps=6)
    env.reset(seed=0)
    flags = [env.step(t % 2)[2:4] for t in range(6)]
    assert flags == [(False, False)] * 5 + [(False, True)]


def test_single_env_params_option_and_errors() -> None:
    env = TorchSingleEnv("cartpole")
    heavy = dataclasses.replace(
        env.vector.engine.default_params(1), masspole=torch.tensor([1.0])
    )
    env.reset(seed=2, options={"params": heavy})
    assert env.vector.params is heavy
    # TypeError: what SB3's make_vec_env catches to retry without render_mode
    with pytest.raises(TypeError, match=r"render_mode='human' is not a render mode of 'cartpole'"):
        TorchSingleEnv("cartpole", render_mode="human")
    with pytest.raises(TypeError, match=r"render_mode='rgb_array' .* 'taxi' .*render_modes: \[\]"):
        TorchSingleEnv("taxi", render_mode="rgb_array")
    with pytest.raises(TypeError, match="only be given with an env name"):
        TorchVectorEnv(envs.make("cartpole"), 2, device="cpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_make_vec_on_cuda_keeps_every_tensor_on_the_device() -> None:
    env = gymnasium.make_vec("rlsuite/CartPole-v0", num_envs=16, device="cuda")
    obs, _ = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(torch.ones(16, dtype=torch.int64))
    tensors = [obs, reward, terminated, truncated, info["final_obs"], info["_final_obs"],
               *info["episode"].values(), info["_episode"]]
    assert all(t.device.type == "cuda" for t in tensors)
