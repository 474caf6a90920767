"""Distributional dynamic programming with stock augmentation (Avila Pires et al., *Optimizing
Return Distributions with Distributional Dynamic Programming*, arXiv 2501.13028).

``solve(mdp, objective, initial_stock, method)`` returns the optimal stock-augmented policy, its
objective value and its return distribution; objectives live in :mod:`.objectives`. Modules:
``objectives`` (the functionals), ``stocks`` (stock sets), ``finite`` (exact finite-horizon DP),
``categorical`` (discounted, categorical), ``solver`` (``solve``).
"""

from rlsuite.agents.distributional_dp.objectives import (
    CVaR,
    ExpectedUtility,
    Homeostatic,
    Mean,
    MeanCVaR,
    Objective,
    ProbabilityOfThreshold,
    ReturnTargeting,
    Tails,
)
from rlsuite.agents.distributional_dp.solver import Solution, StockPolicy, solve

__all__ = [
    "CVaR",
    "ExpectedUtility",
    "Homeostatic",
    "Mean",
    "MeanCVaR",
    "Objective",
    "ProbabilityOfThreshold",
    "ReturnTargeting",
    "Solution",
    "StockPolicy",
    "Tails",
    "solve",
]
