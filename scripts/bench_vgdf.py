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
iteration), ``--repeats`` times after one untimed round; ``steps PRESET WARM MEASURE`` trains
``WARM`` steps, then times ``MEASURE`` more and prints a digest of the final state (equal digests:
equal numbers). The presets' warm-up and DARC warm-up are set to ``WARM // 2`` and evaluation is
off, so the timed part filters (MuJoCo presets need the ``mujoco`` extra).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
from typing import Any

import torch


def build(preset: str, warm: int) -> Any:
    """The preset's agent (seed 0), warm-up at ``warm // 2``, no periodic evaluation."""
    from omegaconf import OmegaConf

    from rlsuite import agents
    from rlsuite.runner import build_env, build_params, compose

    cfg = compose([f"experiment={preset}", "threads=1", f"agent.warmup_steps={warm // 2}",
                   f"agent.darc_warmup={warm // 2}", "agent.eval_every=1000000000"])
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
    parser.add_argument("mode", choices=["save", "update", "steps"])
    parser.add_argument("preset")
    parser.add_argument("warm", type=int)
    parser.add_argument("arg", help="state path (save, update) or steps to time (steps)")
    parser.add_argument("--updates", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    import rlsuite

    agent = build(args.preset, args.warm)
    tree = os.path.dirname(os.path.dirname(rlsuite.__file__))
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


if __name__ == "__main__":
    main()
