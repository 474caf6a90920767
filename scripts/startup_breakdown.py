"""Where a fresh process's start-up goes on PPO's fast path: imports, ISA probes, header, kernels.

Run it in a fresh process after one run that compiled the kernels (run it twice). It constructs
PPO on 64 CartPoles, learns 8192 steps and runs one greedy evaluation, and prints for each phase
the wall seconds, the process's own CPU seconds and its child processes' CPU seconds, and whether
TorchDynamo and TorchInductor were imported. With the kernel store (``rlsuite.core.kernel_store``)
a warm process imports neither; ``RLSUITE_KERNEL_STORE=0`` shows the path through TorchInductor's
own cache. Compare two trees with ``PYTHONPATH=<tree>``::

    .venv/bin/python scripts/startup_breakdown.py
    RLSUITE_KERNEL_STORE=0 .venv/bin/python scripts/startup_breakdown.py
"""

from __future__ import annotations

import functools
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

TOTALS: dict[str, tuple[float, float, float]] = {}


def clock() -> tuple[float, float, float]:
    """(wall, own CPU, children's CPU) seconds."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), time.process_time(), children.ru_utime + children.ru_stime


def add(name: str, start: tuple[float, float, float]) -> None:
    """Add the time since ``start`` to phase ``name``."""
    end, old = clock(), TOTALS.get(name, (0.0, 0.0, 0.0))
    TOTALS[name] = tuple(o + e - s for o, s, e in zip(old, start, end, strict=True))


def time_calls(owner: Any, attr: str, name: str) -> None:
    """Wrap ``owner.attr`` so its outermost calls add to phase ``name``."""
    fn: Callable[..., Any] = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
    depth = [0]

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        depth[0] += 1
        start = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                add(name, start)

    setattr(owner, attr, timed)


def main() -> None:
    """Time the phases and print them."""
    start = clock()
    import torch

    torch.set_num_threads(1)
    add("import torch", start)
    start = clock()
    import rlsuite.envs as envs
    from rlsuite.engine.evaluate import evaluate
    from rlsuite.learners.ppo import PPO, PPOConfig

    add("import rlsuite", start)
    import rlsuite.core.compiled as compiled
    from rlsuite.core import kernel_store

    time_calls(kernel_store, "trace", "kernel store: eager run + op trace (key)")
    time_calls(kernel_store, "load", "kernel store: load the stored module")
    time_calls(compiled, "_matches_eager", "kernel store: check against the eager run")
    time_calls(compiled.CompiledKernel, "_inductor_compile",
               "TorchInductor: import + compile or FX-cache hit")
    time_calls(compiled, "_direct_entry", "rlsuite direct-call check")
    time_calls(compiled.CompiledKernel, "_build", "rlsuite kernel build, total (both kernels)")

    start = clock()
    env = envs.make("cartpole")
    agent = PPO(PPOConfig(fast_path=True), env, env.default_params(64), seed=0)
    agent.learn(8192)
    evaluate(agent.greedy_policy(), env, env.default_params(64), 1, env.make_generator(1))
    add("PPO construct + learn(8192) + evaluate, total", start)

    print(f"{'phase':52s} {'wall':>6s} {'cpu':>6s} {'child cpu':>9s}")
    for name, (wall, cpu, child) in TOTALS.items():
        print(f"{name:52s} {wall:6.3f} {cpu:6.3f} {child:9.3f}")
    print("imported TorchDynamo:", "torch._dynamo" in sys.modules,
          "| TorchInductor:", "torch._inductor" in sys.modules)


if __name__ == "__main__":
    main()
