"""The VGDF agent (Xu et al. 2023, Algorithm 1) and its baselines.

By default the source and target domains are two params of one engine env's shift-capable twin
(:mod:`rlsuite.envs.shifts`): the run's params are the source, ``config.target_shift`` overrides
give the target. For the paper's MuJoCo tasks they are two gymnasium envs instead
(``domains=GymnasiumDomains.for_task("halfcheetah_broken_thigh", ...)``, see
:mod:`rlsuite.agents.vgdf.domains` and :mod:`rlsuite.envs.mujoco_shifts`); gymnasium envs are
stateful, so a checkpoint of such a run restores the learner but not the simulators.

The clock is the source domain's: ``total_steps`` and ``global_step`` count
source steps (the paper's 1 M), and one target step is taken per ``gamma_ratio`` source steps.

Per iteration (the batched form of the code's one-source-step loop, ``script/train_vgdf.py``):

1. every source copy steps once with the optimistic exploration policy (the policy itself with
   ``optimistic_exploration=False``);
2. the target copies step with the policy until ``target steps * Gamma >= source steps``;
3. the dynamics ensemble is refitted on all target data each time the source clock crosses a
   multiple of ``model_train_freq`` (250);
4. ``sac.utd`` updates per source step: sample ``sac.batch_size`` from each domain, score the source
   batch with the value-guided filter (keep the top ``keep_fraction`` after ``warmup_steps``),
   then SAC's critic / actor / exploration-actor steps (:func:`rlsuite.agents.vgdf.update.vgdf_update`);
5. every ``eval_every`` source steps the greedy policy is scored in both domains.

Variants (``config.variant``): ``mix`` keeps every source sample; ``zero_shot`` trains SAC on the
source alone; ``target_only`` trains SAC on the target data alone (same target budget and
schedule, so ``sac.utd * gamma_ratio`` updates per target step); ``darc`` corrects source rewards
with DARC's classifiers instead of filtering. None of them fits the dynamics model.

Logged tags: ``rollout/ep_rew_mean`` (source episodes), ``vgdf/target_ep_rew_mean``,
``eval/source_return``, ``eval/target_return``, ``vgdf/accept_ratio``, ``vgdf/fvp_mean``,
``vgdf/value_gap_mean`` (|FVE mean - source target|), ``vgdf/model_holdout_mse``,
``vgdf/model_epochs``, ``vgdf/target_steps``, ``train/*`` (SAC losses), ``darc/*``; with
``config.diagnostics`` (the default) also the diagnostics of :mod:`rlsuite.agents.vgdf.diagnostics`
(``vgdf/fvp_*``, ``vgdf/value_kept`` / ``_rejected``, ``vgdf/model_fresh_mse``,
``vgdf/dyn_diff_kept`` / ``_rejected``), which draw nothing from the agent's generators.
"""

from __future__ import annotations

import copy
import time
import warnings
from typing import Any

import torch

from rlsuite import validation as rules
from rlsuite.agents.vgdf import darc
from rlsuite.agents.vgdf import diagnostics as diag
from rlsuite.agents.vgdf import filter as vfilter
from rlsuite.agents.vgdf.config import VGDFConfig
from rlsuite.agents.vgdf.domains import GymnasiumDomains, ShiftDomains
from rlsuite.agents.vgdf.model import build_model, make_predict, train_model
from rlsuite.agents.vgdf.update import UpdateParams, vgdf_update
from rlsuite.core import tree
from rlsuite.core.env import BatchedEnv
from rlsuite.engine.evaluate import evaluate
from rlsuite.engine.interaction import Interaction
from rlsuite.learners.buffers import ReplayBuffer, Transitions, concat
from rlsuite.learners.flat import FlatOptimizer
from rlsuite.learners.nets import flat_dim
from rlsuite.learners.optim import adam, load_optimizer
from rlsuite.learners.sac import SACConfig, SACNetworks, SACOptimizers, SquashedGaussianActor
from rlsuite.training import LossTotals, TrainingHooks, check_finite

