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

The median over seeds is printed for each path. ``--per-iteration N`` instead trains N
iterations per seed (no evaluation) and prints the median CPU seconds of one iteration and of its
update (the first two iterations, which compile, left out); run it with ``PYTHONPATH=<a copy of
another commit's tree>`` to compare commits side by side. ::

    .venv/bin/python scripts/profile_ppo.py [--seeds 0 1 2] [--paths fast eager] [--per-iteration 12]
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


def per_iteration(seed: int, fast: bool, iterations: int) -> dict[str, float]:
    """Median process CPU seconds per training iteration and per update, iterations 3..N."""
    import rlsuite.envs as envs
    from rlsuite.learners.ppo import PPO, PPOConfig
    from rlsuite.training import TrainingHooks

    if iterations < 4:
        raise SystemExit(f"--per-iteration: need at least 4 iterations, got {iterations}")
    env = envs.make("cartpole")
    agent = PPO(PPOConfig(fast_path=fast), env, env.default_params(64), seed=seed)
    marks: list[float] = []
    updates: list[float] = []
    update = agent._update

    def timed_update(flat):  # the update's own CPU time, inside the iteration's
        tic = time.process_time()
        out = update(flat)
        updates.append(time.process_time() - tic)
        return out

    agent._update = timed_update

    class Mark(TrainingHooks):
        def on_iteration(self, agent, step, metrics):
            marks.append(time.process_time())

    agent.learn(64 * agent.config.num_steps * iterations, Mark())
    iters = [b - a for a, b in zip(marks[1:], marks[2:], strict=False)]
    return {"iteration": statistics.median(iters), "update": statistics.median(updates[2:])}


def main() -> None:
    """Run every (path, seed) and print a per-seed line and the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--paths", nargs="+", default=["fast", "eager"], choices=["fast", "eager"])
    parser.add_argument("--per-iteration", type=int, default=0, metavar="N",
                        help="CPU seconds per iteration over N iterations instead of time to 475")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.per_iteration:
        for path in args.paths:
            rows = [per_iteration(seed, path == "fast", args.per_iteration) for seed in args.seeds]
            for seed, row in zip(args.seeds, rows, strict=True):
                print(f"{path:5s} seed {seed}: iteration {1000 * row['iteration']:.1f} ms cpu  "
                      f"update {1000 * row['update']:.1f} ms cpu", flush=True)
            print(f"{path:5s} median: iteration "
                  f"{1000 * statistics.median(r['iteration'] for r in rows):.1f} ms cpu  update "
                  f"{1000 * statistics.median(r['update'] for r in rows):.1f} ms cpu", flush=True)
        return
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
