"""Worst-case search over an uncertainty box: exhaustive grid (IWOCS*) and CMA-ES (IWOCS).

Both score a policy on many static models in one batched rollout: each copy of the env gets its
own params (:meth:`UncertaintyBox.params`) and :func:`rlsuite.engine.evaluate.evaluate` runs them
all. ``episodes`` initial states per model are obtained by repeating each model's params
``episodes`` times (one episode per copy), so a stateful policy (IWOCS's composite policy keeps the
previous transition) only ever sees first episodes; it is reset before each rollout through its
``reset()`` method when it has one.

CMA-ES (paper App. H: the ``cmaes`` package, mean 0.5, std 0.5 in the normalized box, 6 generations
of 100) minimizes the mean return; each generation is one batched rollout, and the best point ever
evaluated is returned (CMA-ES's own mean may be worse).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from rlsuite.agents.iwocs.boxes import UncertaintyBox
from rlsuite.core.env import BatchedEnv
from rlsuite.engine.evaluate import evaluate
from rlsuite.engine.rollout import Policy


@dataclass(frozen=True)
class SearchResult:
    """Every model evaluated and the worst one."""

    values: torch.Tensor
    """``[N, d]`` physical params of the evaluated models."""
    returns: torch.Tensor
    """``[N]`` mean return of the policy on each (over ``episodes`` initial states)."""

    @property
    def worst_index(self) -> int:
        """Index of the lowest mean return (first on ties)."""
        return int(self.returns.argmin())

    @property
    def worst_values(self) -> torch.Tensor:
        """``[d]`` params of the worst model."""
        return self.values[self.worst_index]

    @property
    def worst_return(self) -> float:
        """Its mean return."""
        return float(self.returns[self.worst_index])

    @property
    def mean_return(self) -> float:
        """Mean over the evaluated models (the paper's "average" metric on a grid)."""
        return float(self.returns.mean())


def score_models(
    policy: Policy, env: BatchedEnv, box: UncertaintyBox, nominal: Any, values: torch.Tensor,
    episodes: int, generator: torch.Generator,
) -> torch.Tensor:
    """``[N]`` mean return of ``policy`` on each of the ``N`` models ``values`` ``[N, d]``: one
    batched rollout of ``N * episodes`` copies, one episode each."""
    if episodes < 1:
        raise ValueError(f"episodes = {episodes} must be >= 1")
    vals = values.reshape(-1, box.dim)
    params = box.params(nominal, vals.repeat_interleave(episodes, dim=0))
    reset = getattr(policy, "reset", None)
    if reset is not None:
        reset()
    result = evaluate(policy, env, params, 1, generator)
    return result.returns[:, 0].reshape(vals.shape[0], episodes).mean(1).cpu().to(torch.float64)


Objective = Callable[[torch.Tensor], torch.Tensor]
"""``[N, d]`` physical params -> ``[N]`` scores to minimize (one batched call per population)."""


def grid_minimize(objective: Objective, box: UncertaintyBox, points: int) -> SearchResult:
    """Score every point of the ``points^d`` grid (linspace, both bounds) in one call."""
    values = box.grid(points)
    return SearchResult(values, objective(values))


def cmaes_minimize(
    objective: Objective, box: UncertaintyBox, generations: int, population: int, seed: int,
    mean: float = 0.5, sigma: float = 0.5,
) -> SearchResult:
    """CMA-ES over the normalized box ``[0, 1]^d``, one objective call per generation.

    Returns every evaluated point (``generations * population`` of them) with its score.
    """
    from cmaes import CMA

    if generations < 1 or population < 2:
        raise ValueError(f"cmaes_minimize: need generations >= 1 and population >= 2; got "
                         f"{generations}, {population}")
    # Boundary handling by projection: a candidate outside [0, 1]^d is scored at its projection
    # and told to CMA-ES with a penalty growing with the distance (scaled by this generation's
    # score spread). Worst cases often sit on the box's faces or corners (paper App. M: torso mass
    # 0.1, the lower bound); the package's own bounds resample candidates inside the box, which
    # reaches a corner only slowly (measured: 6 % of the range off after 6 x 16 on a bowl).
    opt = CMA(mean=np.full(box.dim, mean), sigma=sigma, seed=seed, population_size=population)
    all_values, all_scores = [], []
    for _ in range(generations):
        raw = np.stack([opt.ask() for _ in range(opt.population_size)])
        unit = np.clip(raw, 0.0, 1.0)
        values = box.denormalize(torch.from_numpy(unit))
        scores = objective(values)
        spread = float(scores.std()) + 1e-12 if scores.numel() > 1 else 1.0
        told = scores.numpy() + spread * np.linalg.norm(raw - unit, axis=1)
        opt.tell(list(zip(raw, told.tolist(), strict=True)))
        all_values.append(values)
        all_scores.append(scores)
    return SearchResult(torch.cat(all_values), torch.cat(all_scores))


def grid_search(
    policy: Policy, env: BatchedEnv, box: UncertaintyBox, nominal: Any, points: int,
    episodes: int, generator: torch.Generator,
) -> SearchResult:
    """The policy's mean return on every grid point: one batched rollout (IWOCS*)."""
    return grid_minimize(
        lambda v: score_models(policy, env, box, nominal, v, episodes, generator), box, points)


def cmaes_search(
    policy: Policy, env: BatchedEnv, box: UncertaintyBox, nominal: Any, generations: int,
    population: int, episodes: int, generator: torch.Generator, seed: int,
    mean: float = 0.5, sigma: float = 0.5,
) -> SearchResult:
    """CMA-ES minimization of the policy's mean return, one batched rollout per generation."""
    return cmaes_minimize(
        lambda v: score_models(policy, env, box, nominal, v, episodes, generator),
        box, generations, population, seed, mean, sigma)
