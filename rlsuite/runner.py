"""Run one experiment from a composed config: build, train, checkpoint, evaluate.

Used by the CLI (``rlsuite agent=... env=...``) and from Python with a config composed by
:func:`compose`. Returns the final greedy evaluation score, so Hydra sweepers can optimize it.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import rlsuite.envs as envs
from rlsuite import agents, checkpoint, env_params, identity, jobs
from rlsuite.agents.protocol import Agent, HasFinalMetrics, HasGreedyPolicy
from rlsuite.core import params as params_lib
from rlsuite.core import tree
from rlsuite.core.env import BatchedEnv
from rlsuite.core.patching import optimizer_without_dynamo
from rlsuite.core.threads import configure_threads
from rlsuite.engine.evaluate import evaluate
from rlsuite.logging import METRICS_FILE, Logger
from rlsuite.training import TrainingDiverged, TrainingHooks
from rlsuite.validation import ConfigError, check_fields

# The CLI's job logging (conf/hydra/job_logging/rlsuite.yaml) shows these on the terminal as bare
# lines and keeps them in the job's rlsuite.log.
log = logging.getLogger(__name__)

# Keys the command that resumes a run may change (taken from that command, not the checkpoint):
# the top-level keyed ones a resume may change, and every key outside the identity
# (rlsuite.identity); resume=<dir> adds the agent's resumable keys when the command builds the
# checkpoint's agent (_resume_config).
RESUME_OVERRIDES = (*identity.RESUMABLE_KEYS,
                    *(k for k in identity.NON_IDENTITY_KEYS if k not in ("run_dir", "resume")))


def compose(overrides: list[str] | None = None) -> DictConfig:
    """Compose the config as the CLI would (for library use and tests)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    import rlsuite.config  # noqa: F401  (registers the schemas)

    with initialize_config_module(config_module="rlsuite.conf", version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides or [])


def check_config(cfg: DictConfig) -> None:
    """Check every field of a composed run config against its schema's rules, before anything is
    built: the top-level keys (:class:`rlsuite.config.RunConfig`), then ``agent`` and ``env`` by
    the schema each was composed from. Raises :class:`~rlsuite.validation.ConfigError` naming
    the dotted field (``agent.num_minibatches=0: must be a positive integer``)."""
    from rlsuite.config import RunConfig

    check_fields(RunConfig, cfg)
    for group in ("agent", "env"):
        schema = OmegaConf.get_type(cfg[group])
        if schema is not None and schema is not dict:
            check_fields(schema, cfg[group], group)
    try:  # the agent config's own cross-field checks (its __post_init__), still before any build
        agents.get(cfg.agent.name).config_cls(**OmegaConf.to_container(cfg.agent, resolve=True))
    except ConfigError as err:
        raise err.under("agent") from None


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
    overrides = env_params.overrides(env_cfg.get("params"))
    names = sorted(name for name, _ in tree.tensor_items(params))
    for name, value in overrides.items():
        if name not in names:
            raise ConfigError(f"env.params.{name}", value,
                              f"unknown param of {env_cfg.name}; it has {names}")
    params = params_lib.with_values(params, **overrides) if overrides else params
    try:  # the physical ranges (positive masses, finite gravity), before anything is built on them
        env.check_params(params, num_envs)
        if isinstance(env, BatchedEnv):  # the values too, on every device (reset skips them on GPU)
            env.check_param_values(params)
    except ConfigError as err:
        raise err.under("env") from None
    return params


