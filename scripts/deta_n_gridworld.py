"""DηN vs the exact solver vs risk-neutral QR-DQN on the 4x4 stock gridworld
(``rlsuite.envs.tabular.stock_grid``), for ``results/distributional_dp.md``.

    .venv/bin/python scripts/deta_n_gridworld.py [--steps 120000] [--episodes 10000] [--seeds 0 1 2]

1. Deterministic grid, return targeting: one DηN network (seed = the first of ``--seeds``)
   deployed at stocks -2, -4, -5, -8 (targets 2, 4, 5, 8); the exact optimum of E -|G - target|
   from ``solve``; the risk-neutral baseline, the suite's QR-DQN
   (:func:`rlsuite.agents.distributional_dp.deta_n.risk_neutral_qrdqn`, same network and
   schedule, greedy by the mean, on the time-unrolled grid). Histograms of DηN's returns.
2. Stochastic grid, CVaR: the exact CVaR-optimal policies' (CVaR, mean) per level; per seed, one
   DηN network trained with ``min(x, 0)`` and deployed per level three ways: at the initial stock
   that wins the Rockafellar-Uryasev search on the network's predictions at the start state
   (RIGOR's procedure); at the stock that wins the same search on Monte-Carlo estimates for the
   network's best candidates; and at the (snapshot, stock) pair that wins it over the last five
   snapshots of the network (the preset ``experiment=stockgrid_deta_n_cvar``); and one QR-DQN.

Every learned policy is scored twice: exactly (its return distribution by forward propagation on
the MDP, :func:`rlsuite.agents.distributional_dp.deta_n.tabular_policy_returns`, no Monte-Carlo
error) and empirically over ``--episodes`` episodes with a 95% CI (normal for means and expected
utilities, percentile bootstrap for CVaR). Writes ``results/distributional_dp_grid.json`` and the
PNGs ``results/distributional_dp_histograms.png``, ``results/distributional_dp_tradeoff.png``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from rlsuite.agents.distributional_dp import CVaR, ReturnTargeting, solve  # noqa: E402
from rlsuite.agents.distributional_dp.deta_n import (  # noqa: E402
    DetaN,
    DetaNConfig,
    greedy_returns,
    objective_ci,
    risk_neutral_qrdqn,
    tabular_policy_returns,
)
from rlsuite.envs.tabular.stock_grid import stock_grid, stock_grid_env, unroll_time  # noqa: E402

TARGETS = (2.0, 4.0, 5.0, 8.0)
LEVELS = (0.1, 0.25, 0.5, 1.0)
ROLLOUT_RU_EPISODES = 30_000
"""Greedy episodes per candidate of the RU searches by episodes (``deploy_episodes``)."""
ROLLOUT_RU_SHORTLIST = 5
"""Candidates per network that the RU searches score by episodes: the network reading's best five."""
SNAPSHOTS = 5
"""Networks the snapshot deployment chooses among (``deploy_snapshots``): the weights at about
80k, 90k, ..., 120k env steps of a 120k run (``snapshot_interval`` 10k; the first iteration
past each multiple)."""
GRID = dict(stock_low=-14.0, stock_high=4.0, relabel_fraction=0.75, kappa=0.0, stock_grid_step=1.0,
            time_one_hot=True, utd=0.5, hidden_sizes=[256, 256],
            deploy_episodes=ROLLOUT_RU_EPISODES, deploy_shortlist=ROLLOUT_RU_SHORTLIST,
            deploy_snapshots=SNAPSHOTS, snapshot_interval=10_000)
"""The grid runs' settings beyond DetaNConfig's defaults (conf/experiment/stockgrid_deta_n*.yaml):
initial and relabelled stocks on [-14, 4] (targets up to 8, RU optima b* <= 7 for levels <= 0.5),
pure quantile loss, integer RU candidates (every return of the grid is an integer), the step
count also one-hot, 0.5 gradient steps per env step, a 256-256 network (the Stoix fork's), the
deployment settings of the CVaR preset; the results use 120k env steps (``--steps 120000``)."""


class Bar:
    """Training hook: a tqdm bar over env steps."""

    def __init__(self, total: int, desc: str) -> None:
        self.bar = tqdm(total=total, desc=desc, unit="step")
        self.last = 0

    def on_iteration(self, agent, step: int, metrics: dict[str, float]) -> None:
        self.bar.update(step - self.last)
        self.last = step


