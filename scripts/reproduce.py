"""One command per paper: run its scaled-down experiment set and rewrite its results/ section.

    .venv/bin/python scripts/reproduce.py --list
    .venv/bin/python scripts/reproduce.py hnpg            # runs every command of the paper, in order
    .venv/bin/python scripts/reproduce.py vgdf --dry-run  # prints them only

Each paper's commands are exactly those that produced its committed ``results/<agent>.md``; the
per-paper scripts take more options (seeds, budgets, horizons) when run directly. Wall times
are for this 2-core CPU machine; the full-scale settings are experiment presets in
``conf/experiment/`` for a GPU cluster (see each results file).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PAPERS: dict[str, tuple[str, list[list[str]]]] = {
    "distributional_dp": (
        "Avila Pires et al. 2025, distributional DP with stock augmentation -> "
        "results/distributional_dp.md",
        [["scripts/bench_distributional_dp.py", "--repeats", "3", "--python-steps", "3"],
         ["scripts/deta_n_gridworld.py", "--steps", "120000", "--episodes", "10000", "--seeds", "0", "1",
          "2"],
         ["scripts/deta_n_ablation.py", "--seeds", "0", "1", "2"],
         ["scripts/deta_n_quantile_dp.py", "--quantiles", "50", "100", "200"]],
    ),
    "iwocs": (
        "Zouitine et al. 2024, IWOCS robust MDPs -> results/iwocs.md",
        [["scripts/reproduce_iwocs.py"], ["scripts/iwocs_nonrectangular.py"]],
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


def main(argv: list[str] | None = None) -> int:
    """Run (or print) the commands of one paper; returns the first failing exit status, or 0."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paper", nargs="?", choices=sorted(PAPERS), help="which paper")
    parser.add_argument("--list", action="store_true", help="list the papers and their commands")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    args = parser.parse_args(argv)
    if args.list or args.paper is None:
        for name, (what, commands) in sorted(PAPERS.items()):
            print(f"{name}: {what}")
            for command in commands:
                print("    python " + " ".join(command))
        return 0
    what, commands = PAPERS[args.paper]
    print(f"reproduce {args.paper}: {what}")
    for command in commands:
        line = [sys.executable, *command]
        print("  $ python " + " ".join(command), flush=True)
        if args.dry_run:
            continue
        tic = time.perf_counter()
        rc = subprocess.run(line, cwd=REPO).returncode
        print(f"  -> exit {rc} after {time.perf_counter() - tic:.0f} s", flush=True)
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
