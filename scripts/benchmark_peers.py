"""rlsuite against its peers (gymnasium, EnvPool, gymnax, SB3 with RL Zoo's hyperparameters, SBX,
a PureJaxRL-style PPO), measured in one run on this machine.

Usage (from the repository root, after ``.venv/bin/pip install -e '.[dev,peers]'``)::

    .venv/bin/python scripts/benchmark_peers.py                    # full run, 10-20 min
    .venv/bin/python scripts/benchmark_peers.py --quick            # harness check, ~3 min
    .venv/bin/python scripts/benchmark_peers.py --page-only        # rewrite the page from the JSON

Writes ``results/benchmarks_peers.json`` (``--out``) and the page beside it (``.md``).

Method:

* every contender runs in its own subprocess (``--worker``), so imports and thread settings
  cannot leak between them; the subprocess gets one thread (``OMP_NUM_THREADS=1``, XLA's
  ``--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1``,
  ``torch.set_num_threads(1)``) and is pinned to one core (``taskset``; ``--no-pin`` to skip);
* contenders are interleaved: for each repeat (env stepping) or seed (learning), every contender
  runs once before the next repeat starts, so a neighbour's load falls on all of them alike;
* the machine's load (``os.getloadavg`` before and after, ``nproc``) is recorded with the results;
* a peer that does not install or fails is recorded as skipped, with the reason, and the rest go
  on.

Parts: env-steps/s (random actions from the same pool of 8 pre-drawn batches for every
contender); rollout cost per env step at N = 64 with the 64x64 PPO policy; PPO CartPole and SAC
Pendulum wall-clock to a greedy evaluation threshold (median of the seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = Path(__file__).resolve().parent

# -- RL Zoo's hyperparameters, as data -------------------------------------------------------

ZOO_PPO_CARTPOLE: dict[str, Any] = {
    # rl-baselines3-zoo, hyperparams/ppo.yml, CartPole-v1 ("# Tuned").
    "n_envs": 8,
    "n_timesteps": 100_000,
    "policy": "MlpPolicy",
    "n_steps": 32,
    "batch_size": 256,
    "gae_lambda": 0.8,
    "gamma": 0.98,
    "n_epochs": 20,
    "ent_coef": 0.0,
    "learning_rate": "lin_0.001",
    "clip_range": "lin_0.2",
}
ZOO_SAC_PENDULUM: dict[str, Any] = {
    # rl-baselines3-zoo, hyperparams/sac.yml, Pendulum-v1 (every other field is SB3's default:
    # 1 env, 256x256 networks, batch 256, learning_starts 100, one gradient step per env step).
    "n_timesteps": 20_000,
    "policy": "MlpPolicy",
    "learning_rate": 1e-3,
}
_ZOO_NON_KWARGS = ("n_envs", "n_timesteps", "policy")


def zoo_value(value: Any) -> Any:
    """A zoo hyperparameter as SB3 takes it: ``"lin_X"`` is RL Zoo's linear schedule from X to 0
    (``progress_remaining * X``); anything else passes through."""
    if isinstance(value, str) and value.startswith("lin_"):
        initial = float(value[len("lin_"):])
        return lambda progress_remaining: progress_remaining * initial
    return value


def zoo_kwargs(table: dict[str, Any]) -> dict[str, Any]:
    """Constructor keyword arguments of the SB3 algorithm for a zoo table (schedules built)."""
    return {k: zoo_value(v) for k, v in table.items() if k not in _ZOO_NON_KWARGS}


# -- what is measured -------------------------------------------------------------------------

SIZES = (1, 64, 1024, 16384)
QUICK_SIZES = (64, 16384)
ENVS = {"cartpole": "CartPole-v1", "pendulum": "Pendulum-v1"}
ENV_CONTENDERS = ("rlsuite eager", "rlsuite compiled", "gymnasium numpy", "envpool", "gymnax jit",
                  "gymnax scan")
ROLLOUT_CONTENDERS = ("rlsuite", "gymnax + MLP in lax.scan")
JAX_PPO, JAX_PPO_CACHED = "PureJaxRL-style", "PureJaxRL-style, compilation cache"
RLSUITE_ZOO = "rlsuite (RL Zoo hyperparameters)"
PPO_CONTENDERS = ("rlsuite", RLSUITE_ZOO, "SB3 RL Zoo", JAX_PPO, JAX_PPO_CACHED)
PPO_WARM_UP = ("rlsuite", RLSUITE_ZOO, JAX_PPO_CACHED)
"""Contenders whose compiled code persists across processes (rlsuite's kernel store and
TorchInductor cache, JAX's persistent compilation cache): each runs once, untimed, before the
timed PPO runs, so every timed run starts warm, as a researcher's second run would."""
PPO_WARM_UP_SEED = 1000
SAC_CONTENDERS = ("rlsuite", "SB3 RL Zoo", "SBX RL Zoo")
ACTION_POOL = 8
ROLLOUT_ENVS, ROLLOUT_STEPS = 64, 128

PPO_THRESHOLD, PPO_EVAL_EPISODES = 475.0, 64
PPO_EVAL_EVERY = 64 * 128
"""Env steps between evaluations: one rlsuite / PureJaxRL iteration (64 envs x 128 steps), and
every 32 rollouts of the RL Zoo setting's 8 x 32 (SB3's and rlsuite's), so all four are evaluated
at the same env steps."""
PPO_STEP_CAP = 300_000
"""rlsuite's ``cartpole_ppo`` experiment length (its learning rate anneals over it; PureJaxRL-style
alike). SB3 RL Zoo runs its own budget, ``n_timesteps`` = 100k, over which its schedules anneal
(rlsuite with RL Zoo's hyperparameters alike: its preset's ``total_steps``)."""
SAC_THRESHOLD, SAC_EVAL_EPISODES, SAC_EVAL_EVERY = -200.0, 16, 1000
SAC_STEP_CAP = ZOO_SAC_PENDULUM["n_timesteps"]
WALL_CAP_S = 600.0
"""A learning run that has not solved after this many seconds stops (counted as not solved)."""

XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
JAX_CACHE_DIR = str(Path(tempfile.gettempdir()) / "rlsuite_benchmark_jax_cache")
"""JAX's persistent compilation cache for the cached PureJaxRL-style contender."""


class NotAvailable(Exception):
    """The contender has no implementation of this case (e.g. no numpy-vectorized Pendulum)."""


# == worker side: runs inside the contender's own subprocess ===================================


def _one_thread_torch() -> None:
    import torch

    torch.set_num_threads(1)


def _actions(env: str, n: int, seed: int) -> list[Any]:
    """The pool of pre-drawn random action batches, as numpy arrays (every contender uses it)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if env == "cartpole":
        return [rng.integers(2, size=n).astype(np.int64) for _ in range(ACTION_POOL)]
    return [rng.uniform(-2.0, 2.0, size=(n, 1)).astype(np.float32) for _ in range(ACTION_POOL)]


def _env_rlsuite(env: str, n: int, seed: int, compile: bool) -> tuple[Callable, Callable, int]:
    import torch

    import rlsuite.envs as envs

    _one_thread_torch()
    e = envs.make(env, compile=compile)
    params = e.default_params(n)
    gen = e.make_generator(seed)
    actions = [torch.as_tensor(a) for a in _actions(env, n, seed + 1)]
    box = [e.reset(params, gen)[1]]

    def call(i: int) -> None:
        box[0] = e.step(box[0], actions[i % ACTION_POOL], params, gen).state

    return call, lambda: None, 1


def _env_gymnasium(env: str, n: int, seed: int) -> tuple[Callable, Callable, int]:
    import gymnasium

    try:
        venv = gymnasium.make_vec(ENVS[env], num_envs=n, vectorization_mode="vector_entry_point")
    except Exception as exc:  # gymnasium registers a numpy-vectorized version of few envs
        raise NotAvailable(f"gymnasium has no numpy-vectorized {ENVS[env]}: {exc}") from exc
    venv.reset(seed=seed)
    actions = _actions(env, n, seed + 1)
    return lambda i: venv.step(actions[i % ACTION_POOL]), lambda: None, 1


def _env_envpool(env: str, n: int, seed: int) -> tuple[Callable, Callable, int]:
    import envpool

    venv = envpool.make(ENVS[env], env_type="gymnasium", num_envs=n, batch_size=n, num_threads=1,
                        seed=seed)
    venv.reset()
    actions = _actions(env, n, seed + 1)
    return lambda i: venv.step(actions[i % ACTION_POOL]), lambda: None, 1


def _env_gymnax(env: str, n: int, seed: int, scan: bool) -> tuple[Callable, Callable, int]:
    import gymnax
    import jax
    import jax.numpy as jnp

    genv, gparams = gymnax.make(ENVS[env])
    pool = jnp.asarray(_actions(env, n, seed + 1))
    step_all = jax.vmap(genv.step, in_axes=(0, 0, 0, None))
    key = jax.random.PRNGKey(seed)
    _, state = jax.vmap(genv.reset, in_axes=(0, None))(jax.random.split(key, n), gparams)

    def one(carry, i):
        key, state = carry
        key, sub = jax.random.split(key)
        _, state, *_ = step_all(jax.random.split(sub, n), state, pool[i % ACTION_POOL], gparams)
        return (key, state), None

    box = [(key, state)]
    if scan:
        # A fixed chunk of steps per call (one compile); long enough to amortise the call.
        chunk = max(16, min(1000, 262_144 // n))

        @jax.jit
        def run(carry, start):
            carry, _ = jax.lax.scan(one, carry, start + jnp.arange(chunk))
            return carry

        def call(i: int) -> None:
            box[0] = run(box[0], i * chunk)
    else:
        chunk = 1
        run = jax.jit(one)

        def call(i: int) -> None:
            box[0] = run(box[0], i)[0]

    return call, lambda: jax.block_until_ready(box[0]), chunk


def _measure(call: Callable[[int], Any], sync: Callable[[], Any], seconds: float,
             runs: int = 3) -> dict[str, float]:
    """Warm up (compiles), calibrate the number of calls to about ``seconds``, then time ``runs``
    runs: median calls per wall second and per CPU second of this process."""
    for i in range(3):
        call(i)
    sync()
    calls = 1
    while True:
        tic = time.perf_counter()
        for i in range(calls):
            call(i)
        sync()
        elapsed = time.perf_counter() - tic
        if elapsed >= seconds / 4:
            break
        calls *= 2
    calls = max(1, round(calls * seconds / max(elapsed, 1e-9)))
    wall, cpu = [], []
    for _ in range(runs):
        tic, ctic = time.perf_counter(), time.process_time()
        for i in range(calls):
            call(i)
        sync()
        wall.append(calls / (time.perf_counter() - tic))
        cpu.append(calls / max(time.process_time() - ctic, 1e-9))
    return {"calls_per_s": statistics.median(wall), "calls_per_cpu_s": statistics.median(cpu),
            "calls": calls}


def work_envs(contender: str, envs: list[str], sizes: list[int], seed: int,
              seconds: float) -> dict[str, Any]:
    """Env-steps/s of one contender for every (env, N); a case it lacks is listed in ``missing``."""
    build = {
        "rlsuite eager": lambda e, n: _env_rlsuite(e, n, seed, compile=False),
        "rlsuite compiled": lambda e, n: _env_rlsuite(e, n, seed, compile=True),
        "gymnasium numpy": lambda e, n: _env_gymnasium(e, n, seed),
        "envpool": lambda e, n: _env_envpool(e, n, seed),
        "gymnax jit": lambda e, n: _env_gymnax(e, n, seed, scan=False),
        "gymnax scan": lambda e, n: _env_gymnax(e, n, seed, scan=True),
    }[contender]
    rows, missing = [], {}
    for env in envs:
        for n in sizes:
            tic = time.perf_counter()
            try:
                call, sync, chunk = build(env, n)
            except NotAvailable as exc:
                missing[f"{env} N={n}"] = str(exc)
                continue
            m = _measure(call, sync, seconds)
            rows.append({"env": env, "n": n, "steps_per_s": m["calls_per_s"] * chunk * n,
                         "steps_per_cpu_s": m["calls_per_cpu_s"] * chunk * n,
                         "setup_s": time.perf_counter() - tic})
            print(f"  {contender} {env} N={n}: {rows[-1]['steps_per_s']:.3g} steps/s", file=sys.stderr)
    return {"rows": rows, "missing": missing}


def rlsuite_greedy(agent: Any) -> Callable:
    """The agent's greedy policy for ``evaluate``: its own ``greedy_policy()`` where it has one
    (a fused evaluation), else ``act(obs, deterministic=True)``."""
    greedy = getattr(agent, "greedy_policy", None)
    return greedy() if greedy is not None else (lambda obs: agent.act(obs, deterministic=True))


def rlsuite_collect(agent: Any, num_steps: int) -> Any:
    """One rollout of ``num_steps`` steps of every copy with the agent's policy: the same call that
    ``PPO.learn`` makes for its rollout (kept in this one place, for when that call changes)."""
    return agent.interaction.collect(agent.rollout_policy(), num_steps)


def work_rollout(contender: str, seed: int, seconds: float) -> dict[str, Any]:
    """Policy + env rollout cost at N = 64 with the 64x64 PPO policy (128-step rollouts)."""
    if contender == "rlsuite":
        import rlsuite.envs as envs
        from rlsuite.learners.ppo import PPO, PPOConfig

        _one_thread_torch()
        env = envs.make("cartpole")
        agent = PPO(PPOConfig(num_steps=ROLLOUT_STEPS), env, env.default_params(ROLLOUT_ENVS), seed)
        m = _measure(lambda i: rlsuite_collect(agent, ROLLOUT_STEPS), lambda: None, seconds)
    else:
        import jax

        sys.path.insert(0, str(SCRIPTS / "peers"))
        import purejaxrl_ppo

        parts = purejaxrl_ppo.make(
            purejaxrl_ppo.Config(num_envs=ROLLOUT_ENVS, num_steps=ROLLOUT_STEPS), seed)
        rollout = jax.jit(parts["rollout"])
        box = [parts["state"]]

        def call(i: int) -> None:
            box[0], traj = rollout(box[0])
            box.append(traj)
            del box[1:-1]

        m = _measure(call, lambda: jax.block_until_ready(box), seconds)
    per_vector_step = 1e6 / (m["calls_per_s"] * ROLLOUT_STEPS)
    return {"us_per_vector_step": per_vector_step,
            "us_per_env_step": per_vector_step / ROLLOUT_ENVS,
            "us_per_vector_step_cpu": 1e6 / (m["calls_per_cpu_s"] * ROLLOUT_STEPS)}


def _run_record(curve: list[tuple[int, float, float]], threshold: float, eval_s: float,
                warmup_s: float, compile_s: float = 0.0, train_s: float | None = None) -> dict:
    """The result of one learning run: the first evaluation at or above ``threshold``."""
    solved = bool(curve) and curve[-1][2] >= threshold
    wall = curve[-1][1] if solved else None
    if solved and train_s is None:
        train_s = wall - eval_s - compile_s - warmup_s
    return {"solved": solved, "steps": curve[-1][0] if solved else None, "wall_s": wall,
            "train_s": train_s if solved else None, "eval_s": eval_s, "compile_s": compile_s,
            "warmup_s": warmup_s, "curve": curve}


class _Clock:
    """Wall clock of a learning run, its evaluation time and its iteration times."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.eval_s = 0.0
        self.last = self.start
        self.iterations: list[float] = []
        self.curve: list[tuple[int, float, float]] = []

    def iteration_done(self) -> None:
        """Mark the end of a training iteration (before its evaluation)."""
        now = time.perf_counter()
        self.iterations.append(now - self.last)

    def evaluated(self, step: int, score: float, eval_seconds: float) -> bool:
        """Record an evaluation; True when the run should stop."""
        self.eval_s += eval_seconds
        self.last = time.perf_counter()
        wall = self.last - self.start
        self.curve.append((step, wall, score))
        return wall > WALL_CAP_S

    def warmup_s(self) -> float:
        """One-off cost of the first iteration (compilation, first-call allocation): how much
        longer it took than the median of the next ones."""
        if len(self.iterations) < 2:
            return 0.0
        return max(0.0, self.iterations[0] - statistics.median(self.iterations[1:]))


def _greedy_gym_eval(predict: Callable, env_id: str, episodes: int, seed: int,
                     mode: str) -> float:
    """Mean return of one greedy episode in each of ``episodes`` gymnasium envs stepped together
    (SB3 and SBX are evaluated this way: same episode count as rlsuite's batched evaluation)."""
    import gymnasium
    import numpy as np

    venv = gymnasium.make_vec(env_id, num_envs=episodes, vectorization_mode=mode,
                              vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP}
                              if mode == "sync" else {})
    obs, _ = venv.reset(seed=seed)
    total, alive = np.zeros(episodes), np.ones(episodes, dtype=bool)
    while alive.any():
        obs, reward, terminated, truncated, _ = venv.step(predict(obs))
        total += reward * alive
        alive &= ~(terminated | truncated)
    venv.close()
    return float(total.mean())


