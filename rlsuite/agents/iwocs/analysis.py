"""Exact analyses of tabular IWOCS over random sets (no training: exact solvers and brute force).

* :func:`stall_statistics` - on random sa-rectangular product sets, for each tie-break rule, how
  often :func:`~rlsuite.agents.iwocs.tabular.solve_tabular` stops by its criterion, how often it
  stalls (re-finds a solved model), how often its reported worst case is robust value iteration's,
  and how many iterations it takes; :func:`route_choice_runs` the same rules on the route-choice
  set, with their traces.
* :func:`nonrectangular_gaps` - on random non-rectangular finite sets (a few whole MDPs: the
  adversary picks one model, not a row per (s, a)), the relative gap between IWOCS's worst case and
  brute force over deterministic stationary policies, with robust value iteration on the set's
  sa-rectangular hull (a lower bound) beside.

``results/iwocs.md`` computes its tabular tables with these functions (``scripts/papers/iwocs.py``).
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from rlsuite.agents.iwocs.exact import ModelStack
from rlsuite.agents.iwocs.reference import brute_force, robust_value_iteration
from rlsuite.agents.iwocs.sets import random_finite_set, random_rectangular_set, route_choice_set
from rlsuite.agents.iwocs.tabular import solve_tabular

TIE_BREAK_RULES: dict[str, tuple[str, ...]] = {
    "first (paper)": ("first",), "unseen": ("unseen",),
    "lowest_optimal_value": ("lowest_optimal_value",),
    "unseen + lowest_optimal_value (default)": ("unseen", "lowest_optimal_value"),
}
"""The tie-break rules compared (page label -> ``solve_tabular(tie_break=...)``)."""
EXACT_TOL = 1e-8
"""Two exact values closer than this are equal."""
GAP_THRESHOLD = 0.01
"""A relative gap above this counts as "IWOCS below the robust optimum"."""


def _positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} = {value} must be >= 1")


def stall_statistics(sizes: list[tuple[int, int, int, int]], trials: int, gamma: float = 0.9,
                     seed: int = 2024, brute_force_max_states: int = 6) -> list[dict[str, Any]]:
    """Per size ``(S, A, choices per pair, uncertain pairs)``: ``trials`` random sa-rectangular
    sets (:func:`random_rectangular_set`, one generator seeded ``seed`` for all sizes in order)
    and, per rule of :data:`TIE_BREAK_RULES`, the counts ``converged`` / ``stalled`` /
    ``max_iterations`` (stop reasons), ``robust_value`` (worst case = robust VI's),
    ``false_convergence`` (converged but not robust VI's value; 0 if the criterion is a
    certificate) and ``iterations`` (summed). Brute force checks robust VI on sets with at most
    ``brute_force_max_states`` states.

    Raises:
        ValueError: a non-positive ``trials`` or size entry.
        RuntimeError: robust VI and brute force disagree (a rectangular set where they must not).
    """
    _positive(trials=trials)
    g = torch.Generator().manual_seed(seed)
    out = []
    for s, a, c, u in sizes:
        _positive(states=s, actions=a, choices=c, uncertain_pairs=u)
        counts = {k: {"converged": 0, "stalled": 0, "max_iterations": 0, "robust_value": 0,
                      "iterations": 0, "false_convergence": 0} for k in TIE_BREAK_RULES}
        for _ in range(trials):
            stack = ModelStack.from_models(random_rectangular_set(s, a, c, u, gamma, g))
            ref = robust_value_iteration(stack).value
            if s <= brute_force_max_states and abs(brute_force(stack).value - ref) >= EXACT_TOL:
                raise RuntimeError(f"robust VI {ref} differs from brute force on a rectangular set")
            for name, rule in TIE_BREAK_RULES.items():
                res = solve_tabular(stack, tie_break=rule)
                d = counts[name]
                d[res.stop_reason] += 1
                d["iterations"] += len(res.trace)
                hit = abs(res.worst_case_value - ref) < EXACT_TOL
                d["robust_value"] += hit
                d["false_convergence"] += res.converged and not hit
        out.append({"S": s, "A": a, "choices": c, "uncertain_pairs": u, "models": c**u,
                    "trials": trials, "counts": counts})
    return out


def route_choice_runs() -> dict[str, Any]:
    """Each rule of :data:`TIE_BREAK_RULES` on :func:`route_choice_set`: stop reason, worst case,
    the model found per iteration, the robust-Q estimates and the policies; with robust VI's
    value."""
    route = route_choice_set()
    runs = {}
    for name, rule in TIE_BREAK_RULES.items():
        res = solve_tabular(route, tie_break=rule)
        runs[name] = {"stop_reason": res.stop_reason, "worst_case_value": res.worst_case_value,
                      "worst_case_models": res.worst_case_models, "estimates": res.estimates,
                      "policies": [r.policy for r in res.trace]}
    return {"robust_value": robust_value_iteration(route).value, "runs": runs}


def nonrectangular_gaps(instances: int, states: int, actions: int, models: int, gamma: float,
                        sparsity: int, seed: int) -> dict[str, Any]:
    """IWOCS (default tie-break) against brute force on ``instances`` random finite sets
    (:func:`random_finite_set`, one generator seeded ``seed``): per instance the worst-case values
    from the start state, the relative gap ``(brute force - IWOCS) / |brute force|``, IWOCS's stop
    reason and iterations, and robust VI on the sa-rectangular hull; with :func:`summarize_gaps`.

    Raises:
        ValueError: naming a non-positive count or a ``gamma`` outside ``[0, 1)``.
    """
    _positive(instances=instances, states=states, actions=actions, models=models, sparsity=sparsity)
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma = {gamma} must be in [0, 1) (exact evaluation)")
    generator = torch.Generator().manual_seed(seed)
    records = []
    for i in range(instances):
        stack = ModelStack.from_models(random_finite_set(states, actions, models, gamma, generator,
                                                         sparsity=sparsity))
        exact = brute_force(stack)
        iwocs = solve_tabular(stack)
        records.append({
            "instance": i, "brute_force": exact.value, "iwocs": iwocs.worst_case_value,
            "gap": (exact.value - iwocs.worst_case_value) / abs(exact.value),
            "stop_reason": iwocs.stop_reason, "iterations": len(iwocs.trace),
            "rectangular_hull": robust_value_iteration(stack).value,
        })
    return {"settings": {"instances": instances, "states": states, "actions": actions,
                         "models": models, "gamma": gamma, "sparsity": sparsity, "seed": seed},
            "summary": summarize_gaps(records), "instances": records}


def summarize_gaps(records: list[dict[str, Any]], threshold: float = GAP_THRESHOLD) -> dict[str, Any]:
    """The gap's median, mean, max and min, the share above ``threshold``, per stop reason the
    count, max gap and count above ``threshold``, and the rectangular hull's median gap."""
    if not records:
        raise ValueError("summarize_gaps: no instances")
    gaps = [r["gap"] for r in records]
    by_stop: dict[str, dict[str, Any]] = {}
    for reason in sorted({r["stop_reason"] for r in records}):
        sub = [r["gap"] for r in records if r["stop_reason"] == reason]
        by_stop[reason] = {"count": len(sub), "max_gap": max(sub),
                           "above_threshold": sum(g > threshold for g in sub)}
    hull = [(r["brute_force"] - r["rectangular_hull"]) / abs(r["brute_force"]) for r in records]
    return {"median_gap": statistics.median(gaps), "mean_gap": statistics.fmean(gaps),
            "max_gap": max(gaps), "min_gap": min(gaps), "threshold": threshold,
            "fraction_above_threshold": sum(g > threshold for g in gaps) / len(gaps),
            "by_stop_reason": by_stop, "rectangular_hull_median_gap": statistics.median(hull)}