def build(kind: str, objective: str, stochastic: bool, seed: int):
    """An untrained agent for the grid (``kind``: deta_n or qrdqn)."""
    env = stock_grid_env(stochastic=stochastic)
    cfg = DetaNConfig(objective=objective, target=4.0, level=0.25, **GRID)
    return (DetaN(cfg, env, env.default_params(16), seed=seed) if kind == "deta_n"
            else risk_neutral_qrdqn(env, cfg, seed))


def train_job(job: tuple[str, str, bool, int, int]) -> tuple[dict, list, float]:
    """Train one run (in a worker process): its network's weights, its kept snapshots (DηN)
    and its CPU time."""
    kind, objective, stochastic, steps, seed = job
    torch.set_num_threads(1)
    agent = build(kind, objective, stochastic, seed)
    tic = time.process_time()
    agent.learn(steps, Bar(steps, f"{kind} {objective} stochastic={stochastic} seed={seed}"))
    return agent.q_net.state_dict(), getattr(agent, "snapshots", []), time.process_time() - tic


def train_all(jobs: list[tuple[str, str, bool, int, int]], workers: int) -> tuple[list, dict]:
    """Train ``jobs`` on ``workers`` processes; the trained agents (rebuilt here with the
    workers' weights and snapshots: greedy acting and deployment need nothing else) and the CPU
    seconds of each."""
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(train_job, jobs))
    agents, cpu = [], {}
    for (kind, objective, stochastic, _, seed), (weights, snapshots, seconds) in zip(
            jobs, results, strict=True):
        agent = build(kind, objective, stochastic, seed)
        agent.q_net.load_state_dict(weights)
        if kind == "deta_n":
            agent.snapshots = snapshots
        agents.append(agent)
        cpu[f"{kind} {objective} {'stochastic' if stochastic else 'deterministic'} seed {seed}"] = seconds
    return agents, cpu


def ci_mean(g: torch.Tensor) -> list[float]:
    """95% normal CI of the mean return."""
    half = 1.96 * float(g.std()) / len(g) ** 0.5
    return [float(g.mean()) - half, float(g.mean()) + half]


def score(agent, mdp, stock: float, objective, episodes: int, gen: torch.Generator) -> dict:
    """Exact and empirical objective and mean of ``agent``'s greedy policy deployed at ``stock``."""
    r, p = tabular_policy_returns(agent, mdp, stock)
    g = greedy_returns(agent.env, agent.act, episodes, stock, 1.0, gen)
    return {"stock": stock, "exact": objective.evaluate(r, p), "exact_mean": float((r * p).sum()),
            "empirical": objective.evaluate(g), "ci": list(objective_ci(objective, g, 0.0, gen)),
            "mean": float(g.mean()), "mean_ci": ci_mean(g), "returns": g}


