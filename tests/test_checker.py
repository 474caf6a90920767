"""``check_env`` passes the classic-control envs and names what a broken env gets wrong."""

from __future__ import annotations

import dataclasses
import re

import pytest
import torch

from rlsuite.core.checker import CheckReport, EnvCheckError, check_env
from rlsuite.core.params import with_values
from rlsuite.envs.acrobot import Acrobot
from rlsuite.envs.cartpole import CartPole
from rlsuite.envs.pendulum import Pendulum

# -- the real envs pass -------------------------------------------------------------------------


def test_cartpole_passes() -> None:
    report = check_env(CartPole(), batch_size=4, seed=0)
    # 501 steps: random play ends ~22-step episodes, so many autoresets, and none survives 500.
    assert report.steps == 501
    assert report.episodes_ended > 50
    assert report.truncations == 0


def test_pendulum_passes_and_every_copy_truncates_at_200() -> None:
    report = check_env(Pendulum(), batch_size=4, seed=0)
    assert report == CheckReport(steps=201, episodes_ended=4, truncations=4)


def test_acrobot_passes() -> None:
    # A short limit so that the 500-step default does not dominate the test's time.
    report = check_env(Acrobot(max_episode_steps=60), batch_size=3, seed=1)
    assert report == CheckReport(steps=61, episodes_ended=3, truncations=3)


@pytest.mark.parametrize("make", [CartPole, Pendulum, Acrobot])
def test_float64_envs_pass(make) -> None:
    check_env(make(dtype=torch.float64, max_episode_steps=30), batch_size=2, seed=2)


def test_per_copy_params_pass() -> None:
    env = Pendulum()
    params = with_values(env.default_params(3), g=torch.tensor([9.8, 10.0, 12.0]))
    report = check_env(env, params=params)
    assert report.truncations == 3


def test_warns_when_no_episode_ends() -> None:
    with pytest.warns(UserWarning, match=r"no episode ended in 10 steps of 2 copies"):
        check_env(Pendulum(), batch_size=2, num_steps=10)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("make", [CartPole, Pendulum, Acrobot])
def test_envs_pass_on_cuda(make) -> None:
    check_env(make(device="cuda", max_episode_steps=40), batch_size=64)


# -- broken envs are caught, each with its own message -----------------------------------------


class Float64Rewards(CartPole):
    def step(self, state, action, params, generator):
        step = super().step(state, action, params, generator)
        return dataclasses.replace(step, reward=step.reward.double())


class GlobalRng(CartPole):
    def _sample_initial(self, n, generator):
        # The bug: torch's global generator instead of the one passed in.
        return torch.rand((4, n), dtype=self.dtype) * 0.1 - 0.05


class PostResetFinalObs(CartPole):
    def step(self, state, action, params, generator):
        step = super().step(state, action, params, generator)
        return dataclasses.replace(step, final_obs=step.obs)


class NoParamCheck(CartPole):
    def check_params(self, params, batch_size=None):
        pass


class SqueezesActions(Pendulum):
    def step(self, state, action, params, generator):
        # The bug: reshaping whatever comes in instead of rejecting it.
        b = state.time.shape[0]
        return super().step(state, action.reshape(-1)[:b].reshape(b, 1), params, generator)


class LateTruncation(Pendulum):
    def _physics_kernel(self, fields, action, params, time):
        nxt, time, reward, terminated, truncated, obs = super()._physics_kernel(
            fields, action, params, time
        )
        return nxt, time, reward, terminated, time > self.max_episode_steps, obs


def test_float64_rewards_are_caught() -> None:
    with pytest.raises(
        EnvCheckError,
        match=re.escape("step() call 0 reward has dtype torch.float64; expected torch.float32"),
    ):
        check_env(Float64Rewards(), num_steps=20)


def test_global_rng_is_caught() -> None:
    with pytest.raises(
        EnvCheckError,
        match=re.escape(
            "not deterministic: two reset() calls with generators seeded 0 give different obs"
        ),
    ):
        check_env(GlobalRng(), num_steps=20)


def test_post_reset_final_obs_is_caught() -> None:
    with pytest.raises(
        EnvCheckError,
        match=re.escape(
            "final_obs is not the observation the transition reached: in copies [0, 1, 2, 3]"
        ),
    ):
        check_env(PostResetFinalObs(), num_steps=20)


def test_accepting_wrong_shaped_params_is_caught() -> None:
    with pytest.raises(
        EnvCheckError,
        match=re.escape(
            "reset() accepted params.gravity with shape (4, 1); it must raise a ValueError "
            "naming the field"
        ),
    ):
        check_env(NoParamCheck(), num_steps=20)


def test_accepting_wrong_shaped_actions_is_caught() -> None:
    with pytest.raises(
        EnvCheckError,
        match=re.escape(
            "step() accepted an action of shape (4, 1, 1) (a trailing extra dim); expected (4, 1)"
        ),
    ):
        check_env(SqueezesActions(max_episode_steps=10), num_steps=20)


def test_truncating_one_step_late_is_caught() -> None:
    with pytest.raises(
        EnvCheckError,
        match=re.escape(
            "step() call 4: truncated is [False, False] after episodes of length [5, 5]; with "
            "max_episode_steps=5 it must be [True, True]"
        ),
    ):
        check_env(LateTruncation(max_episode_steps=5), batch_size=2)


def test_observation_outside_the_declared_space_is_caught() -> None:
    # Strong gravity and a high speed limit swing the pendulum past the declared |thdot| <= 8.
    env = Pendulum()
    params = with_values(env.default_params(4), g=40.0, max_speed=30.0)
    with pytest.raises(
        EnvCheckError,
        match=r"step\(\) call \d+ obs is outside env.observation_space: "
        r"obs\[\d, 2\] = -?\d+\.\d+ not in \[-8\.0, 8\.0\]",
    ):
        check_env(env, params=params)


def test_bad_params_are_rejected_by_the_real_envs_with_the_field_named() -> None:
    """What the checker relies on, seen directly."""
    env = Acrobot()
    params = env.default_params(3)
    bad = dataclasses.replace(params, link_mass_2=params.link_mass_2.double())
    with pytest.raises(ValueError, match=r"params.link_mass_2 has dtype torch.float64"):
        env.reset(bad, env.make_generator(0))


@pytest.mark.parametrize(
    ("env", "action", "shape"),
    [
        (CartPole(), torch.zeros(4, 1, dtype=torch.int64), "(4, 1); expected (4,)"),
        (Pendulum(), torch.zeros(4), "(4,); expected (4, 1)"),
        (Acrobot(), torch.zeros(5, dtype=torch.int64), "(5,); expected (4,)"),
    ],
)
def test_wrong_action_shapes_are_rejected(env, action, shape) -> None:
    params = env.default_params(4)
    _, state = env.reset(params, env.make_generator(0))
    with pytest.raises(ValueError, match=re.escape(f"action has shape {shape}")):
        env.step(state, action, params, env.make_generator(0))


class VagueParamCheck(CartPole):
    def check_params(self, params, batch_size=None):
        if params.gravity.dim() != 1:
            raise ValueError("bad params")
        super().check_params(params, batch_size)


def test_a_param_error_that_does_not_name_the_field_is_caught() -> None:
    with pytest.raises(
        EnvCheckError,
        match=re.escape(
            "reset() rejected params.gravity with shape (4, 1), but its ValueError does not "
            "name the field: ValueError('bad params')"
        ),
    ):
        check_env(VagueParamCheck(), num_steps=20)
