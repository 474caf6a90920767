"""VGDFConfig nests the shared SAC config (``agent.sac.*``, issue 18): every preset resolves to the
values its flat keys held before the move, old flat keys are refused naming the new one, SAC
fields VGDF does not read are refused, and a run directory written with the flat config is not
resumed (the differing keys are named)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from rlsuite import identity
from rlsuite.agents.vgdf.agent import VGDF
from rlsuite.agents.vgdf.config import MOVED_TO_SAC, VGDFConfig
from rlsuite.cli import moved_key
from rlsuite.envs.pendulum import Pendulum
from rlsuite.learners.sac import SACConfig
from rlsuite.runner import compose
from rlsuite.validation import ConfigError

# The flat values each preset resolved to before the move (composed at commit b8b7de1, written out
# here so that a changed default or preset shows as a failure, not as a silently updated number).
PAPER = {"buffer_size": 1_000_000, "batch_size": 128, "utd": 1.0, "gamma": 0.99, "tau": 0.005,
         "learning_rate": 3e-4, "alpha": 0.2, "hidden_sizes": [256, 256]}
FLAT_BEFORE = {
    "agent=vgdf": PAPER | {"random_steps": 0},
    "experiment=vgdf_pendulum_full": PAPER | {"random_steps": 0},
    "experiment=vgdf_halfcheetah": PAPER | {"random_steps": 1000},
    "experiment=vgdf_pendulum": PAPER | {"utd": 0.5, "learning_rate": 1e-3, "hidden_sizes": [64, 64],
                                         "random_steps": 1000},
    "experiment=vgdf_pendulum_official": PAPER | {"utd": 0.5, "learning_rate": 1e-3,
                                                  "hidden_sizes": [64, 64], "random_steps": 1000},
}
# SACConfig fields VGDF did not have: the values that reproduce what the agent built before (its
# networks took SACConfig's init_alpha and target_entropy defaults; the others are not read, or,
# fast_path, select how SAC computes, not what).
NEW_SAC = {"name": "sac", "learning_starts": 0, "num_steps": 1, "init_alpha": 1.0,
           "target_entropy": None, "fast_path": True}


def _agent_dict(choice: str) -> dict:
    extra = ["env=pendulum"] if choice.startswith("agent=") else []
    return OmegaConf.to_container(compose([choice, *extra]).agent, resolve=True)


@pytest.mark.parametrize("choice", sorted(FLAT_BEFORE))
def test_presets_resolve_to_the_flat_values_they_had(choice: str) -> None:
    before = FLAT_BEFORE[choice]
    agent = _agent_dict(choice)
    assert agent["sac"] == {k: before[k] for k in MOVED_TO_SAC} | NEW_SAC
    assert agent["random_steps"] == before["random_steps"]  # not SAC's learning_starts: stays
    assert not set(MOVED_TO_SAC) & set(agent)  # no flat copy left beside the nested one
    cfg = VGDFConfig(**agent)
    assert cfg.sac == SACConfig(**{k: before[k] for k in MOVED_TO_SAC}, **NEW_SAC)


def test_default_nested_sac_is_the_papers_not_sacs() -> None:
    sac = VGDFConfig().sac
    assert (sac.alpha, sac.batch_size, sac.learning_starts) == (0.2, 128, 0)
    assert (SACConfig().alpha, SACConfig().batch_size) == (None, 256)  # SAC's own differ
    # A partial mapping keeps VGDF's defaults for the rest (rlsuite.validation.nest).
    assert VGDFConfig(sac={"batch_size": 32}).sac == SACConfig(**(PAPER | NEW_SAC | {"batch_size": 32}))


def test_agent_builds_from_the_nested_fields() -> None:
    env = Pendulum(max_episode_steps=20)
    cfg = VGDFConfig(sac={"hidden_sizes": [8], "learning_rate": 2e-3, "buffer_size": 64,
                          "alpha": None, "init_alpha": 0.5})
    agent = VGDF(cfg, env, env.default_params(2), 0)
    assert agent.nets.actor.net[0].out_features == 8 and agent.explore_actor.net[0].out_features == 8
    assert agent.nets.critic.q1[0].out_features == 8
    assert agent.src_buffer.capacity == agent.tar_buffer.capacity == 64
    lrs = {g["lr"] for opt in (agent.opt.actor, agent.opt.critic, agent.opt.alpha, agent.explore_opt,
                               agent.classifier_opt) for g in opt.param_groups}
    assert lrs == {2e-3}
    assert agent.nets.log_alpha.requires_grad
    assert float(agent.nets.log_alpha.detach().exp()) == pytest.approx(0.5)


@pytest.mark.parametrize("key", MOVED_TO_SAC)
def test_old_flat_override_fails_naming_the_key(key: str) -> None:
    with pytest.raises(ConfigCompositionException, match=rf"'agent\.{key}'"):
        compose(["experiment=vgdf_pendulum", f"agent.{key}=1"])
    with pytest.raises(TypeError, match=key):
        VGDFConfig(**{key: 1})
    hint = moved_key(["experiment=vgdf_pendulum", f"agent.{key}=1"])
    assert hint is not None and f"agent.sac.{key}" in hint and f"agent.{key} is not" in hint


def test_moved_key_hint_only_for_vgdf_and_old_keys() -> None:
    assert moved_key(["agent=sac", "env=pendulum", "agent.learning_rate=1e-3"]) is None
    assert moved_key(["agent=vgdf", "agent.sac.learning_rate=1e-3"]) is None
    assert moved_key(["agent=vgdf", "agent.model_learning_rate=1e-3"]) is None
    assert "agent.sac.utd" in moved_key(["-m", "search=vgdf", "agent.utd=0.5,1"])


@pytest.mark.parametrize(("field", "value"), [("learning_starts", 100), ("num_steps", 4)])
def test_sac_fields_vgdf_does_not_read_are_refused(field: str, value: int) -> None:
    with pytest.raises(ConfigError, match=rf"sac\.{field}={value}: not used by VGDF"):
        VGDFConfig(sac={field: value})
    with pytest.raises(ConfigError, match=r"sac\.batch_size=0"):
        VGDFConfig(sac={"batch_size": 0})


def test_run_written_with_the_flat_config_is_not_resumed(tmp_path: Path) -> None:
    """A run directory keyed with the flat config (before the move) is refused on resume, naming
    the keys that moved on both sides."""
    overrides = ["experiment=vgdf_pendulum", f"run_dir={tmp_path}"]
    resolved = OmegaConf.to_container(compose(overrides), resolve=True)
    old = OmegaConf.to_container(compose(overrides), resolve=True)
    sac = old["agent"].pop("sac")
    old["agent"] |= {k: sac[k] for k in MOVED_TO_SAC}
    with pytest.raises(identity.RunMismatch) as err:
        identity.check_same_run(identity.make(old), identity.make(resolved), "run", "identity.json")
    message = str(err.value)
    assert "agent.utd: 0.5 there, '<absent>' here" in message
    assert "agent.sac.utd: '<absent>' there, 0.5 here" in message
    assert "agent.hidden_sizes: [64, 64] there, '<absent>' here" in message
