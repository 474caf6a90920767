"""Wall-clock time to solve, rlsuite's learners against stable-baselines3's, side by side.

PPO on CartPole: time until a greedy evaluation reaches a mean return of 475. Ours runs 64
batched CartPoles on the engine. SB3 runs RL Zoo's tuned CartPole-v1 hyperparameters (the
comparison; the table lives in scripts/benchmark_peers.py) and, as a second, labelled row, its
defaults (8 x DummyVecEnv of gymnasium's CartPole-v1); all with 64x64 tanh actor and critic.
Ours is evaluated greedily after every iteration (64 parallel episodes, every 8192 env steps),
SB3 at the end of the first rollout past every 8192 env steps (10 episodes, its EvalCallback
default); evaluation time is reported separately. SAC on Pendulum likewise: RL Zoo's
Pendulum-v1 hyperparameters, then SB3's defaults with 64x64 networks. One intra-op thread for
all (``docs/performance.md``: two threads on this shared machine were 7x slower).

    .venv/bin/python scripts/benchmark_learners.py [--seeds 0 1 2] [--cap 240]

The wider comparison (gymnax, EnvPool, SBX, a PureJaxRL-style PPO, one subprocess per contender)
is scripts/benchmark_peers.py.

Writes results/learners.md, results/learners.json and results/learners_ppo_cartpole.png.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from rlsuite.benchmark import busy_with_other_work

RESULTS = Path(__file__).resolve().parent.parent / "results"
THRESHOLD = 475.0
SB3_EVAL_EVERY = 8192
"""Env steps between SB3's evaluations (one rlsuite iteration: 64 envs x 128 steps)."""


def _zoo_tables():
    """RL Zoo's hyperparameter tables and ``zoo_kwargs`` from scripts/benchmark_peers.py."""
    path = Path(__file__).resolve().parent / "benchmark_peers.py"
    spec = importlib.util.spec_from_file_location("benchmark_peers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train_with_evals(agent, env, eval_copies: int, threshold: float, every: int, budget: int,
                      cap_s: float) -> dict:
    """Train ``agent`` with a greedy evaluation over ``eval_copies`` parallel episodes after every
    ``every`` env steps (0: after every iteration), until ``threshold``, ``budget`` or ``cap_s``."""
    from rlsuite.engine.evaluate import evaluate
    from rlsuite.training import TrainingHooks

    eval_params = env.default_params(eval_copies)
    curve: list[tuple[int, float, float]] = []
    clock = {"start": time.perf_counter(), "eval": 0.0, "next": every}

    class Stop(Exception):
        pass

    class EvalHook(TrainingHooks):
        def on_iteration(self, agent, step, metrics):
            if step < clock["next"]:
                return
            clock["next"] += every
            tic = time.perf_counter()
            greedy = getattr(agent, "greedy_policy", None)  # fused evaluation where there is one
            policy = greedy() if greedy else lambda o: agent.act(o, deterministic=True)
            score = float(evaluate(policy, env, eval_params, 1,
                                   env.make_generator(10_000 + step)).mean_return.mean())
            clock["eval"] += time.perf_counter() - tic
            wall = time.perf_counter() - clock["start"]
            curve.append((step, wall, score))
            if score >= threshold or wall > cap_s:
                raise Stop

    try:
        agent.learn(budget, EvalHook())
    except Stop:
        pass
    return _summary(curve, clock["eval"], threshold)


def ours_ppo(seed: int, cap_s: float) -> dict:
    """Train rlsuite's PPO until a greedy eval over 64 episodes reaches the threshold."""
    import rlsuite.envs as envs
    from rlsuite.learners.ppo import PPO, PPOConfig

    env = envs.make("cartpole")
    agent = PPO(PPOConfig(), env, env.default_params(64), seed=seed)
    return _train_with_evals(agent, env, 64, THRESHOLD, 0, 2_000_000, cap_s)