class _Stop(Exception):
    pass


def rlsuite_eval_hook(clock: _Clock, env: Any, eval_params: Any, threshold: float,
                      every: int | None = None) -> Any:
    """Training hooks for an rlsuite learner: a greedy evaluation (one episode per copy of
    ``eval_params``) after every iteration, or at the first iteration past every ``every`` env
    steps; stops the run (:class:`_Stop`) at ``threshold`` or when ``clock`` says time is up.
    Evaluation time is recorded apart from training time."""
    from rlsuite.engine.evaluate import evaluate
    from rlsuite.training import TrainingHooks

    next_eval = [every or 0]

    class Hook(TrainingHooks):
        def on_iteration(self, agent: Any, step: int, metrics: dict[str, float]) -> None:
            if every is not None:
                if step < next_eval[0]:
                    return
                next_eval[0] += every
            clock.iteration_done()
            tic = time.perf_counter()
            score = float(evaluate(rlsuite_greedy(agent), env, eval_params,
                                   1, env.make_generator(10_000 + step)).mean_return.mean())
            if clock.evaluated(step, score, time.perf_counter() - tic) or score >= threshold:
                raise _Stop

    return Hook()


def rlsuite_zoo_ppo() -> tuple[Any, int, int]:
    """``(PPOConfig, num_envs, total_steps)`` of rlsuite's ``cartpole_ppo_zoo`` preset (RL Zoo's
    CartPole-v1 hyperparameters), read from conf/experiment/cartpole_ppo_zoo.yaml, not copied."""
    from omegaconf import OmegaConf

    from rlsuite.learners.ppo import PPOConfig

    preset = OmegaConf.load(ROOT / "conf" / "experiment" / "cartpole_ppo_zoo.yaml")
    config = PPOConfig(**OmegaConf.to_container(preset.agent))
    return config, int(preset.num_envs), int(preset.total_steps)


