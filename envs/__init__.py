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


def make(name: str, **kwargs: Any) -> BatchedEnv:
    """Build the engine env registered as ``name`` (e.g. ``make("cartpole", device="cuda")``)."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown env {name!r}; known envs: {sorted(_REGISTRY)}") from None
    return factory(**kwargs)


def names() -> list[str]:
    """Registered env names."""
    return sorted(_REGISTRY)


def _register_builtin() -> None:
    from rlsuite.envs.cartpole import CartPole

    register("cartpole", CartPole)


_register_builtin()
