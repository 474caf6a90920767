"""The GPU check kit (``scripts/gpu``), exercised on the CPU: the benchmark's quick run, its
records of failed and skipped sections, its refusals, and ``check.sh``'s stages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from script_module import load_script

from rlsuite.benchmark import Case

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "scripts" / "gpu" / "bench.py"
CHECK = ROOT / "scripts" / "gpu" / "check.sh"


@pytest.fixture(scope="module")
def bench():
    """scripts/gpu/bench.py as a module."""
    return load_script("gpu/bench.py")


def _read(out: Path) -> tuple[dict, str]:
    return (json.loads((out / "benchmarks_gpu.json").read_text()),
            (out / "benchmarks_gpu.md").read_text())


def test_quick_run_writes_a_row_per_case_and_the_command(bench, tmp_path: Path) -> None:
    argv = ["--device", "cpu", "--quick", "--out-dir", str(tmp_path)]
    assert bench.main(argv) == 0
    results, page = _read(tmp_path)
    assert results["command"] == "python3 scripts/gpu/bench.py " + " ".join(argv)
    assert [(r["env"], r["n_envs"], r["mode"]) for r in results["envs"]] == [
        ("cartpole", 64, "eager"), ("cartpole", 256, "eager"),
        ("pendulum", 64, "eager"), ("pendulum", 256, "eager")]
    assert all(r["runs"] == 2 and r["median"] > 0 for r in results["envs"])
    (ppo,) = results["ppo"]
    assert (ppo["n_envs"], ppo["env_steps_per_iteration"], ppo["iterations"]) == (4, 4 * 128, 2)
    assert ppo["overrides"] == {"fast_path": False} and ppo["warmup_iterations"] == 1
    assert ppo["env_steps_per_second"] == pytest.approx(2 * 512 / ppo["seconds_total"])
    assert results["not_measured"] == [] and results["device"] == "cpu"
    assert f"`{results['command']}`" in page and "## Not measured" not in page
    assert "| cartpole | 256 | eager |" in page and "| pendulum | 64 | eager |" in page
    assert "except {'fast_path': False}" in page
    # Nothing on a CPU page speaks of a GPU step it did not take.
    assert "synchronize" not in page and "compil" not in page


def test_a_failed_section_is_recorded_and_the_rest_still_runs(bench, tmp_path: Path,
                                                              monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory\nsecond line")

    monkeypatch.setattr(bench, "ppo_section", broken)
    argv = ["--device", "cpu", "--quick", "--envs", "cartpole", "--sizes", "8", "--ppo-envs",
            "4", "8", "--out-dir", str(tmp_path)]
    assert bench.main(argv) == 1
    results, page = _read(tmp_path)
    assert [r["n_envs"] for r in results["envs"]] == [8] and results["ppo"] == []
    assert results["not_measured"] == [
        {"section": f"PPO CartPole, N = {n}", "reason": "failed: RuntimeError: out of memory"}
        for n in (4, 8)]
    assert "* PPO CartPole, N = 8: failed: RuntimeError: out of memory" in page


def test_past_the_budget_no_section_starts(bench, tmp_path: Path) -> None:
    argv = ["--device", "cpu", "--quick", "--budget", "0", "--out-dir", str(tmp_path)]
    assert bench.main(argv) == 0
    results, page = _read(tmp_path)
    assert results["envs"] == [] and results["ppo"] == []
    assert [r["section"] for r in results["not_measured"]] == [
        "cartpole (eager), N = [64, 256]", "pendulum (eager), N = [64, 256]",
        "PPO CartPole, N = 4"]
    assert all(r["reason"] == "skipped: past --budget 0.0 s" for r in results["not_measured"])
    assert page.count("(none measured)") == 2


@pytest.mark.parametrize(("argv", "message"), [
    (["--sizes", "0"], "--sizes must be >= 1, got 0"),
    (["--ppo-envs", "4", "-2"], "--ppo-envs must be >= 1, got -2"),
    (["--repeats", "-1"], "--repeats must be > 0, got -1"),
    (["--ppo-warmup", "-1"], "--ppo-warmup must be >= 0, got -1"),
    (["--device", "gpu"], "--device 'gpu'"),
    (["--device", "meta"], "--device meta: must be cpu or cuda[:N]"),
])
def test_bad_options_are_refused_naming_them(bench, argv, message, capsys) -> None:
    with pytest.raises(SystemExit):
        bench.parse(["--device", "cpu", *argv])
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_cuda_is_refused(bench, capsys) -> None:
    with pytest.raises(SystemExit):
        bench.parse(["--device", "cuda"])
    assert "--device cuda: CUDA is not available here" in capsys.readouterr().err


def test_a_case_waits_for_the_device_before_and_after_its_run() -> None:
    events: list[str] = []
    case = Case("probe", 1, lambda i: events.append(f"step {i}"), sync=lambda: events.append("sync"))
    case.run(2)
    assert events == ["sync", "step 0", "step 1", "sync"]


FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for the device's python3: records each call, answers as the stage expects.
echo "$*" >> "$CALLS"
case "$*" in
  *"-m pytest"*) sleep "${PYTEST_SLEEP:-0}"; echo "1 passed"; exit 0 ;;
  *bench.py*) echo "bench here"; exit 3 ;;
  *) cat > /dev/null; exit 0 ;;  # the import check (-c) and the device info (script on stdin)
esac
"""