def work_ppo(contender: str, seed: int) -> dict[str, Any]:
    """PPO on CartPole until a greedy 64-episode evaluation reaches 475."""
    if contender in (JAX_PPO, JAX_PPO_CACHED):
        sys.path.insert(0, str(SCRIPTS / "peers"))
        import purejaxrl_ppo

        if contender == JAX_PPO_CACHED:
            purejaxrl_ppo.use_compilation_cache(JAX_CACHE_DIR)

        out = purejaxrl_ppo.train_until(
            seed, PPO_THRESHOLD, config=purejaxrl_ppo.Config(total_steps=PPO_STEP_CAP),
            wall_cap_s=WALL_CAP_S)
        return {**out, "warmup_s": 0.0}
    _one_thread_torch()
    # Each clock starts after the imports: construction, first calls and compilation count.
    if contender in ("rlsuite", RLSUITE_ZOO):
        import rlsuite.envs as envs
        from rlsuite.learners.ppo import PPO, PPOConfig

        if contender == "rlsuite":
            config, num_envs, step_cap = PPOConfig(), 64, PPO_STEP_CAP
        else:
            config, num_envs, step_cap = rlsuite_zoo_ppo()
        clock = _Clock()
        env = envs.make("cartpole")
        agent = PPO(config, env, env.default_params(num_envs), seed=seed)
        eval_params = env.default_params(PPO_EVAL_EPISODES)
        # Evaluated at every PPO_EVAL_EVERY env steps: after each of the default's 64 x 128
        # iterations, after every 32nd of the Zoo setting's 8 x 32 (as SB3 RL Zoo is).
        try:
            agent.learn(step_cap, rlsuite_eval_hook(clock, env, eval_params, PPO_THRESHOLD,
                                                    every=PPO_EVAL_EVERY))
        except _Stop:
            pass
    elif contender == "SB3 RL Zoo":
        from stable_baselines3 import PPO as SB3PPO
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.env_util import make_vec_env

        zoo = ZOO_PPO_CARTPOLE
        clock = _Clock()
        model = SB3PPO(zoo["policy"], make_vec_env("CartPole-v1", n_envs=zoo["n_envs"], seed=seed),
                       seed=seed, device="cpu", verbose=0, **zoo_kwargs(zoo))

        class Every(BaseCallback):
            next_eval = PPO_EVAL_EVERY

            def _on_step(self) -> bool:
                return not getattr(self, "stop", False)

            def _on_rollout_end(self) -> None:
                if self.num_timesteps < self.next_eval:
                    return
                self.next_eval += PPO_EVAL_EVERY
                clock.iteration_done()
                tic = time.perf_counter()
                score = _greedy_gym_eval(lambda o: self.model.predict(o, deterministic=True)[0],
                                         "CartPole-v1", PPO_EVAL_EPISODES, 10_000 + self.num_timesteps,
                                         "vector_entry_point")
                self.stop = clock.evaluated(self.num_timesteps, score, time.perf_counter() - tic) \
                    or score >= PPO_THRESHOLD

        model.learn(zoo["n_timesteps"], callback=Every())
    else:
        raise ValueError(f"unknown PPO contender {contender!r}")
    return _run_record(clock.curve, PPO_THRESHOLD, clock.eval_s, clock.warmup_s())


