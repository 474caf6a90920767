"""IWOCS: robust MDPs as a sequence of static RL problems (Zouitine et al., arXiv 2410.06212).

Modules, one job each:

* :mod:`~rlsuite.agents.iwocs.exact` - batched exact evaluation and policy iteration over a stack
  of tabular models; :mod:`~rlsuite.agents.iwocs.reference` - robust value iteration
  (sa-rectangular) and brute force over deterministic policies; :mod:`~rlsuite.agents.iwocs.sets` -
  sa-rectangular product sets (random ones, the route-choice stall case) and random non-rectangular
  finite sets;
  :mod:`~rlsuite.agents.iwocs.tabular` - :func:`solve_tabular`, the paper's Algorithm 1.
* :mod:`~rlsuite.agents.iwocs.boxes` - uncertainty boxes over the classic-control params;
  :mod:`~rlsuite.agents.iwocs.search` - worst-case search by grid and CMA-ES, batched rollouts.
* :mod:`~rlsuite.agents.iwocs.critic` - the extra heads of each expert (unregularized Q, next-state
  predictor); :mod:`~rlsuite.agents.iwocs.composite` - the most-pessimistic-trusted-expert policy;
  :mod:`~rlsuite.agents.iwocs.deep` - the deep agent (``rlsuite agent=iwocs env=pendulum``).
"""

from typing import TYPE_CHECKING

from rlsuite.agents import register
from rlsuite.core.lazy import lazy_exports

register("iwocs", config="rlsuite.agents.iwocs.config:IWOCSConfig", build="rlsuite.agents.iwocs.deep:build",
         schema="iwocs_schema")

# The public names below are imported on first use (importing the package to read its
# registration loads none of its modules).
if TYPE_CHECKING:
    from rlsuite.agents.iwocs.exact import ModelStack, evaluate_policies, solve_models
    from rlsuite.agents.iwocs.reference import RobustSolution, brute_force, robust_value_iteration
    from rlsuite.agents.iwocs.sets import (
        random_finite_set,
        random_rectangular_set,
        rectangular_product,
        route_choice_set,
    )
    from rlsuite.agents.iwocs.tabular import (
        DEFAULT_TIE_BREAK,
        TIE_BREAK_KEYS,
        IterationRecord,
        TabularIWOCSResult,
        solve_tabular,
    )

__getattr__, __dir__ = lazy_exports(__name__, {
    "ModelStack": ".exact",
    "evaluate_policies": ".exact",
    "solve_models": ".exact",
    "RobustSolution": ".reference",
    "brute_force": ".reference",
    "robust_value_iteration": ".reference",
    "random_finite_set": ".sets",
    "random_rectangular_set": ".sets",
    "rectangular_product": ".sets",
    "route_choice_set": ".sets",
    "DEFAULT_TIE_BREAK": ".tabular",
    "TIE_BREAK_KEYS": ".tabular",
    "IterationRecord": ".tabular",
    "TabularIWOCSResult": ".tabular",
    "solve_tabular": ".tabular",
})
__all__ = [
    "DEFAULT_TIE_BREAK", "IterationRecord", "ModelStack", "RobustSolution", "TIE_BREAK_KEYS",
    "TabularIWOCSResult", "brute_force", "evaluate_policies", "random_finite_set",
    "random_rectangular_set", "rectangular_product", "robust_value_iteration", "route_choice_set",
    "solve_models", "solve_tabular",
]
