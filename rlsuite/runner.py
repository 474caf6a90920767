"""Run one experiment from a composed config: build, train, checkpoint, evaluate.

Used by the CLI (``rlsuite agent=... env=...``) and from Python with a config composed by
:func:`compose`. Returns the final greedy evaluation score, so Hydra sweepers can optimize it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import rlsuite.envs as envs
from rlsuite import agents, checkpoint, jobs
from rlsuite.core import params as params_lib
from rlsuite.core.env import BatchedEnv
from rlsuite.core.threads import configure_threads
from rlsuite.engine.evaluate import evaluate
from rlsuite.logging import Logger
from rlsuite.training import TrainingDiverged, TrainingHooks

# Keys the command that resumes a run may change (taken from that command, not the checkpoint).
RESUME_OVERRIDES = ("total_steps", "progress", "threads", "device")


def compose(overrides: list[str] | None = None) -> DictConfig:
    """Compose the config as the CLI would (for library use and tests)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    import rlsuite.config  # noqa: F401  (registers the schemas)

    with initialize_config_module(config_module="rlsuite.conf", version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides or [])


def build_env(env_cfg: Any, device: torch.device) -> BatchedEnv:
    """The engine env described by an env config (every field but ``name``/``params`` is a kwarg)."""
    kwargs = {k: v for k, v in dict(env_cfg).items() if k not in ("name", "params")}
    if "dtype" in kwargs:
        kwargs["dtype"] = {"float32": torch.float32, "float64": torch.float64}[kwargs["dtype"]]
    if kwargs.get("max_episode_steps", 0) is None:
        kwargs.pop("max_episode_steps")
    return envs.make(env_cfg.name, device=device, **kwargs)


def build_params(env: BatchedEnv, env_cfg: Any, num_envs: int) -> Any:
    """Default params for ``num_envs`` copies with the config's overrides applied."""
    params = env.default_params(num_envs)
    overrides = dict(env_cfg.get("params") or {})
    return params_lib.with_values(params, **overrides) if overrides else params


class RunHooks(TrainingHooks):
    """Logging, progress bar and periodic checkpoints for one run."""

    def __init__(self, logger: Logger, ckpt_path: Path, config: dict, total_steps: int,
                 every: int, start_step: int, progress: bool,
                 guard: jobs.PreemptionGuard | None = None) -> None:
        self.logger, self.ckpt_path, self.config, self.every = logger, ckpt_path, config, every
        self.guard = guard
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", unit_scale=True,
                        disable=not progress, dynamic_ncols=True, file=sys.stderr)
        self.last_step = start_step

    def on_iteration(self, agent: Any, step: int, metrics: dict[str, float]) -> None:
        self.logger.log(step, metrics)
        self.bar.update(step - self.last_step)
        self.last_step = step
        if "rollout/ep_rew_mean" in metrics:
            self.bar.set_postfix(ep_rew_mean=f"{metrics['rollout/ep_rew_mean']:.1f}")
        if agent.iteration % self.every == 0:
            self.save(agent)
        if self.guard is not None:  # a preemption signal: checkpoint here, at a consistent state
            self.guard.check(lambda: self.save(agent))

    def save(self, agent: Any) -> None:
        checkpoint.save(self.ckpt_path, agent.state_dict(), self.config)

    def close(self) -> None:
        self.bar.close()


def _resume_source(cfg: DictConfig) -> Path | None:
    """The run directory to continue from: ``resume=<dir>``, or with ``resume=auto`` the run's own
    directory when it already holds a checkpoint (a requeued or relaunched sweep job)."""
    if cfg.resume is None:
        return None
    if cfg.resume != "auto":
        return Path(cfg.resume)
    own = Path(cfg.run_dir)
    return own if (checkpoint.checkpoint_dir(own) / checkpoint.LATEST).exists() else None


def _resume_config(cfg: DictConfig, source: Path) -> tuple[DictConfig, dict[str, Any]]:
    payload = checkpoint.load(source)
    saved = payload["config"]  # the resolved config of the run, as plain data
    current = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(current, dict)
    ignored = set(RESUME_OVERRIDES) | {"resume", "run_dir"}
    changed = sorted(k for k in current if k not in ignored and k in saved and current[k] != saved[k])
    if changed:
        print(f"rlsuite: resuming {source}: keeping the checkpoint's {changed}", file=sys.stderr)
    merged = OmegaConf.create(saved)
    for key in RESUME_OVERRIDES:
        merged[key] = cfg[key]
    merged.resume = str(source)
    merged.run_dir = str(source)
    return merged, payload


