"""A budget that is not a whole number of iterations is rounded, and the run says so."""

from __future__ import annotations

import warnings

import pytest

import rlsuite.envs as envs
from rlsuite.learners.budget import whole_iterations
from rlsuite.learners.ppo import PPO, PPOConfig


def test_a_whole_budget_is_silent() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert whole_iterations(1024, 8, 16, "PPO") == 8


@pytest.mark.parametrize(("total", "iterations", "ran"), [(1000, 7, 896), (100, 1, 128)])
def test_a_rounded_budget_names_the_steps_that_run(total: int, iterations: int, ran: int) -> None:
    with pytest.warns(UserWarning, match=rf"PPO: total_steps={total} .* 8 x 16 = 128 .* "
                                         rf"{iterations} iteration\(s\) = {ran} env steps"):
        assert whole_iterations(total, 8, 16, "PPO") == iterations


def test_ppo_trains_the_steps_the_warning_names() -> None:
    env = envs.make("cartpole")
    agent = PPO(PPOConfig(num_steps=16, num_minibatches=2, update_epochs=1), env,
                env.default_params(8), seed=0)
    with pytest.warns(UserWarning, match="= 256 env steps"):
        agent.learn(300)
    assert agent.global_step == 256
