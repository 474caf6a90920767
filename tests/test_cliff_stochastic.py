"""Stochastic CliffWalking (rlsuite/envs/tabular/cliff.py): transition tables by hand, the batched
env's sampling frequencies, and the risk-neutral optimum the ECRM experiments rely on."""

from __future__ import annotations

import pytest
import torch

import rlsuite.envs as envs
from rlsuite.agents.ecrm import exact_ecrm
from rlsuite.envs.tabular.cliff import stochastic_cliff_walking

START, GOAL = 36, 47


def _outcomes(mdp, s: int, a: int) -> dict[tuple[int, float, bool], float]:
    out: dict[tuple[int, float, bool], float] = {}
    for p, n, r, d in mdp.to_toy_text()[s][a]:
        out[(n, r, d)] = out.get((n, r, d), 0.0) + p
    return out


def test_deterministic_moves_cliff_and_goal() -> None:
    mdp = stochastic_cliff_walking(slip=0.0)
    assert _outcomes(mdp, START, 0) == {(24, -1.0, False): 1.0}  # up
    assert _outcomes(mdp, START, 1) == {(START, -10.0, False): 1.0}  # into the cliff: back to start
    assert _outcomes(mdp, START, 2) == {(START, -1.0, False): 1.0}  # wall
    assert _outcomes(mdp, 35, 2) == {(GOAL, -1.0, True): 1.0}  # down into the goal
    term = stochastic_cliff_walking(slip=0.0, cliff_terminates=True, cliff_cost=7.0)
    assert _outcomes(term, 25, 2) == {(37, -7.0, True): 1.0}


def test_slip_replaces_the_move_by_a_uniform_one() -> None:
    p = 0.2
    mdp = stochastic_cliff_walking(slip=p, cliff_cost=5.0)
    # From (1, 5) = 17, intending right: right 1 - 3p/4, the others p/4 each.
    assert _outcomes(mdp, 17, 1) == pytest.approx(
        {(18, -1.0, False): 1 - 0.75 * p, (5, -1.0, False): p / 4, (29, -1.0, False): p / 4,
         (16, -1.0, False): p / 4})
    # At the start, up: a slip right falls (back to the start, -5), a slip down or left bumps the
    # wall (stays, -1): same next state, different rewards, kept apart.
    assert _outcomes(mdp, START, 0) == pytest.approx(
        {(24, -1.0, False): 1 - 0.75 * p, (START, -5.0, False): p / 4, (START, -1.0, False): p / 2})


def test_engine_env_samples_the_table() -> None:
    env = envs.make("cliffwalking_stochastic", slip=0.4, cliff_cost=5.0)
    n = 20000
    params = env.default_params(n)
    gen = env.make_generator(0)
    _, state = env.reset(params, gen)
    step = env.step(state, torch.full((n,), 0), params, gen)  # everyone starts at 36 and goes up
    fell = (step.reward == -5.0).float().mean().item()
    up = (step.final_obs == 24).float().mean().item()
    assert fell == pytest.approx(0.1, abs=0.01)
    assert up == pytest.approx(1 - 0.3, abs=0.015)


def test_risk_neutral_optimum_hugs_the_cliff_and_ecrm_prefers_the_row_above() -> None:
    mdp = stochastic_cliff_walking()
    v = torch.zeros(48, dtype=torch.float64)
    for _ in range(100):
        v = mdp.backup(v).max(-1).values
    greedy = mdp.backup(v).argmax(-1).reshape(4, 12)
    assert greedy[2, :11].tolist() == [1] * 11  # right along row 2, next to the cliff
    assert v[START].item() == pytest.approx(-14.16, abs=0.01)

    def path(row: int) -> torch.Tensor:
        pi = torch.zeros(4, 12, 4, dtype=torch.float64)
        for r in range(4):
            for c in range(12):
                a = 2 if c == 11 or r < row else (0 if r > row else 1)
                pi[r, c, a] = 1.0
        return pi.reshape(48, 4)

    neutral = [exact_ecrm(mdp, path(k), 1.0, 0.0).item() for k in range(3)]
    averse = [exact_ecrm(mdp, path(k), 0.1, 1.0).item() for k in range(3)]
    assert max(range(3), key=lambda k: neutral[k]) == 2
    assert max(range(3), key=lambda k: averse[k]) == 1


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="slip"):
        stochastic_cliff_walking(slip=1.5)
    with pytest.raises(ValueError, match="cliff_cost"):
        stochastic_cliff_walking(cliff_cost=-1.0)
    with pytest.raises(TypeError, match="max_episode_steps"):
        envs.make("cliffwalking_stochastic", horizon=5)
