"""Regenerate the regret figures of "Dynamical Linear Bandits" (Mussi et al., ICML 2023).

Four official configs (marcomussi/DLB config/*.json): the synthetic system with noise sigma 0.01
(main text), 0.001 and 0.1 (supplement), and the real-data advertising system (sigma 0.01); every
agent of the official scripts/main.py, ``--trials`` trials of ``--horizon`` rounds each. Plotted as
the official script does: cumulative steady-state pseudo-regret, mean +- one standard error over
trials, linear axes, the official 400-point grid, y-limit 3x the final regret of DynLin-UCB
(lambda = ln T). Writes results/dynlin_ucb.md, results/dynlin_ucb.json and one PNG per config.

To go fast, agents that share a loop share it: the trials of all configs that a learner can run
together are stacked as copies of one batch (per-copy systems), e.g. the three undiscounted Lin-UCB
variants on the four configs are one per-round loop over 120 copies, and DynLin-UCB's two lambdas
share one epoch loop per schedule. The per-round loops run in numpy on the host (RoundKernel in
rlsuite/agents/dynlin/run.py). Jobs run in ``--workers`` processes; the report ends with the
wall and CPU seconds of every loop and their total (also printed as one ``TIMING:`` line).

    .venv/bin/python scripts/reproduce_dynlin.py --workers 2          # T = 1e6, 10 trials
    .venv/bin/python scripts/reproduce_dynlin.py --horizon 100000 --trials 3 --tag quick
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import pickle
import platform
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

CONFIGS = {
    "synthetic_sigma0.01": ("synthetic", 0.01),
    "synthetic_sigma0.001": ("synthetic", 0.001),
    "synthetic_sigma0.1": ("synthetic", 0.1),
    "realdata_sigma0.01": ("advertising", 0.01),
}
LABELS = {  # agent key -> (label, line style); the order of the official alg_list
    "dynlin_log": ("DynLin-UCB, lambda = ln T", "-"),
    "dynlin_one": ("DynLin-UCB, lambda = 1", "-"),
    "linucb_log": ("Lin-UCB, lambda = ln T", "--"),
    "linucb_one": ("Lin-UCB, lambda = 1", "--"),
    "dlinucb_log": ("D-Lin-UCB, lambda = ln T", ":"),
    "dlinucb_one": ("D-Lin-UCB, lambda = 1", ":"),
    "ar2": ("AR2", "-."),
    "exp3": ("Exp3", "-."),
    "batch_exp3": ("Batch-Exp3", "-."),
    "expert": ("Expert (real data only)", "-."),
    "myopic": ("myopic arm argmax <theta, u> (reference, not in the paper)", (0, (1, 3))),
}


def plot_grid(horizon: int) -> np.ndarray:
    """The official 400-point grid (scripts/main.py indexer): 200 points over the first 20% of the
    rounds, 200 over the rest; here as round counts 1..T (regret after that many rounds)."""
    split = 0.2
    first = np.linspace(0, horizon * split, 201).astype(int)[:-1]
    rest = np.linspace(horizon * split - 1, horizon - 1, 200).astype(int)
    return np.unique(np.concatenate([first, rest]) + 1)


def _env_and_params(names: list[str], trials: int):
    from rlsuite.agents.dynlin.run import concat_params
    from rlsuite.envs.dynamical_bandit import DynamicalLinearBandit

    parts, env = [], None
    for name in names:
        system, sigma = CONFIGS[name]
        env = DynamicalLinearBandit(system, sigma=sigma)
        parts.append(env.default_params(trials))
    return env, concat_params(parts)


def run_job(job: dict) -> dict:
    """Run one learner on the stacked trials of ``job['configs']``; return curves and finals per config.

    Times both the learning loop alone (``seconds``, ``cpu_seconds``) and the whole job in its worker
    (``job_cpu_seconds``: imports, setup, curve extraction included)."""
    job_cpu0 = time.process_time()
    torch.set_num_threads(1)
    from rlsuite.agents.dynlin import baselines as bl
    from rlsuite.agents.dynlin.agent import DynLinUCB, DynLinUCBConfig

    names, trials, horizon, kind = job["configs"], job["trials"], job["horizon"], job["kind"]
    env, params = _env_and_params(names, trials)
    seed = job["seed"]
    per_config_keys = None
    if kind in ("dynlin", "linucb_family"):
        family = job["variants"]
        variants = [v for _ in names for v in family for _ in range(trials)]
        # copies ordered config-major, then variant, then trial
        reps = []
        for name in names:
            system, sigma = CONFIGS[name]
            e = type(env)(system, sigma=sigma)
            reps += [e.default_params(trials)] * len(family)
        from rlsuite.agents.dynlin.run import concat_params

        params = concat_params(reps)
        per_config_keys = list(family)
        if kind == "dynlin":  # both lambdas in one loop (same epoch schedule, per-copy lambda)
            lams = [None if v == "dynlin_log" else 1.0 for v in variants]
            agent = DynLinUCB(DynLinUCBConfig(log_every=horizon), env, params, seed, lams=lams)
        else:
            agent = bl.LinUCB(bl.LinUCBConfig(log_every=horizon), env, params, seed, variants=variants)
    elif kind in ("exp3", "batch_exp3"):
        agent = bl.Exp3(
            bl.Exp3Config(name=kind, batched=kind == "batch_exp3", log_every=horizon), env, params, seed
        )
    elif kind == "ar2":
        agent = bl.AR2(bl.AR2Config(log_every=horizon), env, params, seed)
    elif kind in ("expert", "myopic"):
        system, sigma = CONFIGS[names[0]]
        # the expert's allocation is an arm of its env (arm 6); adding it changes no other arm's regret
        env1 = type(env)(system, sigma=sigma, extra_arms=["expert"] if kind == "expert" else None)
        agent = bl.FixedPolicy(
            bl.FixedPolicyConfig(name=kind, policy=kind, log_every=horizon), env1, params, seed
        )
    else:
        raise ValueError(kind)
    tic, cpu0 = time.perf_counter(), time.process_time()
    agent.learn(horizon * agent.run.num_copies)
    seconds, cpu = time.perf_counter() - tic, time.process_time() - cpu0
    grid = plot_grid(horizon)
    curves = agent.run.regret_curve(torch.from_numpy(grid)).numpy()  # [P, copies]
    realized = agent.run.realized_regret().numpy()
    marks = [t for t in (10**3, 10**4, 10**5, 10**6) if t <= horizon]
    at = agent.run.regret_curve(torch.tensor(marks)).numpy()
    out = {}
    keys = per_config_keys or [kind]
    b = 0
    for name in names:
        for key in keys:
            sl = slice(b, b + trials)
            b += trials
            out[(name, key)] = {
                "curve": curves[:, sl],
                "realized": realized[sl],
                "marks": dict(zip(marks, at[:, sl], strict=True)),
            }
    return {
        "kind": kind,
        "configs": names,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "job_cpu_seconds": time.process_time() - job_cpu0,
        "copies": agent.run.num_copies,
        "variants": job.get("variants"),
        "results": out,
    }


def jobs_for(horizon: int, trials: int, seed: int) -> list[dict]:
    syn = [n for n in CONFIGS if n.startswith("synthetic")]
    every = list(CONFIGS)
    # Longest loops first (so that a pool of 2 finishes together); DynLin-UCB's two lambdas share a
    # loop per epoch schedule (rho = 0.2 on the synthetic configs, 0.667 on the real-data one).
    both = ["dynlin_log", "dynlin_one"]
    jobs = [
        # the undiscounted variants keep the rank-one (arm-space Sherman-Morrison) update
        {"kind": "linucb_family", "configs": every, "variants": ["linucb_log", "linucb_one", "dlinucb_log"]},
        {"kind": "linucb_family", "configs": every, "variants": ["dlinucb_one"]},
        {"kind": "ar2", "configs": every},
        {"kind": "exp3", "configs": every},
        {"kind": "dynlin", "configs": syn, "variants": both},
        {"kind": "dynlin", "configs": ["realdata_sigma0.01"], "variants": both},
        {"kind": "batch_exp3", "configs": syn},
        {"kind": "batch_exp3", "configs": ["realdata_sigma0.01"]},
        {"kind": "expert", "configs": ["realdata_sigma0.01"]},
        {"kind": "myopic", "configs": syn},
        {"kind": "myopic", "configs": ["realdata_sigma0.01"]},
    ]
    for j in jobs:
        j.update(horizon=horizon, trials=trials, seed=seed)
    return jobs


def _loadavg() -> list[str]:
    try:
        return open("/proc/loadavg").read().split()[:3]
    except OSError:
        return ["?"]


def fmt(mean: float, se: float) -> str:
    return f"{mean:,.0f} +- {se:,.0f}" if mean >= 100 else f"{mean:,.1f} +- {se:,.1f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--horizon", type=int, default=10**6)
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="worker processes (one torch thread each)")
    ap.add_argument("--out", default="results")
    ap.add_argument("--tag", default="", help="suffix of the output names (e.g. quick)")
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild the report from the per-loop results cached by an earlier (partial) run",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "dynlin_ucb" + (f"_{args.tag}" if args.tag else "")
    jobs = jobs_for(args.horizon, args.trials, args.seed)
    tic, main_cpu0 = time.perf_counter(), time.process_time()
    load_start = _loadavg()
    results, timings = {}, []
    cache = out / f".{stem}_cache"
    cache.mkdir(exist_ok=True)
    if args.report_only:
        done = [pickle.loads(f.read_bytes()) for f in sorted(cache.glob("*.pkl"))]
        saved = json.loads((cache / "wall.json").read_text()) if (cache / "wall.json").exists() else {}
        wall = float(saved.get("wall", math.nan))
        load_start = saved.get("load_start", ["?"])
    else:
        for f in cache.glob("*.pkl"):
            f.unlink()
        done = []
        with mp.get_context("spawn").Pool(args.workers) as pool:
            for i, res in enumerate(
                tqdm(pool.imap_unordered(run_job, jobs), total=len(jobs), desc="learner loops")
            ):
                (cache / f"{i:02d}.pkl").write_bytes(pickle.dumps(res))  # a partial run can still be reported
                done.append(res)
        wall = time.perf_counter() - tic
        (cache / "wall.json").write_text(json.dumps({"wall": wall, "load_start": load_start}))
    for res in done:
        results.update(res["results"])
        timings.append(
            {
                "loop": res["kind"] + (f" ({'/'.join(res['variants'])})" if res.get("variants") else ""),
                "configs": res["configs"],
                "copies": res["copies"],
                "seconds": round(res["seconds"], 1),
                "cpu_seconds": round(res["cpu_seconds"], 1),
                "job_cpu_seconds": round(res.get("job_cpu_seconds", math.nan), 1),
                "cpu_seconds_per_trial": round(res["cpu_seconds"] / res["copies"], 2),
            }
        )
    load = _loadavg()
    total_cpu = sum(t["job_cpu_seconds"] for t in timings)
    loop_cpu = sum(t["cpu_seconds"] for t in timings)
    grid = plot_grid(args.horizon)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary: dict = {
        "horizon": args.horizon,
        "trials": args.trials,
        "seed": args.seed,
        "wall_seconds": round(wall, 1),
        "workers": args.workers,
        "load_average_at_start": load_start,
        "load_average_at_end": load,
        "cpu_seconds_learning_loops": round(loop_cpu, 1),
        "cpu_seconds_jobs": round(total_cpu, 1),
        "timings": timings,
        "configs": {},
    }
    for name in CONFIGS:
        fig, ax = plt.subplots(figsize=(9, 6))
        rows = {}
        for key, (label, style) in LABELS.items():
            if (name, key) not in results:
                continue
            r = results[(name, key)]
            c = r["curve"]
            mean, se = c.mean(1), c.std(1) / math.sqrt(c.shape[1])
            final = c[-1]
            rows[key] = {
                "label": label,
                "final_mean": float(final.mean()),
                "final_se": float(final.std() / math.sqrt(len(final))),
                "realized_mean": float(r["realized"].mean()),
                "realized_se": float(r["realized"].std() / math.sqrt(len(final))),
                "at": {
                    str(t): [float(v.mean()), float(v.std() / math.sqrt(len(v)))]
                    for t, v in r["marks"].items()
                },
            }
            if key == "myopic":
                continue
            ax.plot(grid, mean, label=label, linestyle=style)
            ax.fill_between(grid, mean - se, mean + se, alpha=0.15)
        if "dynlin_log" in rows:
            ax.set_ylim(0, 3 * rows["dynlin_log"]["final_mean"])  # the official y-limit
        ax.set_xlim(0, args.horizon)
        ax.set_xlabel("rounds")
        ax.set_ylabel("cumulative pseudo-regret")
        ax.set_title(f"{name}: {args.trials} trials, mean +- 1 s.e.")
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"{stem}_{name}.png", dpi=110)
        plt.close(fig)
        summary["configs"][name] = rows

    (out / f"{stem}.json").write_text(json.dumps(summary, indent=1))
    lines = [
        f"# DynLin-UCB and baselines: regret at T = {args.horizon:,} ({args.trials} trials)",
        "",
        "Command (from the repository root; ``--workers`` and ``--report-only`` do not change the",
        "numbers):",
        "",
        f"    .venv/bin/python scripts/reproduce_dynlin.py --horizon {args.horizon} --trials {args.trials}"
        + (f" --tag {args.tag}" if args.tag else ""),
        "",
        "Cumulative steady-state pseudo-regret sum_t (J* - <h, u_t>) (the official plotted metric),",
        "mean +- standard error over trials; 'realized' is t J* - sum_t y_t (transients and noise included).",
        "",
    ]
    for name, rows in summary["configs"].items():
        lines += [
            f"## {name}",
            "",
            f"![{name}]({stem}_{name}.png)",
            "",
            "| agent | R(1e3) | R(1e4) | R(1e5) | R(T) | realized R(T) |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in rows.values():
            at = [fmt(*r["at"][str(t)]) if str(t) in r["at"] else "-" for t in (10**3, 10**4, 10**5)]
            lines.append(
                f"| {r['label']} | {' | '.join(at)} | {fmt(r['final_mean'], r['final_se'])} | "
                f"{fmt(r['realized_mean'], r['realized_se'])} |"
            )
        lines.append("")
    lines += [
        "## Timing",
        "",
        f"Wall time {wall:.0f} s for everything above ({args.workers} worker processes, one torch thread "
        f"each; {platform.machine()}, {os.cpu_count()} cores; load average {' '.join(load_start)} at the "
        f"start, {' '.join(load)} at the end). CPU: {loop_cpu:.0f} s in the learning loops, "
        f"{total_cpu:.0f} s for the whole jobs (setup and curve extraction included).",
        "",
        "| loop | configs | copies | wall s | CPU s | CPU s per trial | job CPU s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for t in sorted(timings, key=lambda x: -x["cpu_seconds"]):
        cells = [
            t["loop"],
            ", ".join(t["configs"]),
            t["copies"],
            t["seconds"],
            t["cpu_seconds"],
            t["cpu_seconds_per_trial"],
            t["job_cpu_seconds"],
        ]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    (out / f"{stem}_runs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(
        f"\nTIMING: wall {wall:.1f} s, CPU {total_cpu:.1f} s in {len(timings)} jobs "
        f"({loop_cpu:.1f} s in the learning loops), main process "
        f"{time.process_time() - main_cpu0:.1f} s CPU, "
        f"{args.workers} workers, load average {' '.join(load_start)} -> {' '.join(load)}"
    )


if __name__ == "__main__":
    main()
