"""``time_limit_s``: a run out of wall-clock time checkpoints at an iteration boundary, records
``preempted`` with the reason and stops (``TimeLimitReached``; the CLI exits with status 3); the
same command with ``resume=auto`` continues and ends with the numbers of an uninterrupted run."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from test_conformance import CASES, assert_same, timing_free

from rlsuite import checkpoint, identity, jobs, sweeps
from rlsuite.logging import read_metrics
from rlsuite.runner import compose, run
from rlsuite.validation import ConfigError

QUIET = ("device=cpu", "progress=false", "tensorboard=false", "eval_episodes=4")


def _cfg(name: str, run_dir: Path, *extra: str):
    case = CASES[name]
    return compose([f"agent={name}", *QUIET, *case.overrides, f"total_steps={case.total_steps}",
                    f"run_dir={run_dir}", *extra])


def _rows(run_dir: Path) -> list[dict]:
    return [timing_free(row) for row in read_metrics(run_dir)]


@pytest.mark.parametrize("name", ["ppo", "qrdqn", "sac"])
def test_time_limited_run_resumed_equals_an_uninterrupted_one(tmp_path: Path, name: str,
                                                              caplog) -> None:
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    score = run(_cfg(name, full_dir))
    # A limit no iteration fits in: every call trains one iteration, checkpoints and stops; the
    # same command again continues where it stopped, until the run completes.
    calls, stops = 0, []
    while True:
        calls += 1
        assert calls < 20
        try:
            with caplog.at_level(logging.WARNING, logger="rlsuite"):
                resumed = run(_cfg(name, part_dir, "time_limit_s=1e-9"))
            break
        except jobs.TimeLimitReached as err:
            stops.append(err.step)
            record = jobs.read_result(part_dir)
            assert record["status"] == jobs.PREEMPTED
            assert record["reason"] == "time limit of 1e-09 s reached"
            assert record["global_step"] == err.step == checkpoint.load(part_dir)["agent"]["global_step"]
            assert str(err) == (f"time limit of 1e-09 s reached at step {err.step}/"
                                f"{CASES[name].total_steps}; checkpointed in {part_dir}; the same "
                                f"command with resume=auto continues")
            assert f"rlsuite: {err}" in caplog.text
    assert len(stops) >= 2 and stops == sorted(set(stops))  # one iteration further each time
    assert resumed == score  # the same final score, bit for bit
    full, part = checkpoint.load(full_dir), checkpoint.load(part_dir)
    assert_same(full["agent"], part["agent"])  # the same final state (networks, optimizers, ...)
    assert _rows(part_dir) == _rows(full_dir)  # the same curves, each step logged once
    result = jobs.read_result(part_dir)
    assert result["status"] == jobs.COMPLETED and result["score"] == score
    assert "resumed_with" not in result["identity"]  # the limit is outside the identity
    assert result["identity"]["key"] == jobs.read_result(full_dir)["identity"]["key"]


def test_injected_clock_stops_at_the_first_boundary_past_the_limit(tmp_path: Path) -> None:
    ticks = iter(range(0, 1000, 10))  # 10 s per reading: the start, then one per boundary
    with pytest.raises(jobs.TimeLimitReached) as err:
        run(_cfg("ppo", tmp_path, "time_limit_s=25", "total_steps=256"), clock=lambda: next(ticks))
    assert err.value.step == 3 * 32  # 10, 20, 30 s after the start: past 25 s at the third
    assert err.value.limit_s == 25.0 and err.value.total_steps == 256
    assert checkpoint.load(tmp_path)["agent"]["global_step"] == 96
    assert run(_cfg("ppo", tmp_path, "total_steps=256")) == pytest.approx(
        jobs.read_result(tmp_path)["score"])
    assert jobs.read_result(tmp_path)["global_step"] == 256


def test_a_run_that_finishes_at_its_limit_completes(tmp_path: Path) -> None:
    """The last boundary is not a stop: the budget is spent, the final evaluation follows."""
    ticks = iter(range(0, 1000, 10))
    run(_cfg("ppo", tmp_path, "time_limit_s=35", "total_steps=128"), clock=lambda: next(ticks))
    assert jobs.read_result(tmp_path)["status"] == jobs.COMPLETED


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_time_limit_must_be_positive(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=f"time_limit_s={float(value)}: must be a positive"):
        run(_cfg("ppo", tmp_path / "run", f"time_limit_s={value}"))
    assert not (tmp_path / "run").exists()


def test_time_limit_is_not_part_of_the_identity(tmp_path: Path) -> None:
    with_limit = identity.make(dict(_cfg_resolved(tmp_path, "time_limit_s=60")))
    assert with_limit.key == identity.make(dict(_cfg_resolved(tmp_path))).key


def _cfg_resolved(run_dir: Path, *extra: str) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(_cfg("ppo", run_dir, *extra), resolve=True)


def test_sweep_summary_counts_a_time_limited_job_as_not_completed(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    done, stopped = sweep / "0", sweep / "1"
    run(_cfg("ppo", done))
    with pytest.raises(jobs.TimeLimitReached):
        run(_cfg("ppo", stopped, "time_limit_s=1e-9"))
    for num, run_dir in enumerate((done, stopped)):  # the records the jobs' processes write
        config = _cfg_resolved(run_dir)
        path = sweep / sweeps.JOBS_DIR / f"{num}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"num": num, "run_dir": str(run_dir), "config": config,
                                    "identity": identity.make(config).to_dict()}))
    path, bad = sweeps.write_summary(sweep, [sweeps.LaunchedJob(0, ["seed=0"]),
                                             sweeps.LaunchedJob(1, ["seed=0"])])
    assert [r.path for r in bad] == [stopped]
    text = path.read_text()
    assert "2 jobs: 1 completed, 1 did not." in text
    assert f"- {stopped}: preempted: time limit of 1e-09 s reached" in text
    summary = json.loads((sweep / "summary.json").read_text())
    assert [(j["status"], j["reason"]) for j in summary] == [
        ("completed", None), ("preempted", "time limit of 1e-09 s reached")]


@pytest.mark.slow  # a console-script start-up (~6 s); the in-process resume tests stay in the default tier
def test_console_script_exits_3_and_the_same_command_continues(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    overrides = [*QUIET, *CASES["ppo"].overrides, "agent.fast_path=false", "total_steps=64",
                 "time_limit_s=1e-9"]
    first = subprocess.run([sys.executable, "-m", "rlsuite", *overrides, f"hydra.run.dir={run_dir}"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert first.returncode == jobs.TIME_LIMIT_EXIT == 3, first.stderr[-2000:]
    assert (f"rlsuite: time limit of 1e-09 s reached at step 32/64; checkpointed in {run_dir}; "
            f"the same command with resume=auto continues") in first.stderr
    assert "Traceback" not in first.stderr
    # The same overrides again (in this process, to save a second start-up): the second
    # iteration is the last, so the run completes.
    run(compose([*overrides, f"run_dir={run_dir}"]))
    assert jobs.read_result(run_dir)["status"] == jobs.COMPLETED
    assert [int(r["step"]) for r in read_metrics(run_dir)] == [32, 64, 64]
