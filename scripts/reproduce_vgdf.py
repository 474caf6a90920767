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

MuJoCo mode (``mujoco`` extra): ``--mujoco TASK ...`` runs the paper's MuJoCo targets
(:data:`rlsuite.envs.mujoco_shifts.TASKS`) at a reduced budget with :data:`MUJOCO_PRESET`, source
and target being two gymnasium envs (:class:`rlsuite.agents.vgdf.domains.GymnasiumDomains`); the
agent is built directly (no engine env registry entry exists for gymnasium pairs). Writes
results/vgdf_mujoco{.json,_table.md,_curves.png}:

    .venv/bin/python scripts/reproduce_vgdf.py --mujoco halfcheetah_broken_thigh halfcheetah_no_thighs \
        --variants vgdf zero_shot --seeds 0 --steps 10000 --out vgdf_mujoco
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
    tic, cpu = time.perf_counter(), time.process_time()
    score = run(cfg)
    wall, cpu = time.perf_counter() - tic, time.process_time() - cpu
    rows = read_metrics(run_dir)
    curve = [(r["step"], r["eval/target_return"], r["eval/source_return"]) for r in rows[:-1]
             if "eval/target_return" in r]
    accept = [r["vgdf/accept_ratio"] for r in rows if "vgdf/accept_ratio" in r]
    fvp = [r["vgdf/fvp_mean"] for r in rows if "vgdf/fvp_mean" in r]
    out = {"variant": variant, "shift": shift, "seed": seed, "steps": steps, "wall_s": wall,
           "cpu_s": cpu, "target_return": score, "source_return": rows[-1]["eval/source_return"],
           "curve": curve,
           "accept_ratio_last": accept[-1] if accept else None,
           "fvp_mean_last": fvp[-1] if fvp else None}
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(out))
    return out


MUJOCO_PRESET = dict(
    hidden_sizes=[256, 256], learning_rate=3e-4, batch_size=128, utd=1.0,  # paper's SAC
    random_steps=1_000,  # uniform actions first (the code has none; short runs need them)
    warmup_steps=2_000, darc_warmup=2_000,  # paper: 1e5 of 1 M source steps (10 %); here 20 % of 10 k
    ensemble_size=5, num_elites=3, model_hidden=[128, 128],  # paper: 7 x 4 x 200
    model_weight_decay=[2.5e-5, 5e-5, 1e-4], model_max_epochs=20, model_train_freq=250,
    eval_every=2_500, eval_episodes=5,
)
"""Reduced-budget VGDF on MuJoCo: the paper's SAC (256x256, lr 3e-4, batch 128, one update per
source step, alpha 0.2) and filter (xi 25 %, Gamma 10); a smaller ensemble, a 2 k-step warm-up
(the paper's is 10 % of its run) and 1 000 random steps. Source: 10 copies stepping together,
target: 1."""
MUJOCO_SOURCE_COPIES = 10
MUJOCO_FINAL_EPISODES = 10


def one_mujoco_run(variant: str, task: str, seed: int, steps: int) -> dict:
    """Train one (variant, MuJoCo task, seed) with :data:`MUJOCO_PRESET`; cached like :func:`one_run`."""
    from rlsuite.agents.vgdf.agent import VGDF
    from rlsuite.agents.vgdf.config import VGDFConfig
    from rlsuite.agents.vgdf.domains import GymnasiumDomains

    tag = f"mujoco_{task}_{variant}_s{seed}_{steps}"
    cached = CACHE / f"{tag}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    domains = GymnasiumDomains.for_task(task, MUJOCO_SOURCE_COPIES, 1)
    agent = VGDF(VGDFConfig(variant=variant, **MUJOCO_PRESET), seed=seed, domains=domains)
    curve: list[tuple[int, float, float]] = []
    last: dict[str, float] = {}
    bar = tqdm(total=steps, desc=tag, leave=False)

    class Hooks:
        def on_iteration(self, ag, step: int, metrics: dict[str, float]) -> None:
            bar.update(step - bar.n)
            last.update({k: v for k, v in metrics.items() if k.startswith(("vgdf/", "train/"))})
            if "eval/target_return" in metrics:
                curve.append((step, metrics["eval/target_return"], metrics["eval/source_return"]))

    tic, cpu = time.perf_counter(), time.process_time()
    agent.learn(steps, Hooks())
    bar.close()
    final = agent.evaluate_domains(MUJOCO_FINAL_EPISODES, torch.Generator().manual_seed(10_000 + seed))
    out = {"variant": variant, "shift": task, "seed": seed, "steps": steps,
           "target_steps": agent.target_steps, "wall_s": time.perf_counter() - tic,
           "cpu_s": time.process_time() - cpu, "target_return": final["eval/target_return"],
           "source_return": final["eval/source_return"], "curve": curve,
           "accept_ratio_last": last.get("vgdf/accept_ratio"), "fvp_mean_last": last.get("vgdf/fvp_mean"),
           "model_holdout_mse_last": last.get("vgdf/model_holdout_mse"), "preset": MUJOCO_PRESET}
    domains.close()
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
    parser.add_argument("--mujoco", nargs="+", default=None, metavar="TASK",
                        help="run these MuJoCo tasks (rlsuite.envs.mujoco_shifts.TASKS) instead of --shifts")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.mujoco:
        args.shifts = args.mujoco
    jobs = [(s, v, seed) for s in args.shifts for v in args.variants for seed in args.seeds]
    runs = []
    for shift, variant, seed in tqdm(jobs, desc="vgdf runs"):
        if args.mujoco:
            runs.append(one_mujoco_run(variant, shift, seed, args.steps))
        else:
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
                "median_wall_s": statistics.median(r["wall_s"] for r in sel),
                "median_cpu_s": statistics.median(r.get("cpu_s", math.nan) for r in sel)}
    meta = {"command": "cd /work/main && .venv/bin/python scripts/reproduce_vgdf.py "
            + " ".join(["--seeds", *map(str, args.seeds), "--steps", str(args.steps),
                        "--variants", *args.variants,
                        *(["--mujoco"] if args.mujoco else ["--shifts"]), *args.shifts]
                       + (["--out", args.out] if args.out != "vgdf" else [])),
            "torch": torch.__version__, "python": platform.python_version(),
            "preset": (f"scripts/reproduce_vgdf.py MUJOCO_PRESET {MUJOCO_PRESET}" if args.mujoco
                       else "conf/experiment/vgdf_pendulum.yaml")}
    payload = {"meta": meta, "table": table, "runs": runs}
    (RESULTS / f"{args.out}.json").write_text(json.dumps(payload, indent=1))
    lines = [f"Command (from the repository root): `{report.command_line()}`", "",
             "| target shift | variant | target return (mean ± 95% CI) | per seed | source return | "
             "median wall s | median CPU s |", "|---|---|---|---|---|---|---|"]
    for key, row in table.items():
        shift, v = key.rsplit("/", 1)
        seeds = ", ".join(f"{x:.0f}" for x in row["per_seed_target"])
        lines.append(f"| {shift} | {v} | {row['target_mean']:.0f} ± {row['target_ci95']:.0f} | {seeds} | "
                     f"{row['source_mean']:.0f} ± {row['source_ci95']:.0f} | {row['median_wall_s']:.0f} | "
                     f"{row['median_cpu_s']:.0f} |")
    (RESULTS / f"{args.out}_table.md").write_text("\n".join(lines) + "\n")
    _plot(runs, args.shifts, args.variants, RESULTS / f"{args.out}_curves.png")
    print("\n".join(lines))
    print(meta["command"])


if __name__ == "__main__":
    main()