def work_sac(contender: str, seed: int) -> dict[str, Any]:
    """SAC on Pendulum until a greedy 16-episode evaluation reaches -200 (every 1000 env steps)."""
    if contender == "rlsuite":
        from omegaconf import OmegaConf

        import rlsuite.envs as envs
        from rlsuite.learners.sac import SAC, SACConfig

        _one_thread_torch()
        # rlsuite's own Pendulum preset (conf/experiment/pendulum_sac.yaml), read, not copied.
        preset = OmegaConf.load(ROOT / "conf" / "experiment" / "pendulum_sac.yaml")
        clock = _Clock()
        env = envs.make("pendulum")
        config = SACConfig(**OmegaConf.to_container(preset.agent))
        agent = SAC(config, env, env.default_params(int(preset.num_envs)), seed=seed)
        eval_params = env.default_params(SAC_EVAL_EPISODES)
        try:
            agent.learn(SAC_STEP_CAP, rlsuite_eval_hook(clock, env, eval_params, SAC_THRESHOLD,
                                                        every=SAC_EVAL_EVERY))
        except _Stop:
            pass
    elif contender in ("SB3 RL Zoo", "SBX RL Zoo"):
        import gymnasium
        from stable_baselines3.common.callbacks import BaseCallback

        if contender == "SBX RL Zoo":
            from sbx import SAC as Algo
        else:
            from stable_baselines3 import SAC as Algo

            _one_thread_torch()
        zoo = ZOO_SAC_PENDULUM
        clock = _Clock()
        model = Algo(zoo["policy"], gymnasium.make("Pendulum-v1"), seed=seed, verbose=0,
                     **({"device": "cpu"} if contender == "SB3 RL Zoo" else {}), **zoo_kwargs(zoo))

        class Every(BaseCallback):
            def _on_step(self) -> bool:
                if self.num_timesteps % SAC_EVAL_EVERY:
                    return True
                clock.iteration_done()
                tic = time.perf_counter()
                score = _greedy_gym_eval(lambda o: self.model.predict(o, deterministic=True)[0],
                                         "Pendulum-v1", SAC_EVAL_EPISODES, 10_000 + self.num_timesteps,
                                         "sync")
                return not (clock.evaluated(self.num_timesteps, score, time.perf_counter() - tic)
                            or score >= SAC_THRESHOLD)

        model.learn(SAC_STEP_CAP, callback=Every())
    else:
        raise ValueError(f"unknown SAC contender {contender!r}")
    return _run_record(clock.curve, SAC_THRESHOLD, clock.eval_s, clock.warmup_s())