def plot_tradeoff(rows: list[dict], path: Path) -> None:
    """CVaR at each level vs mean (exact evaluation of each policy): the exact optimum, DηN per
    seed and QR-DQN per seed; each point's CVaR is at its own level."""
    fig, ax = plt.subplots(figsize=(5.8, 4.4))
    for r in rows:
        ax.plot(r["exact_mean"], r["exact_cvar"], "ko")
        ax.annotate(f"{r['level']:g}", (r["exact_mean"], r["exact_cvar"]), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
        for d in r["deta_n"]:
            ax.plot([r["exact_mean"], d["exact_mean"]], [r["exact_cvar"], d["exact"]], ":",
                    color="gray", lw=0.8)
            ax.plot(d["exact_mean"], d["exact"], "s", color="tab:blue", ms=4)
            ax.plot(d["rollout_ru_exact_mean"], d["rollout_ru_exact"], "s", mfc="none",
                    color="tab:green", ms=6)
            ax.plot(d["snapshot_ru_exact_mean"], d["snapshot_ru_exact"], "D", mfc="none",
                    color="tab:purple", ms=8)
        for q in r["qrdqn"]:
            ax.plot(q["exact_mean"], q["exact"], "x", color="tab:red")
            ax.annotate(f"{r['level']:g}", (q["exact_mean"], q["exact"]), fontsize=6, color="tab:red",
                        xytext=(-14, -3), textcoords="offset points")
    ax.plot([], [], "ko", label="exact CVaR-optimal policy of the level")
    ax.plot([], [], "s", color="tab:blue", label="DηN, one network per seed, RU-deployed per level")
    ax.plot([], [], "s", mfc="none", color="tab:green",
            label="DηN, same network, RU scored by episodes")
    ax.plot([], [], "D", mfc="none", color="tab:purple",
            label=f"DηN, best of {SNAPSHOTS} snapshots and stocks by episodes")
    ax.plot([], [], "x", color="tab:red", label="risk-neutral QR-DQN, per seed")
    ax.set_xlabel("mean return")
    ax.set_ylabel("CVaR at the annotated level")
    ax.set_title("Stochastic 4x4 stock grid: exact evaluation of each learned policy", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def fmt(v: float, ci: list[float] | None = None) -> str:
    """``v [lo, hi]``."""
    return f"{v:.3f}" if ci is None else f"{v:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def gap_text(optimum: float, value: float) -> str:
    """How far ``value`` falls below ``optimum``: in % of it, absolute when it is 0."""
    return (f"{100 * (optimum - value) / abs(optimum):.1f}%" if optimum != 0
            else f"{optimum - value:.3f} (abs.)")


def markdown_tables(data: dict) -> str:
    """The tables of ``results/distributional_dp.md`` from the JSON."""
    lines = ["| target | exact optimum | DηN exact | DηN empirical (95% CI) | DηN mean return | "
             "QR-DQN exact | QR-DQN empirical (95% CI) | QR-DQN mean return |", "|---" * 8 + "|"]
    for r in data["targeting"]["rows"]:
        d, q = r["deta_n"], r["qrdqn"]
        lines.append(f"| {r['target']:g} | {r['exact_optimum']:.3f} | {d['exact']:.3f} | "
                     f"{fmt(d['empirical'], d['ci'])} | {d['mean']:.3f} | {q['exact']:.3f} | "
                     f"{fmt(q['empirical'], q['ci'])} | {q['mean']:.3f} |")
    lines += ["", "| level | exact CVaR (mean) | seed | DηN stock | DηN CVaR exact | DηN CVaR empirical "
              "(95% CI) | DηN mean exact | DηN mean empirical (95% CI) | gap to optimum | "
              "QR-DQN CVaR exact | QR-DQN CVaR empirical (95% CI) | QR-DQN mean empirical (95% CI) |",
              "|---" * 12 + "|"]
    for r in data["cvar"]["rows"]:
        for d, q in zip(r["deta_n"], r["qrdqn"], strict=True):
            gap = gap_text(r["exact_cvar"], d["exact"])
            lines.append(
                f"| {r['level']:g} | {r['exact_cvar']:.3f} ({r['exact_mean']:.3f}) | {d['seed']} | "
                f"{d['stock']:g} | {d['exact']:.3f} | {fmt(d['empirical'], d['ci'])} | "
                f"{d['exact_mean']:.3f} | {fmt(d['mean'], d['mean_ci'])} | {gap} | {q['exact']:.3f} | "
                f"{fmt(q['empirical'], q['ci'])} | {fmt(q['mean'], q['mean_ci'])} |")
    for key, title in (("rollout_ru", f"rollout-RU stock ({ROLLOUT_RU_EPISODES} episodes for each of "
                                      f"the final network's best {ROLLOUT_RU_SHORTLIST})"),
                       ("snapshot_ru", f"snapshot-RU stock, network step ({ROLLOUT_RU_EPISODES} "
                                       f"episodes for each of the best {ROLLOUT_RU_SHORTLIST} of "
                                       f"each of {SNAPSHOTS} snapshots)")):
        lines += ["", f"| level | exact CVaR | seed | {title} | its CVaR exact | its CVaR "
                  "empirical (95% CI) | its mean exact | gap to optimum (exact) |", "|---" * 8 + "|"]
        for r in data["cvar"]["rows"]:
            for d in r["deta_n"]:
                where = f"{d[key + '_stock']:g}" + (f", {d['snapshot_step']}" if key == "snapshot_ru"
                                                    else "")
                lines.append(f"| {r['level']:g} | {r['exact_cvar']:.3f} | {d['seed']} | {where} | "
                             f"{d[key + '_exact']:.3f} | "
                             f"{fmt(d[key + '_empirical'], d[key + '_ci'])} | "
                             f"{d[key + '_exact_mean']:.3f} | "
                             f"{gap_text(r['exact_cvar'], d[key + '_exact'])} |")
    return "\n".join(lines)


def strip(d: dict) -> dict:
    """A score without its raw returns (for the JSON)."""
    return {k: v for k, v in d.items() if k != "returns"}


def main() -> None:
    """Train, evaluate, write JSON and plots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=120_000)
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2, help="training processes")
    parser.add_argument("--out", default="results")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the trade-off plot and print the tables from the JSON, no training")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    if args.plot_only:
        data = json.loads((out / "distributional_dp_grid.json").read_text())
        plot_tradeoff(data["cvar"]["rows"], out / "distributional_dp_tradeoff.png")
        print(markdown_tables(data))
        return
    gen = torch.Generator().manual_seed(args.seeds[0] + 12345)
    result: dict = {"command": f".venv/bin/python scripts/deta_n_gridworld.py --steps {args.steps} "
                               f"--episodes {args.episodes} --seeds {' '.join(map(str, args.seeds))}",
                    "settings": GRID}
    seed = args.seeds[0]
    jobs = [("deta_n", "target", False, args.steps, seed), ("qrdqn", "mean", False, args.steps, seed)]
    for s in args.seeds:
        jobs += [("deta_n", "cvar", True, args.steps, s), ("qrdqn", "mean", True, args.steps, s)]
    trained, cpu = train_all(jobs, args.workers)
    # ---- 1. return targeting on the deterministic grid
    det, det_unrolled = stock_grid(stochastic=False), unroll_time(stock_grid(stochastic=False))
    deta, base = trained[0], trained[1]
    rows, hist = [], {}
    for target in TARGETS:
        objective = ReturnTargeting(target)
        d = score(deta, det, -target, objective, args.episodes, gen)
        q = score(base, det_unrolled, 0.0, ReturnTargeting(target), args.episodes, gen)
        hist[target] = d["returns"].tolist()
        rows.append({"target": target, "exact_optimum": solve(det, objective).value,
                     "deta_n": strip(d), "qrdqn": strip(q)})
    result["targeting"] = {"rows": rows}
    fig, axes = plt.subplots(1, len(TARGETS), figsize=(3.2 * len(TARGETS), 2.8), sharey=True)
    for ax, target in zip(axes, TARGETS, strict=True):
        ax.hist(hist[target], bins=torch.arange(-8.5, 30.5, 1.0).tolist(), color="tab:blue")
        ax.axvline(target, color="k", ls="--", lw=1)
        ax.set_title(f"DηN, initial stock {-target:g} (target {target:g})", fontsize=8)
        ax.set_xlabel("return")
    axes[0].set_ylabel(f"episodes (of {args.episodes})")
    fig.tight_layout()
    fig.savefig(out / "distributional_dp_histograms.png", dpi=120)
    # ---- 2. CVaR on the stochastic grid, one DηN and one QR-DQN per seed
    sto, sto_unrolled = stock_grid(stochastic=True), unroll_time(stock_grid(stochastic=True))
    agents = [(s, trained[2 + 2 * i], trained[3 + 2 * i]) for i, s in enumerate(args.seeds)]
    cv_rows = []
    for level in LEVELS:
        objective = CVaR(level)
        sol = solve(sto, objective)
        row: dict = {"level": level, "exact_cvar": sol.value, "exact_mean": sol.mean,
                     "exact_stock": float(sol.start_stock[0]), "deta_n": [], "qrdqn": []}
        for s, d_agent, q_agent in agents:
            entry: dict = {"seed": s}
            # Three deployments of the same run, each scored before the next one changes it:
            # RU on the final network's reading (deploy_episodes = 0), RU by episodes for the
            # final network's best candidates (deploy_snapshots = 1: the final weights), and RU
            # by episodes over the snapshots (the preset).
            for key, episodes, snapshots in (("", 0, 0), ("rollout_ru_", ROLLOUT_RU_EPISODES, 1),
                                             ("snapshot_ru_", ROLLOUT_RU_EPISODES, SNAPSHOTS)):
                d_agent.config.deploy_episodes, d_agent.config.deploy_snapshots = episodes, snapshots
                stock = d_agent.choose_stock(gen, objective=objective)
                got = strip(score(d_agent, sto, stock, objective, args.episodes, gen))
                if not key:
                    entry.update(got)
                    continue
                entry.update({key + "stock": stock, key + "exact": got["exact"],
                              key + "exact_mean": got["exact_mean"],
                              key + "empirical": got["empirical"], key + "ci": got["ci"]})
            entry["snapshot_step"] = d_agent.deployed_step
            row["deta_n"].append(entry)
            row["qrdqn"].append({"seed": s, **strip(score(q_agent, sto_unrolled, 0.0, objective,
                                                           args.episodes, gen))})
        cv_rows.append(row)
    result["cvar"] = {"rows": cv_rows}
    result["train_cpu_seconds"] = cpu
    plot_tradeoff(cv_rows, out / "distributional_dp_tradeoff.png")
    (out / "distributional_dp_grid.json").write_text(json.dumps(result, indent=1) + "\n")
    print(markdown_tables(result))
    print(json.dumps(cpu, indent=1))


if __name__ == "__main__":
    main()
