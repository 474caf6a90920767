"""The report's statistics: the IQM by hand, the stratified percentile bootstrap's coverage, and
one setting (resamples, seed) shared by the sweep summary and ``rlsuite-report``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rlsuite import report, sweeps


def test_iqm_by_hand() -> None:
    # 9 scores: floor(9 / 4) = 2 cut from each end -> the mean of the sorted middle five
    x = [7.0, -3.0, 100.0, 2.0, 4.0, 5.0, 1.0, 3.0, 6.0]  # sorted: -3 1 2 3 4 5 6 7 100
    assert report.iqm(x) == (2 + 3 + 4 + 5 + 6) / 5
    rows = np.array([x, [float(v) for v in range(9)]])
    assert report.iqm(rows, axis=-1).tolist() == [4.0, 4.0]  # per row: 2..6 of each


def _vectorized_equals_loop(groups: dict[str, list[float]], reps: int, seed: int) -> None:
    point, low, high = report.stratified_bootstrap_ci(groups, report.iqm, reps=reps, seed=seed)
    # the same draws, one resample at a time (row i of each task's index matrix)
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(v) for v in groups.values()]
    idx = [rng.integers(0, a.size, (reps, a.size)) for a in arrays]
    draws = [report.iqm(np.concatenate([a[i[r]] for a, i in zip(arrays, idx, strict=True)]))
             for r in range(reps)]
    assert point == report.iqm(np.concatenate(arrays))
    assert (low, high) == pytest.approx(tuple(np.quantile(draws, [0.025, 0.975])), rel=1e-12)


def test_bootstrap_is_a_percentile_interval_of_stratified_resamples() -> None:
    _vectorized_equals_loop({"a": [0.1, 0.5, 0.2, 0.9], "b": [3.0, 1.0, 2.0, 2.5, 0.0]}, 300, 5)


def test_coverage_of_the_true_iqm() -> None:
    # Exponential(1) scores, 40 runs: the population IQM is the mean of X between its quartiles,
    # (1/0.5) * [(a + 1) e^-a - (b + 1) e^-b] with a = ln 4/3, b = ln 4.
    a, b = math.log(4 / 3), math.log(4)
    true_iqm = 2 * ((a + 1) * 0.75 - (b + 1) * 0.25)
    rng = np.random.default_rng(2026)
    trials, runs = 400, 40
    hits = 0
    for _ in range(trials):
        x = rng.exponential(size=runs)
        _, low, high = report.stratified_bootstrap_ci({"t": x}, reps=1000, seed=int(rng.integers(1 << 31)))
        hits += low <= true_iqm <= high
    # nominal 95%; with 400 trials the binomial standard error is ~1.1 points, and the percentile
    # bootstrap of a trimmed mean at n = 40 undercovers slightly. Deterministic (seeded) anyway.
    assert 0.90 <= hits / trials <= 0.98, hits / trials


def test_monte_carlo_error_of_the_endpoints_is_small() -> None:
    x = np.random.default_rng(0).normal(size=30)
    ends = np.array([report.stratified_bootstrap_ci({"t": x}, seed=s)[1:] for s in range(12)])
    width = float(np.mean(ends[:, 1] - ends[:, 0]))
    assert ends.std(axis=0).max() < 0.015 * width  # the docstring says ~0.7%


def test_summary_and_report_share_the_setting(tmp_path: Path, monkeypatch) -> None:
    import inspect

    assert inspect.signature(report.summarize).parameters["reps"].default == report.BOOTSTRAP_REPS
    calls = []
    real = report.summarize
    monkeypatch.setattr(report, "summarize", lambda *a, **k: calls.append(k) or real(*a, **k))
    sweep = tmp_path / "sweep"
    run = sweep / "0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("agent: {name: ppo}\nenv: {name: cartpole}\nseed: 0\n")
    (run / "result.json").write_text('{"status": "completed", "metric": "eval/mean_reward", '
                                     '"score": 1.5}')
    # the sweep's job list: one job whose run directory is ``run`` (sweeps.write_job_record's form)
    (sweep / sweeps.JOBS_DIR).mkdir()
    (sweep / sweeps.JOBS_DIR / "0.json").write_text(json.dumps(
        {"num": 0, "run_dir": str(run), "config": {"agent": {"name": "ppo"}}, "identity": None}))
    md, _ = sweeps.write_summary(sweep, [sweeps.LaunchedJob(0, ["seed=0"])])
    assert report.method_text() in md.read_text()
    assert "10000 resamples drawn by numpy.random.default_rng(0)" in report.method_text()
    out = tmp_path / "r.md"
    assert report.main([str(sweep), "--out", str(out)]) == 0
    assert report.method_text() in out.read_text()
    assert all(k.get("reps", report.BOOTSTRAP_REPS) == report.BOOTSTRAP_REPS for k in calls)
    assert len(calls) == 2


def test_bad_reps_rejected() -> None:
    with pytest.raises(ValueError, match="reps must be a positive integer"):
        report.stratified_bootstrap_ci({"t": [1.0]}, reps=0)
