"""CPU time of VGDF's gradient update (filter + SAC step) and of whole env steps, one thread.

A speed check for ``docs/performance.md`` (not a result of the agent). Compare two trees by
putting each on ``PYTHONPATH`` in turn, in the same minutes::

    # once: a warm state with the filter active (the same state serves both trees)
    taskset -c 1 .venv/bin/python scripts/bench_vgdf.py save vgdf_pendulum 3000 /tmp/pend.pt
    for r in 1 2 3 4 5 6; do for t in /tmp/old /tmp/new; do
      PYTHONPATH=$t taskset -c 1 .venv/bin/python scripts/bench_vgdf.py update vgdf_pendulum \\
          3000 /tmp/pend.pt --updates 100 --repeats 4
    done; done

``save PRESET WARM PATH`` trains ``WARM`` source steps and saves the agent; ``update PRESET WARM
PATH`` loads it and times ``--updates`` calls of the update (diagnostics on the last, as once per
iteration), ``--repeats`` times after one untimed round; ``fastpath PRESET WARM PATH`` loads it
into two agents, ``agent.sac.fast_path`` on and off, and times them in turns (``--repeats`` rounds
after an untimed one that compiles or loads the kernels): the SAC step alone
(:func:`rlsuite.agents.vgdf.update.vgdf_update` via ``update_on``, on ``--updates`` batches drawn
once from the saved state with the filter's weights, the same for both) and the whole update
(sampling, filter, SAC step); ``steps PRESET WARM MEASURE`` trains
``WARM`` steps, then times ``MEASURE`` more and prints a digest of the final state (equal digests:
equal numbers). The presets' warm-up and DARC warm-up are set to ``WARM // 2`` and evaluation is
off, so the timed part filters (MuJoCo presets need the ``mujoco`` extra). The fast path against
the eager update (``docs/performance.md``)::

    taskset -c 1 .venv/bin/python scripts/bench_vgdf.py save vgdf_pendulum 3000 /tmp/pend.pt
    taskset -c 1 .venv/bin/python scripts/bench_vgdf.py fastpath vgdf_pendulum 3000 /tmp/pend.pt \
        --updates 100 --repeats 7
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import statistics
import time
from typing import Any

import torch


def build(preset: str, warm: int, *overrides: str) -> Any:
    """The preset's agent (seed 0), warm-up at ``warm // 2``, no periodic evaluation; further
    Hydra ``overrides`` (``agent.sac.fast_path=false``)."""
    from omegaconf import OmegaConf

    from rlsuite import agents
    from rlsuite.runner import build_env, build_params, compose

    cfg = compose([f"experiment={preset}", "threads=1", f"agent.warmup_steps={warm // 2}",
                   f"agent.darc_warmup={warm // 2}", "agent.eval_every=1000000000", *overrides])
    env = build_env(cfg.env, torch.device("cpu"))
    params = build_params(env, cfg.env, cfg.num_envs)
    spec = agents.get(cfg.agent.name)
    return spec.build(spec.config_cls(**OmegaConf.to_container(cfg.agent, resolve=True)), env,
                      params, 0)


def digest(agent: Any) -> str:
    """SHA-256 (16 hex digits) of the agent's state without the replay buffers."""
    h = hashlib.sha256()

    def feed(obj: Any) -> None:
        if isinstance(obj, dict):
            for k in sorted(obj, key=repr):
                h.update(repr(k).encode())
                feed(obj[k])
        elif isinstance(obj, list | tuple):
            for v in obj:
                feed(v)
        elif isinstance(obj, torch.Tensor):
            t = obj.detach().contiguous().cpu()
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(repr(obj).encode())

    state = agent.state_dict()
    state.pop("src_buffer"), state.pop("tar_buffer")
    feed(state)
    return h.hexdigest()[:16]


def main() -> None:
    """Parse the command line and run one measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["save", "update", "fastpath", "steps"])
    parser.add_argument("preset")
    parser.add_argument("warm", type=int)
    parser.add_argument("arg", help="state path (save, update) or steps to time (steps)")
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import rlsuite

    tree = os.path.dirname(os.path.dirname(rlsuite.__file__))
    if args.mode == "fastpath":
        fastpath(args.preset, args.warm, args.arg, args.updates, args.repeats)
        return
    agent = build(args.preset, args.warm)
    if args.mode == "save":
        agent.learn(args.warm)
        torch.save(agent.state_dict(), args.arg)
    elif args.mode == "update":
        agent.load_state_dict(torch.load(args.arg, weights_only=True))
        if not agent._filter_active():
            raise SystemExit(f"the saved state does not filter yet: save it later than {args.warm}")
        times = []
        for r in range(args.repeats + 1):
            t = time.process_time()
            for i in range(args.updates):
                agent._update(i == args.updates - 1)
            if r:
                times.append((time.process_time() - t) / args.updates * 1e3)
        print(f"{tree} {args.preset} CPU ms per update: min {min(times):.3f} median "
              f"{statistics.median(times):.3f} (load {os.getloadavg()[0]:.2f})")
    else:
        measure = int(args.arg)
        agent.learn(args.warm)
        t = time.process_time()
        agent.learn(args.warm + measure)
        cpu = time.process_time() - t
        print(f"{tree} {args.preset} CPU ms per env step {1e3 * cpu / measure:.3f} (load "
              f"{os.getloadavg()[0]:.2f}) digest {digest(agent)}")


def fastpath(preset: str, warm: int, path: str, updates: int, repeats: int) -> None:
    """Print CPU ms per SAC step and per whole update, eager and fast path, medians over the
    ``repeats`` interleaved rounds (see the module docstring)."""
    state = torch.load(path, weights_only=True)
    agents = {}
    for fast in (False, True):
        agents[fast] = build(preset, warm, f"agent.sac.fast_path={str(fast).lower()}")
        agents[fast].load_state_dict(copy.deepcopy(state))  # Adam would step a shared copy
    if not agents[False]._filter_active():
        raise SystemExit(f"the saved state does not filter yet: save it later than {warm}")
    batches = [agents[False].sample_batch()[:2] for _ in range(updates)]
    times: dict[tuple[str, bool], list[float]] = {}
    for r in range(repeats + 1):
        for fast, agent in agents.items():
            t = time.process_time()
            for batch, weight in batches:
                agent.update_on(batch, weight)
            sac = (time.process_time() - t) / updates * 1e3
            t = time.process_time()
            for i in range(updates):
                agent._update(i == updates - 1)
            whole = (time.process_time() - t) / updates * 1e3
            if r:  # the first round compiles (or loads) the kernels
                times.setdefault(("sac step", fast), []).append(sac)
                times.setdefault(("whole update", fast), []).append(whole)
    for what in ("sac step", "whole update"):
        eager, fast_ms = (statistics.median(times[what, f]) for f in (False, True))
        print(f"{preset} {what}: eager {eager:.2f} ms, fast {fast_ms:.2f} ms ({eager / fast_ms:.2f}x; "
              f"rounds eager {[round(x, 2) for x in times[what, False]]}, fast "
              f"{[round(x, 2) for x in times[what, True]]}; load {os.getloadavg()[0]:.2f})", flush=True)


if __name__ == "__main__":
    main()
