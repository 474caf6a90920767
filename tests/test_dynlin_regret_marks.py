"""The regret-growth final metrics of the dynamical-bandit learners (``regret_at_<rounds>``):
read off the same per-trial regret curve as the final regret, only at rounds before the end."""

from __future__ import annotations

import math

import pytest
import torch

from rlsuite.agents.dynlin.baselines import Exp3, FixedPolicy
from rlsuite.agents.dynlin.config import Exp3Config, FixedPolicyConfig
from rlsuite.envs import dynamical_bandit as db


def test_a_fixed_arm_regret_grows_linearly_at_every_mark() -> None:
    env = db.dynlin_synthetic()
    agent = FixedPolicy(FixedPolicyConfig(name="myopic", policy="myopic"), env, env.default_params(3))
    agent.learn(3 * 20_000)
    m = agent.final_metrics()
    per_round = m["myopic/cumulative_regret"] / 20_000  # the myopic arm's steady-state gap
    assert per_round == pytest.approx(0.256944, abs=1e-6)
    assert m["myopic/regret_at_1000"] == pytest.approx(1000 * per_round, rel=1e-12)
    assert m["myopic/regret_at_10000"] == pytest.approx(10_000 * per_round, rel=1e-12)
    assert m["myopic/regret_at_1000_stderr"] == 0.0  # the same arm in every trial
    assert "myopic/regret_at_100000" not in m  # marks past the end are left out


def test_marks_are_the_regret_curve_and_its_standard_error() -> None:
    env = db.dynlin_synthetic()
    agent = Exp3(Exp3Config(), env, env.default_params(4), seed=1).learn(4 * 12_000)
    m = agent.final_metrics()
    curve = agent.run.regret_curve(torch.tensor([1000, 10_000]))
    for row, mark in zip(curve, (1000, 10_000), strict=True):
        assert m[f"exp3/regret_at_{mark}"] == pytest.approx(float(row.mean()), rel=1e-12)
        assert m[f"exp3/regret_at_{mark}_stderr"] == pytest.approx(float(row.std() / math.sqrt(4)), rel=1e-12)
    realized = agent.run.realized_regret()
    assert m["exp3/realized_regret_stderr"] == pytest.approx(float(realized.std() / 2), rel=1e-12)
