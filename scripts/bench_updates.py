"""CPU time per update of QR-DQN, DηN and the NPG step, fast path against eager, in one process.

A speed check for ``docs/performance.md`` (not a result of the agents)::

    taskset -c 1 .venv/bin/python scripts/bench_updates.py [--rounds 7] [--steps 50]

Each replay case builds two agents from the same seed, ``fast_path=True`` and ``False``, fills
their replay buffers with the same random transitions and times ``gradient_step`` on the same
sampled batches. The NPG case captures one TRPO step of ECRM's neural policy (``variant=npg``,
``parameterization=neural``, the gusty-ledge Gaussian policy, 256 copies) and times
:func:`rlsuite.learners.npg.trpo_step` on it with ``NPGConfig.fast_path`` on and off, restoring the
parameters after each. The two paths take turns, ``--rounds`` times, so a neighbour's load falls on
both alike; the numbers are process CPU time per update (one intra-op thread), medians over the
rounds, with the ratio eager / fast.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch


def _qrdqn(fast_path: bool, n_quantiles: int) -> Any:
    import rlsuite.envs as rl_envs
    from rlsuite.learners.qrdqn import QRDQN, QRDQNConfig

    env = rl_envs.make("cartpole")
    cfg = QRDQNConfig(n_quantiles=n_quantiles, tau=0.005, target_update_interval=1,
                      fast_path=fast_path)  # conf/experiment/cartpole_qrdqn.yaml's target update
    return QRDQN(cfg, env, env.default_params(16), 0)


def _deta_n(fast_path: bool) -> Any:
    import rlsuite.envs as rl_envs
    from rlsuite.agents.distributional_dp.config import DetaNConfig
    from rlsuite.agents.distributional_dp.deta_n import DetaN

    env = rl_envs.make("stockgrid")
    cfg = DetaNConfig(hidden_sizes=[256, 256], fast_path=fast_path)  # the stockgrid preset's net
    return DetaN(cfg, env, env.default_params(16), 0)


def time_npg(rounds: int) -> tuple[float, float]:
    """Median CPU milliseconds of one TRPO step of ECRM's neural Gaussian policy, ``(fast, eager)``."""
    import dataclasses

    import rlsuite.agents.ecrm.agent as ecrm_agent
    import rlsuite.envs as rl_envs
    from rlsuite.agents.ecrm.config import ECRMConfig
    from rlsuite.learners import npg

    env = rl_envs.make("gusty_ledge", continuous=True)
    cfg = ECRMConfig(variant="npg", parameterization="neural", risk_weight=0.5, alpha=0.1)
    agent = ecrm_agent.ECRM(cfg, env, env.default_params(256), 0)
    captured: list[tuple[Any, ...]] = []

    def capture(params: Any, surrogate: Any, kl: Any, config: Any) -> Any:
        captured.append((list(params), surrogate, kl, config))
        raise StopIteration  # one step's closures are enough

    ecrm_agent.trpo_step = capture
    try:
        agent.learn(10**9)
    except StopIteration:
        pass
    finally:
        ecrm_agent.trpo_step = npg.trpo_step
    params, surrogate, kl, config = captured[0]
    start = [p.detach().clone() for p in params]
    times: list[list[float]] = [[], []]
    for r in range(rounds + 1):
        for i, fast_path in enumerate((True, False)):
            tic = time.process_time()
            npg.trpo_step(params, surrogate, kl, dataclasses.replace(config, fast_path=fast_path))
            if r:
                times[i].append((time.process_time() - tic) * 1e3)
            with torch.no_grad():
                for p, value in zip(params, start, strict=True):
                    p.copy_(value)
    return statistics.median(times[0]), statistics.median(times[1])


CASES: dict[str, Callable[[bool], Any]] = {
    "QR-DQN CartPole preset (10 quantiles, 256x256, batch 64)": lambda f: _qrdqn(f, 10),
    "QR-DQN default (200 quantiles, 256x256, batch 64)": lambda f: _qrdqn(f, 200),
    "DetaN stockgrid (256x256, batch 64)": _deta_n,
}


def time_case(make: Callable[[bool], Any], rounds: int, steps: int) -> tuple[float, float]:
    """Median CPU milliseconds per gradient step, ``(fast, eager)``."""
    agents = [make(True), make(False)]
    for agent in agents:
        agent.buffer.add_rollout(agent.interaction.collect(agent._random_action, 64))
    gen = torch.Generator().manual_seed(0)
    batches = [agents[1].buffer.sample(agents[1].config.batch_size, gen) for _ in range(steps)]
    times: list[list[float]] = [[], []]
    for r in range(rounds + 1):
        for i, agent in enumerate(agents):
            tic = time.process_time()
            for batch in batches:
                agent.gradient_step(batch)
                agent.num_updates += 1
            if r:  # round 0 warms up
                times[i].append((time.process_time() - tic) / steps * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


def main() -> None:
    """Parse the arguments, time every case, print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per path (7)")
    parser.add_argument("--steps", type=int, default=50, help="gradient steps per round (50)")
    args = parser.parse_args()
    for name in ("rounds", "steps"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be > 0, got {getattr(args, name)}")
    torch.set_num_threads(1)
    for name, make in CASES.items():
        fast, eager = time_case(make, args.rounds, args.steps)
        print(f"{name}: fast {fast:.2f} ms, eager {eager:.2f} ms per gradient step "
              f"({eager / fast:.2f}x)")
    fast, eager = time_npg(args.rounds)
    print(f"NPG: one TRPO step of ECRM's neural policy (gusty ledge, 256 copies): fast {fast:.1f} ms, "
          f"eager (double backprop) {eager:.1f} ms ({eager / fast:.2f}x)")


if __name__ == "__main__":
    main()