def sb3_ppo(seed: int, cap_s: float, zoo: bool = True) -> dict:
    """SB3 PPO with RL Zoo's CartPole-v1 hyperparameters (``zoo``) or SB3's defaults, evaluated
    at the end of the first rollout past every 8192 env steps."""
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    peers = _zoo_tables()
    kwargs = peers.zoo_kwargs(peers.ZOO_PPO_CARTPOLE) if zoo else {}
    # The zoo's schedules anneal over its own budget (n_timesteps), so it trains for that long.
    budget = peers.ZOO_PPO_CARTPOLE["n_timesteps"] if zoo else 2_000_000
    env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
    eval_env = Monitor(gym.make("CartPole-v1"))
    model = PPO("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)
    curve: list[tuple[int, float, float]] = []
    clock = {"start": time.perf_counter(), "eval": 0.0, "next": SB3_EVAL_EVERY}

    class EvalEveryRollout(BaseCallback):
        def _on_step(self) -> bool:
            return not getattr(self.model, "_stop", False)  # False stops SB3's learn()

        def _on_rollout_end(self) -> None:
            if self.num_timesteps < clock["next"]:
                return
            clock["next"] += SB3_EVAL_EVERY
            tic = time.perf_counter()
            mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=10, deterministic=True)
            clock["eval"] += time.perf_counter() - tic
            wall = time.perf_counter() - clock["start"]
            curve.append((self.num_timesteps, wall, float(mean)))
            if mean >= THRESHOLD or wall > cap_s:
                self.model._stop = True

    model.learn(budget, callback=EvalEveryRollout())
    return _summary(curve, clock["eval"])


SAC_THRESHOLD = -200.0
SAC_EVAL_EVERY = 1000
SAC_BUDGET = 20_000


def ours_sac(seed: int, cap_s: float) -> dict:
    """rlsuite's SAC with the ``pendulum_sac`` preset (4 envs, utd 0.5, 64x64), evaluated greedily
    over 16 parallel episodes every 1000 env steps, until the threshold or the sample budget."""
    import rlsuite.envs as envs
    from rlsuite.learners.sac import SAC, SACConfig

    env = envs.make("pendulum")
    config = SACConfig(hidden_sizes=[64, 64], learning_rate=1e-3, learning_starts=1000, utd=0.5)
    agent = SAC(config, env, env.default_params(4), seed=seed)
    return _train_with_evals(agent, env, 16, SAC_THRESHOLD, SAC_EVAL_EVERY, SAC_BUDGET, cap_s)


def sb3_sac(seed: int, cap_s: float, zoo: bool = True) -> dict:
    """SB3 SAC on gymnasium's Pendulum-v1 with RL Zoo's Pendulum-v1 hyperparameters (``zoo``: lr
    1e-3, otherwise SB3's defaults, 256x256) or SB3's defaults with the same 64x64 networks as
    ours, evaluated greedily over 10 episodes every 1000 env steps."""
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    peers = _zoo_tables()
    kwargs = (peers.zoo_kwargs(peers.ZOO_SAC_PENDULUM) if zoo
              else {"policy_kwargs": {"net_arch": [64, 64]}})
    model = SAC("MlpPolicy", gym.make("Pendulum-v1"), seed=seed, device="cpu", verbose=0, **kwargs)
    eval_env = Monitor(gym.make("Pendulum-v1"))
    curve: list[tuple[int, float, float]] = []
    clock = {"start": time.perf_counter(), "eval": 0.0}

    class EvalEvery(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % SAC_EVAL_EVERY:
                return True
            tic = time.perf_counter()
            mean, _ = evaluate_policy(self.model, eval_env, n_eval_episodes=10, deterministic=True)
            clock["eval"] += time.perf_counter() - tic
            wall = time.perf_counter() - clock["start"]
            curve.append((self.num_timesteps, wall, float(mean)))
            return not (mean >= SAC_THRESHOLD or wall > cap_s)

    model.learn(SAC_BUDGET, callback=EvalEvery())
    return _summary(curve, clock["eval"], SAC_THRESHOLD)


def _summary(curve: list[tuple[int, float, float]], eval_s: float,
             threshold: float = THRESHOLD) -> dict:
    solved = [c for c in curve if c[2] >= threshold]
    first = solved[0] if solved else None
    return {
        "solved": first is not None,
        "steps": first[0] if first else None,
        "wall_s": first[1] if first else None,
        "wall_excl_eval_s": (first[1] - eval_s) if first else None,
        "curve": curve,
    }


def _median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r["solved"]]
    return statistics.median(values) if len(values) == len(runs) else None


