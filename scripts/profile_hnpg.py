"""Where one HNPG iteration's CPU time goes: per-phase process time per iteration, one thread.

A profiling aid next to ``scripts/bench_hnpg.py`` (which times whole iterations)::

    taskset -c 1 .venv/bin/python scripts/profile_hnpg.py --horizon 30
    taskset -c 1 .venv/bin/python scripts/profile_hnpg.py --horizon 5 --cprofile 30

The agent runs the ``comblock_hnpg`` preset's settings (``HNPGConfig`` defaults, the stopping rule
off, as ``bench_hnpg.py``); each phase is timed by wrapping the function that runs it (a few
microseconds per call), after two warm-up iterations. Phases nest: the critic fit includes its
offline targets, ``_update`` includes the fit, ``V_h`` and the NPG step; the rollouts include the
evaluation's. ``--cprofile N`` prints cProfile's top ``N`` functions instead (its own overhead
inflates Python-heavy parts, so use the phase table for proportions).
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import functools
import json
import pstats
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rlsuite.agents.hnpg import agent as hnpg_agent  # noqa: E402
from rlsuite.agents.hnpg import critic as hnpg_critic  # noqa: E402
from rlsuite.engine import interaction  # noqa: E402

PHASES = (
    (hnpg_agent, "fit_critic", "critic fit (with offline targets)"),
    (hnpg_critic, "offline_targets", "  offline targets"),
    (hnpg_agent, "state_value", "V_h (state_value, 2 calls)"),
    (hnpg_agent, "npg_update", "NPG step (CG + line search)"),
    (hnpg_agent.StepSampler, "sample", "offline sampling"),
    (hnpg_agent, "check_finite", "check_finite"),
    (hnpg_agent.HNPG, "_update", "_update (fit + V_h + NPG)"),
    (hnpg_agent.HNPG, "_evaluate", "evaluation (eval_episodes)"),
    (interaction.Interaction, "collect", "rollouts (train + evaluation)"),
)
"""(owner, attribute, label): the functions timed."""


def _timed(owner: Any, name: str, label: str, totals: dict[str, float]) -> None:
    """Replace ``owner.name`` by a wrapper that adds its process time to ``totals[label]``."""
    inner = getattr(owner, name)

    @functools.wraps(inner)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tic = time.process_time()
        try:
            return inner(*args, **kwargs)
        finally:
            totals[label] += time.process_time() - tic

    setattr(owner, name, wrapper)


def profile(horizon: int, iterations: int, offline_episodes: int, top: int = 0) -> dict[str, float]:
    """Milliseconds of CPU per iteration for each phase (and ``iteration``) at ``horizon``."""
    from rlsuite.envs.combination_lock import CombinationLock

    totals: dict[str, float] = collections.defaultdict(float)
    if not top:
        for owner, name, label in PHASES:
            _timed(owner, name, label, totals)
    env = CombinationLock(horizon=horizon, seed=0)
    config = hnpg_agent.HNPGConfig(stop_on_success=False, offline_episodes=offline_episodes)
    agent = hnpg_agent.HNPG(config, env, env.default_params(1), 0)
    per_iteration = agent.num_envs * horizon
    agent.learn(per_iteration * 2)  # warm-up (TorchScript compiles the critic loop on first use)
    totals.clear()
    profiler = cProfile.Profile() if top else None
    tic = time.process_time()
    if profiler:
        profiler.enable()
    agent.learn(per_iteration * (2 + iterations))
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)
    totals["iteration"] = time.process_time() - tic
    return {k: round(v / iterations * 1e3, 2) for k, v in totals.items()}


def main(argv: list[str] | None = None) -> int:
    """Print the per-phase table (or cProfile's) for one horizon."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--horizon", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=8, help="timed iterations")
    parser.add_argument("--offline-episodes", type=int, default=50_000)
    parser.add_argument("--cprofile", type=int, default=0, metavar="N", help="print cProfile's top N")
    args = parser.parse_args(argv)
    for field in ("horizon", "iterations", "offline_episodes"):
        if getattr(args, field) < 1:
            parser.error(f"--{field.replace('_', '-')}={getattr(args, field)}: must be at least 1")
    torch.set_num_threads(1)
    ms = profile(args.horizon, args.iterations, args.offline_episodes, args.cprofile)
    print(json.dumps({"horizon": args.horizon, "cpu_ms_per_iteration": ms}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
