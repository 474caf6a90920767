"""Scaled-down VGDF table: VGDF against Mix, zero-shot, target-only SAC and DARC on Pendulum shifts.

Every run is the ``vgdf_pendulum`` preset (conf/experiment/vgdf_pendulum.yaml) through the normal
runner (``rlsuite experiment=vgdf_pendulum agent.variant=... agent.target_shift=... seed=...``), so
each has its TensorBoard logs under ``runs/vgdf_repro/``. The score is the greedy return in the
target domain over ``eval_episodes`` (20) episodes at the end; the table gives the mean over seeds
with a 95 % Student-t confidence interval. Finished runs are cached (``runs/vgdf_repro/*.json``),
so an interrupted reproduction continues where it stopped.

    .venv/bin/python scripts/reproduce_vgdf.py [--seeds 0 1 2] [--steps 20000]
        [--variants vgdf mix zero_shot target_only darc] [--shifts action_low=0 m=1.5,l=1.2]

Writes results/vgdf_table.md, results/vgdf.json and results/vgdf_curves.png (``--out`` changes
the stem; results/vgdf.md is the hand-written report around the table).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import torch
from tqdm import tqdm

from rlsuite import report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
CACHE = ROOT / "runs" / "vgdf_repro"
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
"""Two-sided 95 % Student-t quantiles by degrees of freedom."""


def one_run(variant: str, shift: str, seed: int, steps: int) -> dict:
    """Train one (variant, shift, seed) with the preset; return final scores and the eval curve."""
    from rlsuite.logging import read_metrics
    from rlsuite.runner import compose, run

    tag = f"{shift.replace(',', '_').replace('=', '')}_{variant}_s{seed}_{steps}"
    cached = CACHE / f"{tag}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    run_dir = CACHE / tag
    cfg = compose(["experiment=vgdf_pendulum", f"agent.variant={variant}",
                   f"agent.target_shift='{shift}'", f"seed={seed}", f"total_steps={steps}",
                   f"run_dir={run_dir}", "progress=false", "device=cpu", "threads=1"])
    tic = time.perf_counter()
    score = run(cfg)
    wall = time.perf_counter() - tic
    rows = read_metrics(run_dir)
    curve = [(r["step"], r["eval/target_return"], r["eval/source_return"]) for r in rows[:-1]
             if "eval/target_return" in r]
    accept = [r["vgdf/accept_ratio"] for r in rows if "vgdf/accept_ratio" in r]
    fvp = [r["vgdf/fvp_mean"] for r in rows if "vgdf/fvp_mean" in r]
    out = {"variant": variant, "shift": shift, "seed": seed, "steps": steps, "wall_s": wall,
           "target_return": score, "source_return": rows[-1]["eval/source_return"], "curve": curve,
           "accept_ratio_last": accept[-1] if accept else None,
           "fvp_mean_last": fvp[-1] if fvp else None}
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(out))
    return out


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95 % Student-t interval (0 for one value)."""
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, 0.0
    return m, T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))


def _plot(runs: list[dict], shifts: list[str], variants: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(shifts), figsize=(5 * len(shifts), 3.6), squeeze=False)
    for ax, shift in zip(axes[0], shifts, strict=True):
        for v in variants:
            curves = [r["curve"] for r in runs if r["shift"] == shift and r["variant"] == v]
            if not curves:
                continue
            steps = [c[0] for c in curves[0]]
            mean = [statistics.fmean(c[i][1] for c in curves) for i in range(len(steps))]
            ax.plot(steps, mean, label=v, marker="o")
        ax.set_title(f"target: {shift}")
        ax.set_xlabel("source steps (target steps = 1/10)")
        ax.set_ylabel("greedy target return")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--variants", nargs="+", default=["vgdf", "mix", "zero_shot", "target_only", "darc"])
    parser.add_argument("--shifts", nargs="+", default=["action_low=0"])
    parser.add_argument("--out", default="vgdf", help="output stem under results/ (default: vgdf)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    jobs = [(s, v, seed) for s in args.shifts for v in args.variants for seed in args.seeds]
    runs = []
    for shift, variant, seed in tqdm(jobs, desc="vgdf runs"):
        runs.append(one_run(variant, shift, seed, args.steps))
    RESULTS.mkdir(exist_ok=True)
    table = {}
    for shift in args.shifts:
        for v in args.variants:
            sel = [r for r in runs if r["shift"] == shift and r["variant"] == v]
            t_mean, t_ci = mean_ci([r["target_return"] for r in sel])
            s_mean, s_ci = mean_ci([r["source_return"] for r in sel])
            table[f"{shift}/{v}"] = {
                "target_mean": t_mean, "target_ci95": t_ci, "source_mean": s_mean, "source_ci95": s_ci,
                "per_seed_target": [r["target_return"] for r in sel],
                "median_wall_s": statistics.median(r["wall_s"] for r in sel)}
    meta = {"command": "cd /work/main && .venv/bin/python scripts/reproduce_vgdf.py "
            + " ".join(["--seeds", *map(str, args.seeds), "--steps", str(args.steps),
                        "--variants", *args.variants, "--shifts", *args.shifts]
                       + (["--out", args.out] if args.out != "vgdf" else [])),
            "torch": torch.__version__, "python": platform.python_version(),
            "preset": "conf/experiment/vgdf_pendulum.yaml"}
    payload = {"meta": meta, "table": table, "runs": runs}
    (RESULTS / f"{args.out}.json").write_text(json.dumps(payload, indent=1))
    lines = [f"Command (from the repository root): `{report.command_line()}`", "",
             "| target shift | variant | target return (mean ± 95% CI) | per seed | source return | "
             "median wall s |", "|---|---|---|---|---|---|"]
    for key, row in table.items():
        shift, v = key.rsplit("/", 1)
        seeds = ", ".join(f"{x:.0f}" for x in row["per_seed_target"])
        lines.append(f"| {shift} | {v} | {row['target_mean']:.0f} ± {row['target_ci95']:.0f} | {seeds} | "
                     f"{row['source_mean']:.0f} ± {row['source_ci95']:.0f} | {row['median_wall_s']:.0f} |")
    (RESULTS / f"{args.out}_table.md").write_text("\n".join(lines) + "\n")
    _plot(runs, args.shifts, args.variants, RESULTS / f"{args.out}_curves.png")
    print("\n".join(lines))
    print(meta["command"])


if __name__ == "__main__":
    main()
