"""The agent registry (rlsuite/agents/__init__.py) and the protocol check (rlsuite/agents/protocol.py).

Every registered agent's own conformance is tests/test_conformance.py; here: registration rules,
that composing a config imports no agent module, and that :func:`protocol.check` names what a
non-conforming agent lacks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import torch

from rlsuite import agents
from rlsuite.agents import protocol

SIX_PAPERS_AND_LEARNERS = {
    "ppo", "sac", "qrdqn", "vgdf", "iwocs", "hnpg", "rlpd", "distributional_dp", "deta_n", "ecrm",
    "dynlin_ucb", "lin_ucb", "exp3", "batch_exp3", "ar2", "clairvoyant", "myopic", "expert",
    "risk_neutral_qrdqn",
}


def test_every_package_registers_its_agents() -> None:
    assert set(agents.names()) == SIX_PAPERS_AND_LEARNERS


def test_schemas_derive_from_the_registrations() -> None:
    from rlsuite import config

    assert config.AGENT_SCHEMAS == agents.schemas()
    for name in agents.names():
        entry = agents.registration(name)
        assert config.AGENT_SCHEMAS[entry.schema] is agents.get(name).config_cls
    # agents that share a config class share its schema
    assert agents.registration("batch_exp3").schema == agents.registration("exp3").schema


def test_composing_a_config_imports_no_agent_module() -> None:
    """``import rlsuite.config`` (every schema registered with Hydra) loads config modules only:
    the agent modules named by ``build`` are imported by ``agents.get`` alone."""
    code = """
import json, sys
import rlsuite.config
from rlsuite import agents
builds = {agents.registration(n).build.partition(":")[0] for n in agents.names()}
configs = {agents.registration(n).config.partition(":")[0] for n in agents.names()}
before = sorted(m for m in builds - configs if m in sys.modules)
agents.get("vgdf")
print(json.dumps({"before": before, "vgdf": "rlsuite.agents.vgdf.agent" in sys.modules,
                  "hnpg": "rlsuite.agents.hnpg.agent" in sys.modules}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {"before": [], "vgdf": True, "hnpg": False}


def test_unknown_agent_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown agent 'pp0'.*'ppo'"):
        agents.get("pp0")


def test_registering_again_is_idempotent_and_conflicts_are_refused() -> None:
    entry = agents.registration("ppo")
    agents.register("ppo", config=entry.config, build=entry.build, schema=entry.schema)
    with pytest.raises(ValueError, match="'ppo'.*already registered"):
        agents.register("ppo", config=entry.config, build="rlsuite.learners.sac:SAC", schema="ppo_schema")
    with pytest.raises(ValueError, match="schema='ppo_schema' already stores rlsuite.learners.ppo:PPOConfig"):
        agents.register("ppo2", config="rlsuite.learners.sac:SACConfig", build="rlsuite.learners.sac:SAC",
                        schema="ppo_schema")
    assert "ppo2" not in agents.names()


@pytest.mark.parametrize(("field", "kwargs", "message"), [
    ("name", {"name": "My-Agent"}, "name='My-Agent'"),
    ("config", {"config": "rlsuite.learners.ppo.PPOConfig"}, "config='rlsuite.learners.ppo.PPOConfig'"),
    ("build", {"build": "PPO"}, "build='PPO' must be 'module:attr'"),
    ("schema", {"schema": "PPO schema"}, "schema='PPO schema'"),
])
def test_malformed_registrations_name_the_field(field: str, kwargs: dict[str, str], message: str) -> None:
    args = {"name": "x_agent", "config": "m:C", "build": "m:B", "schema": "x_schema", **kwargs}
    name = args.pop("name")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        agents.register(name, **args)
    assert "x_agent" not in agents.names()


class _Conforming:
    global_step = 0
    iteration = 0

    def learn(self, total_steps: int, hooks: Any = None) -> None: ...

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        return obs

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, data: dict[str, Any]) -> None: ...


class _Broken:
    global_step = 0.0  # not an int
    iteration = 0

    def learn(self, total_steps: int) -> None: ...  # no hooks argument

    def act(self, obs: torch.Tensor) -> torch.Tensor:  # no deterministic keyword
        return obs

    def load_state_dict(self, data: dict[str, Any]) -> None: ...

    def final_metrics(self) -> dict[str, float]:  # the runner passes (env, params, generator)
        return {}


def test_protocol_accepts_a_conforming_agent() -> None:
    agent = _Conforming()
    assert isinstance(agent, agents.Agent)
    assert not isinstance(agent, protocol.HasFinalMetrics)
    assert protocol.problems(agent) == []
    protocol.check(agent, "conforming")


def test_protocol_check_names_every_shortfall() -> None:
    problems = protocol.problems(_Broken())
    assert len(problems) == 5, problems
    text = "; ".join(problems)
    for part in ("global_step must be an int counter, got 0.0",
                 "learn(total_steps) cannot be called as learn(_, _)",
                 "act(obs) cannot be called as act(_, deterministic=_)",
                 "missing method state_dict()", "final_metrics() cannot be called as final_metrics(_, _, _)"):
        assert part in text, (part, text)
    assert not isinstance(_Broken(), agents.Agent)  # state_dict is missing
    with pytest.raises(TypeError, match="agent 'broken' \\(_Broken\\) does not satisfy rlsuite.agents.Agent"):
        protocol.check(_Broken(), "broken")
