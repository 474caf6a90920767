"""Tabular IWOCS (Zouitine et al., arXiv 2410.06212, Algorithm 1 and App. E) with exact solvers.

The loop, for a finite set of models sharing states and actions::

    found = [T_0]
    repeat:
        Q*_{T_i}        exact optimal Q of the newest model (policy iteration)
        Q_i             = min over found models of Q*_T          (pointwise; paper eq. of §4)
        pi_i            = argmax_a Q_i                           (lowest action on ties)
        V^{pi_i}_T      for every model T, one batched exact evaluation
        T_{i+1}         = a minimizer of V^{pi_i}_T(initial), tie-broken as configured
        stop if |V^{pi_i}_{T_{i+1}} - estimate_i| <= tol, estimate_i = sum_s initial(s) Q_i(s, pi_i(s))
        stop (stalled) if T_{i+1} is already in ``found``: Q_{i+1} = Q_i, so pi_{i+1} = pi_i and the
             loop would repeat forever (paper §4: "premature stopping can occur if T_{i+1} is among
             T_i")

Why stopping by the criterion is optimal (sa-rectangular sets): ``estimate_i`` is an upper bound of
the robust value (paper Property 1), and ``V^{pi_i}_{T_{i+1}}`` is a policy's worst case, a lower
bound; when they meet, ``pi_i`` is robust-optimal. The reported value is the best *evaluated*
worst case over iterations, never ``Q_i`` (an upper bound only).

Non-rectangular sets (a few arbitrary models, or one parameter value shared by every state): the
criterion, when met, still certifies the best deterministic worst case from a single start state,
but the loop often stalls first, below it. ``Q*_T`` credits the agent with knowing ``T`` after its
first action, and without rectangularity no model in the set need have the robust value as its
optimal value, so ``Q_i`` can stay above the robust value after every model has been found
(``tests/test_iwocs_tabular.py``, two models: 0.27 against brute force's 0.63;
:func:`~rlsuite.agents.iwocs.analysis.nonrectangular_gaps` measures the gap on random sets).

Tie-breaking among equally bad models (worst-case values within ``tie_tol`` of the minimum) is a
sequence of keys applied in order, the model index last:

* ``"unseen"``: prefer models not yet found;
* ``"lowest_optimal_value"``: prefer the lowest ``V*_T(initial)`` (a model that is bad for every
  policy, not only for ``pi_i``: "adversarial in every coordinate" of a product set);
* ``"first"``: index only (the paper's strict ``<`` over the enumeration, App. E).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from rlsuite.agents.iwocs.exact import ModelStack, evaluate_policies, greedy, solve_models, start_value
from rlsuite.envs.tabular.mdp import TabularMDP

TIE_BREAK_KEYS = ("unseen", "lowest_optimal_value", "first")
"""Valid tie-break keys (see the module docstring)."""
DEFAULT_TIE_BREAK = ("unseen", "lowest_optimal_value")
"""Default: never re-pick a found model while an equally bad new one exists."""


@dataclass(frozen=True)
class IterationRecord:
    """One IWOCS iteration."""

    iteration: int
    """``i`` (0-based)."""
    found: list[int]
    """Indices of the models in ``T_i`` (in the order found)."""
    policy: list[int]
    """``pi_i``, an action per state."""
    estimate: float
    """``sum_s initial(s) Q_i(s, pi_i(s))``, the robust-Q estimate (an upper bound)."""
    worst_case_value: float
    """``min_T V^{pi_i}_T(initial)``, evaluated exactly."""
    worst_model: int
    """``T_{i+1}``, the chosen minimizer."""
    num_tied: int
    """How many models attain the minimum (within ``tie_tol``)."""
    repeated: bool
    """``T_{i+1}`` was already in ``T_i``."""


@dataclass(frozen=True)
class TabularIWOCSResult:
    """What :func:`solve_tabular` returns."""

    policy: torch.Tensor
    """``[S]`` int64: the policy with the best evaluated worst case over iterations."""
    worst_case_value: float
    """That policy's evaluated worst-case value from the initial distribution."""
    worst_case_models: list[int]
    """``T_{i+1}`` found at each iteration ``i``."""
    trace: list[IterationRecord]
    """Every iteration."""
    stop_reason: str
    """``"converged"`` (criterion met), ``"stalled"`` (a found model re-found) or
    ``"max_iterations"``."""
    found: list[int] = field(default_factory=list)
    """Models solved, in order (``T_0, T_1, ...``)."""

    @property
    def converged(self) -> bool:
        """The stopping criterion was met (the policy is robust-optimal on sa-rectangular sets)."""
        return self.stop_reason == "converged"

    @property
    def stalled(self) -> bool:
        """The worst case re-found a model already solved before the criterion was met."""
        return self.stop_reason == "stalled"

    @property
    def estimates(self) -> list[float]:
        """Robust-Q estimates per iteration (non-increasing: paper Property 2)."""
        return [r.estimate for r in self.trace]


