"""The agent registry: a name maps to its config class and a builder.

Every agent offers ``learn(total_steps, hooks)``, ``act(obs, deterministic=...)``,
``state_dict()`` and ``load_state_dict()``; nothing else is assumed (no base class).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlsuite.core.env import BatchedEnv


@dataclass(frozen=True)
class AgentSpec:
    """How to build one agent from its config."""

    config_cls: type
    build: Callable[[Any, BatchedEnv, Any, int], Any]
    """``build(config, env, params, seed) -> agent``."""


def _ppo() -> AgentSpec:
    from rlsuite.learners.ppo import PPO, PPOConfig

    return AgentSpec(PPOConfig, lambda cfg, env, params, seed: PPO(cfg, env, params, seed))


def _sac() -> AgentSpec:
    from rlsuite.learners.sac import SAC, SACConfig

    return AgentSpec(SACConfig, lambda cfg, env, params, seed: SAC(cfg, env, params, seed))


def _qrdqn() -> AgentSpec:
    from rlsuite.learners.qrdqn import QRDQN, QRDQNConfig

    return AgentSpec(QRDQNConfig, lambda cfg, env, params, seed: QRDQN(cfg, env, params, seed))


_BUILDERS: dict[str, Callable[[], AgentSpec]] = {"ppo": _ppo, "sac": _sac, "qrdqn": _qrdqn}


def get(name: str) -> AgentSpec:
    """The spec of agent ``name``."""
    try:
        return _BUILDERS[name]()
    except KeyError:
        raise KeyError(f"unknown agent {name!r}; known agents: {sorted(_BUILDERS)}") from None


def names() -> list[str]:
    """Registered agent names."""
    return sorted(_BUILDERS)
