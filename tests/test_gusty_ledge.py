"""GustyLedge (rlsuite/envs/gusty_ledge.py): dynamics by hand, gust frequency, falls, autoreset."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import rlsuite.envs as envs


def _env_params(b: int, **kw):
    env = envs.make("gusty_ledge")
    params = env.default_params(b)
    return env, dataclasses.replace(params, **{k: torch.full((b,), v) for k, v in kw.items()})


def test_deterministic_walk_pays_the_height_cost_and_arrives() -> None:
    env, params = _env_params(2, noise=0.0, gust_prob=0.0)
    gen = env.make_generator(0)
    obs, state = env.reset(params, gen)
    assert obs.tolist() == [[0.0, 0.5], [0.0, 0.5]]
    total = torch.zeros(2)
    for t in range(10):
        step = env.step(state, torch.tensor([1, 2]), params, gen)  # copy 0 level, copy 1 climbs
        total += step.reward
        state = step.state
        assert step.terminated.tolist() == [t == 9, t == 9]
    assert step.final_obs[:, 0].tolist() == pytest.approx([1.0, 1.0])
    assert total[0].item() == pytest.approx(-10 * (1 + 2 * 0.5), abs=1e-5)
    climbed = -sum(1 + 2 * min(0.5 + 0.1 * (t + 1), 1.0) for t in range(10))
    assert total[1].item() == pytest.approx(climbed, abs=1e-5)


def test_a_fall_pays_the_fall_cost_terminates_and_restarts() -> None:
    env, params = _env_params(1, noise=0.0, gust_prob=1.0, start_height=0.2)
    gen = env.make_generator(0)
    _, state = env.reset(params, gen)
    step = env.step(state, torch.tensor([1]), params, gen)  # level, but the gust pushes 0.3 down
    assert step.reward.item() == -20.0 and step.terminated.item() and not step.truncated.item()
    assert step.final_obs[0, 1].item() == pytest.approx(-0.1)
    assert step.obs.tolist() == [[0.0, pytest.approx(0.2)]]  # restarted


def test_gusts_happen_at_their_rate() -> None:
    env, params = _env_params(20000, noise=0.0, start_height=0.5)
    gen = env.make_generator(1)
    _, state = env.reset(params, gen)
    step = env.step(state, torch.ones(20000, dtype=torch.long), params, gen)
    gusted = (step.final_obs[:, 1] < 0.4).float().mean().item()
    assert gusted == pytest.approx(0.02, abs=0.004)


def test_bad_params_are_named() -> None:
    env, params = _env_params(1, gust_prob=1.5)
    with pytest.raises(ValueError, match="gust_prob"):
        env.reset(params, env.make_generator(0))
