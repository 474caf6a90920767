"""Config composition, the run loop, checkpoints (atomic, weights-only) and exact resume."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from rlsuite import checkpoint
from rlsuite.logging import read_metrics
from rlsuite.runner import compose, run

SMALL = ["num_envs=8", "agent.num_steps=16", "agent.num_minibatches=2", "agent.update_epochs=2",
         "eval_episodes=4", "progress=false", "checkpoint_every=1", "device=cpu"]


def _cfg(tmp_path: Path, *extra: str):
    return compose([*SMALL, f"run_dir={tmp_path}", *extra])


def test_typo_fails_at_compose_naming_the_key() -> None:
    with pytest.raises(ConfigCompositionException) as err:
        compose(["agent.learning_rat=0.1"])
    assert "learning_rat" in str(err.value) + str(err.value.__cause__)
    with pytest.raises(ConfigCompositionException) as err:
        compose(["agent.learning_rate=fast"])
    assert isinstance(err.value.__cause__, ValidationError)
    assert "learning_rate" in str(err.value.__cause__)
    with pytest.raises(ConfigCompositionException):
        compose(["seeds=3"])


def test_unknown_keys_rejected_in_env_group() -> None:
    with pytest.raises((ConfigCompositionException, ConfigKeyError)):
        compose(["env.gravity=3"])


def test_run_writes_logs_and_checkpoint(tmp_path: Path) -> None:
    score = run(_cfg(tmp_path, "total_steps=512"))
    assert (tmp_path / "config.yaml").exists()
    assert list(tmp_path.glob("events.out.tfevents.*"))
    rows = read_metrics(tmp_path)
    assert [r["step"] for r in rows[:-1]] == [128.0, 256.0, 384.0, 512.0]
    assert "rollout/ep_rew_mean" in rows[1] and "time/fps" in rows[0]
    assert rows[-1]["eval/mean_reward"] == score
    payload = checkpoint.load(tmp_path)
    assert payload["agent"]["global_step"] == 512
    assert payload["config"]["num_envs"] == 8


def test_resume_continues_the_same_curves(tmp_path: Path, monkeypatch, interrupt_run) -> None:
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    run(_cfg(full_dir, "total_steps=768"))
    # The same run, killed right after its third iteration (checkpoint_every=1).
    interrupt_run(3)
    with pytest.raises(KeyboardInterrupt):
        run(_cfg(part_dir, "total_steps=768"))
    monkeypatch.undo()
    run(compose([*SMALL, "total_steps=768", f"resume={part_dir}", "run_dir=ignored"]))
    full, part = read_metrics(full_dir), read_metrics(part_dir)
    assert len(full) == len(part) == 7  # 6 iterations + the final evaluation
    for a, b in zip(full, part, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if not key.startswith("time/"):
                assert a[key] == b[key], key
    w_full = checkpoint.load(full_dir)["agent"]["model"]
    w_part = checkpoint.load(part_dir)["agent"]["model"]
    for name in w_full:
        assert torch.equal(w_full[name], w_part[name]), name


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "checkpoints" / "latest.pt"
    checkpoint.save(path, {"w": torch.ones(3)}, {"seed": 0})

    def dies_midway(obj, f, *args, **kwargs):
        f.write(b"partial garbage")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, {"w": torch.zeros(3)}, {"seed": 0})
    monkeypatch.undo()
    assert torch.equal(checkpoint.load(path)["agent"]["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["latest.pt"]


class _Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_loading_executes_no_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.FORMAT_VERSION, "agent": _Payload(), "config": {}}, path)
    with pytest.raises(Exception, match="[Ww]eights only|Unsupported|not allowed"):
        checkpoint.load(path)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path: Path, monkeypatch) -> None:
    import rlsuite.learners.ppo as ppo

    real_loss = ppo.ppo_loss
    calls = {"n": 0}

    def poisoned(model, batch, config):
        calls["n"] += 1
        loss, stats = real_loss(model, batch, config)
        if calls["n"] > 8:  # iterations 1 and 2 are clean (2 epochs x 2 minibatches each)
            stats["value_loss"] = torch.tensor(float("nan"))
        return loss, stats

    import rlsuite.learners.ppo_fast as ppo_fast  # the fast path's update (the default)

    real_grads = ppo_fast.ppo_output_grads

    def poisoned_grads(*args, **kwargs):
        calls["n"] += 1
        *grads, stats = real_grads(*args, **kwargs)
        if calls["n"] > 8:
            stats = stats.clone()
            stats[ppo_fast.STATS.index("value_loss")] = float("nan")
        return (*grads, stats)

    monkeypatch.setattr(ppo, "ppo_loss", poisoned)
    monkeypatch.setattr(ppo_fast, "ppo_output_grads", poisoned_grads)
    with pytest.raises(SystemExit, match="PPO diverged at step 384: non-finite loss train/value_loss=nan"):
        run(_cfg(tmp_path, "total_steps=1024"))
    payload = checkpoint.load(tmp_path)
    assert payload["agent"]["global_step"] == 256
    assert all(torch.isfinite(v).all() for v in payload["agent"]["model"].values())


@pytest.mark.slow  # a cold TorchInductor cache (a fresh CI machine) makes it ~15 s
def test_console_script_runs_from_any_directory(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rlsuite", *SMALL, "total_steps=256", "env=pendulum",
         f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "eval/mean_reward" in out.stdout
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").exists()
    # the final line shows bare on the terminal, and the job log (named after the app) keeps it
    assert out.stdout.splitlines()[-1].startswith("rlsuite: ppo on pendulum: eval/mean_reward = ")
    job_log = (tmp_path / "run" / "rlsuite.log").read_text()
    assert "[rlsuite.runner][INFO] - rlsuite: ppo on pendulum: eval/mean_reward = " in job_log
    assert not (tmp_path / "run" / "cli.log").exists()


@pytest.mark.slow  # 7-25 s; CI's slow tier runs it (default-tier budget)
def test_multirun_basic_launcher(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "rlsuite", "-m", "seed=0,1", *SMALL, "total_steps=128",
         f"hydra.sweep.dir={tmp_path}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert len(list(tmp_path.glob("*/checkpoints/latest.pt"))) == 2


def test_a_refused_resume_is_one_line_naming_the_key_and_keeps_the_other_run(tmp_path: Path) -> None:
    def cli(*overrides: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "rlsuite", *SMALL, "total_steps=128", f"run_dir={tmp_path}",
             "resume=auto", *overrides], cwd=tmp_path, capture_output=True, text=True, timeout=300)

    assert cli().returncode == 0
    before = (tmp_path / "result.json").read_text()
    out = cli("seed=7")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "HYDRA_FULL_ERROR" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(
        f"rlsuite: {tmp_path} holds another run (result.json): seed: 0 there, 7 here")
    assert (tmp_path / "result.json").read_text() == before
