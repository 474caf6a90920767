"""CPU time per SAC gradient step (:func:`rlsuite.learners.sac.sac_update`), fast path against eager.

A speed check for ``docs/fastpath.md`` (not a result of the agents)::

    .venv/bin/python scripts/bench_sac_update.py [--rounds 7] [--steps 100] [regime ...]

Regimes: ``pendulum`` (the Pendulum SAC preset: obs 3, action 1, 64x64, batch 256), ``rlpd``
(RLPD's combination-lock preset: obs 16, action 10, 64x64, batch 128) and ``mujoco`` (MuJoCo sizes:
obs 17, action 6, 256x256, batch 256). Each builds two networks from the same seed,
``SACConfig.fast_path`` on and off, and times gradient steps on one fixed random batch after a
warm-up (which compiles or loads the fast kernels). The two paths take turns, ``--rounds`` times,
so a neighbour's load falls on both alike; the numbers are process CPU time per step (one
intra-op thread), medians over the rounds, with the ratio eager / fast.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

REGIMES = {"pendulum": (3, 1, [64, 64], 256), "rlpd": (16, 10, [64, 64], 128),
           "mujoco": (17, 6, [256, 256], 256)}
"""``(obs dim, action dim, hidden sizes, batch)`` of each regime."""


def setup(obs_dim: int, act_dim: int, hidden: list[int], n: int, fast: bool) -> tuple[Any, ...]:
    """Networks, optimizers, a fixed random batch and a generator for one path."""
    from rlsuite.core import spaces
    from rlsuite.learners.buffers import Transitions
    from rlsuite.learners.sac import SACConfig, SACNetworks, SACOptimizers

    torch.manual_seed(0)
    cfg = SACConfig(hidden_sizes=hidden, fast_path=fast)
    nets = SACNetworks(spaces.Box(low=-torch.ones(obs_dim), high=torch.ones(obs_dim)),
                       spaces.Box(low=-torch.ones(act_dim), high=torch.ones(act_dim)), cfg)
    g = torch.Generator().manual_seed(1)
    batch = Transitions(torch.randn(n, obs_dim, generator=g),
                        torch.rand(n, act_dim, generator=g) * 2 - 1, torch.randn(n, generator=g),
                        torch.randn(n, obs_dim, generator=g), torch.rand(n, generator=g) < 0.1,
                        torch.zeros(n, dtype=torch.bool))
    return nets, SACOptimizers.make(nets, 3e-4), batch, g


def per_step(state: tuple[Any, ...], steps: int) -> float:
    """CPU milliseconds per gradient step over ``steps`` steps."""
    from rlsuite.learners.sac import sac_update

    nets, opt, batch, g = state
    tic = time.process_time()
    for _ in range(steps):
        sac_update(nets, opt, batch, 0.99, 0.005, g)
    return (time.process_time() - tic) / steps * 1e3


def main() -> None:
    """Print ``eager``, ``fast`` and their ratio per regime."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds per path (7)")
    parser.add_argument("--steps", type=int, default=100, help="gradient steps per round (100)")
    parser.add_argument("regimes", nargs="*", help=f"any of {list(REGIMES)} (default: all)")
    args = parser.parse_args()
    unknown = [r for r in args.regimes if r not in REGIMES]
    if unknown:
        parser.error(f"regimes: unknown {unknown}; choose from {list(REGIMES)}")
    torch.set_num_threads(1)
    for name in args.regimes or list(REGIMES):
        states = {fast: setup(*REGIMES[name], fast) for fast in (False, True)}
        for fast in (False, True):
            per_step(states[fast], 20)  # warm-up: compiles (or loads) the fast kernels
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for fast in (False, True):
                times[fast].append(per_step(states[fast], args.steps))
        eager, fast_ms = statistics.median(times[False]), statistics.median(times[True])
        print(f"{name} {REGIMES[name]}: eager {eager:.2f} ms, fast {fast_ms:.2f} ms per step "
              f"({eager / fast_ms:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