class RunHooks(TrainingHooks):
    """Logging, progress bar, periodic checkpoints, preemption and the time limit for one run."""

    def __init__(self, logger: Logger, ckpt_path: Path, config: dict, total_steps: int,
                 every: int, start_step: int, progress: bool,
                 guard: jobs.PreemptionGuard | None = None,
                 identity: dict | None = None, time_limit: jobs.TimeLimit | None = None) -> None:
        self.logger, self.ckpt_path, self.config, self.every = logger, ckpt_path, config, every
        self.identity = identity
        self.guard = guard
        self.time_limit, self.total_steps = time_limit, total_steps
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", unit_scale=True,
                        disable=not progress, dynamic_ncols=True, file=sys.stderr)
        self.last_step = start_step

    def on_iteration(self, agent: Any, step: int, metrics: dict[str, float]) -> None:
        self.logger.log(step, metrics)
        self.bar.update(step - self.last_step)
        self.last_step = step
        if "rollout/ep_rew_mean" in metrics:
            self.bar.set_postfix(ep_rew_mean=f"{metrics['rollout/ep_rew_mean']:.1f}")
        saved = agent.iteration % self.every == 0
        if saved:
            self.save(agent)
        if self.guard is not None:  # a preemption signal: checkpoint here, at a consistent state
            self.guard.check(lambda: self.save(agent))
        # Out of time: checkpoint here too (a boundary is a consistent state) and leave; a run
        # whose budget is spent goes on to its final evaluation instead.
        if self.time_limit is not None and step < self.total_steps and self.time_limit.reached():
            if not saved:
                self.save(agent)
            raise jobs.TimeLimitReached(self.time_limit.limit_s, step, self.total_steps,
                                        self.ckpt_path.parent.parent)

    def interrupt_point(self) -> None:
        """After a preemption signal, stop now: the stretch under way has no consistent state
        to save, so the last checkpoint stands and the resumed run repeats the stretch."""
        if self.guard is not None:
            self.guard.check(lambda: None, checkpointed=False)

    def save(self, agent: Any) -> None:
        # An optimizer's state_dict would import TorchDynamo (~0.9 s) on its first call.
        with optimizer_without_dynamo():
            state = agent.state_dict()
        checkpoint.save(self.ckpt_path, state, self.config, self.identity)

    def close(self) -> None:
        self.bar.close()


_ABSENT = object()


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    return resolved


def _load_checkpoint(run_dir: Path) -> tuple[dict[str, Any], DictConfig, identity.RunIdentity]:
    """A run directory's checkpoint, its config validated against the schemas, and the identity
    it was written under (recomputed from its config for checkpoints that predate identities)."""
    payload = checkpoint.load(run_dir)
    where = f"checkpoint {checkpoint.checkpoint_dir(run_dir) / checkpoint.LATEST}"
    try:
        saved = identity.validate_config(payload.get("config"), where)
    except ValueError as err:  # a key removed since: no run of this code can continue it
        raise identity.IncompatibleRecord(str(err)) from None
    resolved = _resolved(saved)
    if "identity" in payload:
        recorded = identity.with_new_defaults(
            identity.RunIdentity.from_dict(payload["identity"], where), where)
        diff = identity.differences(recorded, identity.make(resolved, recorded.code))
        if diff:  # the config was edited after the run wrote it
            raise ValueError(f"{where}: its config and its identity disagree: "
                             f"{identity.describe(diff)}")
    else:
        recorded = identity.make(resolved)  # no record of the code: assume this version
    return payload, saved, recorded


def _resume_config(cfg: DictConfig, source: Path
                   ) -> tuple[DictConfig, dict[str, Any], identity.RunIdentity]:
    """``resume=<dir>``: the checkpoint's (validated) config, with the command's values for the
    keys a resume may change (:data:`RESUME_OVERRIDES`), and for the agent's resumable keys
    (learning rates, evaluation settings) where the command builds the same agent and sets a value
    other than the agent config's default: a command that does not mention a key keeps the
    checkpoint's value instead of reverting it to the default. It runs in ``<dir>``. Also returns
    the checkpoint and the identity it was written under."""
    payload, saved, recorded = _load_checkpoint(source)
    current = _resolved(cfg)
    taken = list(RESUME_OVERRIDES)
    if cfg.agent.name == saved.agent.name:  # another agent's values mean nothing to this one
        defaults = OmegaConf.structured(agents.get(saved.agent.name).config_cls)
        for key in identity.resumable_keys(_resolved(saved)):
            if key.startswith("agent.") and (OmegaConf.select(cfg, key)
                                             != OmegaConf.select(defaults, key[len("agent."):])):
                taken.append(key)
    changed = identity.differences(identity.make(_resolved(saved)), identity.make(current))
    kept = sorted(k for k in changed if k not in taken)
    if kept:
        log.warning(f"rlsuite: resuming {source}: keeping the checkpoint's {kept}")
    for key in taken:
        if OmegaConf.select(saved, key, default=_ABSENT) is not _ABSENT:  # env.compile: some envs
            OmegaConf.update(saved, key, OmegaConf.select(cfg, key), merge=False)
    saved.resume = str(source)
    saved.run_dir = str(source)
    return saved, payload, recorded


