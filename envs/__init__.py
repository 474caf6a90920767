"""rlsuite's environments (installed as ``rlsuite.envs``).

``make(name, **kwargs)`` builds an engine env by its short registry name; importing this package
also registers every engine env with gymnasium (ids ``rlsuite/<Name>-v0``), see
:mod:`rlsuite.engine.gym_export`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlsuite.core.env import BatchedEnv

_REGISTRY: dict[str, Callable[..., BatchedEnv]] = {}


def register(name: str, factory: Callable[..., BatchedEnv]) -> None:
    """Add an env factory under a short lower-case name (``cartpole``)."""
    if name in _REGISTRY and _REGISTRY[name] is not factory:
        raise ValueError(f"env {name!r} is already registered")
    _REGISTRY[name] = factory


def factory(name: str) -> Callable[..., BatchedEnv]:
    """The factory registered as ``name`` (a KeyError lists the known names)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown env {name!r}; known envs: {sorted(_REGISTRY)}") from None


def make(name: str, **kwargs: Any) -> BatchedEnv:
    """Build the engine env registered as ``name`` (e.g. ``make("cartpole", device="cuda")``)."""
    return factory(name)(**kwargs)


def names() -> list[str]:
    """Registered env names."""
    return sorted(_REGISTRY)


def _register_builtin() -> None:
    from rlsuite.envs.acrobot import Acrobot
    from rlsuite.envs.cartpole import CartPole
    from rlsuite.envs.pendulum import Pendulum

    register("cartpole", CartPole)
    register("pendulum", Pendulum)
    register("acrobot", Acrobot)
    from rlsuite.envs.shifts import ContinuousCartPole

    register("cartpole_continuous", ContinuousCartPole)

    from rlsuite.envs.combination_lock import CombinationLock

    register("comblock", CombinationLock)

    from rlsuite.envs import tabular

    register("frozenlake", tabular.frozenlake_env)
    register("frozenlake8x8", tabular.frozenlake8x8_env)
    register("cliffwalking", tabular.cliffwalking_env)
    register("taxi", tabular.taxi_env)
    register("random_mdp", tabular.random_mdp_env)

    from rlsuite.envs import dynamical_bandit

    register("dynlin_synthetic", dynamical_bandit.dynlin_synthetic)
    register("dynlin_adv", dynamical_bandit.dynlin_adv)
    register("dynlin_random", dynamical_bandit.dynlin_random)

    from rlsuite.envs.tabular.cliff import cliffwalking_stochastic_env

    register("cliffwalking_stochastic", cliffwalking_stochastic_env)

    from rlsuite.envs.gusty_ledge import GustyLedge

    register("gusty_ledge", GustyLedge)

    from rlsuite.envs.tabular.stock_grid import stock_grid_env

    register("stockgrid", stock_grid_env)


_register_builtin()


def _register_gymnasium() -> None:
    # Imported here, after the registry exists: gym_export reads it back through names().
    from rlsuite.engine.gym_export import register_gymnasium_envs

    register_gymnasium_envs()


_register_gymnasium()
