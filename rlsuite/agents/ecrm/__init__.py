"""Risk-averse policy gradient with expected conditional risk measures (Yu and Ying, arXiv
2301.10932): exact tabular ECRMs (:mod:`.exact`) and the learning agent."""

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

__all__ = [
    "ECRMGradients",
    "exact_ecrm",
    "exact_gradients",
    "next_reward_distribution",
    "optimal_conditioned_ecrm",
    "optimal_thresholds",
    "ru_objective",
    "softmax_gradient",
    "stage_risk",
]