def _auto_resume(run_dir: Path, current: identity.RunIdentity
                 ) -> tuple[float | None, dict[str, Any] | None, identity.RunIdentity | None]:
    """``resume=auto``: ``(score, None, None)`` when ``run_dir`` records this run completed (same
    key), ``(None, checkpoint, its identity)`` when it holds this run's checkpoint (only resumable
    keys changed, :func:`rlsuite.identity.resumable_keys`), ``(None, None, None)`` when it holds
    neither. Anything of another run: RunMismatch. A completed run takes a changed learning rate
    only with steps left to train (see :mod:`rlsuite.identity`)."""
    done = jobs.read_result(run_dir)
    if done and done.get("status") == jobs.COMPLETED and "identity" in done:
        where = str(run_dir / jobs.RESULT_FILE)
        recorded = identity.with_new_defaults(identity.RunIdentity.from_dict(done["identity"], where),
                                              where)
        if not identity.differences(recorded, current):
            log.info(f"rlsuite: {run_dir} already completed ({done['metric']} = {done['score']:.4g})")
            return float(done["score"]), None, None
        trained = int(done.get("global_step", 0))
        budget = int(recorded.config["total_steps"])
        if int(current.config["total_steps"]) > budget:  # a larger budget: any resumable change
            identity.check_same_run(recorded, current, run_dir, jobs.RESULT_FILE)
        else:
            identity.check_same_run(
                recorded, current, run_dir, jobs.RESULT_FILE, identity.FINISHED_KEYS,
                f" (it completed at step {trained}, so a changed value would apply to no step; "
                f"a total_steps above {budget} trains on with it)")
    if not (checkpoint.checkpoint_dir(run_dir) / checkpoint.LATEST).exists():
        return None, None, None
    payload, _, recorded = _load_checkpoint(run_dir)
    identity.check_same_run(recorded, current, run_dir, "its checkpoint")
    return None, payload, recorded


def run(cfg: DictConfig, clock: Callable[[], float] = time.monotonic) -> float:
    """Train and evaluate as ``cfg`` says; return the final score (see :func:`_final_eval`).

    The outcome is recorded in ``<run_dir>/result.json`` (:mod:`rlsuite.jobs`): completed with the
    score, failed with the error, or preempted. With ``resume=auto`` a run directory that records
    this run (same identity, :mod:`rlsuite.identity`) completed returns that score without
    training again (relaunched sweeps), one with its checkpoint continues from it, and one holding
    another run is refused (:class:`rlsuite.identity.RunMismatch`, naming the keys that differ).
    A resume that changes a resumable key (a learning rate) records it as ``resumed_with``.

    With ``cfg.time_limit_s`` set, the run stops at the first iteration boundary after it has run
    that long (on ``clock``, from this call): it checkpoints, records ``preempted`` with the
    reason, and raises :class:`rlsuite.jobs.TimeLimitReached`; the same call with ``resume=auto``
    continues, and ends with the same numbers as a run never interrupted.
    """
    check_config(cfg)  # a bad value stops here: no run directory, result or checkpoint is written
    limit = None if cfg.time_limit_s is None else jobs.TimeLimit(float(cfg.time_limit_s), clock)
    payload = resumed_from = None
    if cfg.resume is not None and cfg.resume != "auto":
        cfg, payload, resumed_from = _resume_config(cfg, Path(cfg.resume))
    run_dir = Path(cfg.run_dir)
    current = identity.make(_resolved(cfg))
    # Held from before the directory's records are read until the run ends: a second process
    # cannot continue (at another learning rate) what this one is training. A directory that
    # does not exist yet is locked by _run once it has claimed it.
    lock = identity.RunLock(run_dir)
    try:
        if run_dir.is_dir():
            lock.acquire()
        if cfg.resume == "auto":
            score, payload, resumed_from = _auto_resume(run_dir, current)
            if score is not None:
                return score
        return _guarded_run(cfg, run_dir, payload, current, resumed_from, limit, lock)
    finally:
        lock.release()


