"""Risk-averse policy gradient with expected conditional risk measures (Yu and Ying, arXiv
2301.10932): exact tabular ECRMs (:mod:`.exact`) and the learning agent."""

from typing import TYPE_CHECKING

from rlsuite.agents import register
from rlsuite.core.lazy import lazy_exports

register("ecrm", config="rlsuite.agents.ecrm.config:ECRMConfig", build="rlsuite.agents.ecrm.agent:ECRM",
         schema="ecrm_schema")

# The public names below are imported on first use (importing the package to read its
# registration loads none of its modules).
if TYPE_CHECKING:
    from rlsuite.agents.ecrm.exact import (
        ECRMGradients,
        exact_ecrm,
        exact_gradients,
        next_reward_distribution,
        optimal_conditioned_ecrm,
        optimal_thresholds,
        ru_objective,
        softmax_gradient,
        stage_risk,
    )

__getattr__, __dir__ = lazy_exports(__name__, {
    "ECRMGradients": ".exact",
    "exact_ecrm": ".exact",
    "exact_gradients": ".exact",
    "next_reward_distribution": ".exact",
    "optimal_conditioned_ecrm": ".exact",
    "optimal_thresholds": ".exact",
    "ru_objective": ".exact",
    "softmax_gradient": ".exact",
    "stage_risk": ".exact",
})
__all__ = [
    "ECRMGradients", "exact_ecrm", "exact_gradients", "next_reward_distribution",
    "optimal_conditioned_ecrm", "optimal_thresholds", "ru_objective", "softmax_gradient",
    "stage_risk",
]
