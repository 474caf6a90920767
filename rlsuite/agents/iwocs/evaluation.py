"""Robust evaluation over an uncertainty box's grid, as final metrics a run records.

The paper's protocol (and M2TD3's ``evaluate.py``): ``points`` linspace values per axis, the mean
return over ``episodes`` episodes at every grid point; the worst case is the minimum over grid
points, the average the mean over them. IWOCS and its baselines report the same keys (one
function, :func:`grid_metrics`), with every grid point's mean return, so a results page computes
its tables from the run records alone. Every policy of one run is evaluated from the same
generator state (:func:`same_start`): the same initial states on every grid point, for every
method of the same seed.
"""

from __future__ import annotations

from typing import Any

import torch

from rlsuite.agents.iwocs.boxes import UncertaintyBox
from rlsuite.agents.iwocs.search import grid_search
from rlsuite.core.env import BatchedEnv
from rlsuite.engine.rollout import Policy


def grid_key(prefix: str, index: tuple[int, ...]) -> str:
    """The metric key of one grid point's mean return, e.g. ``eval/grid/3_7`` (axis indices in
    the box's order, ``linspace(low, high, points)`` along each axis)."""
    return f"{prefix}/grid/" + "_".join(str(i) for i in index)


def grid_metrics(
    policy: Policy, env: BatchedEnv, box: UncertaintyBox, nominal: Any, points: int,
    episodes: int, generator: torch.Generator, prefix: str = "eval", per_point: bool = True,
) -> dict[str, float]:
    """``{prefix}/worst_case_return`` (min over the grid of the mean return), ``{prefix}/mean_return``
    (mean over the grid), ``{prefix}/worst_<field>`` (the worst point's params) and, with
    ``per_point``, every point's mean return under :func:`grid_key`."""
    result = grid_search(policy, env, box, nominal, points, episodes, generator)
    out = {f"{prefix}/worst_case_return": result.worst_return, f"{prefix}/mean_return": result.mean_return}
    out |= {f"{prefix}/worst_{k}": v for k, v in box.describe(result.worst_values).items()}
    if per_point:
        # grid() enumerates the product with the last axis fastest: unravel the flat index
        shape = (points,) * box.dim
        for flat, value in enumerate(result.returns.tolist()):
            index = torch.unravel_index(torch.tensor(flat), shape)
            out[grid_key(prefix, tuple(int(i) for i in index))] = value
    return out


def read_grid(metrics: dict[str, float], prefix: str, dim: int, points: int) -> torch.Tensor:
    """The ``[points] * dim`` tensor of grid returns recorded by :func:`grid_metrics`.

    Raises:
        KeyError: naming the first missing key (a run that did not record its grid).
    """
    out = torch.empty((points,) * dim, dtype=torch.float64)
    for index in torch.cartesian_prod(*[torch.arange(points)] * dim).reshape(-1, dim).tolist():
        key = grid_key(prefix, tuple(index))
        if key not in metrics:
            raise KeyError(f"{key}: not among the run's final metrics")
        out[tuple(index)] = metrics[key]
    return out


def same_start(generator: torch.Generator) -> torch.Generator:
    """A fresh generator in ``generator``'s current state (so several policies see the same
    initial states; the original is left untouched)."""
    copy = torch.Generator(device=generator.device)
    copy.set_state(generator.get_state())
    return copy