def run(cfg: DictConfig) -> float:
    """Train and evaluate as ``cfg`` says; return the final score (see :func:`_final_eval`).

    The outcome is recorded in ``<run_dir>/result.json`` (:mod:`rlsuite.jobs`): completed with the
    score, failed with the error, or preempted. A run whose directory already records completion
    for the same ``total_steps`` returns that score without training again (relaunched sweeps).
    """
    source = _resume_source(cfg)
    run_dir = source if source is not None else Path(cfg.run_dir)
    done = jobs.read_result(run_dir) if cfg.resume == "auto" else None
    if done and done["status"] == jobs.COMPLETED and done.get("total_steps") == int(cfg.total_steps):
        print(f"rlsuite: {run_dir} already completed ({done['metric']} = {done['score']:.4g})")
        return float(done["score"])
    guard = jobs.PreemptionGuard()
    try:
        with guard:
            return _run(cfg, source, guard)
    except jobs.Preempted as err:
        jobs.write_result(run_dir, jobs.PREEMPTED, signal=str(err), total_steps=int(cfg.total_steps))
        print(f"rlsuite: {err}: checkpointed in {run_dir}; the same command resumes there",
              file=sys.stderr)
        guard.forward(err.signum)
    except BaseException as err:
        jobs.write_result(run_dir, jobs.FAILED, **jobs.failure_fields(err))
        raise


def _run(cfg: DictConfig, source: Path | None, guard: jobs.PreemptionGuard) -> float:
    payload = None
    if source is not None:
        cfg, payload = _resume_config(cfg, source)
    device = jobs.pick_device(cfg.device, jobs.job_number())
    configure_threads(int(cfg.threads), device)
    run_dir = Path(cfg.run_dir)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    env = build_env(cfg.env, device)
    params = build_params(env, cfg.env, cfg.num_envs)
    spec = agents.get(cfg.agent.name)
    agent_cfg = spec.config_cls(**OmegaConf.to_container(cfg.agent, resolve=True))
    agent = spec.build(agent_cfg, env, params, int(cfg.seed))
    if payload is not None:
        agent.load_state_dict(payload["agent"])
    logger = Logger(run_dir, resolved, tensorboard=cfg.tensorboard, resume=payload is not None)
    logger.add_text("config", "```yaml\n" + OmegaConf.to_yaml(cfg, resolve=True) + "\n```")
    hooks = RunHooks(logger, checkpoint.checkpoint_dir(run_dir) / checkpoint.LATEST, resolved,
                     int(cfg.total_steps), int(cfg.checkpoint_every), agent.global_step,
                     bool(cfg.progress), guard)
    try:
        agent.learn(int(cfg.total_steps), hooks)
    except BaseException as err:
        hooks.close()
        logger.close()
        if isinstance(err, TrainingDiverged):
            raise SystemExit(f"rlsuite: training stopped: {err}. The last good checkpoint is "
                             f"{hooks.ckpt_path} (resume=<run dir> continues from it).") from err
        raise
    hooks.close()
    hooks.save(agent)
    metrics = _final_eval(agent, env, cfg)
    logger.log(agent.global_step, metrics)
    logger.close()
    key = next(iter(metrics))
    score = metrics[key]
    jobs.write_result(run_dir, jobs.COMPLETED, metric=key, score=score, metrics=metrics,
                      global_step=agent.global_step, total_steps=int(cfg.total_steps))
    print(f"rlsuite: {cfg.agent.name} on {cfg.env.name}: {key} = {score:.4g} after "
          f"{agent.global_step} steps; run dir {run_dir}")
    return score


def _final_eval(agent: Any, env: BatchedEnv, cfg: DictConfig) -> dict[str, float]:
    """Final metrics; the first key is the run's score (what sweepers optimize).

    By default the greedy policy's mean return over ``eval_episodes`` episodes. An agent whose
    score is something else (a bandit's regret, an exact solver's objective) defines
    ``final_metrics(env, params, generator) -> dict[str, float]``, its score first.
    """
    eval_params = build_params(env, cfg.env, int(cfg.eval_episodes))
    generator = env.make_generator(int(cfg.seed) + 10_007)
    custom = getattr(agent, "final_metrics", None)
    if custom is not None:
        metrics = {k: float(v) for k, v in custom(env, eval_params, generator).items()}
        if not metrics:
            raise ValueError(f"{type(agent).__name__}.final_metrics returned no metrics")
        return metrics
    # An agent with a fused greedy policy (PPO's fast path) is evaluated as a fused rollout.
    greedy = getattr(agent, "greedy_policy", None)
    policy = greedy() if greedy is not None else lambda obs: agent.act(obs, deterministic=True)
    result = evaluate(policy, env, eval_params, 1, generator)
    return {"eval/mean_reward": float(result.mean_return.mean())}
