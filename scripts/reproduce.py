"""One command per paper: run its experiments through the runner and regenerate its results page.

    .venv/bin/python scripts/reproduce.py --list
    .venv/bin/python scripts/reproduce.py hnpg                  # full runs -> results/hnpg.md
    .venv/bin/python scripts/reproduce.py hnpg --quick          # reduced runs -> results/quick/hnpg.md
    .venv/bin/python scripts/reproduce.py all --quick --check   # what CI runs: rerun, compare, fail on a diff

A paper with a module in ``scripts/papers/`` is reproduced by :mod:`rlsuite.reproduce`: every run is
``rlsuite experiment=<preset> <overrides>`` through the runner, in ``runs/reproduce/<paper>/<tag>``
(``resume=auto``: recorded runs are read back, interrupted ones continue; ``--time-limit`` stops
each run after that many seconds with a checkpoint, so long reproductions span several sittings),
and the page's generated sections name the command and commit behind every row. The papers not yet
converted run their legacy script commands below (``--dry-run`` prints them).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rlsuite import reproduce  # noqa: E402

LEGACY: dict[str, tuple[str, list[list[str]]]] = {
    # papers whose page is still written by its own script (until it has a scripts/papers/ module)
    "distributional_dp": (
        "Avila Pires et al. 2025, distributional DP with stock augmentation -> "
        "results/distributional_dp.md",
        [["scripts/bench_distributional_dp.py", "--repeats", "3", "--python-steps", "3"],
         ["scripts/deta_n_gridworld.py", "--steps", "120000", "--episodes", "10000", "--seeds", "0", "1",
          "2"],
         ["scripts/deta_n_ablation.py", "--seeds", "0", "1", "2"],
         ["scripts/deta_n_quantile_dp.py", "--quantiles", "50", "100", "200"]],
    ),
    "hnpg": (
        "Zhou et al. 2023, hybrid NPG on the combination lock -> results/hnpg.md",
        [["scripts/reproduce_hnpg.py", "--agents", "hnpg", "trpo", "--horizons", "5",
          "--seeds", "0", "1", "2", "3", "4", "--budget", "200000"],
         ["scripts/reproduce_hnpg.py", "--agents", "hnpg", "--horizons", "10", "--seeds", "0", "1", "2",
          "--budget", "1000000"],
         ["scripts/reproduce_hnpg.py", "--agents", "trpo", "--horizons", "10", "--seeds", "0",
          "--budget", "200000"],
         ["scripts/reproduce_hnpg.py", "--agents", "hnpg", "--horizons", "15", "--seeds", "0", "1", "2",
          "--budget", "3000000"],
         ["scripts/reproduce_hnpg.py", "--agents", "hnpg", "--horizons", "30", "--seeds", "0",
          "--budget", "6000000"],
         ["scripts/reproduce_hnpg.py", "--agents", "rlpd", "--horizons", "5", "--seeds", "0", "1",
          "--budget", "100000", "--rlpd-hidden", "64", "64"],
         ["scripts/reproduce_hnpg.py", "--agents", "rlpd", "--horizons", "10", "--seeds", "0", "1",
          "--budget", "300000", "--rlpd-hidden", "64", "64"],
         ["scripts/reproduce_hnpg.py", "--agents", "rlpd", "--horizons", "15", "--seeds", "0",
          "--budget", "600000", "--rlpd-hidden", "64", "64"],
         ["scripts/reproduce_hnpg.py", "--timing", "--horizons", "5", "10", "15", "30", "50"],
         ["scripts/reproduce_hnpg.py", "--report"]],
    ),
    "vgdf": (
        "Xu et al. 2023, VGDF on Pendulum shifts -> results/vgdf.md",
        [["scripts/reproduce_vgdf.py", "--seeds", "0", "1", "2", "--steps", "12000", "--variants",
          "vgdf", "zero_shot", "target_only", "mix", "darc", "--shifts", "action_low=0"],
         ["scripts/reproduce_vgdf.py", "--seeds", "0", "1", "--steps", "12000", "--variants", "vgdf",
          "mix", "--shifts", "l=1.5", "--out", "vgdf_morph"],
         ["scripts/reproduce_vgdf.py", "--mujoco", "halfcheetah_broken_thigh", "halfcheetah_no_thighs",
          "--variants", "vgdf", "zero_shot", "--seeds", "0", "--steps", "10000", "--out", "vgdf_mujoco"],
         ["scripts/reproduce_vgdf.py", "--mujoco", "halfcheetah_broken_thigh", "--variants", "vgdf",
          "zero_shot", "--seeds", "0", "--steps", "20000", "--out", "vgdf_mujoco_20k"]],
    ),
    "dynlin_ucb": (
        "Mussi et al. 2023, dynamical linear bandits -> results/dynlin_ucb.md",
        [["scripts/reproduce_dynlin.py", "--horizon", "1000000", "--trials", "10", "--workers", "2"]],
    ),
    "ecrm": (
        "Yu and Ying 2023, risk-averse policy gradient with ECRMs -> results/ecrm.md",
        [["scripts/reproduce_ecrm.py", "--seeds", "0", "1"]],
    ),
}


def _legacy(paper: str, dry_run: bool) -> int:
    what, commands = LEGACY[paper]
    print(f"reproduce {paper}: {what}")
    for command in commands:
        print("  $ python " + " ".join(command), flush=True)
        if dry_run:
            continue
        tic = time.perf_counter()
        rc = subprocess.run([sys.executable, *command], cwd=REPO).returncode
        print(f"  -> exit {rc} after {time.perf_counter() - tic:.0f} s", flush=True)
        if rc:
            return rc
    return 0


def _names() -> list[str]:
    return sorted({*reproduce.papers(), *LEGACY})


def main(argv: list[str] | None = None) -> int:
    """Reproduce one paper (or ``all``); returns the exit status (non-zero: a run did not
    complete, or ``--check`` found a difference)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paper", nargs="?", choices=[*_names(), "all"], help="which paper")
    parser.add_argument("--list", action="store_true", help="list the papers and their runs")
    parser.add_argument("--dry-run", action="store_true", help="print the runs, run nothing")
    parser.add_argument("--quick", action="store_true",
                        help="the reduced experiments -> results/quick/<paper>.md")
    parser.add_argument("--check", action="store_true",
                        help="with --quick: rerun from scratch and compare with the committed page")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--keep-stale", action="store_true",
                        help="read back runs recorded by an older commit instead of rerunning them")
    parser.add_argument("--time-limit", type=float, default=None, metavar="S",
                        help="stop each run after S seconds with a checkpoint (rerun to continue)")
    parser.add_argument("--runs", type=Path, default=None, help="run root (default runs/reproduce*/<paper>)")
    args = parser.parse_args(argv)
    if args.check and not args.quick:
        parser.error("--check compares the quick pages: add --quick")
    if args.workers < 1:
        parser.error(f"--workers={args.workers}: must be at least 1")
    if args.list or args.paper is None:
        for name in _names():
            if name in reproduce.papers():
                paper = reproduce.load_paper(name)
                print(f"{name}: {paper.title} -> {paper.module.PAGE}")
                for job in paper.plan(quick=args.quick):
                    print(f"    {job.command}")
            else:
                print(f"{name}: {LEGACY[name][0]} (legacy scripts)")
                for command in LEGACY[name][1]:
                    print("    python " + " ".join(command))
        return 0
    names = _names() if args.paper == "all" else [args.paper]
    extra = [f"time_limit_s={args.time_limit}"] if args.time_limit else []
    status = 0
    for name in names:
        if name not in reproduce.papers():
            if args.quick:
                print(f"reproduce {name}: no quick reproduction yet (legacy scripts only)", file=sys.stderr)
                status = status or 1
                continue
            status = _legacy(name, args.dry_run) or status
            continue
        if args.dry_run:
            for job in reproduce.load_paper(name).plan(args.quick):
                print(f"  $ {job.command}")
            continue
        tic = time.perf_counter()
        rc = reproduce.regenerate(name, quick=args.quick, check=args.check, runs_root=args.runs,
                                  workers=args.workers, keep_stale=args.keep_stale, extra=extra)
        print(f"reproduce {name}: exit {rc} after {time.perf_counter() - tic:.0f} s", flush=True)
        status = status or rc
    return status


if __name__ == "__main__":
    raise SystemExit(main())
