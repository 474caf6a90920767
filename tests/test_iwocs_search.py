"""Uncertainty boxes and worst-case search of IWOCS (rlsuite.agents.iwocs.boxes / search)."""

import pytest
import torch

import rlsuite.envs as envs
from rlsuite.agents.iwocs.boxes import BOXES, UncertaintyBox, get_box
from rlsuite.agents.iwocs.search import cmaes_minimize, grid_minimize, grid_search, score_models


def test_grid_is_linspace_with_both_bounds_and_maps_to_per_copy_params():
    box = get_box("pendulum_mass_length_wide")
    grid = box.grid(10)
    assert grid.shape == (100, 2)
    assert grid[0].tolist() == [0.5, 0.5] and grid[-1].tolist() == [2.0, 1.5]  # M2TD3 convention
    assert torch.unique(grid[:, 0]).numel() == 10 and torch.unique(grid[:, 1]).numel() == 10
    assert grid[1].tolist() == pytest.approx([0.5, 0.5 + 1.0 / 9])  # last axis fastest
    env = envs.make("pendulum")
    params = box.params(env.default_params(1), grid)
    assert params.m.tolist() == pytest.approx(grid[:, 0].tolist())
    assert params.l.tolist() == pytest.approx(grid[:, 1].tolist())
    assert params.g.tolist() == [10.0] * 100  # fields outside the box keep the nominal value
    x = torch.rand(5, 2, dtype=torch.float64)
    torch.testing.assert_close(box.normalize(box.denormalize(x)), x)
    assert box.nominal_values(env.default_params(1)).tolist() == [1.0, 1.0]


def test_every_named_box_fits_its_env():
    for name, box in BOXES.items():
        env = envs.make(box.env)
        nominal = env.default_params(1)
        params = box.params(nominal, box.grid(2))
        for k, field in enumerate(box.names):
            assert getattr(params, field).tolist() == pytest.approx(box.grid(2)[:, k].tolist()), name
        nom = box.normalize(box.nominal_values(nominal)[None])
        assert bool(((nom >= 0) & (nom <= 1)).all()), f"{name}: nominal outside the box"


def test_bad_boxes_are_rejected():
    with pytest.raises(ValueError, match="low 2.0 >= high 1.0"):
        UncertaintyBox("pendulum", ("m",), (2.0,), (1.0,))
    with pytest.raises(KeyError, match="unknown uncertainty box 'nope'"):
        get_box("nope")
    with pytest.raises(KeyError, match="unknown param 'mass'"):
        UncertaintyBox("pendulum", ("mass",), (0.5,), (2.0,)).params(
            envs.make("pendulum").default_params(1), torch.tensor([[1.0]]))


def test_cmaes_finds_a_corner_minimum_of_a_bowl():
    """docs/iwocs.md: a quadratic bowl whose minimum sits at a box corner is found within 5 % of
    the range (popsize 16, 6 generations, normalized box)."""
    box = UncertaintyBox("pendulum", ("m", "l"), (0.5, 0.5), (2.0, 1.5))
    corner = torch.tensor([2.0, 0.5], dtype=torch.float64)

    def bowl(values: torch.Tensor) -> torch.Tensor:
        return ((box.normalize(values) - box.normalize(corner[None])) ** 2).sum(-1)

    for seed in range(3):
        res = cmaes_minimize(bowl, box, generations=6, population=16, seed=seed)
        assert res.values.shape == (96, 2)
        err = (box.normalize(res.worst_values[None]) - box.normalize(corner[None])).abs().max()
        assert float(err) < 0.05
    grid = grid_minimize(bowl, box, 10)
    assert grid.worst_values.tolist() == corner.tolist()


def test_grid_search_is_one_rollout_with_a_row_per_model_and_replicas():
    """A torque-free pendulum with g = 0 and max_speed = 0 never moves, so each episode's return
    is 200 times its first reward; with the grid over g only (all 0 here) the per-model means
    are means over independent initial states, and score_models must group copies by model:
    replica k of model i is copy i * episodes + k."""
    env = envs.make("pendulum")
    nominal = envs.make("pendulum").default_params(1)
    from rlsuite.core.params import with_values

    nominal = with_values(nominal, max_speed=0.0)
    box = UncertaintyBox("pendulum", ("g", "dt"), (0.0, 0.05), (0.0 + 1e-9, 0.05 + 1e-9))
    values = box.grid(2)  # 4 identical physical models
    seen = []

    def policy(obs: torch.Tensor) -> torch.Tensor:
        seen.append(obs.clone())
        return torch.zeros(obs.shape[0], 1)

    scores = score_models(policy, env, box, nominal, values, episodes=3, generator=env.make_generator(0))
    first = seen[0]
    cost = torch.atan2(first[:, 1], first[:, 0]) ** 2 + 0.1 * first[:, 2] ** 2
    # step 0 pays the random initial velocity; later steps have velocity 0 (max_speed = 0)
    angle_cost = torch.atan2(first[:, 1], first[:, 0]) ** 2
    expected = -(cost + 199 * angle_cost).reshape(4, 3).mean(1)
    torch.testing.assert_close(scores.float(), expected.float(), rtol=1e-4, atol=1e-2)
    res = grid_search(policy, env, box, nominal, 2, 3, env.make_generator(0))
    assert res.returns.shape == (4,)