def _check(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[str], Path]:
    """Run check.sh with the fake python; return the process, the summary lines and $OUT."""
    fake, out, wheels = tmp_path / "python", tmp_path / "out", tmp_path / "no-wheels"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    wheels.mkdir()
    env = {**os.environ, "PYTHON": str(fake), "CALLS": str(tmp_path / "calls"), "OUT": str(out),
           "SITE": str(tmp_path / "site"), "WHEEL_DIR": str(wheels), "DEVICE": "cpu", **env}
    done = subprocess.run(["bash", str(CHECK)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    return done, (out / "summary.txt").read_text().splitlines(), out


def test_check_sh_runs_every_stage_and_names_the_failed_one(tmp_path: Path) -> None:
    done, summary, out = _check(tmp_path, BENCH_ARGS="--quick")
    assert done.returncode == 1, done.stdout + done.stderr
    assert [line.split(" (")[0] for line in summary[:4]] == [
        "install: ok", "info: ok", "tests: ok", "bench: FAILED"]
    assert "(exit 3," in summary[3] and summary[-1] == "failed stages: bench"
    calls = (tmp_path / "calls").read_text().splitlines()
    assert calls[2] == ("-m pytest -m gpu -q -rA -p no:cacheprovider "
                        "--continue-on-collection-errors --durations=15")
    assert calls[3].startswith(f"scripts/gpu/bench.py --device cpu --out-dir {out} --budget ")
    assert calls[3].endswith(" --quick")
    assert (out / "gpu_tests.log").read_text() == "1 passed\n"
    assert (out / "bench.log").read_text() == "bench here\n"
    assert sorted(p.name for p in out.iterdir()) == [
        "bench.log", "gpu_info.txt", "gpu_tests.log", "summary.txt"]


def test_check_sh_stops_a_stage_at_its_limit_and_goes_on(tmp_path: Path) -> None:
    done, summary, out = _check(tmp_path, TESTS_TIMEOUT="1", PYTEST_SLEEP="30")
    assert summary[2].startswith("tests: TIMED OUT (exit 124,")
    assert summary[3].startswith("bench: FAILED") and summary[-1] == "failed stages: tests bench"
    # The whole stage was stopped (the sleeping "pytest" too, or the run would last its 30 s).
    assert int(summary[-2].split("total: ")[1].split(" s")[0]) < 15


def test_check_sh_links_the_working_tree_as_the_installed_package(tmp_path: Path) -> None:
    _check(tmp_path)
    site = tmp_path / "site"
    for name, target in (("envs", "envs"), ("conf", "conf"), ("core", "rlsuite/core"),
                         ("__init__.py", "rlsuite/__init__.py")):
        assert (site / "rlsuite" / name).resolve() == ROOT / target
    # The tree imports from there, with the current directory (this repository) off sys.path.
    probe = ("import rlsuite.envs, rlsuite.conf.env as c; from pathlib import Path; "
             "print(rlsuite.envs.__file__, Path(rlsuite.envs.__file__).resolve(), c.__path__[0])")
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONSAFEPATH": "1"}
    printed = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, check=True,
                             capture_output=True, text=True).stdout.split()
    assert printed == [str(site / "rlsuite" / "envs" / "__init__.py"),
                       str(ROOT / "envs" / "__init__.py"), str(site / "rlsuite" / "conf" / "env")]


@pytest.mark.parametrize("site", ["/", str(ROOT), str(ROOT / "rlsuite")])
def test_check_sh_refuses_a_site_it_would_wipe(tmp_path: Path, site: str) -> None:
    env = {**os.environ, "SITE": site, "OUT": str(tmp_path / "out")}
    done = subprocess.run(["bash", str(CHECK)], env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode == 2 and f"SITE={site}: must be a scratch folder" in done.stderr
    assert not (tmp_path / "out").exists()
