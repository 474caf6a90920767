"""Env-steps/s of the batched envs against gymnasium and Stable-Baselines3, on this machine.

``scripts/benchmark_envs.py`` is the command line; this module holds the measuring. Method (the
hygiene rules of ``docs/performance.md``, "Benchmark hygiene"):

* one intra-op thread (:func:`rlsuite.core.threads.configure_threads`), recorded with the results;
* actions come from a pool of 8 pre-drawn action batches used in turn, so action sampling is not
  timed;
* each case is warmed up (compiled, where it compiles) and calibrated to a step count that runs
  about ``target_seconds``; then all cases take turns, one timed run each per repeat, so a
  neighbour's load falls on them alike; a case's rate is the median over the repeats, with min
  and max;
* besides env-steps per wall second, env-steps per CPU second of the benchmark thread: a busy
  neighbour slows the wall rate far more than the CPU rate;
* a contention indicator: the CPU time other processes used while the cases ran, in cores
  (``/proc/stat`` busy time minus this process's own time), per case and overall.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from rlsuite.core.threads import configure_threads

ACTION_POOL = 8
"""Pre-drawn action batches, used in turn."""

SIZES = (1, 64, 1024, 16384, 262144)
"""Batch sizes of the full run."""
PER_ENV_CAP = 1024
"""Largest N for gymnasium's SyncVectorEnv and SB3's DummyVecEnv: at ~10 us of Python per
env-step, N = 262144 would take ~3 s per vector step and teach nothing new (they do not scale)."""


# -- contention -------------------------------------------------------------------------------


def _proc_stat_busy() -> float | None:
    """Seconds of CPU time all processes have used (busy jiffies of ``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal (guest time is already in user/nice).
    busy = sum(values[:8]) - values[3] - values[4]
    return busy / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def busy_with_other_work(samples: list[tuple[float, int]], nproc: int) -> bool:
    """Whether other work loaded the machine while a benchmark ran: ``samples`` are
    ``(1-minute load average, processes of the benchmark's own running then)``; the machine was
    busy if, less the benchmark's own processes, the load exceeded half its CPUs at any sample.
    (A one-thread benchmark alone keeps the load average near 1: that is not other work.)"""
    return any(load - own > 0.5 * nproc for load, own in samples)


@dataclass
class LoadMeter:
    """Accumulates the CPU time other processes use while it is running (in cores on average)."""

    other_seconds: float = 0.0
    wall_seconds: float = 0.0
    available: bool = True
    _start: tuple[float | None, float, float] | None = None

    def start(self) -> None:
        """Begin an interval."""
        self._start = (_proc_stat_busy(), _own_cpu(), time.perf_counter())

    def stop(self) -> None:
        """End the interval begun by :meth:`start` and add it up."""
        assert self._start is not None, "stop() without start()"
        busy0, own0, wall0 = self._start
        busy1, own1, wall1 = _proc_stat_busy(), _own_cpu(), time.perf_counter()
        self._start = None
        if busy0 is None or busy1 is None:
            self.available = False
            return
        self.other_seconds += max(0.0, (busy1 - busy0) - (own1 - own0))
        self.wall_seconds += wall1 - wall0

    @property
    def other_cores(self) -> float | None:
        """Average number of cores other processes kept busy (None where ``/proc`` is missing)."""
        if not self.available or self.wall_seconds <= 0:
            return None
        return self.other_seconds / self.wall_seconds


# -- cases ------------------------------------------------------------------------------------


@dataclass
class Case:
    """One thing to time: ``step(i)`` advances ``n_envs`` envs by one step with action ``i % 8``."""

    name: str
    n_envs: int
    step: Callable[[int], Any]
    steps: int = 4
    load: LoadMeter = field(default_factory=LoadMeter)
    runs: list[tuple[float, float]] = field(default_factory=list)
    """(wall seconds, thread CPU seconds) of each timed run of ``steps`` steps."""
    setup_seconds: float = 0.0
    """Construction, warm-up and calibration (compilation included)."""
    sync: Callable[[], None] | None = None
    """Waits for queued device work (``torch.cuda.synchronize`` for a CUDA case; None on CPU),
    called before a run starts its clock and before it stops it: CUDA ops return before they
    have run, so without it a run would time kernel launches, not steps."""

    def run(self, steps: int) -> tuple[float, float]:
        """Step ``steps`` times: ``(wall seconds, CPU seconds of this thread)``."""
        step, sync = self.step, self.sync
        if sync is not None:
            sync()
        wall, cpu = time.perf_counter(), time.thread_time()
        for i in range(steps):
            step(i)
        if sync is not None:
            sync()
        return time.perf_counter() - wall, time.thread_time() - cpu

    def calibrate(self, target_seconds: float) -> None:
        """Warm up, then choose ``steps`` so that one run lasts about ``target_seconds``."""
        self.run(3)
        steps = 1
        while (elapsed := self.run(steps)[0]) < target_seconds / 4:
            steps *= 2
        self.steps = max(1, round(steps * target_seconds / max(elapsed, 1e-9)))

    def timed_run(self) -> None:
        """One timed run, recorded with the neighbours' load during it."""
        self.load.start()
        self.runs.append(self.run(self.steps))
        self.load.stop()

    def summary(self) -> dict[str, Any]:
        """Env-steps/s per wall second (median, min, max), per CPU second, and the context."""
        done = self.steps * self.n_envs
        rates = sorted(done / wall for wall, _ in self.runs)
        cpu_rates = [done / cpu for _, cpu in self.runs if cpu > 0]
        return {
            "case": self.name,
            "n_envs": self.n_envs,
            "median": statistics.median(rates),
            "min": rates[0],
            "max": rates[-1],
            "cpu_median": statistics.median(cpu_rates) if cpu_rates else None,
            "us_per_step": 1e6 * self.n_envs / statistics.median(rates),
            "steps_per_run": self.steps,
            "runs": len(self.runs),
            "other_cores": self.load.other_cores,
            "setup_seconds": self.setup_seconds,
        }


def engine_case(name: str, n: int, compile: bool, seed: int = 0, device: str = "cpu") -> Case:
    """The batched torch env ``name`` (eager, or fused by ``compile=True``) on ``device``; a
    CUDA case synchronises the device around each timed run (:attr:`Case.sync`)."""
    from rlsuite.envs import make

    env = make(name, compile=compile, device=device)
    params = env.default_params(n)
    gen = env.make_generator(seed)
    # The action space samples on the env's device, which needs a generator of that device.
    action_gen = torch.Generator(device=env.device).manual_seed(seed + 1)
    actions = [env.action_space.batched(n).sample(action_gen) for _ in range(ACTION_POOL)]
    box = [env.reset(params, gen)[1]]

    def step(i: int) -> None:
        box[0] = env.step(box[0], actions[i % ACTION_POOL], params, gen).state

    mode = "compiled" if compile else "eager"
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else None
    return Case(f"rlsuite {name} ({mode})", n, step, sync=sync)


def _numpy_actions(n: int, num_actions: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(num_actions, size=n) for _ in range(ACTION_POOL)]


def gymnasium_case(n: int, mode: str, seed: int = 0) -> Case:
    """``gymnasium.make_vec("CartPole-v1", num_envs=n, vectorization_mode=mode)``.

    ``mode="sync"`` is ``SyncVectorEnv`` (one Python env per copy); ``"vector_entry_point"`` is
    gymnasium's own numpy-batched CartPole.
    """
    import gymnasium

    venv = gymnasium.make_vec("CartPole-v1", num_envs=n, vectorization_mode=mode)
    venv.reset(seed=seed)
    actions = _numpy_actions(n, 2, seed + 1)

    def step(i: int) -> None:
        venv.step(actions[i % ACTION_POOL])

    label = "SyncVectorEnv" if mode == "sync" else "numpy-batched (vector_entry_point)"
    return Case(f"gymnasium {label}", n, step)


def sb3_case(n: int, seed: int = 0) -> Case:
    """Stable-Baselines3's ``DummyVecEnv`` over ``n`` ``gymnasium.make("CartPole-v1")``."""
    import gymnasium
    from stable_baselines3.common.vec_env import DummyVecEnv

    venv = DummyVecEnv([lambda: gymnasium.make("CartPole-v1")] * n)
    venv.seed(seed)
    venv.reset()
    actions = _numpy_actions(n, 2, seed + 1)

    def step(i: int) -> None:
        venv.step(actions[i % ACTION_POOL])

    return Case("SB3 DummyVecEnv", n, step)


def cartpole_cases(
    sizes: Sequence[int], per_env_cap: int = PER_ENV_CAP, compiled: bool = True
) -> list[Callable[[], Case]]:
    """Builders of every CartPole case, in table order (built lazily: envs cost memory)."""
    builders: list[Callable[[], Case]] = []
    for n in sizes:
        builders.append(lambda n=n: engine_case("cartpole", n, compile=False))
        if compiled:
            builders.append(lambda n=n: engine_case("cartpole", n, compile=True))
        builders.append(lambda n=n: gymnasium_case(n, "vector_entry_point"))
        if n <= per_env_cap:
            builders.append(lambda n=n: gymnasium_case(n, "sync"))
            builders.append(lambda n=n: sb3_case(n))
    return builders


def run_cases(
    builders: Sequence[Callable[[], Case]],
    repeats: int = 5,
    target_seconds: float = 0.3,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Build, calibrate and time every case; the cases take turns within each repeat."""
    cases = []
    for build in builders:
        start = time.perf_counter()
        case = build()
        case.calibrate(target_seconds)
        case.setup_seconds = time.perf_counter() - start
        cases.append(case)
        if progress:
            progress(f"ready: {case.name}, N={case.n_envs} ({case.setup_seconds:.1f} s)")
    for r in range(repeats):
        for case in cases:
            case.timed_run()
        if progress:
            progress(f"repeat {r + 1}/{repeats} done")
    return [case.summary() for case in cases]


# -- the whole benchmark ----------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    """CPU model, core count, library versions: what the numbers depend on."""
    import gymnasium

    info: dict[str, Any] = {
        "cpu": platform.processor() or platform.machine(),
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "gymnasium": gymnasium.__version__,
    }
    try:
        import stable_baselines3

        info["stable_baselines3"] = stable_baselines3.__version__
    except ImportError:
        info["stable_baselines3"] = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def run_benchmark(
    sizes: Sequence[int] = SIZES,
    repeats: int = 5,
    target_seconds: float = 0.3,
    tabular_sizes: Sequence[int] = (1024, 65536),
    tabular: Callable[[int, int], dict[str, Any]] | None = None,
    compiled: bool = True,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every case and return the results as one JSON-ready dict.

    Args:
        sizes: batch sizes for CartPole.
        repeats: timed runs per case (the rate is their median).
        target_seconds: length of one timed run.
        tabular_sizes: batch sizes for the tabular MDP, measured by ``tabular(n, repeats)``
            (``scripts/bench_tabular.py``'s ``bench_tabular``) when it is given.
        compiled: include the ``compile=True`` CartPole.
        threads: intra-op threads (None: :func:`configure_threads`' default, 1 on CPU).
    """
    threads_used = configure_threads(threads)
    meter = LoadMeter()
    wall = time.perf_counter()
    meter.start()
    rows = run_cases(cartpole_cases(sizes, compiled=compiled), repeats, target_seconds, progress)
    tabular_rows: list[dict[str, Any]] = []
    if tabular is not None:
        for n in tabular_sizes:
            if progress:
                progress(f"tabular N={n}")
            tabular_load = LoadMeter()
            tabular_load.start()
            out = tabular(n, repeats)
            tabular_load.stop()
            for name, r in out["cases"].items():
                tabular_rows.append({
                    "case": f"rlsuite tabular ({name})", "n_envs": n, "median": r["median"],
                    "min": r["min"], "max": r["max"], "cpu_median": r.get("cpu_median"),
                    "us_per_step": 1e6 * n / r["median"], "steps_per_run": r.get("steps"),
                    "runs": repeats, "other_cores": tabular_load.other_cores,
                    "threads": out.get("threads"),
                })
    meter.stop()
    return {
        "machine": machine_info(),
        "threads": threads_used,
        "repeats": repeats,
        "target_seconds": target_seconds,
        "action_pool": ACTION_POOL,
        "per_env_cap": PER_ENV_CAP,
        "other_cores": meter.other_cores,
        "total_seconds": time.perf_counter() - wall,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cartpole": rows,
        "tabular": tabular_rows,
        "tabular_available": tabular is not None,
    }


# -- reporting --------------------------------------------------------------------------------


def _rate(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k"
    return f"{x:.0f}"


def _cores(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


# The targets of the foundation issue for this 2-core machine, one thread.
TARGETS = (
    ("CartPole eager, N = 16384", "cartpole", "rlsuite cartpole (eager)", 16384, "median", 25e6),
    ("CartPole compiled, N = 16384", "cartpole", "rlsuite cartpole (compiled)", 16384, "median",
     35e6),
    ("TabularMDP (S=100, A=4) alias, N = 65536", "tabular", "rlsuite tabular (alias)", 65536,
     "median", 25e6),
)


def _find(rows: list[dict[str, Any]], case: str, n: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["case"] == case and r["n_envs"] == n), None)


def _targets_section(results: dict[str, Any]) -> list[str]:
    """Markdown lines comparing the measured medians with the issue's targets."""
    lines = ["## Targets", "", "| target | required | measured | met |", "|---|---:|---:|---|"]
    for label, group, case, n, key, need in TARGETS:
        row = _find(results.get(group) or [], case, n)
        got = row[key] if row else None
        met = "-" if got is None else ("yes" if got >= need else "**no**")
        lines.append(f"| {label} | >= {_rate(need)} | {_rate(got)} | {met} |")
    fixed = _find(results["cartpole"], "rlsuite cartpole (eager)", 1)
    if fixed:
        ok = "yes" if fixed["us_per_step"] <= 250 else "**no**"
        lines.append(f"| eager fixed cost per step (N = 1) | <= 250 us | "
                     f"{fixed['us_per_step']:.0f} us | {ok} |")
    ours = _find(results["cartpole"], "rlsuite cartpole (eager)", 16384)
    sync = [r for r in results["cartpole"] if r["case"] == "gymnasium SyncVectorEnv"]
    if ours and sync:
        best = max(sync, key=lambda r: r["median"])
        lines.append(
            f"| eager N = 16384 vs gymnasium SyncVectorEnv (its best, N = {best['n_envs']}) | "
            f"~260x | {ours['median'] / best['median']:.0f}x | "
            f"{'yes' if ours['median'] / best['median'] >= 260 else '**no**'} |"
        )
    lines += ["", "CUDA figures: not measured (no GPU was lent to the session that ran this).", ""]
    return lines


def markdown(results: dict[str, Any], command: str) -> str:
    """The results as the markdown page ``results/benchmarks.md``."""
    m = results["machine"]
    lines = [
        "# Env-step throughput",
        "",
        f"Command (from the repository root, after `bash scripts/setup.sh`): `{command}`",
        "",
        f"Measured on {results['date']}.",
        "",
        f"* Machine: {m['cpu']}, {m['logical_cpus']} logical CPUs; torch {m['torch']}, numpy "
        f"{m['numpy']}, gymnasium {m['gymnasium']}, stable-baselines3 {m['stable_baselines3']},"
        f" Python {m['python']}.",
        f"* **{results['threads']} intra-op thread** (`rlsuite.core.threads.configure_threads`).",
        f"* Env-steps/s = N x vector steps / wall seconds; median (min-max) of "
        f"{results['repeats']} timed runs of ~{results['target_seconds']} s per case, the cases "
        "taking turns; \"per CPU s\" divides by the benchmark thread's CPU time instead (less "
        "sensitive to neighbours); us/step is one vector step of all N envs.",
        f"* Random actions from a pool of {results['action_pool']} pre-drawn batches, used in "
        "turn (sampling not timed). Autoreset on; CartPole-v1's 500-step limit on everywhere.",
        f"* gymnasium's SyncVectorEnv and SB3's DummyVecEnv step one Python env per copy "
        f"(~10 us each), so they run up to N = {results['per_env_cap']} only.",
        f"* Contention: other processes kept **{_cores(results['other_cores'])} cores** busy on "
        "average during the run (`/proc/stat` busy time minus this process's; the column "
        "\"other\" gives it per case). With one thread, the benchmark has a core to itself "
        "while that stays at or below (logical CPUs - 1); above, wall rates drop.",
        "",
        *_targets_section(results),
        "## CartPole-v1",
        "",
        "| N | implementation | env-steps/s median | min-max | per CPU s | us/step | other |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results["cartpole"]:
        lines.append(
            f"| {r['n_envs']} | {r['case']} | **{_rate(r['median'])}** | "
            f"{_rate(r['min'])}-{_rate(r['max'])} | {_rate(r['cpu_median'])} | "
            f"{r['us_per_step']:.1f} | {_cores(r['other_cores'])} |"
        )
    lines += ["", "## Tabular MDP (S=100, A=4)", ""]
    if results["tabular"]:
        lines += [
            "Measured by `scripts/bench_tabular.py`'s `bench_tabular` (its docstring describes "
            "the cases; `alias` is the env's sampler).",
            "",
            "| N | case | env-steps/s median | min-max | per CPU s | us/step | other |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for r in results["tabular"]:
            lines.append(
                f"| {r['n_envs']} | {r['case']} | **{_rate(r['median'])}** | "
                f"{_rate(r['min'])}-{_rate(r['max'])} | {_rate(r['cpu_median'])} | "
                f"{r['us_per_step']:.1f} | {_cores(r['other_cores'])} |"
            )
    elif results["tabular_available"]:
        lines.append("(no tabular sizes requested)")
    else:
        lines.append("Not measured: `scripts/bench_tabular.py` (`bench_tabular`) was not found.")
    lines += ["", f"Total run time {results['total_seconds']:.0f} s.", ""]
    return "\n".join(lines)


def write(results: dict[str, Any], command: str, out_dir: str) -> tuple[str, str]:
    """Write ``benchmarks.md`` and ``benchmarks.json`` into ``out_dir``; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    md_path = os.path.join(out_dir, "benchmarks.md")
    json_path = os.path.join(out_dir, "benchmarks.json")
    with open(md_path, "w") as f:
        f.write(markdown(results, command))
    with open(json_path, "w") as f:
        json.dump({"command": command, **results}, f, indent=1)
        f.write("\n")
    return md_path, json_path

