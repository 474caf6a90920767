"""PPO on CartPole: time to a greedy return of 475, on the fast path and on the eager path.

The issue-17 setting: default :class:`PPOConfig`, 64 CartPoles, a greedy evaluation of 64
parallel episodes after every iteration, one intra-op thread. For each seed it reports

* ``total``: wall time from the agent's construction to the first evaluation >= 475, evaluation
  and compilation included;
* ``train``: the same minus evaluation time and minus compilation time (what the fast path
  reports as its ``compiling ...`` phases), i.e. rollouts and updates only;
* ``eval``: time spent in greedy evaluation (compilation excluded);
* ``compile``: seconds spent compiling (0 on the eager path);
* ``cpu``: the process's CPU time for ``total`` (on a shared machine, less inflated by other
  processes than wall time).

The median over seeds is printed for each path. ::

    .venv/bin/python scripts/profile_ppo.py [--seeds 0 1 2] [--paths fast eager]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

THRESHOLD = 475.0


def run(seed: int, fast: bool, budget: int = 1_000_000) -> dict[str, float]:
    """Train one PPO until a greedy evaluation over 64 episodes reaches the threshold."""
    import rlsuite.envs as envs
    from rlsuite.engine import fastpath
    from rlsuite.engine.evaluate import evaluate
    from rlsuite.learners.ppo import PPO, PPOConfig
    from rlsuite.training import TrainingHooks

    env = envs.make("cartpole")
    eval_params = env.default_params(64)
    compiled_before = fastpath.compile_seconds()
    clock = {"eval": 0.0, "score": 0.0, "steps": 0}

    class Stop(Exception):
        pass

    class EvalHook(TrainingHooks):
        def on_iteration(self, agent, step, metrics):
            tic = time.perf_counter()
            compile_before = fastpath.compile_seconds()
            policy = agent.greedy_policy()
            score = float(evaluate(policy, env, eval_params, 1,
                                   env.make_generator(10_000 + step)).mean_return.mean())
            clock["eval"] += time.perf_counter() - tic - (
                fastpath.compile_seconds() - compile_before)
            clock["score"], clock["steps"] = score, step
            if score >= THRESHOLD:
                raise Stop

    start, cpu_start = time.perf_counter(), time.process_time()
    agent = PPO(PPOConfig(fast_path=fast), env, env.default_params(64), seed=seed)
    try:
        agent.learn(budget, EvalHook())
    except Stop:
        pass
    total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    compile_s = fastpath.compile_seconds() - compiled_before
    return {"total": total, "train": total - clock["eval"] - compile_s, "eval": clock["eval"],
            "compile": compile_s, "cpu": cpu, "steps": clock["steps"], "score": clock["score"]}


def main() -> None:
    """Run every (path, seed) and print a per-seed line and the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--paths", nargs="+", default=["fast", "eager"], choices=["fast", "eager"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    for path in args.paths:
        rows = []
        for seed in args.seeds:
            row = run(seed, path == "fast")
            rows.append(row)
            print(f"{path:5s} seed {seed}: " + "  ".join(
                f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                flush=True)
        med = {k: statistics.median(r[k] for r in rows) for k in ("total", "train", "eval",
                                                                   "compile", "cpu", "steps")}
        print(f"{path:5s} median: total {med['total']:.2f} s  train {med['train']:.2f} s  "
              f"eval {med['eval']:.2f} s  compile {med['compile']:.2f} s  cpu {med['cpu']:.2f} s  "
              f"steps {med['steps']:.0f}", flush=True)


if __name__ == "__main__":
    main()
