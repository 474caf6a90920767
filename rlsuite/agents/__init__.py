"""The agent registry: a name maps to its config class, its builder and its Hydra schema.

Each agent package registers its agents once, in its ``__init__.py``::

    from rlsuite.agents import register

    register("vgdf", config="rlsuite.agents.vgdf.config:VGDFConfig",
             build="rlsuite.agents.vgdf.agent:VGDF", schema="vgdf_schema")

The targets are ``"module:attr"`` strings, resolved only when used: :func:`get` imports the one
agent asked for, and :func:`schemas` (which :mod:`rlsuite.config` stores in Hydra's ConfigStore)
imports config modules only. Every subpackage of ``rlsuite.agents`` (and ``rlsuite.learners``, home
of PPO, SAC and QR-DQN) is imported on the first look-up, so a new package is found without being
listed anywhere. What a built agent must offer is :class:`rlsuite.agents.protocol.Agent`.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rlsuite.agents.protocol import Agent

__all__ = ["Agent", "AgentSpec", "Registration", "get", "names", "register", "registration", "schemas"]


@dataclass(frozen=True)
class AgentSpec:
    """How to build one agent from its config."""

    config_cls: type
    build: Callable[[Any, Any, Any, int], Agent]
    """``build(config, env, params, seed) -> agent``."""


@dataclass(frozen=True)
class Registration:
    """One registered agent, its targets still as ``"module:attr"`` strings."""

    name: str
    """The CLI name (``agent=<name>``, also the ``name`` field of its config)."""
    config: str
    """``"module:Class"`` of the config dataclass."""
    build: str
    """``"module:callable"``: ``build(config, env, params, seed) -> agent`` (the agent class)."""
    schema: str
    """Name of the config's node in Hydra's ConfigStore; ``conf/agent/<name>.yaml`` extends it as
    ``/<schema>@_here_``. Agents that share a config class may share a schema."""


_REGISTRY: dict[str, Registration] = {}
_DISCOVERED = False
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_TARGET = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")
# Packages searched besides the subpackages of rlsuite.agents: the shared learners register the
# plain agents (ppo, sac, qrdqn) in rlsuite/learners/__init__.py.
_EXTRA_PACKAGES = ("rlsuite.learners",)


def register(name: str, *, config: str, build: str, schema: str) -> None:
    """Register agent ``name``: ``config`` and ``build`` are ``"module:attr"`` strings (nothing is
    imported here), ``schema`` the ConfigStore name its ``conf/agent/<name>.yaml`` extends.

    Registering the same agent again with the same targets is a no-op (a package may be imported
    twice under test runners); a different target for a taken name, or a schema already bound to
    another config class, raises ValueError naming the field.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"register: name={name!r} must be lower-case letters, digits and '_'")
    for field_name, value in (("config", config), ("build", build)):
        if not isinstance(value, str) or not _TARGET.fullmatch(value):
            raise ValueError(f"register({name!r}): {field_name}={value!r} must be 'module:attr'")
    if not isinstance(schema, str) or not _NAME.fullmatch(schema):
        raise ValueError(f"register({name!r}): schema={schema!r} must be lower-case letters, "
                         "digits and '_'")
    entry = Registration(name, config, build, schema)
    old = _REGISTRY.get(name)
    if old is not None and old != entry:
        raise ValueError(f"register({name!r}): already registered as {old}")
    for other in _REGISTRY.values():
        if other.schema == schema and other.config != config:
            raise ValueError(f"register({name!r}): schema={schema!r} already stores {other.config} "
                             f"(agent {other.name!r}), not {config}")
    _REGISTRY[name] = entry


def _discover() -> None:
    """Import every agent package once, so that each has made its registration calls."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    for package in _EXTRA_PACKAGES:
        importlib.import_module(package)
    for info in pkgutil.iter_modules(__path__, prefix=f"{__name__}."):
        if info.ispkg:
            importlib.import_module(info.name)
    _DISCOVERED = True


def resolve(target: str) -> Any:
    """The object a ``"module:attr"`` string names (imports the module)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def registration(name: str) -> Registration:
    """The registration of agent ``name`` (KeyError listing the known names)."""
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown agent {name!r}; known agents: {sorted(_REGISTRY)}") from None


def get(name: str) -> AgentSpec:
    """The spec of agent ``name`` (imports its config and agent modules only)."""
    entry = registration(name)
    return AgentSpec(resolve(entry.config), resolve(entry.build))


def names() -> list[str]:
    """Registered agent names."""
    _discover()
    return sorted(_REGISTRY)


def schemas() -> dict[str, type]:
    """Every agent schema: ConfigStore name -> config class (imports config modules only)."""
    _discover()
    return {entry.schema: resolve(entry.config)
            for entry in sorted(_REGISTRY.values(), key=lambda e: e.schema)}
