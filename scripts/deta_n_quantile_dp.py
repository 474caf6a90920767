"""What a perfectly trained N-quantile DηN would do on the stochastic stock grid: the exact fixed
point of the quantile-projected stock DP, for ``results/distributional_dp.md``.

    .venv/bin/python scripts/deta_n_quantile_dp.py [--quantiles 50 100 200]

DηN's network regresses, at every (time, cell, stock, action), N quantiles on the target
``r + theta(s', c', a')`` with ``a'`` greedy by ``mean_i min(c' + theta_i, 0)`` (ties by the mean).
Here the same backward recursion runs on a table over integer stocks (every stock of the grid is
an integer from an integer initial stock), projecting each target mixture onto N quantiles
exactly (the W1 projection, the minimizer of the quantile loss). For each integer initial stock
x in [-14, 4] the greedy policy is then evaluated exactly, and the RU search on the table's own
predictions, ``max_x (-x) + mean_i min(x + theta_i(s0, x, a*), 0) / level``, is compared with the
exact optimum. Writes ``results/distributional_dp_quantile_dp.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from rlsuite import risk
from rlsuite.agents.distributional_dp import CVaR, solve
from rlsuite.envs.tabular.stock_grid import stock_grid

LEVELS = (0.1, 0.25, 0.5, 1.0)
STOCKS = range(-14, 5)


def greedy(theta: torch.Tensor, stock: torch.Tensor) -> torch.Tensor:
    """``argmax_a mean_i min(c + theta_i, 0)``, ties (1e-9) by the higher mean: ``[...]``."""
    score = (stock[..., None, None] + theta).clamp(max=0).mean(-1)
    tied = score >= score.max(-1, keepdim=True).values - 1e-9
    return torch.where(tied, theta.mean(-1), -torch.inf).argmax(-1)


def quantile_dp(mdp, n: int, low: int = -40, high: int = 60) -> tuple[torch.Tensor, int]:
    """``theta [H + 1, S, C, A, N]`` on the integer stocks ``low .. high`` (and the offset of 0)."""
    h, s_count, a_count, k_count = mdp.horizon, mdp.num_states, mdp.num_actions, mdp.num_outcomes
    stocks = torch.arange(low, high + 1, dtype=torch.float64)
    nc = stocks.numel()
    tau = (2 * torch.arange(n, dtype=torch.float64) + 1) / (2 * n)
    theta = torch.zeros(h + 1, s_count, nc, a_count, n, dtype=torch.float64)
    for t in range(h - 1, -1, -1):
        atoms = torch.zeros(s_count, nc, a_count, k_count, n, dtype=torch.float64)
        weights = torch.zeros_like(atoms)
        for k in range(k_count):
            nxt, r = mdp.next_state[:, :, k], mdp.reward[:, :, k]
            ci = (torch.arange(nc).view(1, nc, 1) + r.view(s_count, 1, a_count).long()).clamp(0, nc - 1)
            following = theta[t + 1][nxt.view(s_count, 1, a_count).expand(-1, nc, -1), ci]
            a_next = greedy(following, stocks[ci])
            z = following.gather(-2, a_next[..., None, None].expand(*a_next.shape, 1, n)).squeeze(-2)
            end = (mdp.terminal[:, :, k] | (t == h - 1)).view(s_count, 1, a_count, 1)
            atoms[:, :, :, k] = r.view(s_count, 1, a_count, 1) + torch.where(end, 0.0, z)
            weights[:, :, :, k] = (mdp.prob[:, :, k] / n).view(s_count, 1, a_count, 1).expand_as(z)
        atoms, weights = atoms.flatten(-2), weights.flatten(-2)
        order = atoms.argsort(-1)
        cdf = weights.gather(-1, order).cumsum(-1)
        idx = torch.searchsorted(cdf.contiguous(), tau.expand(*cdf.shape[:-1], n).contiguous())
        theta[t] = atoms.gather(-1, order).gather(-1, idx.clamp(max=atoms.shape[-1] - 1))
    return theta, -low


def evaluate(mdp, theta: torch.Tensor, offset: int, x: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact return distribution of the table's greedy policy deployed at integer stock ``x``."""
    start = int(torch.nonzero(mdp.initial > 0)[0])
    dist, out = {(start, x): 1.0}, {}
    for t in range(mdp.horizon):
        new: dict = {}
        for (s, c), pr in dist.items():
            a = int(greedy(theta[t, s, c + offset], torch.tensor(float(c), dtype=torch.float64)))
            for k in range(mdp.num_outcomes):
                p = float(mdp.prob[s, a, k])
                if p == 0:
                    continue
                c2 = c + int(mdp.reward[s, a, k])
                if bool(mdp.terminal[s, a, k]) or t == mdp.horizon - 1:
                    out[c2 - x] = out.get(c2 - x, 0.0) + pr * p
                else:
                    key = (int(mdp.next_state[s, a, k]), c2)
                    new[key] = new.get(key, 0.0) + pr * p
        dist = new
    return (torch.tensor(list(out), dtype=torch.float64),
            torch.tensor(list(out.values()), dtype=torch.float64))


def main() -> None:
    """Solve, evaluate, write the JSON and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantiles", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    mdp = stock_grid(stochastic=True)
    result: dict = {"command": ".venv/bin/python scripts/deta_n_quantile_dp.py --quantiles "
                               + " ".join(map(str, args.quantiles)), "runs": []}
    for n in args.quantiles:
        theta, offset = quantile_dp(mdp, n)
        per_stock = []
        for x in STOCKS:
            r, p = evaluate(mdp, theta, offset, x)
            th = theta[0, 0, x + offset]
            z = th[int(greedy(th, torch.tensor(float(x), dtype=torch.float64)))]
            per_stock.append({"stock": x, "mean": float((r * p).sum()), "predicted_mean": float(z.mean()),
                              **{f"cvar_{lv:g}": CVaR(lv).evaluate(r, p) for lv in LEVELS},
                              **{f"predicted_cvar_{lv:g}": float(risk.cvar(z, None, lv)) for lv in LEVELS},
                              **{f"ru_{lv:g}": -x + float((x + z).clamp(max=0).mean()) / lv
                                 for lv in LEVELS}})
        levels = []
        for lv in LEVELS:
            chosen = max(per_stock, key=lambda row, lv=lv: row[f"ru_{lv:g}"])
            best = max(per_stock, key=lambda row, lv=lv: row[f"cvar_{lv:g}"])
            levels.append({"level": lv, "exact_optimum": solve(mdp, CVaR(lv)).value,
                           "ru_stock": chosen["stock"], "ru_cvar": chosen[f"cvar_{lv:g}"],
                           "best_stock": best["stock"], "best_cvar": best[f"cvar_{lv:g}"]})
            print(f"N={n} level {lv:g}: exact optimum {levels[-1]['exact_optimum']:.3f}; RU on the table "
                  f"picks x={chosen['stock']} (CVaR {chosen[f'cvar_{lv:g}']:.3f}); best integer stock "
                  f"x={best['stock']} (CVaR {best[f'cvar_{lv:g}']:.3f})")
        result["runs"].append({"n_quantiles": n, "levels": levels, "per_stock": per_stock})
    Path(args.out, "distributional_dp_quantile_dp.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
