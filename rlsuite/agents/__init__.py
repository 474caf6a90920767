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


def _vgdf() -> AgentSpec:
    from rlsuite.agents.vgdf.agent import VGDF
    from rlsuite.agents.vgdf.config import VGDFConfig

    return AgentSpec(VGDFConfig, lambda cfg, env, params, seed: VGDF(cfg, env, params, seed))


_BUILDERS: dict[str, Callable[[], AgentSpec]] = {"ppo": _ppo, "sac": _sac, "qrdqn": _qrdqn}
_BUILDERS["vgdf"] = _vgdf


def _iwocs() -> AgentSpec:
    from rlsuite.agents.iwocs.deep import IWOCSConfig, build

    return AgentSpec(IWOCSConfig, build)  # IWOCS, or its nominal / DR SAC baseline (config.method)


_BUILDERS["iwocs"] = _iwocs


def _hnpg() -> AgentSpec:
    from rlsuite.agents.hnpg.agent import HNPG, HNPGConfig

    return AgentSpec(HNPGConfig, lambda cfg, env, params, seed: HNPG(cfg, env, params, seed))


_BUILDERS["hnpg"] = _hnpg


def _rlpd() -> AgentSpec:
    from rlsuite.agents.hnpg.rlpd import RLPD, RLPDConfig

    return AgentSpec(RLPDConfig, lambda cfg, env, params, seed: RLPD(cfg, env, params, seed))


_BUILDERS["rlpd"] = _rlpd


def _distributional_dp() -> AgentSpec:
    from rlsuite.agents.distributional_dp.agent import DistributionalDP, DistributionalDPConfig

    return AgentSpec(DistributionalDPConfig,
                     lambda cfg, env, params, seed: DistributionalDP(cfg, env, params, seed))


_BUILDERS["distributional_dp"] = _distributional_dp


def _deta_n() -> AgentSpec:
    from rlsuite.agents.distributional_dp.deta_n import DetaN, DetaNConfig

    return AgentSpec(DetaNConfig, lambda cfg, env, params, seed: DetaN(cfg, env, params, seed))


_BUILDERS["deta_n"] = _deta_n


def _ecrm() -> AgentSpec:
    from rlsuite.agents.ecrm.agent import ECRM, ECRMConfig

    return AgentSpec(ECRMConfig, lambda cfg, env, params, seed: ECRM(cfg, env, params, seed))


_BUILDERS["ecrm"] = _ecrm


def _dynlin(kind: str) -> Callable[[], AgentSpec]:
    def spec() -> AgentSpec:
        from rlsuite.agents import dynlin_baselines as bl
        from rlsuite.agents.dynlin_ucb import DynLinUCB, DynLinUCBConfig

        cls, cfg_cls = {"dynlin_ucb": (DynLinUCB, DynLinUCBConfig), "lin_ucb": (bl.LinUCB, bl.LinUCBConfig),
                        "exp3": (bl.Exp3, bl.Exp3Config), "ar2": (bl.AR2, bl.AR2Config),
                        "fixed": (bl.FixedPolicy, bl.FixedPolicyConfig)}[kind]
        return AgentSpec(cfg_cls, lambda cfg, env, params, seed: cls(cfg, env, params, seed))

    return spec


for _name, _kind in (("dynlin_ucb", "dynlin_ucb"), ("lin_ucb", "lin_ucb"), ("exp3", "exp3"),
                     ("batch_exp3", "exp3"), ("ar2", "ar2"), ("clairvoyant", "fixed"),
                     ("myopic", "fixed"), ("expert", "fixed")):
    _BUILDERS[_name] = _dynlin(_kind)

def get(name: str) -> AgentSpec:
    """The spec of agent ``name``."""
    try:
        return _BUILDERS[name]()
    except KeyError:
        raise KeyError(f"unknown agent {name!r}; known agents: {sorted(_BUILDERS)}") from None


def names() -> list[str]:
    """Registered agent names."""
    return sorted(_BUILDERS)
