"""Exact stock-augmented distributional DP: batched tensor solver vs a per-state Python loop.

    .venv/bin/python scripts/bench_distributional_dp.py [--repeats 3] [--python-steps 3]

Problem: ``random_mdp(500 states, 4 actions, 10 outcomes per (s, a), seed 0)``, undiscounted,
horizon 50, rewards rounded to integers (so the reachable stocks form a lattice and the solver is
exact), objective lower-tail CVaR at level 0.1 (RU outer search over every candidate stock).

* batched: ``rlsuite.agents.distributional_dp.solve`` end to end (stock enumeration, backward
  induction over every stock and the RU candidates at once, outer search, forward pass of the
  return distribution); the median of ``--repeats`` runs.
* per-state Python: the same backward pass written the straightforward way (loops over
  states, stocks, actions and outcomes, a dict per state for the next step's values, the same
  exact tail formulas). It would take hours on the whole problem, so it runs the last
  ``--python-steps`` time steps for every state (checked equal to the solver's values there) and
  is extrapolated by its time per (state, stock) pair times the number of pairs the full
  backward pass has. The extrapolation is stated as such in the results.

Writes ``results/distributional_dp_bench.json`` and prints a markdown table (single thread).

``--deta-n-step``: instead, DηN's gradient step on the sizes of ``conf/experiment/stockgrid_deta_n.yaml``
(256x256 ReLU MLP, 50 quantiles, batch 128, kappa 0, time one-hot, 3/4 of the batch relabelled,
16 copies of the deterministic stock grid), written out (``fast_path=True``,
:mod:`rlsuite.agents.distributional_dp.deta_n_fast`) against eager (``fast_path=False``): CPU ms
per update (process time, one thread), interleaved rounds of ``--step-updates`` updates each, the
median over ``--repeats`` rounds; also the eager gradient with the flat Adam (the fast path
before). Prints one line; writes nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from tqdm import tqdm

from rlsuite.agents.distributional_dp import CVaR, finite, solve
from rlsuite.agents.distributional_dp.solver import _reachable_returns
from rlsuite.agents.distributional_dp.stocks import StockSet
from rlsuite.envs.tabular import TabularMDP, random_mdp


def bench_mdp() -> TabularMDP:
    """The benchmark MDP (integer rewards)."""
    m = random_mdp(500, 4, num_outcomes=10, seed=0, gamma=1.0, horizon=50)
    return TabularMDP(m.next_state, m.reward.round(), m.prob, m.terminal, m.initial, 1.0, 50)


def python_backward(mdp: TabularMDP, objective: CVaR, tables: finite.FiniteTables,
                    steps: int) -> tuple[float, int, dict[tuple[int, int], dict[int, float]]]:
    """The per-state loop over the last ``steps`` time steps. Returns (seconds, (s, u) pairs,
    values[(t, s)][stock key])."""
    horizon, gamma = tables.horizon, mdp.gamma
    quant, tails = tables.quantizer, tables.tails
    assert tails is not None
    prob, nxt = mdp.prob.tolist(), mdp.next_state.tolist()
    rew, term = mdp.reward.tolist(), mdp.terminal.tolist()
    hi, lo = tails.hi.tolist(), tails.lo.tolist()
    mb, ma = tails.mean_below.tolist(), tails.mean_above.tolist()
    f = lambda x: min(x, 0.0) / objective.level  # noqa: E731
    values: dict[tuple[int, int], dict[int, float]] = {}
    pairs = 0
    tic = time.perf_counter()
    for t in tqdm(range(horizon - 1, horizon - 1 - steps, -1), desc="per-state python"):
        stocks = tables.stocks[t].values[:, 0].tolist()
        for s in range(mdp.num_states):
            row: dict[int, float] = {}
            for u in stocks:
                pairs += 1
                best = -float("inf")
                for a in range(mdp.num_actions):
                    total = 0.0
                    for k in range(mdp.num_outcomes):
                        p = prob[s][a][k]
                        if p == 0.0:
                            continue
                        x = u + gamma**t * rew[s][a][k]
                        if term[s][a][k] or t == horizon - 1:
                            total += p * f(x)
                            continue
                        s2 = nxt[s][a][k]
                        if x + hi[t + 1][s2] < 0:  # below: risk-neutral, closed form
                            total += p * (tails.lo_slope * (x + gamma ** (t + 1) * mb[t + 1][s2]))
                        elif x + lo[t + 1][s2] >= 0:  # above: f = 0 on all outcomes
                            total += p * (tails.hi_slope * (x + gamma ** (t + 1) * ma[t + 1][s2]))
                        else:
                            total += p * values[(t + 1, s2)][round(x / quant.quantum)]
                    best = max(best, total)
                row[round(u / quant.quantum)] = best
            values[(t, s)] = row
    return time.perf_counter() - tic, pairs, values


def deta_n_step_ms(repeats: int, updates: int) -> dict[str, float]:
    """CPU ms per DηN update, ``{"fast": ..., "flat_adam": ..., "eager": ...}`` (``flat_adam``:
    the eager gradient with the flat fused Adam, the fast path before the written-out step):
    medians over ``repeats`` interleaved rounds of ``updates`` updates (module docstring)."""
    from rlsuite.agents.distributional_dp.deta_n import DetaN, DetaNConfig
    from rlsuite.envs.tabular.stock_grid import stock_grid_env

    env = stock_grid_env()
    agents = {}
    for name, fast in (("fast", True), ("flat_adam", True), ("eager", False)):
        cfg = DetaNConfig(objective="target", target=4.0, stock_low=-14.0, stock_high=4.0,
                          relabel_fraction=0.75, kappa=0.0, time_one_hot=True, utd=0.5,
                          hidden_sizes=[256, 256], fast_path=fast)
        agent = DetaN(cfg, env, env.default_params(16), seed=0)
        for _ in range(64):  # 4096 rows of random-action replay
            agent.buffer.add_rollout(agent.interaction.collect(agent._random_action, 4))
        if name == "flat_adam":
            agent._fast_step = False  # marks the written-out step as not applying: eager + flat Adam
        agents[name] = agent
    times: dict[str, list[float]] = {name: [] for name in agents}
    for _ in range(repeats + 1):  # the first round warms up and is dropped
        for name, agent in agents.items():
            batches = [agent.buffer.sample(agent.config.batch_size, agent.policy_generator)
                       for _ in range(updates)]
            tic = time.process_time()
            for batch in batches:
                agent.gradient_step(batch)
            times[name].append((time.process_time() - tic) * 1e3 / updates)
    return {name: statistics.median(t[1:]) for name, t in times.items()}


def main() -> None:
    """Run the benchmark, check the loop against the solver, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--python-steps", type=int, default=3)
    parser.add_argument("--out", default="results/distributional_dp_bench.json")
    parser.add_argument("--deta-n-step", action="store_true",
                        help="time DηN's gradient step, fast path vs eager, instead")
    parser.add_argument("--step-updates", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.deta_n_step:
        ms = deta_n_step_ms(args.repeats, args.step_updates)
        print(f"DηN gradient step (stockgrid_deta_n sizes), CPU ms/update, median of "
              f"{args.repeats} rounds x {args.step_updates}: written out {ms['fast']:.2f}, "
              f"eager with the flat Adam {ms['flat_adam']:.2f}, eager {ms['eager']:.2f} "
              f"({ms['eager'] / ms['fast']:.2f}x and {ms['flat_adam'] / ms['fast']:.2f}x)")
        return
    mdp = bench_mdp()
    objective = CVaR(0.1)
    times, sol = [], None
    for _ in tqdm(range(args.repeats), desc="batched solve"):
        tic = time.perf_counter()
        sol = solve(mdp, objective)
        times.append(time.perf_counter() - tic)
    assert sol is not None and sol.policy.finite is not None
    tables = sol.policy.finite
    batched = statistics.median(times)
    # The backward pass alone, for the like-for-like per-pair comparison.
    quant = tables.quantizer
    cand = -_reachable_returns(mdp, mdp.reward.unsqueeze(-1), 50, quant, 1 << 40).values
    back_times = []
    for _ in range(args.repeats):
        tails = finite.tail_tables(mdp, objective, 50)
        stocks = finite.enumerate_stocks(mdp, mdp.reward.unsqueeze(-1), StockSet.build(cand, quant),
                                         50, tails, quant, 1 << 40)
        op = finite.outcome_operator(mdp, mdp.reward.unsqueeze(-1))
        tic = time.perf_counter()
        finite.backward_pass(mdp, objective, op, stocks, tails, quant)
        back_times.append(time.perf_counter() - tic)
    backward = statistics.median(back_times)
    py_seconds, py_pairs, py_values = python_backward(mdp, objective, tables, args.python_steps)
    # Check the loop's values against the solver's on the steps it ran.
    worst = 0.0
    for (t, s), row in py_values.items():
        keys = tables.stocks[t].keys[:, 0].tolist()
        for j, key in enumerate(keys):
            worst = max(worst, abs(row[key] - float(tables.values[t][s, j])))
    total_pairs = mdp.num_states * sum(st.size for st in tables.stocks)
    per_pair = py_seconds / py_pairs
    extrapolated = per_pair * total_pairs
    result = {
        "command": ".venv/bin/python scripts/bench_distributional_dp.py "
                   f"--repeats {args.repeats} --python-steps {args.python_steps}",
        "mdp": "random_mdp(500, 4, num_outcomes=10, seed=0), integer rewards, gamma 1, horizon 50",
        "objective": "CVaR(0.1), RU outer search",
        "cvar": sol.value, "mean_return": sol.mean, "start_stock": float(sol.start_stock[0]),
        "stocks_per_step": [st.size for st in tables.stocks],
        "state_stock_pairs": total_pairs,
        "batched_solve_seconds_median": batched, "batched_solve_seconds": times,
        "batched_backward_seconds_median": backward,
        "python_steps_timed": args.python_steps, "python_pairs_timed": py_pairs,
        "python_seconds_timed": py_seconds, "python_seconds_per_pair": per_pair,
        "python_backward_seconds_extrapolated": extrapolated,
        "python_vs_batched_max_abs_diff": worst,
        "speedup_backward_vs_python": extrapolated / backward,
        "speedup_solve_vs_python_backward": extrapolated / batched,
        "threads": torch.get_num_threads(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"| batched solve (median of {args.repeats}) | {batched:.2f} s |")
    print(f"| batched backward pass | {backward:.2f} s |")
    print(f"| per-state python, {py_pairs} pairs timed | {py_seconds:.2f} s "
          f"({per_pair * 1e6:.1f} us/pair) |")
    print(f"| per-state python, extrapolated to {total_pairs} pairs | {extrapolated:.0f} s |")
    print(f"| speedup (backward / whole solve) | {extrapolated / backward:.0f}x / "
          f"{extrapolated / batched:.0f}x |")
    print(f"| max abs diff python vs batched | {worst:.2e} |  CVaR = {sol.value:.6f}")


if __name__ == "__main__":
    main()