TARGET_SEED_OFFSET = 7_919
"""The target interaction's seed is the run seed plus this (its own env and policy streams)."""


def explore_optimizer(actor: SquashedGaussianActor, sac: SACConfig
                      ) -> torch.optim.Optimizer | FlatOptimizer:
    """The exploration actor's Adam: with ``sac.fast_path`` a fused one over a flat block (as
    :meth:`SACOptimizers.make` builds the actor's; what the compiled update steps), else torch's
    per-tensor Adam (the eager reference). Both save the same per-parameter ``state_dict``."""
    if sac.fast_path:
        return FlatOptimizer(adam(actor.parameters(), lr=sac.learning_rate, fused=True))
    return torch.optim.Adam(actor.parameters(), lr=sac.learning_rate)


class VGDF:
    """VGDF (or one of its baselines) with a source and a target domain.

    Args:
        config: hyperparameters and (engine path) the target shift.
        env: the engine env (Pendulum, ContinuousCartPole, or their shifted twins); the target is
            the same env with ``config.target_shift``. Ignored when ``domains`` is given.
        params: the source domain's params; their batch size is the number of source copies.
        seed: seeds the networks, both domains' env streams and the agent's generator.
        domains: the two domains, when they are not two params of one engine env (nor
            ``config.mujoco_task``'s pair, built here when set): e.g.
            :class:`rlsuite.agents.vgdf.domains.GymnasiumDomains` (two gymnasium MuJoCo envs; then
            ``config.target_shift`` and ``config.target_envs`` are not used).
    """

    def __init__(self, config: VGDFConfig, env: BatchedEnv | None = None, params: Any = None,
                 seed: int = 0, domains: Any = None) -> None:
        rules.validate(config)  # a config mutated after construction is checked again
        self.config = cfg = config
        if domains is None:
            if env is None or params is None:
                raise ValueError("VGDF needs an env and its params, or domains=")
            if cfg.mujoco_task is not None:  # the runner's path to the paper's MuJoCo tasks
                domains = GymnasiumDomains.for_task(cfg.mujoco_task, tree.batch_size(params),
                                                    cfg.target_envs, env.device)
            else:
                domains = ShiftDomains(env, params, cfg.target_envs, cfg.target_shift)
        self.domains = domains
        self.env = domains.source_env
        self.device = self.env.device
        self.source_params = domains.source_params
        self.target_params = domains.target_params
        self.num_source = tree.batch_size(self.source_params)
        self.terminal = domains.terminal
        torch.manual_seed(seed)  # network initialisation
        sac = cfg.sac
        obs_space, act_space = self.env.observation_space, self.env.action_space
        self.nets = SACNetworks(obs_space, act_space, sac).to(self.device)
        self.opt = SACOptimizers.make(self.nets, sac.learning_rate)
        obs_dim, act_dim = flat_dim(obs_space.shape), flat_dim(act_space.shape)
        self.explore_actor = SquashedGaussianActor(obs_dim, act_space.low, act_space.high,
                                                   sac.hidden_sizes).to(self.device)
        self.explore_opt = explore_optimizer(self.explore_actor, sac)
        self.update_params = UpdateParams.of(self.nets, self.explore_actor)
        self.model = build_model(cfg, obs_dim, act_dim).to(self.device)
        self.model_opt = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad],
                                          lr=cfg.model_learning_rate)
        self.classifiers = darc.DomainClassifiers(obs_dim, act_dim, cfg.darc_hidden).to(self.device)
        self.classifier_opt = torch.optim.Adam(self.classifiers.parameters(), lr=sac.learning_rate)
        self.src_buffer = ReplayBuffer.for_env(self.env, sac.buffer_size)
        self.tar_buffer = ReplayBuffer.for_env(self.env, sac.buffer_size)
        self.src = Interaction(domains.source_env, self.source_params, seed)
        self.tar = Interaction(domains.target_env, self.target_params, seed + TARGET_SEED_OFFSET)
        self.generator = self.src.policy_generator  # every draw of the learner
        self.eval_generator = self.env.make_generator(seed + 2 * TARGET_SEED_OFFSET)
        self.source_steps = 0
        self.target_steps = 0
        self.iteration = 0
        self.num_updates = 0
        self.update_slots = 0
        """``int(utd * source_steps)`` at the last iteration: update slots owed or skipped."""
        self.model_fits = 0
        self.target_steps_at_fit = 0
        """``target_steps`` at the last model fit: newer target data is fresh to the model."""
        self.last_eval: dict[str, float] = {}
        self._target_next_obs = getattr(domains, "target_next_obs", None)
        reason = getattr(domains, "target_step_unavailable", "the domains give no target step")
        if reason is not None:
            self._target_next_obs = None
            if cfg.diagnostics and cfg.variant == "vgdf":
                warnings.warn(f"VGDF: vgdf/dyn_diff_kept and vgdf/dyn_diff_rejected are not "
                              f"logged: {reason}", stacklevel=2)

    @property
    def global_step(self) -> int:
        """Source-domain steps so far (the schedule's clock; counted for ``target_only`` too)."""
        return self.source_steps

    # -- acting ---------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """The policy's Box actions (the mean action when ``deterministic``)."""
        action = self.nets.actor.action(obs, self.generator, deterministic)
        return action.reshape(-1, *self.env.action_space.shape)

    @torch.no_grad()
    def _explore(self, obs: torch.Tensor) -> torch.Tensor:
        actor = self.explore_actor if self.config.optimistic_exploration else self.nets.actor
        action = actor.action(obs, self.generator)
        return action.reshape(-1, *self.env.action_space.shape)

    def _random(self, obs: torch.Tensor) -> torch.Tensor:
        space = self.env.action_space
        u = torch.rand((obs.shape[0], *space.shape), generator=self.generator, device=self.device)
        return space.low + (space.high - space.low) * u

    # -- the filter -------------------------------------------------------------------------
    def _filter_active(self) -> bool:
        return self.source_steps > self.config.warmup_steps and self.model_fits > 0

    def filter_batch(self, src: Any, diagnose: bool = False
                     ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Source-loss weights ``[N]`` of a source batch, the filter's statistics, and (when
        ``diagnose``, else ``{}``) the diagnostics of :meth:`_diagnose`."""
        cfg, nets = self.config, self.nets

        def value(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
            return torch.min(*nets.critic_target(obs, action))

        def policy(obs: torch.Tensor, gen: torch.Generator, det: bool) -> torch.Tensor:
            return nets.actor.action(obs, gen, det)

        fict = vfilter.fictitious_targets(
            make_predict(self.model, cfg.fve_members), value, policy, src.obs, src.action,
            src.reward, cfg.sac.gamma, self.generator, terminal=self.terminal,
            next_state=cfg.fictitious_next_state, reward_mode=cfg.fictitious_reward,
            next_action=cfg.fictitious_action)
        y_src = vfilter.source_targets(value, policy, src.reward, src.next_obs, src.terminated,
                                       cfg.sac.gamma, self.generator)
        scores = vfilter.fvp_scores(fict, y_src)
        # filter_ranking="random" is the control: the same fraction kept, chosen blind to value.
        ranking = scores if cfg.filter_ranking == "fvp" else torch.rand(
            scores.shape, generator=self.generator, device=scores.device, dtype=scores.dtype)
        sel = vfilter.select(ranking, cfg.keep_fraction, self._filter_active())
        stats = {"accept_ratio": sel.mask.float().mean(), "fvp_mean": scores.mean(),
                 "value_gap_mean": (fict.mean(0) - y_src).abs().mean()}
        diagnostics = self._diagnose(src, scores, sel.mask, value) if diagnose else {}
        return vfilter.source_loss_weights(sel.mask, cfg.src_loss_normalisation), stats, diagnostics

    @torch.no_grad()
    def _diagnose(self, src: Any, scores: torch.Tensor, mask: torch.Tensor,
                  value: Any) -> dict[str, torch.Tensor]:
        """The filter's diagnostics on one source batch (device tensors, no generator draw)."""
        out = {f"vgdf/fvp_{k}": v for k, v in diag.fvp_spread(scores).items()}
        v_next = diag.next_state_values(
            value, lambda o: self.nets.actor.action(o, self.generator, True), src.next_obs)
        out |= diag.pooled("vgdf/value_kept", v_next, mask)
        out |= diag.pooled("vgdf/value_rejected", v_next, ~mask)
        if self._target_next_obs is not None:
            differ = diag.dynamics_differ(src.next_obs, self._target_next_obs(src.obs, src.action))
            out |= diag.pooled("vgdf/dyn_diff_kept", differ.float(), mask)
            out |= diag.pooled("vgdf/dyn_diff_rejected", differ.float(), ~mask)
        return out

    # -- one update -------------------------------------------------------------------------
    def _update(self, diagnose: bool = False) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One gradient step: ``(losses and filter statistics, diagnostics)``; the diagnostics
        (``{}`` unless ``diagnose`` and the variant filters) are kept apart because the agent
        computes them on one update per iteration."""
        batch, weight, stats, diagnostics = self.sample_batch(diagnose)
        out = self.update_on(batch, weight)
        return stats | {f"train/{k}": v for k, v in out.items()}, diagnostics

    def sample_batch(self, diagnose: bool = False) -> tuple[
            Transitions, torch.Tensor | None, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """An update's batch as the variant draws it: ``(batch, per-sample critic weights or
        None, filter or DARC statistics, diagnostics)`` (DARC's classifiers take their step
        here, on the source and target halves)."""
        cfg, batch_size = self.config, self.config.sac.batch_size
        stats: dict[str, torch.Tensor] = {}
        diagnostics: dict[str, torch.Tensor] = {}
        if cfg.variant == "target_only":
            batch, weight = self.tar_buffer.sample(batch_size, self.generator), None
        elif cfg.variant == "zero_shot":
            batch, weight = self.src_buffer.sample(batch_size, self.generator), None
        else:
            src = self.src_buffer.sample(batch_size, self.generator)
            tar = self.tar_buffer.sample(batch_size, self.generator)
            w_src = torch.ones(len(src), device=self.device)
            if cfg.variant == "vgdf":
                w_src, filt, diagnostics = self.filter_batch(src, diagnose)
                stats |= {f"vgdf/{k}": v for k, v in filt.items()}
            elif cfg.variant == "darc":
                src, darc_stats = self._darc_step(src, tar)
                stats |= darc_stats
            batch = concat([tar, src])
            # 2 * (ones, w): critic_loss's 0.5 * mean over 2N becomes 0.5 * (target mean + source
            # term), the same scale as SAC on one domain.
            weight = 2.0 * torch.cat([torch.ones(len(tar), device=self.device), w_src])
        return batch, weight, stats, diagnostics

    def update_on(self, batch: Transitions, weight: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """:func:`~rlsuite.agents.vgdf.update.vgdf_update` on ``batch`` (the actors and the
        temperature every ``policy_delay``-th call, the exploration actor when it is used);
        its statistics."""
        cfg = self.config
        update_policy = self.num_updates % cfg.policy_delay == 0
        explore = cfg.optimistic_exploration and cfg.variant != "target_only"
        out = vgdf_update(self.nets, self.opt, batch, weight, cfg.sac.gamma, cfg.sac.tau, cfg.grad_clip,
                          update_policy, self.generator,
                          self.explore_actor if explore else None,
                          self.explore_opt if explore else None, self.update_params)
        self.num_updates += 1
        return out

    def _darc_step(self, src: Any, tar: Any) -> tuple[Any, dict[str, torch.Tensor]]:
        cfg = self.config
        loss = darc.classifier_loss(self.classifiers, src, tar, cfg.darc_noise, self.generator)
        self.classifier_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.classifier_opt.step()
        dr = darc.reward_correction(self.classifiers, src.obs, src.action, src.next_obs)
        if self.source_steps > cfg.darc_warmup:
            src = type(src)(src.obs, src.action, src.reward + dr, src.next_obs, src.terminated,
                            src.truncated, src.extras)
        return src, {"darc/classifier_loss": loss.detach(), "darc/reward_correction": dr.mean()}

    # -- learning ---------------------------------------------------------------------------
    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> VGDF:
        """Train until ``total_steps`` source steps; continues from the current counters."""
        cfg, hooks = self.config, hooks or TrainingHooks()
        num_iterations = max(1, total_steps // self.num_source)
        use_source = cfg.variant != "target_only"
        use_target = cfg.variant != "zero_shot"
        while self.iteration < num_iterations:
            tic = time.perf_counter()
            before = self.source_steps
            warm = self.source_steps < cfg.random_steps
            metrics: dict[str, float] = {}
            if use_source:
                data = self.src.collect(self._random if warm else self._explore, 1)
                self.src_buffer.add_rollout(data)
                metrics |= self.src.record_episodes(data)
            self.source_steps += self.num_source
            if use_target:
                while self.target_steps * cfg.gamma_ratio < self.source_steps:
                    tdata = self.tar.collect(self._random if warm else self.act, 1)
                    self.tar_buffer.add_rollout(tdata)
                    self.target_steps += self.tar.num_envs
                    target_eps = self.tar.record_episodes(tdata)
                    if target_eps:
                        metrics["vgdf/target_ep_rew_mean"] = target_eps["rollout/ep_rew_mean"]
            # ---- refit the target dynamics each time the clock crosses a multiple of the period
            period = cfg.model_train_freq
            if cfg.variant == "vgdf" and before // period != self.source_steps // period:
                gate = len(self.tar_buffer) if cfg.model_gate == "target" else len(self.src_buffer)
                if gate >= cfg.model_batch_size and len(self.tar_buffer) >= 2:
                    if cfg.diagnostics and self.model_fits > 0:
                        metrics |= self._fresh_model_error()
                    fit = train_model(self.model, self.model_opt, self.tar_buffer.ordered(),
                                      self.source_steps, cfg, self.generator)
                    self.model_fits += 1
                    self.target_steps_at_fit = self.target_steps
                    metrics |= {"vgdf/model_holdout_mse": float(fit.holdout_mse.mean()),
                                "vgdf/model_epochs": float(fit.epochs)}
            # ---- gradient updates owed (utd per source step once both buffers hold a batch)
            ready = ((not use_source or len(self.src_buffer) >= cfg.sac.batch_size)
                     and (not use_target or len(self.tar_buffer) >= cfg.sac.batch_size))
            # Slots owed before both buffers are ready are skipped, as the code skips train_ac.
            slots = int(cfg.sac.utd * self.source_steps + 1e-9)
            due = slots - self.update_slots if ready else 0
            self.update_slots = slots
            totals, diag_totals = LossTotals(), LossTotals()
            for i in range(due):
                # Diagnostics on the iteration's last update only: ~20 % of an update's time on a
                # CPU otherwise, and one batch per iteration is enough to follow them over a run.
                stats, diagnostics = self._update(cfg.diagnostics and i == due - 1)
                totals.add(stats)
                if diagnostics:
                    diag_totals.add(diagnostics)
            metrics |= totals.means("VGDF", self.source_steps, prefix="",
                                    params=self.nets.named_parameters())
            metrics |= diag.pool_means(diag_totals.means("VGDF", self.source_steps, prefix=""))
            metrics = check_finite("VGDF", self.source_steps, metrics)  # the model fit's metrics
            # ---- evaluation in both domains
            if before // cfg.eval_every != self.source_steps // cfg.eval_every:
                self.last_eval = self.evaluate_domains(cfg.eval_episodes)
                metrics |= self.last_eval
            metrics["train/n_updates"] = float(self.num_updates)
            metrics["vgdf/target_steps"] = float(self.target_steps)
            metrics["time/fps"] = self.num_source / (time.perf_counter() - tic)
            self.iteration += 1
            hooks.on_iteration(self, self.global_step, metrics)
        return self

    def _fresh_model_error(self) -> dict[str, float]:
        """``vgdf/model_fresh_mse`` on the target transitions collected since the last fit (the
        newest rows of the buffer), before the model is refitted on them; {} when there are none."""
        fresh = min(self.target_steps - self.target_steps_at_fit, len(self.tar_buffer))
        if fresh <= 0:
            return {}
        data = self.tar_buffer.ordered().index(slice(len(self.tar_buffer) - fresh, None))
        mse = diag.ensemble_next_state_mse(make_predict(self.model, "all"), data.obs.float(),
                                           data.action.float(), data.next_obs.float())
        return {"vgdf/model_fresh_mse": float(mse)}  # one sync per refit, with the fit's own

    # -- evaluation ---------------------------------------------------------------------------
    def evaluate_domains(self, episodes: int, generator: torch.Generator | None = None) -> dict[str, float]:
        """Greedy mean return in the target and the source domain (``episodes`` copies, one
        episode each): ``{"eval/target_return", "eval/source_return"}``."""
        gen = generator or self.eval_generator
        out = {}
        for name in ("target", "source"):
            env, params = self.domains.eval_env(name, episodes)
            res = evaluate(lambda o: self.act(o, deterministic=True), env, params, 1, gen)
            out[f"eval/{name}_return"] = float(res.mean_return.mean())
        return out

    def final_metrics(self, env: BatchedEnv, params: Any, generator: torch.Generator) -> dict[str, float]:
        """The score is the greedy return in the *target* domain (the paper's metric), over as
        many episodes as ``params`` has copies; the source return follows."""
        return self.evaluate_domains(tree.batch_size(params), generator)

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Networks, optimizers, model, buffers, both interactions, counters (weights-only)."""
        out: dict[str, Any] = {
            "nets": self.nets.state_dict(), "optimizers": self.opt.state_dict(),
            "explore_actor": self.explore_actor.state_dict(), "explore_opt": self.explore_opt.state_dict(),
            "model": self.model.state_dict(), "model_opt": self.model_opt.state_dict(),
            "classifiers": self.classifiers.state_dict(),
            "classifier_opt": self.classifier_opt.state_dict(),
            "src": self.src.state_dict(), "tar": self.tar.state_dict(),
            "eval_generator": self.eval_generator.get_state(),
            "global_step": self.source_steps, "target_steps": self.target_steps,
            "iteration": self.iteration, "num_updates": self.num_updates,
            "update_slots": self.update_slots, "model_fits": self.model_fits,
            "target_steps_at_fit": self.target_steps_at_fit,
        }
        out = copy.deepcopy(out)
        out["src_buffer"] = self.src_buffer.state_dict()
        out["tar_buffer"] = self.tar_buffer.state_dict()
        return out

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (same env, params and config)."""
        self.nets.load_state_dict(data["nets"])
        lr = self.config.sac.learning_rate  # the config's rates, not the ones the state was saved with
        self.opt.load_state_dict(data["optimizers"], lr, lr, lr)
        self.explore_actor.load_state_dict(data["explore_actor"])
        load_optimizer(self.explore_opt, data["explore_opt"], lr)
        self.model.load_state_dict(data["model"])
        load_optimizer(self.model_opt, data["model_opt"], self.config.model_learning_rate)
        self.classifiers.load_state_dict(data["classifiers"])
        load_optimizer(self.classifier_opt, data["classifier_opt"], lr)
        self.src.load_state_dict(data["src"])
        self.tar.load_state_dict(data["tar"])
        self.eval_generator.set_state(data["eval_generator"])
        self.src_buffer.load_state_dict(data["src_buffer"])
        self.tar_buffer.load_state_dict(data["tar_buffer"])
        self.source_steps, self.target_steps = int(data["global_step"]), int(data["target_steps"])
        self.iteration, self.num_updates = int(data["iteration"]), int(data["num_updates"])
        self.update_slots, self.model_fits = int(data["update_slots"]), int(data["model_fits"])
        # Checkpoints written before the diagnostics: count every target step as seen by the model.
        self.target_steps_at_fit = int(data.get("target_steps_at_fit", self.target_steps))
