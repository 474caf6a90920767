"""Params builders and validation, spaces, tree helpers, the logger."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import rlsuite.envs as envs
from rlsuite.core import params as P
from rlsuite.core import spaces, tree
from rlsuite.logging import Logger, read_metrics


@pytest.fixture
def env():
    return envs.make("cartpole")


def test_grid_params_exact_values_and_order(env) -> None:
    grid = P.grid_params(env.default_params(1), {"length": (0.5, 1.0), "gravity": (5.0, 15.0)},
                         {"length": 2, "gravity": 3})
    assert grid.length.tolist() == [0.5, 0.5, 0.5, 1.0, 1.0, 1.0]
    assert grid.gravity.tolist() == [5.0, 10.0, 15.0, 5.0, 10.0, 15.0]  # last axis fastest
    assert torch.equal(grid.masscart, torch.ones(6))  # untouched fields keep the base value
    env.check_params(grid, 6)


def test_uniform_params_in_box_and_seeded(env) -> None:
    base = env.default_params(1)
    a = P.uniform_params(base, {"masspole": (0.05, 0.5)}, 1000, torch.Generator().manual_seed(0))
    b = P.uniform_params(base, {"masspole": (0.05, 0.5)}, 1000, torch.Generator().manual_seed(0))
    assert torch.equal(a.masspole, b.masspole)
    assert float(a.masspole.min()) >= 0.05 and float(a.masspole.max()) <= 0.5
    assert abs(float(a.masspole.mean()) - 0.275) < 0.01  # mean of U(0.05, 0.5), 1000 draws
    assert torch.equal(a.gravity, torch.full((1000,), 9.8))


def test_box_errors_name_the_field(env) -> None:
    with pytest.raises(KeyError, match="'mass'"):
        P.grid_params(env.default_params(1), {"mass": (0.0, 1.0)}, 3)
    with pytest.raises(ValueError, match="length"):
        P.grid_params(env.default_params(1), {"length": (1.0, 0.5)}, 3)


def test_stack_index_with_values(env) -> None:
    a = P.with_values(env.default_params(2), gravity=3.0)
    b = P.with_values(env.default_params(1), gravity=[7.0])
    both = P.stack_params([a, b])
    assert both.gravity.tolist() == [3.0, 3.0, 7.0]
    assert P.index_params(both, 2).gravity.tolist() == [7.0]
    assert P.index_params(both, [0, 2]).gravity.tolist() == [3.0, 7.0]
    assert tree.batch_size(tree.repeat(both, 2)) == 6


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda p: P.with_values(p, gravity=torch.ones(4, 2)), r"params.gravity has shape \(4, 2\)"),
        (lambda p: type(p)(**{**tree.to_dict(p), "tau": torch.ones(3)}), "params.tau has batch size 3"),
        (lambda p: type(p)(**{**tree.to_dict(p), "length": p.length.double()}), "params.length has dtype"),
    ],
)
def test_reset_rejects_bad_params(env, bad, message) -> None:
    with pytest.raises(ValueError, match=message):
        env.reset(bad(env.default_params(4)), env.make_generator(0))


def test_spaces_sample_contain_and_convert() -> None:
    box = spaces.Box.make(-1.0, 2.0, shape=(3,)).batched(5)
    x = box.sample(torch.Generator().manual_seed(0))
    assert x.shape == (5, 3) and box.contains(x)
    assert not box.contains(x + 5) and not box.contains(x[:, :2])
    assert box.to_gymnasium().shape == (3,)
    disc = spaces.Discrete(4).batched(7)
    a = disc.sample(torch.Generator().manual_seed(0))
    assert a.dtype == torch.int64 and disc.contains(a) and not disc.contains(a + 4)
    with pytest.raises(ValueError, match="low must be <= high"):
        spaces.Box.make(1.0, 0.0, shape=(2,))


def test_tree_flatten_round_trip(env) -> None:
    obs, state = env.reset(env.default_params(3), env.make_generator(0))
    flat = tree.flatten(state)
    assert "pool.values" in flat and "x" in flat
    back = tree.unflatten_like(state, flat)
    assert torch.equal(back.x, state.x) and back.pool.cursor == state.pool.cursor
    with pytest.raises(KeyError, match="'x'"):
        tree.unflatten_like(state, {k: v for k, v in flat.items() if k != "x"})


def test_logger_grows_columns_and_resumes(tmp_path: Path) -> None:
    log = Logger(tmp_path, {"seed": 1}, tensorboard=False)
    log.log(10, {"a": 1.0})
    log.log(20, {"a": 2.0, "b": 3.0})
    log.close()
    assert read_metrics(tmp_path) == [{"step": 10, "a": 1.0}, {"step": 20, "a": 2.0, "b": 3.0}]
    log = Logger(tmp_path, None, tensorboard=False, resume=True)
    log.log(30, {"b": 4.0})
    assert read_metrics(tmp_path)[-1] == {"step": 30, "b": 4.0}
    assert len(read_metrics(tmp_path)) == 3
    assert (tmp_path / "config.yaml").read_text().strip() == "seed: 1"
