"""Slow tier: on the Pendulum one-sided-motor shift (the ``vgdf_pendulum`` preset), VGDF's greedy
target return beats zero-shot SAC (source only) and target-only SAC (the same 1.2 k target steps)
on average over seeds 0-2. One test per seed trains the three agents (~70 s per seed on one
uncontended CPU thread); the last test compares the means. ``scripts/reproduce.py vgdf`` gives the
same comparison with 5 seeds (20 evaluation episodes instead of 50) in ``results/vgdf.md``.
"""

from __future__ import annotations

import statistics

import pytest
import torch
from omegaconf import OmegaConf

from rlsuite.agents.vgdf.agent import VGDF
from rlsuite.agents.vgdf.config import VGDFConfig
from rlsuite.envs.pendulum import Pendulum
from rlsuite.runner import compose

# One pytest-xdist worker runs this file: its tests share module-level results.
pytestmark = pytest.mark.xdist_group("test_vgdf_learning")

STEPS = 12_000
"""Source steps (1.2 k target steps at Gamma = 10)."""
SEEDS = (0, 1, 2)
VARIANTS = ("vgdf", "zero_shot", "target_only")
_SCORES: dict[tuple[str, int], float] = {}


def _score(variant: str, seed: int) -> float:
    if (variant, seed) not in _SCORES:
        cfg = compose(["experiment=vgdf_pendulum", f"agent.variant={variant}"])
        agent_cfg = VGDFConfig(**OmegaConf.to_container(cfg.agent, resolve=True))
        env = Pendulum()
        agent = VGDF(agent_cfg, env, env.default_params(int(cfg.num_envs)), seed)
        agent.learn(STEPS)
        out = agent.evaluate_domains(50, env.make_generator(10_000 + seed))
        _SCORES[(variant, seed)] = out["eval/target_return"]
    return _SCORES[(variant, seed)]


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_train_three_agents(seed: int) -> None:
    torch.set_num_threads(1)
    scores = {v: _score(v, seed) for v in VARIANTS}
    assert all(-2000 < s < 0 for s in scores.values()), scores  # Pendulum returns, all finite


@pytest.mark.slow
def test_vgdf_beats_zero_shot_and_target_only_on_average() -> None:
    mean = {v: statistics.fmean(_score(v, s) for s in SEEDS) for v in VARIANTS}
    assert mean["vgdf"] > mean["zero_shot"], mean
    assert mean["vgdf"] > mean["target_only"], mean
