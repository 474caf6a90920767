"""Which DηN settings close the gap to the exact optimum on the 4x4 stock gridworld, for the
section "What narrowed the gap" of ``results/distributional_dp.md``.

    .venv/bin/python scripts/deta_n_ablation.py [--seeds 0 1 2] [--workers 2]

Each variant (``VARIANTS``) trains one DηN network per seed on the stochastic grid with
``min(x, 0)`` and one on the deterministic grid for return targeting (first seed only). Scores,
all exact (the learned policy's return distribution by forward propagation on the MDP, no
Monte-Carlo error):

* per CVaR level 0.25 and 0.5: the CVaR of the policy deployed at the stock that the RU search on
  the network's reading picks ("network"), and the best CVaR over every integer candidate stock
  ("best stock": what a perfect choice of the stock would get from this network);
* return target 5: ``E -|G - 5|`` at stock -5 (exact optimum 0).

Writes ``results/distributional_dp_ablation.json`` and prints the markdown table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from rlsuite.agents.distributional_dp import CVaR, ReturnTargeting, solve
from rlsuite.agents.distributional_dp.deta_n import (
    DetaN,
    DetaNConfig,
    stock_candidates,
    tabular_policy_returns,
)
from rlsuite.envs.tabular.stock_grid import stock_grid, stock_grid_env

BASE = dict(stock_low=-14.0, stock_high=4.0, relabel_fraction=0.75, kappa=0.0, stock_grid_step=1.0)
"""The settings every variant shares (the grid runs' stock range, relabelling, quantile loss and
integer RU candidates)."""
VARIANTS: dict[str, tuple[int, dict]] = {
    "before (scalar step count, utd 0.25, 128-128, 40k steps)": (40_000, {}),
    "categorical head (49 integer atoms on [-16, 32]), one-hot step count, 40k": (
        40_000, dict(representation="categorical", n_atoms=49, atoms_low=-16.0, atoms_high=32.0,
                     time_one_hot=True)),
    "one-hot step count, 40k": (40_000, dict(time_one_hot=True)),
    "one-hot step count, utd 0.5, 80k": (80_000, dict(time_one_hot=True, utd=0.5)),
}
"""The last steps, a 256-256 network and 120k env steps, are the settings of
``scripts/deta_n_gridworld.py``, whose tables report them."""
LEVELS = (0.25, 0.5)


def run(job: tuple[str, int, bool]) -> dict:
    """Train one variant on one seed (stochastic grid: CVaR scores; deterministic: target 5)."""
    name, seed, stochastic = job
    torch.set_num_threads(1)
    steps, extra = VARIANTS[name]
    env = stock_grid_env(stochastic=stochastic)
    cfg = DetaNConfig(objective="cvar" if stochastic else "target", level=0.25, target=4.0,
                      **BASE, **extra)
    agent = DetaN(cfg, env, env.default_params(16), seed=seed)
    tic = time.process_time()
    agent.learn(steps)
    out: dict = {"variant": name, "seed": seed, "cpu_seconds": time.process_time() - tic}
    mdp = stock_grid(stochastic=stochastic)
    if not stochastic:
        out["target_5"] = ReturnTargeting(5.0).evaluate(*tabular_policy_returns(agent, mdp, -5.0))
        return out
    laws = {float(x): tabular_policy_returns(agent, mdp, float(x)) for x in stock_candidates(cfg)}
    gen = torch.Generator().manual_seed(seed)
    for level in LEVELS:
        objective = CVaR(level)
        per_stock = {x: objective.evaluate(r, p) for x, (r, p) in laws.items()}
        stock = agent.choose_stock(gen, objective=objective)
        out[str(level)] = {"network_stock": stock, "network": per_stock[stock],
                           "best_stock": max(per_stock, key=per_stock.get),
                           "best": max(per_stock.values())}
    return out


def gap(optimum: float, value: float) -> float:
    """Percent below the optimum."""
    return 100.0 * (optimum - value) / abs(optimum)


def markdown(data: dict) -> str:
    """The ablation table: per variant, the gaps per seed."""
    opt = data["optima"]
    lines = ["| variant | CVaR_0.25 gap: network / best stock, per seed | CVaR_0.5 gap: network / "
             "best stock, per seed | target 5: E -\\|G - 5\\| (optimum 0) | CPU s per run |",
             "|---|---|---|---|---|"]
    for name in VARIANTS:
        rows = [r for r in data["runs"] if r["variant"] == name and "0.25" in r]
        det = [r for r in data["runs"] if r["variant"] == name and "target_5" in r]
        cells = []
        for level in LEVELS:
            cells.append(", ".join(f"{gap(opt[str(level)], r[str(level)]['network']):.1f}% / "
                                   f"{gap(opt[str(level)], r[str(level)]['best']):.1f}%"
                                   for r in rows))
        cpu = sum(r["cpu_seconds"] for r in rows) / max(1, len(rows))
        target_5 = ", ".join(f"{r['target_5']:.2f}" for r in det)
        lines.append(f"| {name} | {cells[0]} | {cells[1]} | {target_5} | {cpu:.0f} |")
    return "\n".join(lines)


def main() -> None:
    """Run every variant and seed, write the JSON, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    jobs = [(name, s, True) for name in VARIANTS for s in args.seeds]
    jobs += [(name, args.seeds[0], False) for name in VARIANTS]
    with ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = list(pool.map(run, jobs))
    sto = stock_grid(stochastic=True)
    data = {"command": ".venv/bin/python scripts/deta_n_ablation.py --seeds "
                       + " ".join(map(str, args.seeds)),
            "optima": {str(level): solve(sto, CVaR(level)).value for level in LEVELS},
            "runs": runs}
    (Path(args.out) / "distributional_dp_ablation.json").write_text(json.dumps(data, indent=1) + "\n")
    print(markdown(data))


if __name__ == "__main__":
    main()
