"""Named MDPs: gymnasium's toy-text envs read as tensors, and seeded random MDPs.

Each ``*_env`` factory wraps its MDP in a :class:`TabularEnv`; those are what
``rlsuite.envs.make("frozenlake" | "frozenlake8x8" | "cliffwalking" | "taxi" | "random_mdp",
...)`` builds.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import torch

from rlsuite.envs.tabular.env import TabularEnv
from rlsuite.envs.tabular.mdp import TabularMDP
from rlsuite.envs.tabular.toy_text import from_toy_text

SPEC = "spec"
"""``horizon=SPEC``: use the gymnasium registration's ``max_episode_steps`` (``None`` if unset)."""


def from_gymnasium(
    env: str | gymnasium.Env,
    gamma: float = 1.0,
    horizon: int | None | str = SPEC,
    **kwargs: Any,
) -> TabularMDP:
    """Read a toy-text env's ``P`` and initial distribution into a :class:`TabularMDP`.

    Args:
        env: a gymnasium id (``"FrozenLake-v1"``, made with ``kwargs``) or an env instance.
        gamma: discount factor (gymnasium envs have none; 1.0 by default).
        horizon: episode length limit; ``"spec"`` takes the id's ``max_episode_steps``
            (FrozenLake-v1: 100, FrozenLake8x8-v1: 200, Taxi-v4: 200, CliffWalking-v1: none).

    The initial distribution is ``initial_state_distrib`` (gymnasium >= 0.26) or ``isd`` (older
    ``DiscreteEnv`` subclasses).
    """
    if isinstance(env, str):
        env = gymnasium.make(env, **kwargs)
    elif kwargs:
        raise TypeError(
            f"from_gymnasium: keyword arguments {sorted(kwargs)} need an env id, not an env"
        )
    base = env.unwrapped
    name = type(base).__name__
    if not hasattr(base, "P"):
        raise ValueError(f"{name} has no transition dict P; only toy-text style envs can be read")
    for attr in ("initial_state_distrib", "isd"):
        if hasattr(base, attr):
            initial = getattr(base, attr)
            break
    else:
        raise ValueError(f"{name} has neither initial_state_distrib nor isd")
    # Taxi's fickle passenger changes the destination in step(), outside of P (taxi.py, step()).
    if getattr(base, "fickle_passenger", False):
        raise ValueError(
            f"{name}(fickle_passenger=True) has dynamics outside P; use fickle_passenger=False"
        )
    if horizon == SPEC:
        horizon = env.spec.max_episode_steps if env.spec is not None else None
    return from_toy_text(base.P, torch.as_tensor(initial), gamma=gamma, horizon=horizon)  # type: ignore[arg-type]


def frozen_lake(
    map_name: str | None = "4x4",
    desc: list[str] | None = None,
    is_slippery: bool = True,
    success_rate: float = 1.0 / 3.0,
    reward_schedule: tuple[float, float, float] = (1, 0, 0),
    gamma: float = 1.0,
    horizon: int | None | str = SPEC,
) -> TabularMDP:
    """FrozenLake (``gymnasium/envs/toy_text/frozen_lake.py``): ``S = rows * cols``, ``A = 4``
    (left, down, right, up), ``K = 3`` slippery / 1 not. Default horizon: 100 (4x4) or 200 (8x8),
    as registered."""
    env_id = "FrozenLake8x8-v1" if map_name == "8x8" and desc is None else "FrozenLake-v1"
    return from_gymnasium(
        env_id, gamma=gamma, horizon=horizon, map_name=map_name, desc=desc,
        is_slippery=is_slippery, success_rate=success_rate, reward_schedule=reward_schedule,
    )


def _frozen_lake_8x8(**kwargs: Any) -> TabularMDP:
    """:func:`frozen_lake` on gymnasium's 8x8 map."""
    return frozen_lake(map_name="8x8", **kwargs)


def cliff_walking(
    is_slippery: bool = False, gamma: float = 1.0, horizon: int | None = None
) -> TabularMDP:
    """CliffWalking-v1 (``cliffwalking.py``): 4x12 grid, ``S = 48``, ``A = 4`` (up, right, down,
    left); -1 per step, -100 and back to the start on the cliff (not terminal); the goal
    terminates. No time limit is registered."""
    return from_gymnasium("CliffWalking-v1", gamma=gamma, horizon=horizon, is_slippery=is_slippery)


