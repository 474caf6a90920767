"""Env-steps/s of the batched tabular env: alias tables vs multinomial, shared vs per-copy tables.

Cases (one CPU thread, eager, random actions from a pre-drawn pool of 8 action vectors):

* ``alias``: ``random_mdp(S=100, A=4, K=100)`` (dense rows), horizon 100, all copies sharing one
  table (``mdp.params(N)``, stride 0 over ``B``). This is the tabular target of ``results/benchmarks.md``
  (>= 25 M env-steps/s at N = 65536).
* ``multinomial``: the same MDP and step, next outcome drawn by ``torch.multinomial`` on each
  copy's gathered ``[K]`` probability row instead of the alias tables.
* ``alias_where``: the same, with the textbook alias select ``where(u < threshold[k], k,
  alias[k])`` (a gather of the alias and a ``where``) instead of the env's pair tables.
* ``alias_small_shared`` / ``alias_small_per_copy``: a 64-model family of
  ``random_mdp(S=16, A=4, K=3)`` (FrozenLake-sized): copies share model 0's expanded table, or
  each block of ``N / 64`` copies has its own model in contiguous ``[B, S, A, K, ...]`` tables
  (``params_from_mdps(..., copies=N // 64)``, the robust-RL layout).

Usage: ``python scripts/bench_tabular.py [N ...]``; ``bench_tabular(n_envs, repeats)`` returns
the numbers as a dict (imported by ``scripts/benchmark_envs.py``).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

import torch

from rlsuite.envs.tabular import (
    TabularEnv,
    TabularMDP,
    TabularParams,
    params_from_mdps,
    random_mdp,
)
from rlsuite.envs.tabular.env import FlatTables

MODELS = 64
TARGET_SECONDS = 0.4


class MultinomialTabularEnv(TabularEnv):
    """The tabular env with outcomes drawn by ``torch.multinomial`` (what alias tables replace)."""

    def __init__(self, mdp: TabularMDP) -> None:
        super().__init__(mdp)
        # [S * A, K] probability rows of the (shared) MDP.
        self._rows = mdp.prob.reshape(-1, mdp.num_outcomes).to(torch.float32)

    def _draw_outcome(
        self, tables: FlatTables, row: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        if tables.offset is not None:
            raise ValueError("the multinomial baseline steps shared params only")
        probs = self._rows.index_select(0, row)
        slot = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        flat = torch.add(slot, row, alpha=tables.num_outcomes)
        return torch.add(flat, flat)  # the slot itself in the pair tables (never its alias)


class WhereAliasTabularEnv(TabularEnv):
    """The tabular env with the textbook alias select: ``where(u < t[k], k, alias[k])``."""

    def __init__(self, mdp: TabularMDP) -> None:
        super().__init__(mdp)
        s, a, k = mdp.prob.shape
        _, slot = mdp.outcome_alias
        # Flat index (s * A + a) * K + alias slot of every slot.
        self._alias = (slot + (torch.arange(s * a) * k).view(s, a, 1)).reshape(-1)

    def _draw_outcome(
        self, tables: FlatTables, row: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        if tables.offset is not None:
            raise ValueError("the where baseline steps shared params only")
        k, n = tables.num_outcomes, row.shape[0]
        slot = torch.randint(0, k, (n,), generator=generator)
        u = torch.rand(n, generator=generator)
        flat = torch.add(slot, row, alpha=k)
        keep = u < tables.alias_threshold.index_select(0, flat)
        chosen = torch.where(keep, flat, self._alias.index_select(0, flat))
        return torch.add(chosen, chosen)  # the chosen slot's own entry in the pair tables


class _Case:
    """One benchmark case: an env, its params, a pre-drawn action pool and a running state."""

    def __init__(self, env: TabularEnv, params: TabularParams) -> None:
        self.env, self.params = env, params
        self.n = params.horizon.shape[0]
        self.gen = env.make_generator(0)
        self.actions = [env.action_space.batched(self.n).sample(self.gen) for _ in range(8)]
        _, self.state = env.reset(params, self.gen)
        self.steps = 4

    def run(self, steps: int) -> tuple[float, float]:
        """Step ``steps`` times: ``(wall seconds, this thread's CPU seconds)``."""
        env, params, gen, actions = self.env, self.params, self.gen, self.actions
        state = self.state
        wall, cpu = time.perf_counter(), time.thread_time()
        for i in range(steps):
            state = env.step(state, actions[i % 8], params, gen).state
        wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
        self.state = state
        return wall, cpu

    def calibrate(self) -> None:
        """Pick a step count that runs about ``TARGET_SECONDS``."""
        self.run(3)
        steps = 4
        while (elapsed := self.run(steps)[0]) < TARGET_SECONDS / 4:
            steps *= 2
        self.steps = max(4, int(steps * TARGET_SECONDS / elapsed))


def _summary(case: _Case, times: list[tuple[float, float]]) -> dict[str, float]:
    done = case.steps * case.n
    rates = sorted(done / wall for wall, _ in times)
    return {
        "median": statistics.median(rates),
        "min": rates[0],
        "max": rates[-1],
        "cpu_median": statistics.median(done / max(cpu, 1e-9) for _, cpu in times),
        "steps": case.steps,
    }


def bench_tabular(n_envs: int, repeats: int = 5) -> dict[str, Any]:
    """Env-steps/s of each case at ``n_envs`` copies (1 thread; medians of ``repeats`` runs).

    The cases take turns within each repeat, so a neighbour's load hits them alike.

    Returns:
        ``{"n_envs", "threads", "cases": {case: {"median", "min", "max", "cpu_median",
        "steps"}}}``: env-steps/s per wall second (median, min, max over the runs) and per CPU
        second of the benchmark thread (median; a busy neighbour inflates it far less than the
        wall rate), and the env steps per timed run.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        big = random_mdp(num_states=100, num_actions=4, num_outcomes=100, seed=0, horizon=100)
        small = [random_mdp(16, 4, 3, seed=i, horizon=100) for i in range(MODELS)]
        per_copy = max(1, n_envs // MODELS)
        cases = {
            "alias": _Case(TabularEnv(big), big.params(n_envs)),
            "multinomial": _Case(MultinomialTabularEnv(big), big.params(n_envs)),
            "alias_where": _Case(WhereAliasTabularEnv(big), big.params(n_envs)),
            "alias_small_shared": _Case(TabularEnv(small[0]), small[0].params(n_envs)),
            "alias_small_per_copy": _Case(
                TabularEnv(small[0]),
                params_from_mdps(small[: -(-n_envs // per_copy)], copies=per_copy),
            ),
        }
        for case in cases.values():
            case.calibrate()
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(repeats):
            for name, case in cases.items():
                times[name].append(case.run(case.steps))
        results = {name: _summary(case, times[name]) for name, case in cases.items()}
        return {"n_envs": n_envs, "threads": 1, "cases": results}
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str]) -> None:
    """Print a table of env-steps/s for each N given (default 1024 and 65536)."""
    sizes = [int(a) for a in argv] or [1024, 65536]
    print(f"torch {torch.__version__}, 1 thread; env-steps/s, median (min-max) of 5 runs")
    print(f"load average before: {os.getloadavg()}")
    for n in sizes:
        out = bench_tabular(n)
        for name, r in out["cases"].items():
            print(
                f"N={n:>6}  {name:<22} {r['median'] / 1e6:8.2f} M"
                f"  ({r['min'] / 1e6:.2f}-{r['max'] / 1e6:.2f} M)"
                f"  per CPU-second {r['cpu_median'] / 1e6:.2f} M  [{r['steps']} steps/run]"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
