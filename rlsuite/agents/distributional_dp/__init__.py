"""Distributional dynamic programming with stock augmentation (Avila Pires et al., *Optimizing
Return Distributions with Distributional Dynamic Programming*, arXiv 2501.13028).

``solve(mdp, objective, initial_stock, method)`` returns the optimal stock-augmented policy, its
objective value and its return distribution; objectives live in :mod:`.objectives`. Modules:
``objectives`` (the functionals), ``stocks`` (stock sets), ``finite`` (exact finite-horizon DP),
``categorical`` (discounted, categorical), ``solver`` (``solve``).
"""

from typing import TYPE_CHECKING

from rlsuite.agents import register
from rlsuite.core.lazy import lazy_exports

register("distributional_dp", config="rlsuite.agents.distributional_dp.config:DistributionalDPConfig",
         build="rlsuite.agents.distributional_dp.agent:DistributionalDP", schema="distributional_dp_schema")
register("deta_n", config="rlsuite.agents.distributional_dp.config:DetaNConfig",
         build="rlsuite.agents.distributional_dp.deta_n:DetaN", schema="deta_n_schema")
# DηN's risk-neutral baseline reads DηN's config (the same network and schedule settings).
register("risk_neutral_qrdqn", config="rlsuite.agents.distributional_dp.config:DetaNConfig",
         build="rlsuite.agents.distributional_dp.baselines:RiskNeutralQRDQN", schema="deta_n_schema")

# The public names below are imported on first use (importing the package to read its
# registration loads none of its modules).
if TYPE_CHECKING:
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

__getattr__, __dir__ = lazy_exports(__name__, {
    "CVaR": ".objectives",
    "ExpectedUtility": ".objectives",
    "Homeostatic": ".objectives",
    "Mean": ".objectives",
    "MeanCVaR": ".objectives",
    "Objective": ".objectives",
    "ProbabilityOfThreshold": ".objectives",
    "ReturnTargeting": ".objectives",
    "Tails": ".objectives",
    "Solution": ".solver",
    "StockPolicy": ".solver",
    "solve": ".solver",
})
__all__ = [
    "CVaR", "ExpectedUtility", "Homeostatic", "Mean", "MeanCVaR", "Objective",
    "ProbabilityOfThreshold", "ReturnTargeting", "Solution", "StockPolicy", "Tails", "solve",
]