def taxi(
    is_rainy: bool = False,
    rainy_probability: float = 0.8,
    gamma: float = 1.0,
    horizon: int | None | str = SPEC,
) -> TabularMDP:
    """Taxi-v4 (``taxi.py``): ``S = 500``, ``A = 6``; initial distribution uniform over the 300
    states with the passenger waiting away from the destination. Default horizon 200."""
    return from_gymnasium(
        "Taxi-v4", gamma=gamma, horizon=horizon, is_rainy=is_rainy,
        rainy_probability=rainy_probability,
    )


def random_mdp(
    num_states: int = 100,
    num_actions: int = 4,
    num_outcomes: int | None = None,
    seed: int = 0,
    gamma: float = 0.99,
    horizon: int | None = 100,
    terminal_prob: float = 0.0,
) -> TabularMDP:
    """A random MDP, the same for the same arguments.

    Each ``(s, a)`` has ``num_outcomes`` (default ``num_states``) distinct next states drawn
    uniformly, Dirichlet(1) probabilities over them and standard-normal rewards; each outcome is
    terminal with probability ``terminal_prob``; the initial distribution is Dirichlet(1).
    """
    k = num_states if num_outcomes is None else num_outcomes
    if not 1 <= k <= num_states:
        raise ValueError(
            f"random_mdp: num_outcomes = {k} must be in [1, num_states = {num_states}]"
        )
    if not 0.0 <= terminal_prob <= 1.0:
        raise ValueError(f"random_mdp: terminal_prob = {terminal_prob} must be in [0, 1]")
    g = torch.Generator().manual_seed(int(seed))
    shape = (num_states, num_actions)
    # k distinct next states: the first k columns of a random permutation per (s, a).
    keys = torch.rand(*shape, num_states, generator=g, dtype=torch.float64)
    next_state = keys.argsort(-1)[..., :k]
    # Dirichlet(1) = normalized Exp(1) draws.
    weights = -torch.log1p(-torch.rand(*shape, k, generator=g, dtype=torch.float64))
    init = -torch.log1p(-torch.rand(num_states, generator=g, dtype=torch.float64))
    return TabularMDP(
        next_state=next_state,
        reward=torch.randn(*shape, k, generator=g, dtype=torch.float64),
        prob=weights / weights.sum(-1, keepdim=True),
        terminal=torch.rand(*shape, k, generator=g, dtype=torch.float64) < terminal_prob,
        initial=init / init.sum(),
        gamma=gamma,
        horizon=horizon,
    )


def _env_factory(build: Any, name: str, limit: int | None, gymnasium_name: str) -> Any:
    def factory(
        device: torch.device | str = "cpu", max_episode_steps: int | None = limit, **kwargs: Any
    ) -> TabularEnv:
        if "horizon" in kwargs:
            raise TypeError(f"{name}: give the time limit as max_episode_steps, not horizon")
        env = TabularEnv(build(horizon=max_episode_steps, **kwargs), device=device)
        env.name = name
        return env

    factory.__name__ = f"{name}_env"
    factory.gymnasium_name = gymnasium_name  # type: ignore[attr-defined]  # -> rlsuite/<it>-v0
    factory.__doc__ = (
        f"``TabularEnv`` of :func:`{build.__name__}` (other keyword arguments go to it). "
        f"``max_episode_steps`` is the time limit (default {limit}, as gymnasium registers it; "
        "``None``: none)."
    )
    return factory


# The defaults are gymnasium's registrations (gymnasium/envs/__init__.py): FrozenLake-v1 100,
# FrozenLake8x8-v1 200, Taxi-v4 200, CliffWalking-v1 none.
frozenlake_env = _env_factory(frozen_lake, "frozenlake", 100, "FrozenLake")
frozenlake8x8_env = _env_factory(_frozen_lake_8x8, "frozenlake8x8", 200, "FrozenLake8x8")
cliffwalking_env = _env_factory(cliff_walking, "cliffwalking", None, "CliffWalking")
taxi_env = _env_factory(taxi, "taxi", 200, "Taxi")
random_mdp_env = _env_factory(random_mdp, "random_mdp", 100, "RandomMDP")
