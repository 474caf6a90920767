"""Time HNPG per iteration on the combination lock (CPU and wall seconds), against the official code.

A speed benchmark, not a result of the agent (those come from ``scripts/reproduce.py hnpg``)::

    .venv/bin/python scripts/bench_hnpg.py --horizons 5 10 15 30 50

writes ``results/hnpg_timing.json`` and the ``timing`` section of ``results/hnpg.md``. Each H is
timed with the official backward critic sweep and with the parallel one, the stopping rule off
(``stop_on_success=False``), one thread; per-iteration times are medians over ``--iterations``
iterations after two warm-up ones. CPU time (this process's) is the number to compare: the
machine is shared, and a neighbour's load inflates wall time far more than CPU time (the CPU time
other processes used meanwhile is recorded as ``other_cores``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rlsuite import benchmark, reproduce  # noqa: E402

OFFICIAL_ITER_CPU_S = {5: 2.2}
"""CPU seconds (process time, one thread) per iteration of the official code (YifeiZhou02/HNPG)
at H=5 on this machine, measured by an independent check: the official code needs its own
dependencies, which are not installed here, so this script cannot re-time it. No CPU figure of
the official code exists for other H."""


class _Clock:
    """Training hook: wall and process seconds of every iteration."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def on_iteration(self, agent: Any, step: int, metrics: dict[str, float]) -> None:
        """Record the time since the previous iteration."""
        wall, cpu = time.perf_counter(), time.process_time()
        self.wall.append(wall - self._wall)
        self.cpu.append(cpu - self._cpu)
        self._wall, self._cpu = wall, cpu


def time_hnpg(horizon: int, sweep: str, iterations: int, seed: int = 0) -> dict[str, Any]:
    """Per-iteration times of HNPG (official settings but ``critic_sweep``) at ``horizon``, and
    the construction time (mostly collecting the 50,000 offline episodes)."""
    from rlsuite.agents.hnpg import HNPG, HNPGConfig
    from rlsuite.envs.combination_lock import CombinationLock

    env = CombinationLock(horizon=horizon, seed=seed)
    meter = benchmark.LoadMeter()
    meter.start()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    agent = HNPG(HNPGConfig(stop_on_success=False, critic_sweep=sweep), env, env.default_params(1), seed)
    setup_wall, setup_cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    clock = _Clock()
    agent.learn(agent.num_envs * horizon * (iterations + 2), clock)
    meter.stop()
    return {
        "setup_wall_s": round(setup_wall, 3),
        "setup_cpu_s": round(setup_cpu, 3),
        "iter_wall_s": round(statistics.median(clock.wall[2:]), 4),
        "iter_cpu_s": round(statistics.median(clock.cpu[2:]), 4),
        "iterations": len(clock.wall) - 2,
        "other_cores": None if meter.other_cores is None else round(meter.other_cores, 2),
        "load_average": round(os.getloadavg()[0], 2),
    }


def markdown(rows: dict[str, dict[str, Any]], command: str) -> str:
    """The timing table of ``results/hnpg.md``."""
    lines = [
        "| H | setup CPU s (50k offline episodes) | backward sweep: CPU s / wall s per iteration "
        "| parallel sweep: CPU s / wall s | official CPU s | official / rlsuite (CPU, backward) "
        "| other processes (cores busy) |",
        "|---|---|---|---|---|---|---|",
    ]
    for h, row in sorted(rows.items(), key=lambda kv: int(kv[0])):
        back, par = row["backward"], row["parallel"]
        official = OFFICIAL_ITER_CPU_S.get(int(h))
        ratio = f"{official / back['iter_cpu_s']:.0f}x" if official else "-"
        lines.append(
            f"| {h} | {back['setup_cpu_s']:.2f} | {back['iter_cpu_s']:.3f} / {back['iter_wall_s']:.3f} "
            f"| {par['iter_cpu_s']:.3f} / {par['iter_wall_s']:.3f} | {official or '-'} | {ratio} "
            f"| {reproduce.fmt(back['other_cores'], 2)} |"
        )
    return "\n".join(lines) + f"\n\nMeasured by `{command}`."


def main(argv: list[str] | None = None) -> int:
    """Time each horizon and write the JSON and the page's timing section."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--horizons", nargs="+", type=int, default=[5, 10, 15, 30, 50])
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations per case")
    parser.add_argument("--out", type=Path, default=REPO / "results", help="where hnpg.md lives")
    args = parser.parse_args(argv)
    if any(h < 1 for h in args.horizons):
        parser.error(f"--horizons={args.horizons}: every horizon must be at least 1")
    if args.iterations < 1:
        parser.error(f"--iterations={args.iterations}: must be at least 1")
    torch.set_num_threads(1)
    rows = {}
    for h in args.horizons:
        rows[str(h)] = {sweep: time_hnpg(h, sweep, args.iterations) for sweep in ("backward", "parallel")}
        print(f"H={h}: {json.dumps(rows[str(h)])}", flush=True)
    command = ".venv/bin/python scripts/bench_hnpg.py --horizons " + " ".join(map(str, args.horizons))
    if args.iterations != 10:
        command += f" --iterations {args.iterations}"
    data = {"command": command, "machine": benchmark.machine_info(), "threads": 1, "rows": rows,
            "official_iter_cpu_s": OFFICIAL_ITER_CPU_S}
    (args.out / "hnpg_timing.json").write_text(json.dumps(data, indent=1) + "\n")
    page = args.out / "hnpg.md"
    page.write_text(reproduce.splice(page.read_text(), {"timing": markdown(rows, command)}))
    print(f"wrote {args.out / 'hnpg_timing.json'} and the timing section of {page}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