def _cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the architecture where that is missing)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _plot(results: dict, names: tuple[str, ...], threshold: float, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, color in zip(names, ("tab:blue", "tab:orange", "tab:green"), strict=False):
        for i, run in enumerate(results[name]):
            if not run["curve"]:
                continue
            steps, wall, score = zip(*run["curve"], strict=False)
            label = name if i == 0 else None
            axes[0].plot(wall, score, color=color, alpha=0.8, label=label)
            axes[1].plot(steps, score, color=color, alpha=0.8, label=label)
    for ax, xlabel in zip(axes, ("wall-clock seconds (incl. eval)", "env steps"), strict=False):
        ax.axhline(threshold, color="grey", ls="--", lw=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("greedy eval return")
        ax.legend()
    axes[0].set_xscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _table(results: dict, names: tuple[str, ...]) -> tuple[str, str]:
    """Markdown rows per learner and the median wall-clock speed-up of the first over the second
    (the comparison; further rows are context)."""
    rows = []
    for name in names:
        runs = results[name]
        per_seed = ", ".join(f"{r['wall_s']:.1f}" if r["solved"] else "not solved" for r in runs)
        med = _median(runs, "wall_s")
        med_x = _median(runs, "wall_excl_eval_s")
        med_steps = _median(runs, "steps")
        rows.append(f"| {name} | {per_seed} | {med:.1f} | {med_x:.1f} | {med_steps:,.0f} |"
                    if med is not None else f"| {name} | {per_seed} | - | - | - |")
    ours, theirs = (_median(results[n], "wall_s") for n in names[:2])
    ratio = f"{theirs / ours:.1f}x" if ours and theirs else "n/a (a run did not solve)"
    return "\n".join(rows), ratio


HEADER = ("| learner | wall s per seed (incl. eval) | median wall s | median wall s excl. eval "
          "| median env steps |\n| --- | --- | --- | --- | --- |")
PPO_NAMES = ("rlsuite PPO", "SB3 PPO (RL Zoo hyperparameters)", "SB3 PPO (SB3 defaults)")
SAC_NAMES = ("rlsuite SAC", "SB3 SAC (RL Zoo hyperparameters)", "SB3 SAC (SB3 defaults, 64x64)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--cap", type=float, default=240.0, help="seconds per run before giving up")
    parser.add_argument("--skip-sac", action="store_true", help="PPO only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    runners = dict(zip(PPO_NAMES, (ours_ppo, sb3_ppo, lambda s, c: sb3_ppo(s, c, zoo=False)),
                       strict=True))
    if not args.skip_sac:
        runners |= dict(zip(SAC_NAMES, (ours_sac, sb3_sac, lambda s, c: sb3_sac(s, c, zoo=False)),
                            strict=True))
    results: dict[str, list[dict]] = {name: [] for name in runners}
    for seed in args.seeds:  # interleaved, so each learner sees the same machine load
        for name, runner in runners.items():
            results[name].append(runner(seed, args.cap))
            r = results[name][-1]
            print(f"seed {seed} {name}: steps {r['steps']} wall {r['wall_s']}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "learners.json").write_text(json.dumps(results, indent=1))
    _plot(results, PPO_NAMES, THRESHOLD, "PPO on CartPole: rlsuite (64 batched envs) vs SB3, 1 thread",
          RESULTS / "learners_ppo_cartpole.png")
    ppo_rows, ppo_ratio = _table(results, PPO_NAMES)
    seeds = " ".join(map(str, args.seeds)) + f" --cap {args.cap:g}" + (" --skip-sac" if args.skip_sac else "")
    loadavg = os.getloadavg()
    load = ", ".join(f"{x:.2f}" for x in loadavg)
    # The learners ran in this one-thread process: its own share of the load is not other work.
    busy = (" **The machine was busy with other work (load above half its CPUs besides this "
            "benchmark): these numbers are provisional.**"
            if busy_with_other_work([(loadavg[0], 1)], os.cpu_count() or 1) else "")
    text = f"""# Learners against stable-baselines3

Command: `.venv/bin/python scripts/benchmark_learners.py --seeds {seeds}`
Machine: {_cpu_model()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, 1 intra-op thread;
load average at the end (1, 5, 15 min): {load}.{busy} The learners run one after the other for
each seed, so all see the same load.

The comparison is SB3 with RL Zoo's tuned hyperparameters; SB3's defaults are a second row, for
context. The wider comparison (gymnax, EnvPool, SBX, a PureJaxRL-style PPO, each contender in its
own subprocess) is `scripts/benchmark_peers.py` -> `benchmarks_peers.md`.

## PPO on CartPole, wall-clock to a greedy evaluation return >= {THRESHOLD:.0f}

{HEADER}
{ppo_rows}

Median speed-up of rlsuite's PPO over SB3 with RL Zoo's hyperparameters (wall-clock incl. eval):
**{ppo_ratio}** (issue 17's target: rlsuite <= 0.25x SB3 RL Zoo's time, i.e. >= 4x).

rlsuite: 64 batched CartPoles, T=128, 4 epochs x 4 minibatches, lr 1e-3 annealed, 64x64 tanh
actor and critic; greedy eval of 64 parallel episodes after every iteration (8192 env steps).
SB3 RL Zoo: rl-baselines3-zoo's hyperparams/ppo.yml CartPole-v1 (8 envs, n_steps 32, batch 256,
20 epochs, GAE 0.8, gamma 0.98, linear lr 1e-3 and clip 0.2, no entropy bonus, budget 100k steps).
SB3 defaults: `PPO("MlpPolicy")` (8 envs, n_steps 2048, batch 64, 10 epochs, lr 3e-4). Both SB3
rows: 64x64 tanh, greedy eval of 10 episodes at the first rollout end past every 8192 env steps.
Curves: `learners_ppo_cartpole.png`.
"""
    if not args.skip_sac:
        _plot(results, SAC_NAMES, SAC_THRESHOLD, "SAC on Pendulum: rlsuite (4 batched envs) vs SB3, 1 thread",
              RESULTS / "learners_sac_pendulum.png")
        sac_rows, sac_ratio = _table(results, SAC_NAMES)
        text += f"""
## SAC on Pendulum, wall-clock to a greedy evaluation return >= {SAC_THRESHOLD:.0f}

Budget {SAC_BUDGET:,} env steps each; evaluation every {SAC_EVAL_EVERY} env steps.

{HEADER}
{sac_rows}

Median speed-up of rlsuite's SAC over SB3 with RL Zoo's hyperparameters (wall-clock incl. eval):
**{sac_ratio}** (issue 17's target: >= 2x).

rlsuite: the `pendulum_sac` preset (4 batched Pendulums, one gradient step per 2 env steps after
1000 warm-up steps, lr 1e-3, batch 256, 64x64 ReLU); greedy eval of 16 parallel episodes.
SB3 RL Zoo: rl-baselines3-zoo's hyperparams/sac.yml Pendulum-v1 (lr 1e-3; otherwise SB3's
defaults: 1 env, 256x256, one gradient step per env step after 100 steps, batch 256).
SB3 defaults: `SAC("MlpPolicy")` (lr 3e-4) with the same 64x64 networks as rlsuite's preset. Both
SB3 rows: greedy eval of 10 episodes. rlsuite's preset takes 0.5 gradient steps per env step,
SB3 1, which is part of why rlsuite is faster at equal samples. Curves: `learners_sac_pendulum.png`.
"""
    (RESULTS / "learners.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
