"""env.params: every per-copy scalar field of an env is a typed key (no ``+``), None keeps the
default, and a misspelt name fails at compose naming the key and listing the valid ones."""

from __future__ import annotations

import dataclasses
import pickle

import pytest
import torch
from hydra.errors import ConfigCompositionException

import rlsuite.envs as envs
from rlsuite.env_params import PARAMS_SCHEMAS, SCALAR_PARAMS
from rlsuite.runner import build_env, build_params, compose


def test_field_lists_match_each_env() -> None:
    assert set(SCALAR_PARAMS) == set(envs.names())
    for name in envs.names():
        params = envs.make(name).default_params(3)
        scalar = tuple(f.name for f in dataclasses.fields(params)
                       if isinstance(getattr(params, f.name), torch.Tensor)
                       and getattr(params, f.name).shape == (3,))
        assert SCALAR_PARAMS[name] == scalar, name


@pytest.mark.parametrize("env", sorted(SCALAR_PARAMS))
def test_every_env_config_has_its_params_schema(env: str) -> None:
    cfg = compose([f"env={env}"])
    assert list(cfg.env.params) == list(SCALAR_PARAMS[env])
    assert all(v is None for v in cfg.env.params.values())


def test_override_without_plus_reaches_the_params() -> None:
    cfg = compose(["env=pendulum", "env.params.g=12.0", "device=cpu"])
    env = build_env(cfg.env, torch.device("cpu"))
    params = build_params(env, cfg.env, 4)
    assert params.g.tolist() == [12.0] * 4
    default = env.default_params(4)
    assert torch.equal(params.m, default.m) and torch.equal(params.l, default.l)  # None: untouched


def test_typo_names_the_key_and_lists_the_valid_ones() -> None:
    with pytest.raises(ConfigCompositionException) as err:
        compose(["env=pendulum", "env.params.gravity=12.0"])
    text = str(err.value.__cause__)
    assert "Key 'gravity' not in" in text
    assert "valid: max_speed, max_torque, dt, g, m, l" in text
    with pytest.raises(ConfigCompositionException) as err:
        compose(["env=pendulum", "env.params.g=strong"])
    assert "env.params.g" in str(err.value.__cause__)


def test_typed_params_pickle() -> None:
    # the joblib, submitit and Ray launchers pickle the composed config
    cfg = compose(["env=cartpole", "env.params.length=0.7"])
    assert pickle.loads(pickle.dumps(cfg)).env.params.length == 0.7
    assert all(pickle.loads(pickle.dumps(cls)) is cls for cls in PARAMS_SCHEMAS.values())
