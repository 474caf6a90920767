"""HNPG's offline dataset on the combination lock: epsilon-greedy optimal-policy episodes, as the
official ``collect_offline.py`` collects them (Zhou et al. 2023, App. E.1). It lives with the
agent, not the env, because it builds a learner's dataset (:class:`OfflineDataset`)."""

from __future__ import annotations

import torch

from rlsuite.core import tree
from rlsuite.envs.combination_lock import CombinationLock, CombinationLockParams, CombinationLockState
from rlsuite.learners.buffers import OfflineDataset, Transitions


def epsilon_greedy_action(
    env: CombinationLock,
    state: CombinationLockState,
    params: CombinationLockParams,
    epsilon: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """The official behaviour action: the one-hot correct action, or with probability ``epsilon``
    a uniform vector in ``[0, 1]^A`` (correct with probability 1/A by symmetry)."""
    b = state.latent.shape[0]
    onehot = torch.nn.functional.one_hot(env.correct_action(state, params), env.num_actions).float()
    explore = torch.rand((b, 1), generator=generator, device=env.device) < epsilon
    uniform = torch.rand((b, env.num_actions), generator=generator, device=env.device)
    return torch.where(explore, uniform, onehot)


def collect_offline(
    env: CombinationLock,
    episodes: int = 50_000,
    epsilon: float | None = None,
    seed: int = 0,
    params: CombinationLockParams | None = None,
) -> OfflineDataset:
    """Epsilon-greedy optimal-policy data, all ``episodes`` stepped at once (one batched pass).

    Args:
        env: the lock.
        episodes: number of full episodes (50,000 in the paper and code).
        epsilon: exploration rate; None is ``1 / H`` (official default).
        seed: seeds the env and behaviour randomness.
        params: one copy of params (default ``env.default_params(1)``); every episode uses it.

    Returns:
        An :class:`OfflineDataset` of ``episodes * H`` transitions ordered by step (all ``h = 0``
        rows, then ``h = 1`` ...), with extras ``timestep`` (= h) and ``episode_id``; the metadata
        holds the success fraction (final reward >= 1).
    """
    if episodes < 1:
        raise ValueError(f"collect_offline: episodes must be >= 1, got {episodes}")
    eps = 1.0 / env.horizon if epsilon is None else float(epsilon)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"collect_offline: epsilon must be in [0, 1], got {epsilon}")
    base = env.default_params(1) if params is None else params
    if tree.batch_size(base) != 1:
        raise ValueError("collect_offline: params must hold exactly one copy")
    p = tree.map_tensors(lambda x: x.expand(episodes, *x.shape[1:]), base)
    gen = env.make_generator(seed)
    obs, state = env.reset(p, gen)
    rows: dict[str, list[torch.Tensor]] = {
        k: [] for k in ("obs", "action", "reward", "next_obs", "terminated")
    }
    for _ in range(env.horizon):
        action = epsilon_greedy_action(env, state, p, eps, gen)
        step = env.step(state, action, p, gen)
        for key, value in (
            ("obs", obs),
            ("action", action),
            ("reward", step.reward),
            ("next_obs", step.final_obs),
            ("terminated", step.terminated),
        ):
            rows[key].append(value)
        obs, state = step.obs, step.state
    n = episodes * env.horizon
    data = Transitions(
        **{k: torch.cat(v) for k, v in rows.items()},
        truncated=torch.zeros(n, dtype=torch.bool, device=env.device),
        extras={
            "timestep": torch.arange(env.horizon, device=env.device).repeat_interleave(episodes),
            "episode_id": torch.arange(episodes, device=env.device).repeat(env.horizon),
        },
    )
    success = float((rows["reward"][-1] >= 1.0).float().mean())
    meta = {
        "env": env.name,
        "horizon": env.horizon,
        "lock_seed": env.seed,
        "episodes": int(episodes),
        "epsilon": eps,
        "seed": int(seed),
        "success_fraction": success,
        "reward_mode": env.reward_mode,
        "dense": env.dense,
    }
    return OfflineDataset(data, meta)
