"""CPU time per greedy evaluation, fused policy kernel against module calls.

A speed check for ``docs/fastpath.md`` (not a result of the agents)::

    .venv/bin/python scripts/bench_greedy_eval.py [--rounds 5] [--copies 64] [learner ...]

Learners: ``sac`` (Pendulum, the default 256x256 actor) and ``qrdqn`` (CartPole, the default
network). Each evaluates one episode on every copy of ``--copies`` default-physics copies with
the learner's ``greedy_policy()`` (the fused kernel on the fast path) and with
``act(obs, deterministic=True)`` (its modules), from the same env seed, after one warm-up
evaluation each (which compiles or loads the kernels). The two take turns, ``--rounds`` times;
the numbers are process CPU time per evaluation (one intra-op thread), medians over the
rounds, with the ratio module / fused.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def build(learner: str) -> tuple[Any, Any]:
    """``(agent, env)`` of ``learner`` at its default config, seed 0."""
    from rlsuite import envs

    if learner == "sac":
        from rlsuite.learners.sac import SAC, SACConfig

        env = envs.make("pendulum")
        return SAC(SACConfig(), env, env.default_params(4), seed=0), env
    from rlsuite.learners.qrdqn import QRDQN, QRDQNConfig

    env = envs.make("cartpole")
    return QRDQN(QRDQNConfig(), env, env.default_params(4), seed=0), env


def cpu_seconds(run: Callable[[], Any]) -> float:
    """Process CPU seconds of one call of ``run``."""
    tic = time.process_time()
    run()
    return time.process_time() - tic


def main(argv: list[str] | None = None) -> list[tuple[str, float, float]]:
    """Print and return ``(learner, fused s, module s)`` per learner."""
    from rlsuite.engine.evaluate import evaluate

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("learners", nargs="*", metavar="learner", help="sac, qrdqn (default: both)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--copies", type=int, default=64)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.learners) - {"sac", "qrdqn"})
    if unknown:
        parser.error(f"learner {unknown[0]!r}: choose from sac, qrdqn")
    if args.rounds < 1 or args.copies < 1:
        parser.error(f"--rounds={args.rounds}, --copies={args.copies}: both must be at least 1")
    torch.set_num_threads(1)
    rows = []
    for learner in args.learners or ["sac", "qrdqn"]:
        agent, env = build(learner)
        params = env.default_params(args.copies)
        paths = {"fused": agent.greedy_policy(),
                 "module": lambda obs, agent=agent: agent.act(obs, deterministic=True)}
        times: dict[str, list[float]] = {name: [] for name in paths}
        for policy in paths.values():  # warm-up: compile or load the kernels
            evaluate(policy, env, params, 1, env.make_generator(1))
        for _ in range(args.rounds):
            for name, policy in paths.items():
                times[name].append(cpu_seconds(
                    lambda p=policy, e=env, ps=params: evaluate(p, e, ps, 1, e.make_generator(1))))
        fused, module = (statistics.median(times[n]) for n in ("fused", "module"))
        print(f"{learner}: fused {fused * 1e3:.1f} ms, module {module * 1e3:.1f} ms per "
              f"evaluation of {args.copies} copies; module / fused {module / fused:.2f}x",
              flush=True)
        rows.append((learner, fused, module))
    return rows


if __name__ == "__main__":
    main()
