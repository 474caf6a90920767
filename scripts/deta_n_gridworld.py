"""DηN vs the exact solver vs risk-neutral QR-DQN on the 4x4 stock gridworld
(``rlsuite.envs.tabular.stock_grid``), for ``results/distributional_dp.md``.

    .venv/bin/python scripts/deta_n_gridworld.py [--steps 40000] [--episodes 10000] [--seed 0]

1. Deterministic grid, return targeting: one DηN network (initial stocks drawn from
   [-10, 2] during training) deployed at stocks -2, -4, -5, -8 (targets 2, 4, 5, 8); the exact
   optimum of E -|G - target| from ``solve``; the risk-neutral baseline (same network and loss,
   greedy by the mean, i.e. QR-DQN with an ignored stock input). Histograms of DηN's returns.
2. Stochastic grid, CVaR: the exact CVaR-optimal policies' (mean, CVaR) for several levels (the
   exact trade-off curve); one DηN network trained with ``min(x, 0)`` and deployed per level by
   scoring initial stocks at the start state (RU); the risk-neutral baseline.

Every empirical number is over ``--episodes`` evaluation episodes with a 95% CI (normal for
expected utilities, percentile bootstrap for CVaR). Writes ``results/distributional_dp_grid.json``
and the PNGs ``results/distributional_dp_histograms.png``, ``results/distributional_dp_tradeoff.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm  # noqa: E402

from rlsuite.agents.distributional_dp import CVaR, ReturnTargeting, solve  # noqa: E402
from rlsuite.agents.distributional_dp.deta_n import DetaN, DetaNConfig, objective_ci  # noqa: E402
from rlsuite.envs.tabular.stock_grid import stock_grid, stock_grid_env  # noqa: E402

TARGETS = (2.0, 4.0, 5.0, 8.0)
LEVELS = (0.1, 0.25, 0.5, 1.0)


class Bar:
    """Training hook: a tqdm bar over env steps."""

    def __init__(self, total: int, desc: str) -> None:
        self.bar = tqdm(total=total, desc=desc, unit="step")
        self.last = 0

    def on_iteration(self, agent: DetaN, step: int, metrics: dict[str, float]) -> None:
        self.bar.update(step - self.last)
        self.last = step


def train(objective: str, stochastic: bool, steps: int, seed: int) -> tuple[DetaN, float]:
    """One DηN run on the grid; returns the agent and its wall time."""
    env = stock_grid_env(stochastic=stochastic)
    agent = DetaN(DetaNConfig(objective=objective, target=4.0, level=0.25), env,
                  env.default_params(16), seed=seed)
    tic = time.perf_counter()
    agent.learn(steps, Bar(steps, f"{objective} stochastic={stochastic}"))
    return agent, time.perf_counter() - tic


def plot_tradeoff(rows: list[dict], path: Path) -> None:
    """CVaR at each level vs mean: exact optimum, DηN and the risk-neutral baseline per level
    (each point's CVaR is at its own level; dotted lines join DηN to that level's optimum)."""
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    for r in rows:
        ax.plot([r["exact_mean"], r["deta_n_mean"]], [r["exact_cvar"], r["deta_n_cvar"]], ":",
                color="gray", lw=1)
        ax.plot(r["exact_mean"], r["exact_cvar"], "ko")
        ax.errorbar(r["deta_n_mean"], r["deta_n_cvar"],
                    xerr=[[r["deta_n_mean"] - r["deta_n_mean_ci"][0]],
                          [r["deta_n_mean_ci"][1] - r["deta_n_mean"]]],
                    yerr=[[r["deta_n_cvar"] - r["deta_n_cvar_ci"][0]],
                          [r["deta_n_cvar_ci"][1] - r["deta_n_cvar"]]], fmt="s", color="tab:blue")
        ax.plot(r["risk_neutral_mean"], r["risk_neutral_cvar"], "x", color="tab:red")
        for x, y in ((r["exact_mean"], r["exact_cvar"]), (r["risk_neutral_mean"], r["risk_neutral_cvar"])):
            ax.annotate(f"{r['level']:g}", (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
        ax.annotate(f"{r['level']:g}", (r["deta_n_mean"], r["deta_n_cvar"]), fontsize=7,
                    xytext=(4, -10), textcoords="offset points", color="tab:blue")
    ax.plot([], [], "ko", label="exact CVaR-optimal policy of the level")
    ax.plot([], [], "s", color="tab:blue", label="DηN (one network, RU-deployed per level)")
    ax.plot([], [], "x", color="tab:red", label="risk-neutral QR-DQN")
    ax.set_xlabel("mean return")
    ax.set_ylabel("CVaR at the annotated level")
    ax.set_title("Stochastic 4x4 stock grid, 10^4 episodes per point (95% CIs)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def ci_mean(g: torch.Tensor) -> list[float]:
    """95% normal CI of the mean return."""
    half = 1.96 * float(g.std()) / len(g) ** 0.5
    return [float(g.mean()) - half, float(g.mean()) + half]


def main() -> None:
    """Train, evaluate, write JSON and plots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40_000)
    parser.add_argument("--episodes", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="results")
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the trade-off plot from the JSON, no training")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    if args.plot_only:
        data = json.loads((out / "distributional_dp_grid.json").read_text())
        plot_tradeoff(data["cvar"]["rows"], out / "distributional_dp_tradeoff.png")
        return
    gen = torch.Generator().manual_seed(args.seed + 12345)
    result: dict = {"command": f".venv/bin/python scripts/deta_n_gridworld.py --steps {args.steps} "
                               f"--episodes {args.episodes} --seed {args.seed}"}
    # ---- 1. return targeting on the deterministic grid
    det = stock_grid(stochastic=False)
    deta, t_deta = train("target", False, args.steps, args.seed)
    base, t_base = train("mean", False, args.steps, args.seed)
    rows, hist = [], {}
    for target in TARGETS:
        objective = ReturnTargeting(target)
        exact = solve(det, objective).value
        g = deta.rollout_returns(args.episodes, gen, stock=-target)
        gb = base.rollout_returns(args.episodes, gen, stock=-target)
        hist[target] = g.tolist()
        rows.append({
            "target": target, "exact": exact,
            "deta_n": objective.evaluate(g), "deta_n_ci": objective_ci(objective, g, 0.0, gen),
            "deta_n_mean_return": float(g.mean()),
            "risk_neutral": objective.evaluate(gb), "risk_neutral_ci": objective_ci(objective, gb, 0.0, gen),
            "risk_neutral_mean_return": float(gb.mean()),
        })
    result["targeting"] = {"rows": rows, "train_seconds": {"deta_n": t_deta, "risk_neutral": t_base}}
    fig, axes = plt.subplots(1, len(TARGETS), figsize=(3.2 * len(TARGETS), 2.8), sharey=True)
    for ax, target in zip(axes, TARGETS, strict=True):
        ax.hist(hist[target], bins=torch.arange(-8.5, 30.5, 1.0).tolist(), color="tab:blue")
        ax.axvline(target, color="k", ls="--", lw=1)
        ax.set_title(f"DηN, initial stock {-target:g} (target {target:g})", fontsize=8)
        ax.set_xlabel("return")
    axes[0].set_ylabel(f"episodes (of {args.episodes})")
    fig.tight_layout()
    fig.savefig(out / "distributional_dp_histograms.png", dpi=120)
    # ---- 2. CVaR on the stochastic grid
    sto = stock_grid(stochastic=True)
    deta_c, t_c = train("cvar", True, args.steps, args.seed)
    base_c, t_bc = train("mean", True, args.steps, args.seed)
    gb = base_c.rollout_returns(args.episodes, gen, stock=0.0)
    cv_rows = []
    for level in LEVELS:
        objective = CVaR(level)
        sol = solve(sto, objective)
        stock = deta_c.choose_stock(gen, objective=objective)
        g = deta_c.rollout_returns(args.episodes, gen, stock=stock)
        cv_rows.append({
            "level": level, "exact_cvar": sol.value, "exact_mean": sol.mean,
            "deta_n_stock": stock, "deta_n_cvar": objective.evaluate(g),
            "deta_n_cvar_ci": objective_ci(objective, g, 0.0, gen),
            "deta_n_mean": float(g.mean()), "deta_n_mean_ci": ci_mean(g),
            "risk_neutral_cvar": objective.evaluate(gb),
            "risk_neutral_cvar_ci": objective_ci(objective, gb, 0.0, gen),
            "risk_neutral_mean": float(gb.mean()), "risk_neutral_mean_ci": ci_mean(gb),
        })
    result["cvar"] = {"rows": cv_rows, "train_seconds": {"deta_n": t_c, "risk_neutral": t_bc}}
    plot_tradeoff(cv_rows, out / "distributional_dp_tradeoff.png")
    (out / "distributional_dp_grid.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "command"}, indent=1)[:4000])


if __name__ == "__main__":
    main()