WORKERS: dict[str, Callable[..., dict[str, Any]]] = {
    "envs": work_envs, "rollout": work_rollout, "ppo": work_ppo, "sac": work_sac}


def work(task: dict[str, Any]) -> dict[str, Any]:
    """Run one task in this process; a missing package becomes ``{"skipped": reason}``."""
    kind = task.pop("kind")
    if kind not in WORKERS:
        raise ValueError(f"task kind must be one of {sorted(WORKERS)}, got {kind!r}")
    try:
        return WORKERS[kind](**task)
    except ImportError as exc:
        return {"skipped": f"import failed: {exc}"}


# == parent side ==============================================================================

RESULT_MARK = "BENCHMARK_PEERS_RESULT "


def worker_env() -> dict[str, str]:
    """The environment of a worker: one thread for OpenMP/MKL/OpenBLAS, torch and XLA, JAX on CPU."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = "1"
    env["XLA_FLAGS"] = XLA_ONE_THREAD
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_worker(task: dict[str, Any], core: int | None, timeout: float = 1800.0,
               python: str = sys.executable) -> dict[str, Any]:
    """Run ``task`` in a fresh subprocess (pinned to ``core`` when given); its result, or
    ``{"skipped": reason}`` when it failed, timed out or lacked a package."""
    cmd = [python, str(Path(__file__).resolve()), "--worker", json.dumps(task)]
    if core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(core), *cmd]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=worker_env(), timeout=timeout,
                              cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"skipped": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"skipped": f"worker exited with {proc.returncode}: {' | '.join(tail)}"}


def record(results: dict[str, Any], part: str, contender: str, out: dict[str, Any]) -> bool:
    """File ``out`` under ``results[part][contender]``; a skip goes to ``results["skipped"]``
    (first reason kept) instead. True when the contender ran."""
    if "skipped" in out:
        results.setdefault("skipped", {}).setdefault(f"{part}: {contender}", out["skipped"])
        print(f"skipped {part} {contender}: {out['skipped']}", flush=True)
        return False
    results.setdefault(part, {}).setdefault(contender, []).append(out)
    return True


def machine() -> dict[str, Any]:
    """CPU model, cores, Python and the versions of every package that was measured."""
    from importlib import metadata

    info: dict[str, Any] = {"cpu": platform.processor() or platform.machine(),
                            "nproc": os.cpu_count(), "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f
                               if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {}
    for pkg in ("torch", "numpy", "gymnasium", "stable-baselines3", "jax", "jaxlib", "gymnax",
                "optax", "envpool", "sbx-rl"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    info["versions"] = versions
    return info


def save(results: dict[str, Any], out: Path, started: float, done: bool) -> None:
    """Write the JSON and the page; called after every contender run, so a long run that is
    stopped still leaves its finished parts (marked ``"partial": true``)."""
    results["load"]["loadavg_after"] = list(os.getloadavg())
    results["total_s"] = time.perf_counter() - started
    results["partial"] = not done
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    out.with_suffix(".md").write_text(render_page(results))


def run_all(args: argparse.Namespace, command: str, out: Path) -> dict[str, Any]:
    """Every part, contenders interleaved per repeat / seed; returns the JSON-ready results
    (and writes them to ``out`` as they come)."""
    core = None if args.no_pin else max(os.sched_getaffinity(0))
    results: dict[str, Any] = {
        "command": command, "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
        "load": {"nproc": os.cpu_count(), "loadavg_before": list(os.getloadavg())},
        "pinned_core": core, "quick": args.quick, "sizes": args.sizes, "seeds": args.seeds,
        "repeats": args.repeats,
    }
    started = time.perf_counter()
    parts = set(args.parts)
    if "envs" in parts:
        for r in range(args.repeats):
            for contender in ENV_CONTENDERS:
                print(f"envs repeat {r}: {contender}", flush=True)
                task = {"kind": "envs", "contender": contender, "envs": list(ENVS),
                        "sizes": args.sizes, "seed": r, "seconds": args.seconds}
                record(results, "envs", contender, run_worker(task, core))
                save(results, out, started, done=False)
    if "rollout" in parts:
        for r in range(args.repeats):
            for contender in ROLLOUT_CONTENDERS:
                task = {"kind": "rollout", "contender": contender, "seed": r, "seconds": args.seconds}
                if record(results, "rollout", contender, run_worker(task, core)):
                    print(f"rollout {contender}: {results['rollout'][contender][-1]}", flush=True)
                save(results, out, started, done=False)
    if "ppo" in parts:
        for contender in PPO_WARM_UP:
            print(f"ppo warm-up (untimed): {contender}", flush=True)
            result = run_worker({"kind": "ppo", "contender": contender, "seed": PPO_WARM_UP_SEED},
                                core)
            results.setdefault("warm_up", {})[contender] = {
                k: result.get(k) for k in ("solved", "wall_s", "compile_s", "warmup_s", "skipped")}
    for part, contenders in (("ppo", PPO_CONTENDERS), ("sac", SAC_CONTENDERS)):
        if part not in parts:
            continue
        for seed in args.seeds:
            for contender in contenders:
                if f"{part}: {contender}" in results.get("skipped", {}):
                    continue  # it did not install: no use retrying it for every seed
                result = run_worker({"kind": part, "contender": contender, "seed": seed}, core)
                if record(results, part, contender, result):
                    print(f"{part} seed {seed} {contender}: solved {result['solved']} steps "
                          f"{result['steps']} wall {result['wall_s']}", flush=True)
                save(results, out, started, done=False)
    save(results, out, started, done=True)
    return results


# == the page ==================================================================================


def _median(values: list[float | None]) -> float | None:
    """Median, or None when any value is missing (a run that did not solve)."""
    if not values or any(v is None for v in values):
        return None
    return statistics.median(values)


def learning_medians(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Medians over seeds of wall (incl. eval and compilation), training-only time and steps."""
    return {key: _median([r[key] for r in runs]) for key in ("wall_s", "train_s", "steps")} | {
        "compile_s": _median([r.get("compile_s", 0.0) + r.get("warmup_s", 0.0) for r in runs]),
        "eval_s": _median([r["eval_s"] for r in runs])}


