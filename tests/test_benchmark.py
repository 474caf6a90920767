"""The env benchmark's pieces, at a tiny size, so the script cannot rot unnoticed."""

from __future__ import annotations

import json

import torch

from rlsuite import benchmark


def test_case_counts_env_steps_and_reports_rates() -> None:
    calls = []
    case = benchmark.Case("fake", n_envs=3, step=calls.append, steps=4)
    case.runs = [(0.5, 0.25), (1.0, 0.5), (2.0, 1.0)]
    summary = case.summary()
    # 4 steps of 3 envs = 12 env-steps per run; median wall 1.0 s, median CPU 0.5 s.
    assert (summary["median"], summary["min"], summary["max"]) == (12.0, 6.0, 24.0)
    assert summary["cpu_median"] == 24.0 and summary["us_per_step"] == 250_000.0
    case.run(5)
    assert calls == [0, 1, 2, 3, 4]  # step i gets the action index i (pool used in turn)


def test_load_meter_subtracts_this_process(monkeypatch) -> None:
    busy = iter([100.0, 103.0])  # all processes: 3 CPU s
    own = iter([10.0, 11.0])  # this process: 1 CPU s
    wall = iter([0.0, 2.0])
    monkeypatch.setattr(benchmark, "_proc_stat_busy", lambda: next(busy))
    monkeypatch.setattr(benchmark, "_own_cpu", lambda: next(own))
    monkeypatch.setattr(benchmark.time, "perf_counter", lambda: next(wall))
    meter = benchmark.LoadMeter()
    meter.start()
    meter.stop()
    assert meter.other_cores == 1.0  # (3 - 1) CPU s over 2 s of wall time


def test_tiny_run_of_every_case_writes_the_table_and_json(tmp_path) -> None:
    threads = torch.get_num_threads()
    try:
        results = benchmark.run_benchmark(
            sizes=[2], repeats=1, target_seconds=0.001, compiled=False,
            tabular=lambda n, repeats: {
                "threads": 1,
                "cases": {"alias": {"median": 5e6, "min": 4e6, "max": 6e6, "cpu_median": 5e6}},
            },
            tabular_sizes=[8],
        )
    finally:
        torch.set_num_threads(threads)
    names = [r["case"] for r in results["cartpole"]]
    assert names == [
        "rlsuite cartpole (eager)",
        "gymnasium numpy-batched (vector_entry_point)",
        "gymnasium SyncVectorEnv",
        "SB3 DummyVecEnv",
    ]
    assert results["threads"] == 1
    assert all(r["n_envs"] == 2 and r["runs"] == 1 and r["median"] > 0 for r in results["cartpole"])
    assert results["tabular"][0]["case"] == "rlsuite tabular (alias)"
    assert results["tabular"][0]["us_per_step"] == 1e6 * 8 / 5e6  # 1.6 us per vector step

    md, js = benchmark.write(results, "python scripts/benchmark_envs.py --test", str(tmp_path))
    text = open(md).read()
    assert "`python scripts/benchmark_envs.py --test`" in text
    assert "| 8 | rlsuite tabular (alias) | **5.00 M** | 4.00 M-6.00 M | 5.00 M | 1.6 |" in text
    assert "**1 intra-op thread**" in text
    saved = json.load(open(js))
    assert saved["command"] == "python scripts/benchmark_envs.py --test"
    assert saved["cartpole"] == json.loads(json.dumps(results["cartpole"]))


def test_per_env_baselines_are_capped() -> None:
    builders = benchmark.cartpole_cases([64, 4096], per_env_cap=1024, compiled=True)
    # 64: eager, compiled, numpy-batched, sync, SB3; 4096: eager, compiled, numpy-batched.
    assert len(builders) == 8
