"""MujocoParamsEnv's two simulators, CPU time per 10^4 copy-steps (IWOCS's grid search workload).

    taskset -c 1 .venv/bin/python scripts/bench_iwocs_mujoco.py [--set halfcheetah_3]
        [--points 10] [--episode 100] [--repeats 5]

The set's ``points^P`` grid (10^3 = 1000 copies for a 3-parameter set, every copy with its own
parameters, as in a grid search or evaluation), episodes of ``--episode`` steps, zero actions
(the policy's cost is not the env's). One round steps each simulator (``simulator="gymnasium"``:
per copy gymnasium's ``step``; ``"batch"``: :mod:`rlsuite.agents.iwocs.mujoco_batch`) through one
whole episode, so each round includes one seeded reset of every copy; rounds alternate between
the simulators. Reported: process CPU seconds per 10^4 copy-steps, the median over ``--repeats``
rounds, one torch thread. Prints one line per simulator and the ratio; writes nothing.

``--search``: instead, IWOCS's whole grid search (``IWOCS.search_worst_case``, 1 episode per grid
point) of a single SAC policy (the preset's 256-256 networks, untrained: the cost is the same) on
each simulator, CPU seconds per 10^4 copy-steps including the policy's forward passes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from rlsuite.agents.iwocs.boxes import get_box
from rlsuite.agents.iwocs.mujoco_env import MujocoParamsEnv


def _episode_cpu(env: MujocoParamsEnv, params: object, episode: int, seed: int) -> float:
    """CPU seconds of one episode of every copy (the reset at its end included)."""
    gen = env.make_generator(seed)
    _, state = env.reset(params, gen)
    n = state.time.shape[0]
    action = torch.zeros(n, *env.action_space.shape)
    start = time.process_time()
    for _ in range(episode):
        state = env.step(state, action, params, gen).state
    return time.process_time() - start


def _search_cpu(agent: object, env: MujocoParamsEnv) -> float:
    """CPU seconds of one grid search of the agent's fallback policy with ``env`` stepped."""
    agent.env = env
    start = time.process_time()
    agent.search_worst_case(agent.composite(), 0)
    return time.process_time() - start


def _search_agent(set_name: str, points: int, episode: int) -> object:
    """An IWOCS agent of ``set_name`` whose fallback is a fresh SAC (the preset's networks)."""
    from rlsuite import envs
    from rlsuite.agents.iwocs.config import IWOCSConfig
    from rlsuite.agents.iwocs.deep import IWOCS
    from rlsuite.learners.sac import SAC, SACConfig

    placeholder = envs.make("pendulum")
    config = IWOCSConfig(box=set_name, episode_steps=episode, search_points=points,
                         search_episodes=1, sac=SACConfig(hidden_sizes=[256, 256]))
    agent = IWOCS(config, placeholder, placeholder.default_params(4))
    agent.fallback = SAC(config.sac, agent.env, agent.env.default_params(4), 0).nets
    return agent


def main() -> None:
    """Parse the arguments, run the interleaved rounds, print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", default="halfcheetah_3")
    parser.add_argument("--points", type=int, default=10)
    parser.add_argument("--episode", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--search", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    envs = {sim: MujocoParamsEnv(args.set, max_episode_steps=args.episode, simulator=sim)
            for sim in ("gymnasium", "batch")}
    box = get_box(args.set)
    params = box.params(envs["batch"].default_params(1), box.grid(args.points))
    n = int(getattr(params, box.names[0]).shape[0])
    agent = _search_agent(args.set, args.points, args.episode) if args.search else None
    times: dict[str, list[float]] = {sim: [] for sim in envs}
    for r in range(args.repeats):
        for sim, env in envs.items():
            cpu = (_search_cpu(agent, env) if agent is not None
                   else _episode_cpu(env, params, args.episode, r))
            times[sim].append(cpu / (n * args.episode) * 1e4)
    med = {sim: statistics.median(t) for sim, t in times.items()}
    for sim, t in times.items():
        print(f"{sim:9s} {med[sim]:.3f} CPU s per 1e4 copy-steps (median of {args.repeats}; "
              f"rounds {', '.join(f'{x:.3f}' for x in t)})")
    what = "grid search of a SAC policy" if args.search else "env steps"
    print(f"{args.set}, {what}, {n} copies, {args.episode}-step episodes: batch is "
          f"{med['gymnasium'] / med['batch']:.2f}x faster")


if __name__ == "__main__":
    main()