def _guarded_run(cfg: DictConfig, run_dir: Path, payload: dict[str, Any] | None,
                 current: identity.RunIdentity, resumed_from: identity.RunIdentity | None,
                 limit: jobs.TimeLimit | None, lock: identity.RunLock) -> float:
    """:func:`_run` under the preemption guard, recording how it ended in ``result.json``."""
    record = {"identity": current.to_dict()}  # _run adds the resume's changes (resumed_with)
    guard = jobs.PreemptionGuard()
    try:
        with guard:
            return _run(cfg, payload, current, guard, resumed_from, record, limit, lock)
    except jobs.Preempted as err:
        jobs.write_result(run_dir, jobs.PREEMPTED, signal=str(err), reason=str(err),
                          total_steps=int(cfg.total_steps), **record)
        where = ("checkpointed in" if err.checkpointed else
                 "stopped between checkpoints (the work since the last one is dropped) in")
        log.warning(f"rlsuite: {err}: {where} {run_dir}; the same command resumes there")
        guard.forward(err.signum)
    except jobs.TimeLimitReached as err:
        jobs.write_result(run_dir, jobs.PREEMPTED, reason=f"time limit of {err.limit_s:g} s reached",
                          time_limit_s=err.limit_s, global_step=err.step,
                          total_steps=int(cfg.total_steps), **record)
        log.warning(f"rlsuite: {err}")
        raise
    except (ConfigError, identity.RunMismatch):
        # Refused before anything ran (see _run): nothing to record, and a directory that holds
        # another run keeps that run's records.
        raise
    except BaseException as err:
        jobs.write_result(run_dir, jobs.FAILED, **jobs.failure_fields(err), **record)
        raise


