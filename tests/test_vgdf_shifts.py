"""Dynamics-shifted envs: intact actuators reproduce the stock envs exactly, the shifts act as
defined (weak, one-sided, clipped velocity, physics), and source / target params come from one env."""

from __future__ import annotations

import math

import pytest
import torch

from rlsuite.envs.cartpole import CartPole
from rlsuite.envs.pendulum import Pendulum
from rlsuite.envs.shifts import (
    ContinuousCartPole,
    ShiftedContinuousCartPole,
    ShiftedPendulum,
    cartpole_terminal,
    domain_params,
    shifted_env,
)


def _run(env, params, actions, seed=0):
    gen = env.make_generator(seed)
    obs, state = env.reset(params, gen)
    out = [obs]
    for a in actions:
        step = env.step(state, a, params, gen)
        state = step.state
        out.append(step.final_obs)
    return torch.stack(out)


def test_intact_shifted_pendulum_equals_the_stock_env() -> None:
    base, twin = Pendulum(), ShiftedPendulum()
    acts = [torch.rand(4, 1, generator=torch.Generator().manual_seed(i)) * 4 - 2 for i in range(30)]
    torch.testing.assert_close(_run(twin, twin.default_params(4), acts),
                               _run(base, base.default_params(4), acts), rtol=0, atol=0)


def test_actuator_shifts_act_as_defined() -> None:
    env = ShiftedPendulum()
    src = domain_params(Pendulum(), Pendulum().default_params(1), 3, {})
    weak = domain_params(env, src, 3, {"action_gain": 0.5})
    one_sided = domain_params(env, src, 3, {"action_low": 0.0})
    act = torch.tensor([[-1.0], [0.5], [2.0]])
    th = torch.zeros(3)
    gen = env.make_generator(0)
    _, state = env.reset(src, gen)
    state = type(state)(th=th, thdot=torch.zeros(3), time=state.time, pool=state.pool)
    # At th = 0, thdot = 0: new thdot = 3 / (m l^2) * u * dt = 0.15 u.
    for params, torque in ((src, [-1.0, 0.5, 2.0]), (weak, [-0.5, 0.25, 1.0]), (one_sided, [0.0, 0.5, 2.0])):
        step = env.step(state, act, params, gen)
        torch.testing.assert_close(step.final_obs[:, 2], 0.15 * torch.tensor(torque))
    # Clipped joint velocity (Pendulum's own max_speed) and gravity through the same builder.
    clipped = domain_params(env, src, 3, {"max_speed": 0.1})
    step = env.step(state, act, clipped, gen)
    torch.testing.assert_close(step.final_obs[:, 2], torch.tensor([-0.1, 0.075, 0.1]))
    heavy = domain_params(env, src, 2, {"m": 2.0, "g": 15.0})
    assert heavy.m.tolist() == [2.0, 2.0] and heavy.g.tolist() == [15.0, 15.0]
    with pytest.raises(KeyError, match="unknown param 'mass'"):
        domain_params(env, src, 2, {"mass": 2.0})


def test_continuous_cartpole_matches_cartpole_at_full_force() -> None:
    disc, cont = CartPole(), ContinuousCartPole()
    bits = [torch.randint(2, (5,), generator=torch.Generator().manual_seed(i)) for i in range(20)]
    ref = _run(disc, disc.default_params(5), bits)
    got = _run(cont, cont.default_params(5), [(2.0 * b - 1.0).float().unsqueeze(-1) for b in bits])
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    twin = shifted_env(cont)
    assert isinstance(twin, ShiftedContinuousCartPole)
    half = domain_params(twin, cont.default_params(1), 5, {"action_gain": 0.5, "masspole": 0.5})
    gen = twin.make_generator(0)
    obs, state = twin.reset(half, gen)
    step = twin.step(state, torch.ones(5, 1), half, gen)
    ref_step = cont.step(state, 0.5 * torch.ones(5, 1), domain_params(twin, cont.default_params(1), 5,
                                                                       {"masspole": 0.5}), gen)
    torch.testing.assert_close(step.final_obs, ref_step.final_obs)
    assert cartpole_terminal(torch.tensor([[2.5, 0, 0, 0], [0, 0, 0.1, 0], [0, 0, 0.25, 0]])).tolist() == [
        True, False, True]
    assert 12 * 2 * math.pi / 360 < 0.25
    with pytest.raises(ValueError, match="no dynamics-shift variant of CartPole"):
        shifted_env(disc)


def test_parse_shift_reads_pairs_and_names_bad_parts() -> None:
    from rlsuite.envs.shifts import parse_shift

    assert parse_shift("m=1.5, action_low=0") == {"m": 1.5, "action_low": 0.0}
    assert parse_shift("") == {}
    with pytest.raises(ValueError, match="cannot read 'm:1.5'"):
        parse_shift("m:1.5")
    params = domain_params(ShiftedPendulum(), Pendulum().default_params(1), 2, "g=12")
    assert params.g.tolist() == [12.0, 12.0]
