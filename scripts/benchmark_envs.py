"""Env-steps/s of the batched CartPole (eager and compiled) against gymnasium and SB3.

Usage::

    python scripts/benchmark_envs.py            # full run (a few minutes): results/benchmarks.*
    python scripts/benchmark_envs.py --quick    # smoke run (~30 s): runs/benchmarks-quick/

The measuring lives in :mod:`rlsuite.benchmark`; its docstring gives the method. The tabular MDP
rows come from ``scripts/bench_tabular.py`` (``bench_tabular``) when that script is present.
"""

from __future__ import annotations

import argparse
import importlib.util
import shlex
import sys
from pathlib import Path

from rlsuite import benchmark

ROOT = Path(__file__).resolve().parent.parent


def _tabular_hook():
    """``bench_tabular(n_envs, repeats) -> dict`` from scripts/bench_tabular.py, or None."""
    path = ROOT / "scripts" / "bench_tabular.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("bench_tabular", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, "bench_tabular", None)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 3 short repeats")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per case (5)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="CartPole batch sizes")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled CartPole")
    parser.add_argument("--no-tabular", action="store_true", help="skip the tabular MDP")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (1)")
    parser.add_argument("--out-dir", default=None, help="where benchmarks.md/.json go")
    args = parser.parse_args(argv)

    if args.quick:
        sizes, repeats, seconds, tabular_sizes = [1, 1024, 16384], 3, 0.1, [1024]
        out_dir = ROOT / "runs" / "benchmarks-quick"
    else:
        sizes, repeats, seconds, tabular_sizes = list(benchmark.SIZES), 5, 0.3, [1024, 65536]
        out_dir = ROOT / "results"
    sizes = args.sizes or sizes
    repeats = args.repeats or repeats
    out_dir = Path(args.out_dir) if args.out_dir else out_dir
    tabular = None if args.no_tabular else _tabular_hook()
    if tabular is None and not args.no_tabular:
        print("note: scripts/bench_tabular.py (bench_tabular) not found; no tabular rows")

    results = benchmark.run_benchmark(
        sizes=sizes, repeats=repeats, target_seconds=seconds, tabular_sizes=tabular_sizes,
        tabular=tabular, compiled=not args.no_compile, threads=args.threads,
        progress=lambda msg: print(msg, flush=True),
    )
    command = shlex.join([".venv/bin/python", "scripts/benchmark_envs.py", *argv])
    md_path, json_path = benchmark.write(results, command, str(out_dir))
    print(benchmark.markdown(results, command))
    print(f"wrote {md_path} and {json_path}")


if __name__ == "__main__":
    main(sys.argv[1:])
