"""Tabular IWOCS against brute force on random non-rectangular finite sets.

    .venv/bin/python scripts/iwocs_nonrectangular.py
    .venv/bin/python scripts/iwocs_nonrectangular.py --instances 30 --states 3 --actions 2 --models 4

Each instance is a finite set of ``--models`` independent random MDPs (``random_finite_set``:
sparse random rows, rewards in [0, 1], start state 0, gamma 0.9). The set is not rectangular: the
adversary picks one whole model, not a row per (s, a). For each instance the script runs tabular
IWOCS (``solve_tabular``, default tie-break) and brute force over every deterministic stationary
policy (``brute_force``, exact evaluation under every model), and records the relative gap
``(brute force - IWOCS) / |brute force|`` of the worst-case values from the start state, IWOCS's
stop reason, and robust value iteration on the set's sa-rectangular hull (a lower bound).

Writes ``results/iwocs_nonrectangular.json`` and re-renders ``results/iwocs.md`` (whose section on
non-rectangular sets reads that file). Cost: about 4 CPU seconds for 200 instances.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from rlsuite import report
from rlsuite.agents.iwocs import (
    ModelStack,
    brute_force,
    random_finite_set,
    robust_value_iteration,
    solve_tabular,
)

ROOT = Path(__file__).resolve().parents[1]
GAP_THRESHOLD = 0.01
"""Gaps above this (relative) count as "IWOCS below the robust optimum"."""


def run(instances: int, states: int, actions: int, models: int, gamma: float, sparsity: int,
        seed: int) -> dict[str, Any]:
    """Run IWOCS and brute force on ``instances`` random finite sets drawn from one generator
    seeded with ``seed``; returns the settings, one record per instance and the summary."""
    for name, value in (("instances", instances), ("states", states), ("actions", actions),
                        ("models", models)):
        if value < 1:
            raise ValueError(f"--{name} = {value} must be >= 1")
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"--gamma = {gamma} must be in [0, 1) (exact evaluation)")
    generator = torch.Generator().manual_seed(seed)
    records = []
    for i in range(instances):
        stack = ModelStack.from_models(random_finite_set(states, actions, models, gamma, generator,
                                                         sparsity=sparsity))
        exact = brute_force(stack)
        iwocs = solve_tabular(stack)
        hull = robust_value_iteration(stack)
        records.append({
            "instance": i,
            "brute_force": exact.value,
            "iwocs": iwocs.worst_case_value,
            "gap": (exact.value - iwocs.worst_case_value) / abs(exact.value),
            "stop_reason": iwocs.stop_reason,
            "iterations": len(iwocs.trace),
            "rectangular_hull": hull.value,
        })
    return {"settings": {"instances": instances, "states": states, "actions": actions,
                         "models": models, "gamma": gamma, "sparsity": sparsity, "seed": seed,
                         "tie_break": "default (unseen, lowest_optimal_value)"},
            "summary": summarize(records), "instances": records}


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Distribution of the relative gap, overall and by IWOCS's stop reason."""
    gaps = [r["gap"] for r in records]
    by_stop: dict[str, dict[str, Any]] = {}
    for reason in sorted({r["stop_reason"] for r in records}):
        sub = [r["gap"] for r in records if r["stop_reason"] == reason]
        by_stop[reason] = {"count": len(sub), "max_gap": max(sub),
                           "above_threshold": sum(g > GAP_THRESHOLD for g in sub)}
    hull_gaps = [(r["brute_force"] - r["rectangular_hull"]) / abs(r["brute_force"]) for r in records]
    return {
        "median_gap": statistics.median(gaps),
        "mean_gap": statistics.fmean(gaps),
        "max_gap": max(gaps),
        "min_gap": min(gaps),
        "threshold": GAP_THRESHOLD,
        "fraction_above_threshold": sum(g > GAP_THRESHOLD for g in gaps) / len(gaps),
        "by_stop_reason": by_stop,
        "rectangular_hull_median_gap": statistics.median(hull_gaps),
    }


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run, write the JSON and re-render ``results/iwocs.md``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--states", type=int, default=3)
    parser.add_argument("--actions", type=int, default=2)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--gamma", type=float, default=0.9)
    parser.add_argument("--sparsity", type=int, default=2, help="next states per random row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "iwocs_nonrectangular.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = run(args.instances, args.states, args.actions, args.models, args.gamma, args.sparsity,
               args.seed)
    data["command"] = report.command_line()
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    s = data["summary"]
    print(f"{args.instances} instances: median gap {s['median_gap']:.1%}, max {s['max_gap']:.1%}, "
          f"gap > {s['threshold']:.0%} in {s['fraction_above_threshold']:.0%}; "
          f"stop reasons {({k: v['count'] for k, v in s['by_stop_reason'].items()})}")
    print(f"wrote {args.out}")
    page_json = args.out.parent / "iwocs.json"
    if args.out.name == "iwocs_nonrectangular.json" and page_json.exists():
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from reproduce_iwocs import write_markdown  # the page's one renderer

        write_markdown(json.loads(page_json.read_text()), args.out.parent / "iwocs.md")
        print(f"re-rendered {args.out.parent / 'iwocs.md'}")


if __name__ == "__main__":
    main()
