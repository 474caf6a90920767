"""Env-steps/s of rlsuite's CartPole and Pendulum and PPO's iteration time on one device.

Usage (from the repository root)::

    python3 scripts/gpu/bench.py --device cuda --out-dir runs/gpu-check   # scripts/gpu/check.sh
    python3 scripts/gpu/bench.py --device cpu --quick --out-dir /tmp/gpu-bench   # smoke, seconds

Writes ``benchmarks_gpu.json`` and ``benchmarks_gpu.md`` into ``--out-dir``, rewritten after
every section, so a run stopped by a time limit keeps what it measured.

The env cases are :func:`rlsuite.benchmark.engine_case` timed by
:func:`rlsuite.benchmark.run_cases` (the method of ``docs/performance.md``, "Benchmark hygiene"):
actions from a pool of pre-drawn batches on the device, each case warmed up (compiled, with
``compile=True``) and calibrated to ``--seconds`` per run, the cases of a section taking turns,
the median over ``--repeats`` runs; on CUDA every timed run is bracketed by
``torch.cuda.synchronize()``. A section is one env in one mode (eager, compiled) over all sizes.
PPO is ``PPO.learn`` on CartPole with the default :class:`~rlsuite.learners.ppo.PPOConfig`
(``--quick``: the eager path, ``fast_path=False``, so nothing compiles), timed per iteration
after ``--ppo-warmup`` iterations (which compile the fast path's kernels).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch

from rlsuite import benchmark
from rlsuite.core.threads import configure_threads
from rlsuite.training import TrainingHooks

SIZES = (1024, 16384, 262144, 1048576)
"""Batch sizes N of the env cases."""
ENVS = ("cartpole", "pendulum")
PPO_ENVS = (64, 4096)
"""Copies of the PPO runs: the 64 of ``results/learners.md``, and a batch a GPU can fill."""
QUICK = {"sizes": [64, 256], "repeats": 2, "seconds": 0.02, "compile": False, "ppo_envs": [4],
         "ppo_iterations": 2, "ppo_warmup": 1, "ppo_overrides": {"fast_path": False}}
"""What ``--quick`` sets: a smoke run of a few seconds on a CPU."""


def _sync(device: torch.device) -> Callable[[], None] | None:
    return torch.cuda.synchronize if device.type == "cuda" else None


def device_info(device: torch.device) -> dict[str, Any]:
    """What the numbers depend on: the device, torch and its CUDA build, the host."""
    info = benchmark.machine_info()
    info["device"] = str(device)
    info["cuda_build"] = torch.version.cuda
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["device_name"] = props.name
        info["device_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["capability"] = f"{props.major}.{props.minor}"
    else:
        info["device_name"] = info["cpu"]
    return info


def env_section(env: str, compile: bool, sizes: list[int], device: torch.device, repeats: int,
                seconds: float, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """Env-steps/s of ``env`` (eager or compiled) at every size, the sizes taking turns."""
    builders = [lambda n=n: benchmark.engine_case(env, n, compile, device=str(device))
                for n in sizes]
    rows = benchmark.run_cases(builders, repeats, seconds, progress)
    for row in rows:
        row.update(env=env, mode="compiled" if compile else "eager")
    return rows


class IterationClock(TrainingHooks):
    """Records the wall time at the end of each iteration (after ``sync``) and the last metrics."""

    def __init__(self, sync: Callable[[], None] | None) -> None:
        self.sync = sync
        self.stamps: list[float] = []
        self.metrics: dict[str, float] = {}

    def on_iteration(self, agent: Any, step: int, metrics: dict[str, float]) -> None:
        """Stamp the end of an iteration."""
        if self.sync is not None:
            self.sync()
        self.stamps.append(time.perf_counter())
        self.metrics = dict(metrics)


def ppo_section(n_envs: int, iterations: int, warmup: int, overrides: dict[str, Any],
                device: torch.device, seed: int = 0) -> dict[str, Any]:
    """``PPO.learn`` on ``device``'s CartPole for ``warmup + iterations`` iterations; the
    timed iterations are the last ``iterations``."""
    import rlsuite.envs as envs
    from rlsuite.learners.ppo import PPO, PPOConfig

    config = PPOConfig(**overrides)
    env = envs.make("cartpole", device=str(device))
    agent = PPO(config, env, env.default_params(n_envs), seed)
    per_iteration = n_envs * config.num_steps
    clock = IterationClock(_sync(device))
    start = time.perf_counter()
    agent.learn((warmup + iterations) * per_iteration, clock)
    stamps = [start, *clock.stamps]
    times = [b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1:], strict=False)]
    total = sum(times)
    return {
        "n_envs": n_envs, "num_steps": config.num_steps, "env_steps_per_iteration": per_iteration,
        "overrides": overrides, "warmup_iterations": warmup,
        "warmup_seconds": stamps[warmup] - start, "iterations": len(times),
        "seconds_total": total, "seconds_median": statistics.median(times),
        "seconds_min": min(times), "seconds_max": max(times),
        "env_steps_per_second": per_iteration * len(times) / total,
        "ep_rew_mean": clock.metrics.get("rollout/ep_rew_mean"),
    }


def markdown(results: dict[str, Any]) -> str:
    """The results as a markdown page (what ``results/benchmarks_gpu.md`` holds once measured)."""
    m, s = results["machine"], results["settings"]
    cuda = results["device"].startswith("cuda")
    lines = [
        f"# Env-step and PPO throughput on {m['device_name']}",
        "",
        f"Command (from the repository root): `{results['command']}`",
        "",
        f"Measured on {results['date']}; {results['total_seconds']:.0f} s in all.",
        "",
        f"* Device: {m['device_name']} (`{m['device']}`"
        + (f", {m['device_memory_gib']} GiB, compute capability {m['capability']}" if cuda else "")
        + f"); torch {m['torch']} (CUDA build {m['cuda_build']}), Python {m['python']}; host "
        f"CPU {m['cpu']}, {m['logical_cpus']} logical CPUs, {results['threads']} intra-op "
        "thread(s).",
        f"* Env-steps/s = N x vector steps / wall seconds; median (min-max) of {s['repeats']} "
        f"timed runs of ~{s['seconds']} s per case, the sizes of a section taking turns"
        + ("; each run bracketed by `torch.cuda.synchronize()`." if cuda else "."),
        f"* Random actions from a pool of {benchmark.ACTION_POOL} pre-drawn batches on the "
        "device (sampling not timed); autoreset on, each env's default time limit. \"setup s\": "
        "building the env, warm-up and calibration"
        + (", compilation included (`compile=True`)." if s["compile"] else "."),
        "",
        "## Env steps",
        "",
    ]
    if results["envs"]:
        lines += ["| env | N | mode | env-steps/s median | min-max | us/step | setup s |",
                  "|---|---:|---|---:|---:|---:|---:|"]
        order = {env: i for i, env in enumerate(ENVS)}
        rows = sorted(results["envs"], key=lambda r: (order[r["env"]], r["mode"] == "compiled",
                                                      r["n_envs"]))
        for r in rows:
            lines.append(
                f"| {r['env']} | {r['n_envs']} | {r['mode']} | **{benchmark._rate(r['median'])}** "
                f"| {benchmark._rate(r['min'])}-{benchmark._rate(r['max'])} | "
                f"{r['us_per_step']:.1f} | {r['setup_seconds']:.1f} |")
    else:
        lines.append("(none measured)")
    lines += ["", "## PPO on CartPole", ""]
    if results["ppo"]:
        over = results["ppo"][0]["overrides"]
        config = "the default `PPOConfig`" + (f" except {over}" if over else "")
        lines += [
            f"`PPO.learn` with {config} ({results['ppo'][0]['num_steps']}-step rollouts), "
            "seed 0. Iteration times run from the end of one iteration's logging to the end of "
            "the next" + (" (`torch.cuda.synchronize()` before each reading)" if cuda else "")
            + "; the warm-up iterations come first"
            + (" (they compile the fast path's kernels)." if over.get("fast_path", True)
               else "."),
            "",
            "| copies N | env steps / iteration | warm-up s (iterations) | s / iteration median "
            "(min-max) | timed iterations | env-steps/s | last ep_rew_mean |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results["ppo"]:
            rew = "-" if r["ep_rew_mean"] is None else f"{r['ep_rew_mean']:.1f}"
            lines.append(
                f"| {r['n_envs']} | {r['env_steps_per_iteration']} | {r['warmup_seconds']:.1f} "
                f"({r['warmup_iterations']}) | **{r['seconds_median']:.3f}** "
                f"({r['seconds_min']:.3f}-{r['seconds_max']:.3f}) | {r['iterations']} | "
                f"{benchmark._rate(r['env_steps_per_second'])} | {rew} |")
    else:
        lines.append("(none measured)")
    if results["not_measured"]:
        lines += ["", "## Not measured", ""]
        lines += [f"* {r['section']}: {r['reason']}" for r in results["not_measured"]]
    lines.append("")
    return "\n".join(lines)


def write(results: dict[str, Any], out_dir: str) -> tuple[str, str]:
    """Write ``benchmarks_gpu.json`` and ``benchmarks_gpu.md`` into ``out_dir``."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.join(out_dir, "benchmarks_gpu.json")
    md_path = os.path.join(out_dir, "benchmarks_gpu.md")
    with open(json_path, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    with open(md_path, "w") as f:
        f.write(markdown(results))
    return json_path, md_path


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line; bad values are refused naming the option."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cuda)")
    parser.add_argument("--out-dir", default="runs/gpu-bench", help="where the files go")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--sizes", type=int, nargs="+", help=f"env batch sizes {SIZES}")
    parser.add_argument("--envs", nargs="+", choices=ENVS, default=list(ENVS))
    parser.add_argument("--repeats", type=int, help="timed runs per case (5)")
    parser.add_argument("--seconds", type=float, help="length of one timed run (0.2)")
    parser.add_argument("--no-compile", action="store_true", help="skip compile=True")
    parser.add_argument("--ppo-envs", type=int, nargs="*", help=f"PPO copies {PPO_ENVS}")
    parser.add_argument("--ppo-iterations", type=int, help="timed PPO iterations (10)")
    parser.add_argument("--ppo-warmup", type=int, help="PPO iterations before timing (2)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds after which no new section starts (none)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads")
    args = parser.parse_args(argv)
    quick = QUICK if args.quick else {}
    args.sizes = args.sizes or quick.get("sizes", list(SIZES))
    args.repeats = args.repeats or quick.get("repeats", 5)
    args.seconds = args.seconds or quick.get("seconds", 0.2)
    args.compile = not args.no_compile and quick.get("compile", True)
    args.ppo_envs = quick.get("ppo_envs", list(PPO_ENVS)) if args.ppo_envs is None else args.ppo_envs
    args.ppo_iterations = args.ppo_iterations or quick.get("ppo_iterations", 10)
    args.ppo_warmup = quick.get("ppo_warmup", 2) if args.ppo_warmup is None else args.ppo_warmup
    args.ppo_overrides = quick.get("ppo_overrides", {})
    for name in ("sizes", "ppo_envs"):
        bad = [v for v in getattr(args, name) if v < 1]
        if bad:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {bad[0]}")
    for name in ("repeats", "seconds", "ppo_iterations"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if args.ppo_warmup < 0:
        parser.error(f"--ppo-warmup must be >= 0, got {args.ppo_warmup}")
    try:
        args.device = torch.device(args.device)
    except RuntimeError as error:
        parser.error(f"--device {args.device!r}: {error}")
    if args.device.type == "cuda" and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available here (torch "
                     f"{torch.__version__}); use --device cpu")
    if args.device.type not in ("cpu", "cuda"):
        parser.error(f"--device {args.device}: must be cpu or cuda[:N]")
    return args


def main(argv: list[str]) -> int:
    """Run the sections in turn; return 1 if any failed (the files list it), else 0."""
    args = parse(argv)
    device = args.device
    if device.type == "cuda":
        torch.cuda.set_device(device)
    threads = configure_threads(args.threads, device=device)
    start = time.perf_counter()
    results: dict[str, Any] = {
        "command": shlex.join(["python3", "scripts/gpu/bench.py", *argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "device": str(device),
        "machine": device_info(device),
        "threads": threads,
        "settings": {k: getattr(args, k) for k in (
            "sizes", "envs", "repeats", "seconds", "compile", "ppo_envs", "ppo_iterations",
            "ppo_warmup", "ppo_overrides", "budget")},
        "envs": [], "ppo": [], "not_measured": [], "total_seconds": 0.0,
    }

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f} s] {message}", flush=True)

    sections: list[tuple[str, Callable[[], None]]] = []
    # Eager sections first, then compiled ones (compilation is the slow part), then PPO: what a
    # short budget leaves out is the most expensive.
    for compile in (False, True) if args.compile else (False,):
        for env in args.envs:
            mode = "compiled" if compile else "eager"
            sections.append((f"{env} ({mode}), N = {args.sizes}", lambda env=env, c=compile:
                             results["envs"].extend(env_section(
                                 env, c, args.sizes, device, args.repeats, args.seconds,
                                 progress))))
    for n in args.ppo_envs:
        sections.append((f"PPO CartPole, N = {n}", lambda n=n: results["ppo"].append(ppo_section(
            n, args.ppo_iterations, args.ppo_warmup, args.ppo_overrides, device))))
    failed = False
    for name, run in sections:
        if args.budget is not None and time.perf_counter() - start > args.budget:
            results["not_measured"].append({"section": name,
                                            "reason": f"skipped: past --budget {args.budget} s"})
            progress(f"skipped (budget): {name}")
        else:
            progress(f"section: {name}")
            try:
                run()
            except Exception as error:  # noqa: BLE001 (recorded; the next section still runs)
                failed = True
                traceback.print_exc()
                reason = f"failed: {type(error).__name__}: {error}".splitlines()[0][:300]
                results["not_measured"].append({"section": name, "reason": reason})
            if device.type == "cuda":
                torch.cuda.empty_cache()
        results["total_seconds"] = time.perf_counter() - start
        write(results, args.out_dir)
    json_path, md_path = write(results, args.out_dir)
    print(markdown(results))
    print(f"wrote {json_path} and {md_path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
