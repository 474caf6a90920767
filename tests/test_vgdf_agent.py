"""The VGDF agent: the CLI composes and runs it, the Gamma schedule, the warm-up gate and the
25 % acceptance, the model refits, the baselines' data sources, determinism and exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rlsuite.agents.vgdf.agent import VGDF
from rlsuite.agents.vgdf.config import VGDFConfig
from rlsuite.envs.pendulum import Pendulum
from rlsuite.logging import read_metrics
from rlsuite.runner import compose, run

TINY = dict(sac={"hidden_sizes": [16, 16], "batch_size": 32, "utd": 0.25}, ensemble_size=3,
            num_elites=2, model_hidden=[16],
            model_weight_decay=[1e-5, 1e-5], model_train_freq=100, model_max_epochs=3,
            model_batch_size=32,
            warmup_steps=200, darc_warmup=200, random_steps=50, eval_every=200, eval_episodes=2)


class Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []

    def on_iteration(self, agent, step: int, metrics: dict[str, float]) -> None:
        self.rows.append((step, dict(metrics)))


def _agent(seed: int = 0, **kw) -> VGDF:
    env = Pendulum(max_episode_steps=50)  # short episodes: cheap evaluations
    return VGDF(VGDFConfig(**(TINY | kw)), env, env.default_params(10), seed)


@pytest.mark.slow
def test_schedule_gate_and_acceptance() -> None:
    agent, rec = _agent(), Recorder()
    agent.learn(600, rec)
    assert agent.global_step == 600 and agent.target_steps == 60  # Gamma = 10
    assert len(agent.src_buffer) == 600 and len(agent.tar_buffer) == 60
    # Refits every 100 source steps once the target buffer holds a model batch (32 target
    # samples at source step 320): at 400, 500 and 600.
    assert agent.model_fits == 3
    fits = [s for s, m in rec.rows if "vgdf/model_holdout_mse" in m]
    assert fits == [400, 500, 600]
    accept = [(s, m["vgdf/accept_ratio"]) for s, m in rec.rows if "vgdf/accept_ratio" in m]
    # Past the 200-step warm-up but before the first fit: nothing is filtered.
    assert all(a == 1.0 for s, a in accept if s < 400) and any(s > 200 for s, _ in accept if s < 400)
    after = [a for s, a in accept if s >= 400]
    assert after and all(a == pytest.approx(0.25) for a in after)  # top 8 of 32, strictly
    evals = [m for _, m in rec.rows if "eval/target_return" in m]
    assert len(evals) == 3 and all("eval/source_return" in m for m in evals)


@pytest.mark.slow  # 7-25 s; CI's slow tier runs it (default-tier budget)
def test_baselines_use_their_own_data() -> None:
    zero = _agent(variant="zero_shot")
    zero.learn(200)
    assert len(zero.tar_buffer) == 0 and len(zero.src_buffer) == 200 and zero.num_updates > 0
    tar = _agent(variant="target_only")
    tar.learn(400)
    assert len(tar.src_buffer) == 0 and len(tar.tar_buffer) == 40 and tar.num_updates > 0
    mix, rec = _agent(variant="mix"), Recorder()
    mix.learn(400, rec)
    assert mix.model_fits == 0 and all("vgdf/accept_ratio" not in m for _, m in rec.rows)
    darc, rec = _agent(variant="darc"), Recorder()
    darc.learn(400, rec)
    assert any("darc/classifier_loss" in m for _, m in rec.rows)
    with pytest.raises(ValueError, match="variant='bogus': must be one of"):
        _agent(variant="bogus")


@pytest.mark.slow
def test_same_seed_same_run_and_exact_resume() -> None:
    a, b = _agent(3), _agent(3)
    a.learn(360)
    b.learn(200)
    saved = b.state_dict()
    c = _agent(3)
    c.load_state_dict(saved)
    c.learn(360)
    for name, value in a.nets.state_dict().items():
        assert torch.equal(value, c.nets.state_dict()[name]), name
    for name, value in a.model.state_dict().items():
        assert torch.equal(value, c.model.state_dict()[name]), name
    assert a.target_steps == c.target_steps and a.num_updates == c.num_updates


def test_cli_runs_vgdf_on_pendulum(tmp_path: Path) -> None:
    flat = {f"sac.{k}": v for k, v in TINY["sac"].items()} | {k: v for k, v in TINY.items() if k != "sac"}
    over = [f"agent.{k}={v}".replace("'", "").replace(" ", "") for k, v in flat.items()]
    cfg = compose(["agent=vgdf", "env=pendulum", "num_envs=10", "total_steps=400",
                   "env.max_episode_steps=50", "eval_episodes=2", "progress=false", "device=cpu",
                   f"run_dir={tmp_path}", *over,
                   "agent.target_shift='m=1.5,g=12'"])
    score = run(cfg)
    rows = read_metrics(tmp_path)
    assert rows[-1]["eval/target_return"] == score
    assert any("vgdf/model_holdout_mse" in r for r in rows)


@pytest.mark.slow
def test_cartpole_target_uses_the_terminal_predicate() -> None:
    from rlsuite.envs.shifts import ContinuousCartPole, cartpole_terminal

    env = ContinuousCartPole(max_episode_steps=50)
    agent = VGDF(VGDFConfig(**(TINY | {"target_shift": "masspole=0.5,action_gain=0.5"})), env,
                 env.default_params(10), 0)
    assert agent.terminal is cartpole_terminal
    assert agent.target_params.masspole.tolist() == [0.5] and agent.source_params.masspole[0] == 0.1
    agent.learn(400)
    assert agent.model_fits == 1 and bool(agent.tar_buffer.ordered().terminated.any())


def test_an_unknown_mujoco_task_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="mujoco_task='nope': must be one of"):
        VGDFConfig(mujoco_task="nope")
    with pytest.raises(ValueError, match="agent.mujoco_task"):
        run(compose(["experiment=vgdf_halfcheetah", "agent.mujoco_task=nope", "run_dir=/nonexistent/x"]))