def _check_tie_break(tie_break: Sequence[str]) -> tuple[str, ...]:
    keys = (tie_break,) if isinstance(tie_break, str) else tuple(tie_break)
    for key in keys:
        if key not in TIE_BREAK_KEYS:
            raise ValueError(f"tie_break key {key!r} is not one of {TIE_BREAK_KEYS}")
    return keys


def choose_worst(
    worst_values: torch.Tensor, found: Sequence[int], tie_break: Sequence[str],
    optimal_values: torch.Tensor | None, tie_tol: float,
) -> tuple[int, int]:
    """Pick ``T_{i+1}`` among the minimizers of ``worst_values`` ``[M]``.

    Returns ``(model index, number tied)``. ``optimal_values`` (``[M]`` ``V*_T(initial)``) is
    needed for the ``"lowest_optimal_value"`` key.
    """
    low = float(worst_values.min())
    tied = (worst_values <= low + tie_tol).nonzero().flatten().tolist()
    candidates = list(tied)
    seen = set(found)
    for key in tie_break:
        if key == "unseen":
            fresh = [m for m in candidates if m not in seen]
            candidates = fresh or candidates
        elif key == "lowest_optimal_value":
            assert optimal_values is not None
            vals = optimal_values[candidates]
            best = float(vals.min())
            candidates = [m for m, v in zip(candidates, vals.tolist(), strict=True)
                          if v <= best + tie_tol]
        # "first": the index order below decides
    return min(candidates), len(tied)


def solve_tabular(
    models: Sequence[TabularMDP] | ModelStack,
    initial_model: int = 0,
    max_iterations: int = 50,
    tol: float = 1e-9,
    tie_break: Sequence[str] = DEFAULT_TIE_BREAK,
    tie_tol: float = 1e-10,
) -> TabularIWOCSResult:
    """IWOCS over a finite set of tabular models (see the module docstring).

    Args:
        models: the uncertainty set (shared states, actions, initial distribution, ``gamma < 1``).
        initial_model: index of ``T_0``.
        max_iterations: cap on iterations (each solves one model).
        tol: the stopping tolerance ``epsilon`` on ``|worst case - estimate|`` (solves are exact,
            so this only absorbs rounding).
        tie_break: keys applied in order among equally bad models (``TIE_BREAK_KEYS``).
        tie_tol: worst-case values within this of the minimum count as tied.

    Returns:
        :class:`TabularIWOCSResult`; ``stop_reason`` tells how it ended.
    """
    stack = models if isinstance(models, ModelStack) else ModelStack.from_models(models)
    keys = _check_tie_break(tie_break)
    m = stack.num_models
    if not 0 <= initial_model < m:
        raise ValueError(f"initial_model = {initial_model} is out of range [0, {m})")
    if max_iterations < 1:
        raise ValueError(f"max_iterations = {max_iterations} must be >= 1")
    optimal_values = None
    if "lowest_optimal_value" in keys:
        optimal_values = start_value(stack, solve_models(stack).values)  # [M], one batched solve
    found = [initial_model]
    q_min: torch.Tensor | None = None
    trace: list[IterationRecord] = []
    best_value, best_policy = -float("inf"), None
    stop_reason = "max_iterations"
    for i in range(max_iterations):
        q_new = solve_models(stack.subset([found[-1]])).q[0]  # solve the newest static model
        q_min = q_new if q_min is None else torch.minimum(q_min, q_new)
        policy = greedy(q_min)
        states = torch.arange(stack.num_states, device=q_min.device)
        estimate = float(q_min[states, policy] @ stack.initial)
        worst = start_value(stack, evaluate_policies(stack, policy))  # [M]
        worst_model, num_tied = choose_worst(worst, found, keys, optimal_values, tie_tol)
        value = float(worst[worst_model])
        repeated = worst_model in found
        trace.append(IterationRecord(i, list(found), policy.tolist(), estimate, value,
                                     worst_model, num_tied, repeated))
        if value > best_value:
            best_value, best_policy = value, policy
        if abs(value - estimate) <= tol:
            stop_reason = "converged"
            break
        if repeated:
            stop_reason = "stalled"
            break
        found.append(worst_model)
    assert best_policy is not None
    return TabularIWOCSResult(best_policy, best_value, [r.worst_model for r in trace], trace,
                              stop_reason, found)