def _run(cfg: DictConfig, payload: dict[str, Any] | None, ident: identity.RunIdentity,
         guard: jobs.PreemptionGuard, resumed_from: identity.RunIdentity | None = None,
         record: dict[str, Any] | None = None, time_limit: jobs.TimeLimit | None = None,
         lock: identity.RunLock | None = None) -> float:
    device = jobs.pick_device(cfg.device, jobs.job_number())
    configure_threads(int(cfg.threads), device)
    run_dir = Path(cfg.run_dir)
    resolved = _resolved(cfg)
    env = build_env(cfg.env, device)
    params = build_params(env, cfg.env, cfg.num_envs)
    spec = agents.get(cfg.agent.name)
    try:  # the agent's own cross-field checks (e.g. PPO's minibatch split of num_envs * num_steps)
        agent_cfg = spec.config_cls(**OmegaConf.to_container(cfg.agent, resolve=True))
        agent = spec.build(agent_cfg, env, params, int(cfg.seed))
    except ConfigError as err:
        # an agent refusing the env it was given names the env's field (expert: env.extra_arms)
        raise (err if err.field.startswith("env.") else err.under("agent")) from None
    agents.protocol.check(agent, cfg.agent.name)  # a plug-in that does not conform stops here
    history: list[dict[str, Any]] = []
    if payload is not None:
        with optimizer_without_dynamo():
            agent.load_state_dict(payload["agent"])  # each agent re-applies its config's learning rates
        assert resumed_from is not None
        history = list(payload.get("identity", {}).get("resumed_with", []))
        made = identity.changes(resumed_from, ident, agent.global_step)
        if made:
            log.warning(f"rlsuite: resuming {run_dir} at step {agent.global_step} with "
                        + ", ".join(f"{c['key']}: {c['old']!r} -> {c['new']!r}" for c in made))
        history += made
    ident_record = ident.to_dict() | ({"resumed_with": history} if history else {})
    if record is not None:
        record["identity"] = ident_record
    # Claimed only now, after every check that can refuse the config, so a refused run leaves no
    # directory behind; claiming refuses a directory that holds another run (RunMismatch). Only a
    # run that continues a checkpoint may differ from the claim in the resumable keys.
    allow = identity.resumable_keys(ident.config) if payload is not None else ("total_steps",)
    identity.claim(run_dir, ident, allow, history)
    if lock is not None:
        lock.acquire()  # a no-op when run() already holds it
    checkpoint.remove_stale_temps(checkpoint.checkpoint_dir(run_dir))  # left by a kill -9
    checkpoint.remove_stale_temps(run_dir, names=(METRICS_FILE, jobs.RESULT_FILE))
    # A resumed run rewinds its logs to the checkpoint: rows logged after it are redone.
    logger = Logger(run_dir, resolved, tensorboard=cfg.tensorboard, resume=payload is not None,
                    rewind_to=agent.global_step if payload is not None else None)
    logger.add_text("config", "```yaml\n" + OmegaConf.to_yaml(cfg, resolve=True) + "\n```")
    hooks = RunHooks(logger, checkpoint.checkpoint_dir(run_dir) / checkpoint.LATEST, resolved,
                     int(cfg.total_steps), int(cfg.checkpoint_every), agent.global_step,
                     bool(cfg.progress), guard, ident_record, time_limit)
    try:
        agent.learn(int(cfg.total_steps), hooks)
    except BaseException as err:
        hooks.close()
        logger.close()
        if isinstance(err, TrainingDiverged):
            agent_keys = [k for k in identity.resumable_keys(ident.config) if k.startswith("agent.")]
            last = (f"The last good checkpoint is {hooks.ckpt_path}: the same command with "
                    f"resume=auto (or resume=<run dir>) continues from it, and may change "
                    f"{', '.join(agent_keys) or 'total_steps'} there."
                    if hooks.ckpt_path.exists() else
                    "It diverged before its first checkpoint, so none was written.")
            raise SystemExit(f"rlsuite: training stopped: {err}. {last}") from err
        raise
    hooks.close()
    hooks.save(agent)
    metrics = _final_eval(agent, env, cfg)
    logger.log(agent.global_step, metrics)
    logger.write_hparams(resolved, metrics)
    logger.close()
    key = next(iter(metrics))
    score = metrics[key]
    jobs.write_result(run_dir, jobs.COMPLETED, metric=key, score=score, metrics=metrics,
                      global_step=agent.global_step, total_steps=int(cfg.total_steps),
                      identity=ident_record)
    log.info(f"rlsuite: {cfg.agent.name} on {cfg.env.name}: {key} = {score:.4g} after "
             f"{agent.global_step} steps; run dir {run_dir}")
    return score


def _final_eval(agent: Agent, env: BatchedEnv, cfg: DictConfig) -> dict[str, float]:
    """Final metrics; the first key is the run's score (what sweepers optimize).

    By default the greedy policy's mean return over ``eval_episodes`` episodes. An agent whose
    score is something else (a bandit's regret, an exact solver's objective) defines
    ``final_metrics(env, params, generator) -> dict[str, float]``, its score first
    (:class:`~rlsuite.agents.protocol.HasFinalMetrics`).
    """
    eval_params = build_params(env, cfg.env, int(cfg.eval_episodes))
    generator = env.make_generator(int(cfg.seed) + 10_007)
    if isinstance(agent, HasFinalMetrics):
        metrics = {k: float(v) for k, v in agent.final_metrics(env, eval_params, generator).items()}
        if not metrics:
            raise ValueError(f"{type(agent).__name__}.final_metrics returned no metrics")
        return metrics
    # An agent with a fused greedy policy (PPO's fast path) is evaluated as a fused rollout.
    policy = (agent.greedy_policy() if isinstance(agent, HasGreedyPolicy)
              else lambda obs: agent.act(obs, deterministic=True))
    result = evaluate(policy, env, eval_params, 1, generator)
    return {"eval/mean_reward": float(result.mean_return.mean())}