def env_medians(results: dict[str, Any]) -> dict[tuple[str, str, int], dict[str, float]]:
    """``(contender, env, N) -> {"wall": median steps/s, "cpu": median per CPU s}`` over repeats."""
    cells: dict[tuple[str, str, int], list[dict]] = {}
    for contender, repeats in results.get("envs", {}).items():
        for rep in repeats:
            for row in rep["rows"]:
                cells.setdefault((contender, row["env"], row["n"]), []).append(row)
    return {k: {"wall": statistics.median(r["steps_per_s"] for r in rows),
                "cpu": statistics.median(r["steps_per_cpu_s"] for r in rows)}
            for k, rows in cells.items()}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 17's targets: ``{"target", "required", "measured", "met", "cpu"}`` (met None: not
    measured). ``met`` judges the wall-clock ratio; ``cpu`` is the same ratio per CPU second,
    where measured (less sensitive to a busy machine)."""
    rows: list[dict[str, Any]] = []

    def add(name: str, required: str, value: float | None, ok: Callable[[float], bool],
            cpu: float | None = None) -> None:
        rows.append({"target": name, "required": required,
                     "measured": None if value is None else f"{value:.2f}x",
                     "met": None if value is None else bool(ok(value)),
                     "cpu": None if cpu is None else f"{cpu:.2f}x"})

    ppo = {k: learning_medians(v) for k, v in results.get("ppo", {}).items()}
    ours = ppo.get("rlsuite", {})
    jax_ppo, zoo = ppo.get(JAX_PPO, {}), ppo.get("SB3 RL Zoo", {})
    jax_cached, ours_zoo = ppo.get(JAX_PPO_CACHED, {}), ppo.get(RLSUITE_ZOO, {})

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None or b == 0 else a / b

    add("PPO CartPole time to 475 incl. eval, rlsuite / PureJaxRL-style with JAX's persistent "
        "compilation cache (warm)", "<= 0.5x", ratio(ours.get("wall_s"), jax_cached.get("wall_s")),
        lambda v: v <= 0.5)
    add("PPO CartPole time to 475 incl. eval, rlsuite / PureJaxRL-style (compiled in the run)",
        "<= 0.5x", ratio(ours.get("wall_s"), jax_ppo.get("wall_s")), lambda v: v <= 0.5)
    # the same hyperparameters on both sides: rlsuite's cartpole_ppo_zoo preset against SB3
    add("PPO CartPole time to 475 incl. eval, same hyperparameters (RL Zoo's): "
        "rlsuite (RL Zoo hyperparameters) / SB3 RL Zoo", "<= 0.25x",
        ratio(ours_zoo.get("wall_s"), zoo.get("wall_s")), lambda v: v <= 0.25)
    add("PPO CartPole time to 475 incl. eval, rlsuite / SB3 RL Zoo", "<= 0.25x",
        ratio(ours.get("wall_s"), zoo.get("wall_s")), lambda v: v <= 0.25)
    add("PPO CartPole training time excl. eval and compilation, rlsuite / PureJaxRL-style",
        "<= 1.0x", ratio(ours.get("train_s"), jax_ppo.get("train_s")), lambda v: v <= 1.0)
    roll = results.get("rollout", {})
    med = {k: statistics.median(r["us_per_env_step"] for r in v) for k, v in roll.items()}
    cpu = {k: statistics.median(r["us_per_vector_step_cpu"] for r in v) for k, v in roll.items()}
    jax_roll = "gymnax + MLP in lax.scan"
    add("Rollout cost per env step, N = 64, 64x64 PPO policy: rlsuite / gymnax + MLP in lax.scan",
        "<= 2x", ratio(med.get("rlsuite"), med.get(jax_roll)), lambda v: v <= 2.0,
        ratio(cpu.get("rlsuite"), cpu.get(jax_roll)))
    sac = {k: learning_medians(v) for k, v in results.get("sac", {}).items()}
    add("SAC Pendulum time to -200 incl. eval, speed-up of rlsuite over SB3 RL Zoo", ">= 2x",
        ratio(sac.get("SB3 RL Zoo", {}).get("wall_s"), sac.get("rlsuite", {}).get("wall_s")),
        lambda v: v >= 2.0)
    cells = env_medians(results)
    for env in ENVS:
        for n in sorted({k[2] for k in cells if k[1] == env and k[2] >= 16384}):
            def best(contenders: tuple[str, ...], key: str, env: str = env, n: int = n) -> float | None:
                return max((cells[(c, env, n)][key] for c in contenders if (c, env, n) in cells),
                           default=None)

            peers = {c: cells[(c, env, n)]["wall"] for c in ENV_CONTENDERS[2:] if (c, env, n) in cells}
            best_peer = max(peers, key=peers.get) if peers else None
            add(f"{env} env-steps/s at N = {n}: best rlsuite / best peer ({best_peer})", "> 1x",
                ratio(best(ENV_CONTENDERS[:2], "wall"), best(ENV_CONTENDERS[2:], "wall")),
                lambda v: v > 1.0,
                ratio(best(ENV_CONTENDERS[:2], "cpu"), best(ENV_CONTENDERS[2:], "cpu")))
    return rows


def _si(x: float | None) -> str:
    if x is None:
        return "-"
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.2f} {unit}"
    return f"{x:.1f}"


def _s(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def render_page(results: dict[str, Any]) -> str:
    """The markdown page of a results JSON (``results/benchmarks_peers.md``)."""
    from rlsuite.benchmark import busy_with_other_work  # not at the top: workers import no torch

    m, load = results["machine"], results["load"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    before, after = load["loadavg_before"], load.get("loadavg_after", ["?"] * 3)
    # Before: nothing of ours runs; after: the last contender's one-thread worker has just ended,
    # so the 1-minute average still holds about one process of ours.
    samples = [(before[0], 0)] + ([(after[0], 1)] if after[0] != "?" else [])
    quiet = not busy_with_other_work(samples, load["nproc"])
    lines = [
        "# rlsuite against its peers",
        "",
        f"Command (repository root, after `.venv/bin/pip install -e '.[dev,peers]'`): "
        f"`{results['command']}`",
        "",
        f"Measured on {results['date']}, {results['total_s'] / 60:.1f} min in all."
        + (" **Partial run: it was stopped before every part had run; what is below is what "
           "finished.**" if results.get("partial") else ""),
        "",
        f"* Machine: {m['cpu']}, {m['nproc']} logical CPUs; Python {m['python']}; {versions}.",
        f"* Load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in before)}; after: "
        f"{', '.join(f'{x:.2f}' if x != '?' else x for x in after)} (nproc {load['nproc']}). "
        + ("The machine was quiet." if quiet else
           "**The machine was busy with other work: these numbers are provisional**; wall-clock "
           "rates suffer most, the per-CPU-second column less."),
        "* Every contender ran in its own subprocess with one thread (OMP/MKL/OpenBLAS 1, "
        "`torch.set_num_threads(1)`, XLA_FLAGS "
        f"`{XLA_ONE_THREAD}`)"
        + (f", pinned to core {results['pinned_core']} with taskset" if results.get("pinned_core")
           is not None else "") + "; contenders interleaved per repeat and per seed.",
        "",
    ]
    skipped = results.get("skipped", {})
    if skipped:
        lines += ["Skipped (did not install or failed):", ""]
        lines += [f"* {name}: {reason}" for name, reason in skipped.items()]
        lines.append("")
    lines += ["## Targets (issue 17)", "",
              "Judged on wall-clock medians; the last column gives the same ratio per CPU second "
              "(best per-CPU rlsuite against best per-CPU peer), where it was measured.", "",
              "| target | required | measured | met | per CPU s |", "|---|---|---:|---|---:|"]
    for row in targets(results):
        met = {True: "met", False: "**not met**", None: "not measured"}[row["met"]]
        lines.append(f"| {row['target']} | {row['required']} | {row['measured'] or '-'} | {met} "
                     f"| {row['cpu'] or '-'} |")
    cells = env_medians(results)
    if cells:
        repeats = results["repeats"]
        lines += ["", f"## Env-steps/s, random actions (median of {repeats} "
                  f"{'repeat' if repeats == 1 else 'repeats'}; per CPU second in brackets)", ""]
        for env in ENVS:
            sizes = sorted({k[2] for k in cells if k[1] == env})
            if not sizes:
                continue
            lines += [f"### {ENVS[env]}", "", "| N | " + " | ".join(ENV_CONTENDERS) + " |",
                      "|---:|" + "---:|" * len(ENV_CONTENDERS)]
            for n in sizes:
                vals = [cells.get((c, env, n)) for c in ENV_CONTENDERS]
                lines.append(f"| {n} | " + " | ".join(
                    f"{_si(v['wall'])} ({_si(v['cpu'])})" if v else "-" for v in vals) + " |")
            lines.append("")
        lines += ["rlsuite compiled: `envs.make(..., compile=True)`; gymnasium numpy: "
                  "`gymnasium.make_vec(..., vectorization_mode='vector_entry_point')`; envpool: "
                  "synchronous (batch_size = num_envs), `num_threads=1`; gymnax jit: one jitted "
                  "vmapped step per Python call; gymnax scan: a jitted `lax.scan` over a chunk of "
                  "steps (16-1000, by N) per call. Autoreset on everywhere. `-`: not available "
                  "(gymnasium has no numpy-vectorized Pendulum) or skipped.", ""]
    roll = results.get("rollout", {})
    if roll:
        lines += ["## Rollout cost, N = 64, 64x64 tanh PPO policy, 128-step rollouts", "",
                  "| contender | us per vector step | us per env step | us per vector step (CPU) |",
                  "|---|---:|---:|---:|"]
        for c, runs in roll.items():
            lines.append(f"| {c} | {_s(statistics.median(r['us_per_vector_step'] for r in runs), 1)} "
                         f"| {_s(statistics.median(r['us_per_env_step'] for r in runs), 3)} "
                         f"| {_s(statistics.median(r['us_per_vector_step_cpu'] for r in runs), 1)} |")
        lines.append("")
    for part, title in (
            ("ppo", f"PPO on CartPole-v1, to a greedy {PPO_EVAL_EPISODES}-episode mean >= "
                    f"{PPO_THRESHOLD:.0f}"),
            ("sac", f"SAC on Pendulum-v1, to a greedy {SAC_EVAL_EPISODES}-episode mean >= "
                    f"{SAC_THRESHOLD:.0f}")):
        runs_by = results.get(part, {})
        if not runs_by:
            continue
        lines += [f"## {title}", "", "| contender | wall s per seed | median wall s (incl. eval, "
                  "compile) | median training s (excl. eval, compile) | median compile / first-call s "
                  "| median eval s | median env steps |", "|---|---|---:|---:|---:|---:|---:|"]
        for c, runs in runs_by.items():
            med = learning_medians(runs)
            per_seed = ", ".join(_s(r["wall_s"], 1) if r["solved"] else "not solved" for r in runs)
            lines.append(f"| {c} | {per_seed} | {_s(med['wall_s'])} | {_s(med['train_s'])} | "
                         f"{_s(med['compile_s'])} | {_s(med['eval_s'])} | "
                         f"{'-' if med['steps'] is None else format(med['steps'], ',.0f')} |")
        lines.append("")
    lines += [
        "## Setup", "",
        f"* PPO: evaluation after every {PPO_EVAL_EVERY} env steps for all (greedy, "
        f"{PPO_EVAL_EPISODES} episodes). rlsuite: `PPO(PPOConfig(), env, env.default_params(64), "
        f"seed).learn({PPO_STEP_CAP})` with an evaluation hook. PureJaxRL-style "
        "(`scripts/peers/purejaxrl_ppo.py`): rlsuite's hyperparameters on gymnax, each iteration one "
        "jitted program, compiled ahead of time (the compile column); the step cap and annealing "
        f"horizon {PPO_STEP_CAP:,} for both. \"PureJaxRL-style, compilation cache\" is the same "
        "run with JAX's persistent compilation cache on (every program cached, "
        "`use_compilation_cache`): its compile column is tracing plus loading the cached programs. "
        "Before the timed runs, both rlsuite contenders and the cached JAX run once each, untimed (seed "
        f"{PPO_WARM_UP_SEED}), so every timed run of theirs finds its compiled code on disk: "
        "rlsuite loads its two kernels from its kernel store without importing TorchDynamo or "
        "TorchInductor. SB3 RL Zoo: `PPO` with rl-baselines3-zoo's "
        "hyperparams/ppo.yml CartPole-v1 (8 envs, n_steps 32, batch 256, 20 epochs, GAE 0.8, gamma "
        "0.98, linear lr 1e-3 and clip 0.2, no entropy bonus) over its budget of 100k steps, "
        "evaluated on gymnasium's numpy-vectorized CartPole. rlsuite (RL Zoo hyperparameters): "
        "rlsuite's `cartpole_ppo_zoo` preset (conf/experiment/cartpole_ppo_zoo.yaml: the same "
        "table, SB3's schedules and minibatch size) over the same 100k budget, evaluated as "
        "rlsuite is.",
        f"* SAC: evaluation every {SAC_EVAL_EVERY} env steps (greedy, {SAC_EVAL_EPISODES} episodes), "
        f"step cap {SAC_STEP_CAP:,}. rlsuite: the `pendulum_sac` preset (4 envs, 64x64, lr 1e-3, "
        "1000 warm-up steps, 0.5 gradient steps per env step). SB3 / SBX RL Zoo: hyperparams/sac.yml "
        "Pendulum-v1 (lr 1e-3, otherwise SB3's defaults: 1 env, 256x256, one gradient step per env "
        "step after 100).",
        "* Training time = wall time minus evaluation minus one-off costs: the ahead-of-time "
        "compilation for JAX; for the others the excess of the first iteration over the median "
        "iteration (first-call allocation, compilation where there is any).",
        "* Re-render this page from its JSON without measuring: `.venv/bin/python "
        "scripts/benchmark_peers.py --page-only --out <the JSON>`.",
        "",
    ]
    return "\n".join(lines)


# == command line ==============================================================================


def parse(argv: list[str]) -> argparse.Namespace:
    """Command-line options (``--quick``: 2 sizes, 1 repeat, 1 seed)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="sizes 64 and 16384, 1 repeat, seed 0")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help=f"env batch sizes {SIZES}")
    p.add_argument("--repeats", type=int, default=None, help="env-stepping repeats (3)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="learning seeds (0 1 2)")
    p.add_argument("--seconds", type=float, default=None, help="length of one timed run (0.3)")
    p.add_argument("--parts", nargs="+", default=["envs", "rollout", "ppo", "sac"],
                   choices=["envs", "rollout", "ppo", "sac"])
    p.add_argument("--no-pin", action="store_true", help="do not pin the workers to one core")
    p.add_argument("--out", default=str(ROOT / "results" / "benchmarks_peers.json"))
    p.add_argument("--page-only", action="store_true", help="only rewrite the .md from --out")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    defaults = {"sizes": list(QUICK_SIZES if args.quick else SIZES),
                "repeats": 1 if args.quick else 3, "seeds": [0] if args.quick else [0, 1, 2],
                "seconds": 0.15 if args.quick else 0.3}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("repeats", "seconds"):
        if getattr(args, name) <= 0:
            p.error(f"--{name} must be positive, got {getattr(args, name)}")
    if any(n < 1 for n in args.sizes):
        p.error(f"--sizes must be >= 1, got {args.sizes}")
    return args


def main(argv: list[str]) -> None:
    """Measure (or, with --page-only, re-render) and write the JSON and the page."""
    args = parse(argv)
    if args.worker is not None:
        print(RESULT_MARK + json.dumps(work(json.loads(args.worker))), flush=True)
        return
    out = Path(args.out)
    if args.page_only:
        results = json.loads(out.read_text())
    else:
        command = shlex.join([".venv/bin/python", "scripts/benchmark_peers.py", *argv])
        results = run_all(args, command, out)
    page = render_page(results)
    out.with_suffix(".md").write_text(page)
    print(page)
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main(sys.argv[1:])
