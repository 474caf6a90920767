"""CPU time per vector step of PPO's rollout: the peer benchmark's rollout measure, in-tree.

The setting of ``scripts/benchmark_peers.py --parts rollout`` (64 CartPoles, the default 64x64
tanh policy, 128-step rollouts through ``PPO.rollout_policy()``, one intra-op thread), timed
with ``time.process_time`` per rollout after two warm-up rollouts (the first compiles). Prints
the median and the quartiles over the rollouts of ``--seconds`` of timing. On a shared machine,
compare two trees by running this script for each, alternating, several times. ::

    .venv/bin/python scripts/time_rollout.py [--seconds 20] [--envs 64] [--steps 128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def time_rollout(seconds: float, envs: int, steps: int, seed: int = 0) -> list[float]:
    """CPU microseconds per vector step of each timed rollout (``envs`` copies, ``steps`` long)."""
    import rlsuite.envs as rl_envs
    from rlsuite.learners.ppo import PPO, PPOConfig

    env = rl_envs.make("cartpole")
    agent = PPO(PPOConfig(num_steps=steps), env, env.default_params(envs), seed)
    policy = agent.rollout_policy()
    for _ in range(2):  # compile, then the second signature of the first steps (fused_loop)
        agent.interaction.collect(policy, steps)
    per_step: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or not per_step:
        tic = time.process_time()
        agent.interaction.collect(agent.rollout_policy(), steps)
        per_step.append((time.process_time() - tic) / steps * 1e6)
    return per_step


def main() -> None:
    """Parse the arguments, time the rollouts, print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="timing length (20)")
    parser.add_argument("--envs", type=int, default=64, help="copies N (64)")
    parser.add_argument("--steps", type=int, default=128, help="rollout length T (128)")
    args = parser.parse_args()
    for name in ("seconds", "envs", "steps"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be > 0, got {getattr(args, name)}")
    torch.set_num_threads(1)
    us = time_rollout(args.seconds, args.envs, args.steps)
    q1, median, q3 = statistics.quantiles(us, n=4) if len(us) > 1 else (us[0],) * 3
    print(f"rollout N={args.envs} T={args.steps}: {median:.1f} us CPU per vector step "
          f"(quartiles {q1:.1f} / {q3:.1f}, {len(us)} rollouts)")


if __name__ == "__main__":
    main()
