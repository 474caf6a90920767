"""Sweeps: launcher presets, failure records, preemption and resume, the aggregation report."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from rlsuite import jobs, report
from rlsuite.logging import read_metrics
from rlsuite.runner import compose, run

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "rlsuite"]
QUICK = ["total_steps=1024", "progress=false", "tensorboard=false", "eval_episodes=4"]


def _cli(args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


# -- statistics -----------------------------------------------------------------------------------


def test_iqm_exact_values_and_rliable_definition() -> None:
    assert report.iqm([1, 2, 3, 4, 5, 6, 7, 8]) == 4.5  # cut 2 each end: mean of 3..6
    assert report.iqm([3, 1, 2]) == 2.0  # fewer than 4: nothing cut
    assert report.iqm([10, 0, 1, 2, 3, 4, 5, 6, 7, -50]) == pytest.approx(3.5)  # mean of 1..6
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for n in range(1, 30):
        x = rng.normal(size=n)
        assert report.iqm(x) == pytest.approx(stats.trim_mean(x, 0.25))


def test_stratified_bootstrap_keeps_each_task_size() -> None:
    # Task a is all 0, task b all 1: every stratified resample keeps 3 zeros and 5 ones, so the
    # pooled mean is exactly 5/8 in every resample (an unstratified bootstrap would vary).
    point, low, high = report.stratified_bootstrap_ci({"a": [0.0] * 3, "b": [1.0] * 5}, np.mean, 300)
    assert point == low == high == 5 / 8


def test_bootstrap_interval_width_matches_the_normal_theory() -> None:
    x = np.random.default_rng(1).normal(size=400)
    point, low, high = report.stratified_bootstrap_ci({"t": x}, np.mean, reps=2000, seed=3)
    assert point == pytest.approx(x.mean())
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    assert low < point < high


# -- devices --------------------------------------------------------------------------------------


def test_pick_device_spreads_jobs_over_gpus(monkeypatch) -> None:
    assert jobs.pick_device("cpu", job=5) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    assert [jobs.pick_device("auto", j) for j in range(6)] == [
        torch.device("cuda", j % 4) for j in range(6)]
    assert jobs.pick_device("cuda:1", job=2) == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert jobs.pick_device("auto", job=3) == torch.device("cpu")
    with pytest.raises(ValueError, match="device='cuda'"):
        jobs.pick_device("cuda")


# -- presets --------------------------------------------------------------------------------------


def _presets(group: str) -> list[str]:
    return sorted(p.stem for p in (REPO / "conf" / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["agent", "env", "experiment", "search"])
def test_every_preset_composes(group: str) -> None:
    names = _presets(group)
    assert names, f"no presets in conf/{group}"
    for name in names:
        cfg = compose([f"{group}={name}"])
        assert cfg.agent.name and cfg.env.name, (group, name)


@pytest.mark.parametrize("launcher", _presets("hydra/launcher"))
def test_every_launcher_preset_composes(launcher: str) -> None:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from omegaconf import OmegaConf

    overrides = [f"hydra/launcher={launcher}"]
    if launcher == "slurm":
        overrides.append("hydra.launcher.partition=gpu")
    if launcher == "ray_cluster":
        overrides.append("hydra.launcher.ray.init.address=ray://head:10001")
    with initialize_config_module(config_module="rlsuite.conf", version_base="1.3"):
        cfg = hydra_compose("config", overrides, return_hydra_config=True)
    launcher_cfg = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher_cfg["_target_"].startswith("hydra")
    if launcher == "ray_local":
        assert launcher_cfg["ray"]["remote"]["num_gpus"] == jobs.gpus_per_job()


def test_search_preset_selects_optuna_and_its_agent() -> None:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module(config_module="rlsuite.conf", version_base="1.3"):
        cfg = hydra_compose("config", ["search=sac"], return_hydra_config=True)
    assert cfg.agent.name == "sac"
    assert "optuna" in cfg.hydra.sweeper._target_.lower()
    assert cfg.hydra.sweeper.direction == "maximize"
    assert "agent.learning_rate" in cfg.hydra.sweeper.params


# -- runs as jobs ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_completed_run_is_recorded_and_not_rerun(tmp_path: Path, caplog) -> None:
    cfg = compose(["agent=ppo", "env=cartpole", *QUICK, "num_envs=8", f"run_dir={tmp_path}"])
    score = run(cfg)
    record = jobs.read_result(tmp_path)
    assert record["status"] == "completed" and record["score"] == score
    assert record["metric"] == "eval/mean_reward"
    rows = len(read_metrics(tmp_path))
    with caplog.at_level(logging.INFO, logger="rlsuite"):
        assert run(cfg) == score  # relaunch: the recorded result, no second training
    assert "already completed" in caplog.text
    assert len(read_metrics(tmp_path)) == rows


def test_failed_run_is_recorded(tmp_path: Path, monkeypatch) -> None:
    import rlsuite.learners.ppo as ppo

    def broken(self, total_steps, hooks=None):  # a failure while training (a config error is
        raise RuntimeError("the GPU fell off")  # refused before the run, see test_bad_inputs)

    monkeypatch.setattr(ppo.PPO, "learn", broken)
    cfg = compose(["agent=ppo", *QUICK, f"run_dir={tmp_path}"])
    with pytest.raises(RuntimeError, match="fell off"):
        run(cfg)
    record = jobs.read_result(tmp_path)
    assert record["status"] == "failed"
    assert "the GPU fell off" in record["error"] and "Traceback" in record["traceback"]


@pytest.mark.slow  # a cold TorchInductor cache (a fresh CI machine) makes it ~15 s
def test_joblib_sweep_survives_a_failing_job_and_reports(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    out = _cli(["-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "seed=0,1",
                "agent.learning_rate=1e-3,-1.0", *QUICK, "num_envs=8", f"hydra.sweep.dir={sweep}"])
    assert out.returncode == 1, out.stderr[-3000:]  # the sweep finished, and says a job failed
    summary = json.loads((sweep / "summary.json").read_text())
    assert len(summary) == 4
    failed = [s for s in summary if s["status"] == "failed"]
    # a config refused before the job ran is still recorded for the summary (rlsuite.cli)
    bad_lr = "ConfigError: agent.learning_rate=-1.0: must be a positive number"
    assert len(failed) == 2 and all(bad_lr in s["error"] for s in failed)
    assert all(s["score"] is not None for s in summary if s["status"] == "completed")
    assert "2 job(s) did not complete" in out.stderr

    md = tmp_path / "report.md"
    done = subprocess.run([sys.executable, "scripts/report.py", str(sweep), "--out", str(md),
                           "--reps", "200"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "4 runs (2 did not complete)" in done.stdout
    text = md.read_text()
    assert "| ppo | cartpole | 0.001 |" in text and "2/2" in text and "0/2" in text
    assert "agent.learning_rate=-1.0" in text


@pytest.mark.slow
def test_sweep_jobs_sharing_a_run_dir_are_refused_not_merged(tmp_path: Path) -> None:
    shared, sweep = tmp_path / "shared", tmp_path / "sweep"
    out = _cli(["-m", "seed=0,1", *QUICK, "num_envs=8", f"run_dir={shared}",
                f"hydra.sweep.dir={sweep}"])
    assert out.returncode == 1, out.stderr[-3000:]
    summary = json.loads((sweep / "summary.json").read_text())
    assert [(s["job"], s["status"], s["run_dir"]) for s in summary] == [
        (0, "completed", str(shared)), (1, "failed", str(shared))]
    assert "seed: 0 there, 1 here" in summary[1]["error"] and summary[1]["score"] is None
    assert jobs.read_result(shared)["identity"]["config"]["seed"] == 0  # seed 0's, untouched


def test_sweep_summary_lists_a_failed_job_outside_the_sweep_dir(tmp_path: Path) -> None:
    elsewhere, sweep = tmp_path / "elsewhere" / "run", tmp_path / "sweep"
    out = _cli(["-m", "agent.learning_rate=-1.0", *QUICK, f"run_dir={elsewhere}",
                f"hydra.sweep.dir={sweep}"])
    assert out.returncode == 1, out.stderr[-3000:]  # the only job failed: not a success
    [row] = json.loads((sweep / "summary.json").read_text())
    assert row["run_dir"] == str(elsewhere) and row["status"] == "failed"
    assert "agent.learning_rate=-1.0: must be a positive number" in row["error"]
    assert "1 jobs: 0 completed, 1 did not." in (sweep / "summary.md").read_text()


def test_a_sweep_without_jobs_is_not_a_success(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from rlsuite.sweeps import SweepSummary

    callback = SweepSummary()
    with pytest.raises(SystemExit) as exit_:
        callback.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert exit_.value.code == 1
    assert json.loads((tmp_path / "summary.json").read_text()) == []


@pytest.mark.slow
def test_joblib_sweep_survives_a_killed_worker(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}  # the test-only callback below
    out = subprocess.run(
        [*CLI, "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "seed=0,1", *QUICK,
         "num_envs=8", f"hydra.sweep.dir={sweep}",
         "+hydra.callbacks.kill._target_=sweep_hooks.KillWorker", "+hydra.callbacks.kill.seed=1"],
        cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 1, out.stderr[-3000:]
    summary = json.loads((sweep / "summary.json").read_text())
    assert [(s["job"], s["status"]) for s in summary] == [(0, "completed"), (1, "failed")]
    assert "TerminatedWorkerError" in summary[1]["error"]
    assert summary[0]["score"] == jobs.read_result(summary[0]["run_dir"])["score"]


@pytest.mark.slow  # a cold TorchInductor cache (a fresh CI machine) makes it ~15 s
def test_preempted_run_checkpoints_and_resumes(tmp_path: Path) -> None:
    args = ["agent=ppo", "env=cartpole", "total_steps=400000", "num_envs=8", "agent.num_steps=32",
            "progress=false", "tensorboard=false", "checkpoint_every=1000", "eval_episodes=4",
            f"run_dir={tmp_path}"]
    proc = subprocess.Popen([*CLI, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    metrics = tmp_path / "metrics.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 4):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    os.kill(proc.pid, signal.SIGUSR2)  # what Slurm sends before a preemption or time limit
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGUSR2, err[-2000:]
    record = jobs.read_result(tmp_path)
    assert record["status"] == "preempted" and "SIGUSR2" in record["signal"]
    # checkpoint_every=1000 never fired: the checkpoint was written because of the signal.
    saved = torch.load(tmp_path / "checkpoints" / "latest.pt", weights_only=True)
    stopped_at = saved["agent"]["global_step"]
    steps_before = [int(r["step"]) for r in read_metrics(tmp_path)]

    done = _cli([*args, "total_steps=20000"])  # same overrides (a shorter budget): resumes there
    assert done.returncode == 0, done.stderr[-2000:]
    assert jobs.read_result(tmp_path)["status"] == "completed"
    steps = [int(r["step"]) for r in read_metrics(tmp_path)]
    assert steps[: len(steps_before)] == steps_before
    assert steps[len(steps_before)] > steps_before[-1]  # continued, did not restart from 0
    assert stopped_at == steps_before[-1]  # the checkpoint is the last logged iteration


@pytest.mark.slow
def test_submitit_local_sweep(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    out = _cli(["-m", "hydra/launcher=slurm_local", "seed=0,1", *QUICK, f"hydra.sweep.dir={sweep}"])
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((sweep / "summary.json").read_text())
    assert [s["status"] for s in summary] == ["completed", "completed"]


@pytest.mark.slow
def test_ray_local_sweep(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    sweep = tmp_path / "sweep"
    out = _cli(["-m", "hydra/launcher=ray_local", "seed=0,1", *QUICK, f"hydra.sweep.dir={sweep}"],
               timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads((sweep / "summary.json").read_text())
    assert [s["status"] for s in summary] == ["completed", "completed"]


@pytest.mark.slow
def test_optuna_search_optimizes_the_returned_score(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    out = _cli(["-m", "search=ppo", "hydra.sweeper.n_trials=3", *QUICK, f"hydra.sweep.dir={sweep}"])
    assert out.returncode == 0, out.stderr[-3000:]
    results = (sweep / "optimization_results.yaml").read_text()
    summary = json.loads((sweep / "summary.json").read_text())
    best = max(s["score"] for s in summary)
    assert f"best_value: {best}" in results


# -- search spaces and full-scale presets ---------------------------------------------------------


@pytest.mark.parametrize("name", _presets("search"))
def test_search_space_names_real_config_keys(name: str) -> None:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from omegaconf import OmegaConf

    with initialize_config_module(config_module="rlsuite.conf", version_base="1.3"):
        cfg = hydra_compose("config", [f"search={name}"], return_hydra_config=True)
    assert cfg.agent.name == name, "a search preset is named after the agent it selects"
    assert "optuna" in cfg.hydra.sweeper._target_.lower()
    params = cfg.hydra.sweeper.params
    assert len(params) >= 2, name
    # A misspelt key would make Optuna sample a value that Hydra then rejects (or silently adds
    # with +): every searched key must already exist in the composed config. A sentinel default
    # tells an absent key from one whose default is None (DynLin-UCB's lam: None means ln T).
    absent = object()
    missing = [key for key in params if OmegaConf.select(cfg, key, default=absent) is absent]
    assert not missing, f"search={name} searches keys absent from the config: {missing}"


FULL_PRESETS = ["comblock_hnpg_full", "cliffwalking_ecrm_full", "dynlin_synthetic_full",
                "frozenlake_cvar_ddp_full", "pendulum_iwocs_full", "stockgrid_deta_n_full",
                "vgdf_pendulum_full"]


def test_full_scale_presets_compose_with_their_stated_budgets() -> None:
    assert sorted(p for p in _presets("experiment") if p.endswith("_full")) == sorted(FULL_PRESETS)
    cfgs = {name: compose([f"experiment={name}"]) for name in FULL_PRESETS}
    for name, cfg in cfgs.items():
        assert cfg.device == "auto", name
        # Each full preset scales up (DynLin and the exact solver: equals) its measured preset.
        small = compose([f"experiment={name.removesuffix('_full')}"])
        assert cfg.agent.name == small.agent.name, name
        assert cfg.total_steps >= small.total_steps, name
    hnpg = cfgs["comblock_hnpg_full"]
    assert hnpg.env.horizon == 50 and hnpg.agent.offline_episodes == 50_000
    assert hnpg.agent.batch_steps == 1000 and hnpg.total_steps >= 30_000_000
    iwocs = cfgs["pendulum_iwocs_full"].agent
    # Paper (2-D set): DR 1.6 M + 3 x 0.8 M = 4 M training steps, CMA-ES 6 generations x 100.
    total = cfgs["pendulum_iwocs_full"].total_steps
    assert iwocs.dr_steps + iwocs.num_iterations * iwocs.model_steps == total
    assert (iwocs.dr_steps, iwocs.model_steps, iwocs.num_iterations) == (1_600_000, 800_000, 3)
    assert (iwocs.search, iwocs.cmaes_generations, iwocs.cmaes_population) == ("cmaes", 6, 100)
    vgdf = cfgs["vgdf_pendulum_full"]
    assert vgdf.total_steps == 1_000_000 and vgdf.agent.warmup_steps == 100_000
    assert list(vgdf.agent.sac.hidden_sizes) == [256, 256] and list(vgdf.agent.model_hidden) == [200] * 4
    dynlin = cfgs["dynlin_synthetic_full"]
    assert dynlin.total_steps // dynlin.num_envs == dynlin.agent.horizon == 1_000_000


def test_job_directory_names_stay_below_the_file_name_limit() -> None:
    from rlsuite.config import shorten

    long = ",".join(f"agent.param_{i}=0.{i}123456789012345" for i in range(20))
    short = shorten(long)
    assert len(short) == 120 and short.startswith(long[:100])
    assert shorten(long) == short  # deterministic: a relaunch finds the same directory
    assert shorten(long + "1") != short  # distinct overrides stay distinct
    assert shorten("seed=1") == "seed=1"
