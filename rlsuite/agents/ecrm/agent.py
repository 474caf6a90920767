"""The risk-averse policy-gradient agent for ECRM objectives (Yu and Ying, arXiv 2301.10932).

One iteration (``docs/ecrm.md``, "Algorithms and switches"; rewards convention)::

    collect the first episode of every env copy        (episodes.py; first step: first-step actor)
    (+ explore_starts episodes from uniform states)    (tabular NPG / actor-critic: Q tables only)
    k_t  = stage reward + threshold terms (+ entropy)  (objective.py)
    eta  <- eta + eta_lr * quantile step               (fast time scale, before the actor)
    actor step:
      reinforce     ascend  sum_t gamma^t log pi(a_t|s_t) (G_t - b(first, s_t))
      actor_critic  ascend  sum_t gamma^t log pi(a_t|s_t) (stage_t + Q(s_t,a_t) - sum_a pi Q(s_t,a))
                    with Q fitted by SARSA on Q(s,a) = E[thr(s,a) + gamma (stage' + Q(s',a'))];
                    ``ac_natural``: the closed-form natural step below on this critic instead
      npg           softmax tables (closed form): theta <- (1 - step tau) theta + step Q_tau for
                    every state, Q from Monte-Carlo tables, shortened to the trust region
                    (Cen et al.'s entropy-regularized NPG, the paper's setting 3); networks:
                    the shared trust-region step (learners/npg.py) on the REINFORCE surrogate
    softmax / neural actors: Adam; direct: gradient ascent + projection onto the simplex

Logged: ``ecrm/objective_estimate`` (mean of sum_t gamma^t k_t, a lower bound on the ECRM that is
tight when eta = VaR), ``ecrm/exact_ecrm`` (tabular), ``rollout/ep_rew_mean`` and
``rollout/ep_len_mean`` (over the last 100 episodes, :mod:`rlsuite.engine.episode_window`),
``ecrm/return_cvar`` (CVaR_alpha of the episode return), ``ecrm/failure_rate``, ``ecrm/eta_*``.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any

import torch
from torch import nn

from rlsuite.agents.ecrm import objective as obj
from rlsuite.agents.ecrm.config import ECRMConfig
from rlsuite.agents.ecrm.episodes import Episodes, StagePolicy, collect_first_episodes
from rlsuite.agents.ecrm.exact import exact_ecrm
from rlsuite.agents.ecrm.model import ECRMModel, sample_categorical
from rlsuite.core import tree
from rlsuite.core.env import BatchedEnv
from rlsuite.engine.interaction import Interaction, InteractionCounters
from rlsuite.envs.tabular.mdp import TabularMDP
from rlsuite.learners.npg import detached_kl, trpo_step
from rlsuite.learners.optim import load_optimizer
from rlsuite.risk import cvar
from rlsuite.training import TrainingHooks, check_finite

REPORT_CVAR_LEVEL = 0.1
"""The fixed tail level of the ``eval/return_cvar_0.1`` final metric (the same for every alpha)."""


def _scatter_mean(index: torch.Tensor, values: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-index sums and counts of ``values`` (flat ``index`` into ``size`` cells)."""
    sums = torch.zeros(size, device=values.device).index_add_(0, index, values)
    counts = torch.zeros(size, device=values.device).index_add_(0, index, torch.ones_like(values))
    return sums, counts


def risk_adjusted_rewards(ep: Episodes, cfg: ECRMConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(stage, thr, disc)``: each step's own risk-adjusted reward, its threshold terms
    (:mod:`.objective`) and the discount ``gamma^t`` as ``[T, 1]``."""
    t_len = ep.reward.shape[0]
    disc = (cfg.gamma ** torch.arange(t_len, device=ep.reward.device, dtype=torch.float32)).unsqueeze(1)
    stage = obj.stage_rewards(ep.reward, ep.eta_prev, ep.first, cfg.risk_weight, cfg.alpha)
    thr = obj.threshold_terms(ep.eta, ep.terminated, ep.truncated, cfg.risk_weight, cfg.alpha, cfg.gamma)
    return stage, thr, disc


def reinforce_surrogate(model: ECRMModel, ep: Episodes, cfg: ECRMConfig) -> torch.Tensor:
    """``(1/B) sum_episodes sum_t gamma^t log pi(a_t | s_t) G_t`` (no baseline, no entropy): its
    gradient is the Monte-Carlo REINFORCE estimate of ``dJ/dtheta`` (``docs/ecrm.md``, "Gradients")."""
    stage, thr, disc = risk_adjusted_rewards(ep, cfg)
    ret = obj.reward_to_go(torch.where(ep.valid, stage + thr, 0.0), ep.valid, cfg.gamma)
    t_len, b = ep.reward.shape
    idx = ep.valid.reshape(-1)
    obs = ep.obs.reshape(t_len * b, *ep.obs.shape[2:])[idx]
    action = ep.action.reshape(t_len * b, *ep.action.shape[2:])[idx]
    logp = model.log_prob(obs, ep.first.reshape(-1)[idx], ep.eta_prev.reshape(-1)[idx], action)
    weight = (disc * ret).reshape(-1)[idx] if cfg.discount_weighting else ret.reshape(-1)[idx]
    return (logp * weight.detach()).sum() / b


def threshold_gradient_sample(
    ep: Episodes, cfg: ECRMConfig, num_states: int, num_actions: int
) -> torch.Tensor:
    """The sampled ``dJ/deta(s, a)`` of a tabular agent, ``[S, A]``: ``(1/B) sum_t
    gamma^(t+1) (lam / alpha) (alpha - 1{R' < eta_t})`` at each visited ``(s_t, a_t)``."""
    _, _, disc = risk_adjusted_rewards(ep, cfg)
    target, has = obj.next_rewards(ep.reward, ep.terminated, ep.truncated, ep.valid)
    step = disc * cfg.gamma * cfg.risk_weight / cfg.alpha * obj.quantile_direction(target, ep.eta, cfg.alpha)
    cell = (ep.obs.long() * num_actions + ep.action)[has]
    out = torch.zeros(num_states * num_actions, device=ep.reward.device).index_add_(0, cell, step[has])
    return (out / ep.reward.shape[1]).view(num_states, num_actions)


def risk_neutral_greedy(mdp: TabularMDP) -> torch.Tensor:
    """``[S, A]`` one-hot of the risk-neutral optimal first action: value iteration over the
    MDP's horizon (or 1000 sweeps without one)."""
    v = torch.zeros(mdp.num_states, dtype=torch.float64)
    for _ in range(mdp.horizon or 1000):
        v = mdp.backup(v).max(-1).values
    return nn.functional.one_hot(mdp.backup(v).argmax(-1), mdp.num_actions).to(torch.float64)


def reachable_states(mdp: TabularMDP) -> torch.Tensor:
    """``[S]`` bool: the states an episode can act in (the initial support and every state a
    continuing outcome leads to, transitively)."""
    reach = mdp.initial > 0
    step = (mdp.prob > 0) & ~mdp.terminal  # [S, A, K]
    while True:
        nxt = torch.zeros_like(reach)
        nxt[mdp.next_state[reach][step[reach]]] = True
        new = reach | nxt
        if bool((new == reach).all()):
            return reach
        reach = new


def _exploring_params(env: BatchedEnv, mdp: TabularMDP, copies: int) -> Any:
    """Params of ``copies`` episodes that start uniformly on :func:`reachable_states` (the
    restart distribution of exploring starts)."""
    from rlsuite.envs.tabular.env import params_from_mdps

    reach = reachable_states(mdp).to(torch.float64)
    start = dataclasses.replace(mdp, initial=reach / reach.sum())
    horizon = getattr(env, "max_episode_steps", None) or mdp.horizon
    return params_from_mdps([start], device=env.device, horizon=horizon, copies=copies)


class ECRM(InteractionCounters):
    """Risk-averse REINFORCE / actor-critic / NPG for the ECRM of rewards on an engine env.

    Args:
        config: hyperparameters (:class:`ECRMConfig`).
        env: a batched env with discrete actions; tabular parameterizations need a ``TabularEnv``.
        params: per-copy params; their batch size is the number of episodes per iteration (every
            copy restarts at each iteration and only its first episode is used, so none is biased
            towards short episodes).
        seed: seeds the networks, the env generator and the policy generator.
    """

    def __init__(self, config: ECRMConfig, env: BatchedEnv, params: Any, seed: int = 0) -> None:
        self.config = cfg = config
        self.env, self.params, self.device = env, params, env.device
        self.num_envs = tree.batch_size(params)
        torch.manual_seed(seed)
        self.model = ECRMModel(env.observation_space, env.action_space, cfg).to(self.device)
        self.interaction = Interaction(env, params, seed)
        self.policy_generator = self.interaction.policy_generator
        self.tabular = self.model.discrete_obs
        if self.model.continuous and cfg.variant == "actor_critic":
            raise ValueError("ECRMConfig.variant='actor_critic' needs a Discrete action space (its "
                             "advantage sums Q over the actions); use 'reinforce' or 'npg' for Box actions")
        self.actor_opt = (None if cfg.parameterization == "direct"
                          else torch.optim.Adam(self.model.actor_parameters(), lr=cfg.policy_lr))
        self.net_opts: dict[str, torch.optim.Optimizer] = {}
        if not self.tabular:
            self.net_opts = {
                "eta": torch.optim.Adam(self.model.eta.parameters(), lr=cfg.eta_lr),
                "critic": torch.optim.Adam(self.model.critic.parameters(), lr=cfg.critic_lr),
                "baseline": torch.optim.Adam(self.model.baseline.parameters(), lr=cfg.baseline_lr),
            }
        mdp = getattr(env, "mdp", None)
        self.mdp = None
        self.eta_range: tuple[float, float] | None = None
        if mdp is not None and self.tabular:
            # VaR of a next reward lies between the smallest and largest reward (or the 0 of
            # the absorbing stage): clip there, as a VaR outside that range is never optimal.
            self.eta_range = (min(float(mdp.reward.min()), 0.0), max(float(mdp.reward.max()), 0.0))
            # Exact ECRMs (a policy conditioned on the previous threshold is read as one of the
            # previous pair, [S, A, S, A]).
            horizon = getattr(env, "max_episode_steps", None) or mdp.horizon
            self.mdp = dataclasses.replace(mdp, gamma=cfg.gamma, horizon=horizon)
        form = cfg.npg_form
        if form == "auto":
            form = "closed_form" if cfg.parameterization == "softmax" else "trpo"
        self.closed_form_npg = cfg.variant == "npg" and form == "closed_form"
        self.explore_params = None
        if cfg.explore_starts:
            if mdp is None or not self.tabular or not (self.closed_form_npg or cfg.variant == "actor_critic"):
                raise ValueError("ECRMConfig.explore_starts needs variant='npg' with the closed form "
                                 "or variant='actor_critic', on a TabularEnv")
            self.explore_params = _exploring_params(env, mdp, cfg.explore_starts)
        self.failure_reward = cfg.failure_reward
        if self.failure_reward is None:
            self.failure_reward = getattr(env, "failure_reward", None)
        if cfg.warm_start_temperature:
            if self.mdp is None:
                raise ValueError("warm_start_temperature needs a tabular env (a TabularEnv)")
            logits = cfg.warm_start_temperature * risk_neutral_greedy(self.mdp)
            with torch.no_grad():
                for table in (self.model.actor, self.model.actor_first):
                    if table is not None:
                        table.copy_(logits.to(table))

    # -- acting -------------------------------------------------------------------------------
    @torch.no_grad()
    def _act(self, obs: torch.Tensor, first: torch.Tensor, eta_prev: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
        action = self.model.sample(obs, first, eta_prev, self.policy_generator)
        eta = self.model.threshold_of(obs, action)
        if self.eta_range is not None:
            eta = eta.clamp(*self.eta_range)
        return action, eta

    @torch.no_grad()
    def _act_explore(self, obs: torch.Tensor, first: torch.Tensor, eta_prev: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Exploring starts: a uniform first action, then the later-stage policy."""
        probs = self.model.probs(obs, torch.zeros_like(first), eta_prev)
        probs = torch.where(first.unsqueeze(-1), torch.full_like(probs, 1.0 / probs.shape[-1]), probs)
        action = sample_categorical(probs, self.policy_generator)
        eta = self.model.threshold_of(obs, action)
        if self.eta_range is not None:
            eta = eta.clamp(*self.eta_range)
        return action, eta

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions of the later-stage policy (it sees no stage and, with ``condition_on_prev``, a
        zero previous threshold); whole episodes act through :meth:`stage_policy`."""
        b = obs.shape[0]
        later, zero = torch.zeros(b, dtype=torch.bool, device=obs.device), torch.zeros(b, device=obs.device)
        if deterministic:
            return self.model.mode(obs, later, zero)
        return self.model.sample(obs, later, zero, self.policy_generator)

    def stage_policy(self) -> StagePolicy:
        """A fresh acting closure for :func:`collect_first_episodes` (first-step actor at t = 0)."""
        return StagePolicy(self._act)

    # -- learning -------------------------------------------------------------------------------
    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> ECRM:
        """Train until ``total_steps`` env steps (summed over copies); continues from the counters."""
        cfg, hooks = self.config, hooks or TrainingHooks()
        while self.global_step < total_steps:
            tic = time.perf_counter()
            ep = collect_first_episodes(self.env, self.params, self.stage_policy(),
                                        self.interaction.env_generator, cfg.chunk_steps,
                                        cfg.max_episode_steps)
            self.interaction.global_step += ep.steps
            explore = None
            if self.explore_params is not None:
                explore = collect_first_episodes(
                    self.env, self.explore_params, StagePolicy(self._act_explore),
                    self.interaction.env_generator, cfg.chunk_steps, cfg.max_episode_steps)
                self.interaction.global_step += explore.steps
            metrics = self.update(ep, explore)
            metrics["time/fps"] = ep.steps / (time.perf_counter() - tic)
            self.interaction.iteration += 1
            if self.mdp is not None and cfg.exact_every and self.iteration % cfg.exact_every == 0:
                metrics["ecrm/exact_ecrm"] = self.exact_value()
            hooks.on_iteration(self, self.global_step, metrics)
        return self

    def exact_value(self) -> float:
        """The exact ECRM of the current (stochastic) tabular policy (with ``condition_on_prev``:
        of the policy of the previous pair it induces through the learned thresholds)."""
        if self.mdp is None:
            raise ValueError("exact_value needs a tabular env (a TabularEnv with its MDP)")
        with torch.no_grad():
            if self.config.condition_on_prev:
                later, first = self.model.conditioned_policies(self.eta_range)
            else:
                later, first = self.model.table_policies()
        return float(exact_ecrm(self.mdp, later.cpu(), self.config.alpha, self.config.risk_weight,
                                first_policy=first.cpu()))

    def update(self, ep: Episodes, explore: Episodes | None = None) -> dict[str, float]:
        """One iteration's threshold, critic/baseline and actor steps on collected episodes
        (``explore``: exploring-start episodes, which train the thresholds and the closed-form
        NPG's Q tables only)."""
        cfg, lam, alpha, gamma = self.config, self.config.risk_weight, self.config.alpha, self.config.gamma
        t_len, b = ep.reward.shape
        valid, first = ep.valid, ep.first
        disc = (gamma ** torch.arange(t_len, device=self.device, dtype=torch.float32)).unsqueeze(1)
        stage = obj.stage_rewards(ep.reward, ep.eta_prev, first, lam, alpha)
        thr = obj.threshold_terms(ep.eta, ep.terminated, ep.truncated, lam, alpha, gamma)
        k_risk = torch.where(valid, stage + thr, 0.0)
        # ---- actor inputs at the valid steps (flattened)
        idx = valid.reshape(-1)
        obs = ep.obs.reshape(t_len * b, *ep.obs.shape[2:])[idx]
        action = ep.action.reshape(t_len * b, *ep.action.shape[2:])[idx]
        first_v, eta_prev_v = first.reshape(-1)[idx], ep.eta_prev.reshape(-1)[idx]
        weight = (disc if cfg.discount_weighting else torch.ones_like(disc)).expand(t_len, b).reshape(-1)[idx]
        with torch.no_grad():
            old_logp = self.model.log_prob(obs, first_v, eta_prev_v, action)
        ent = torch.zeros_like(k_risk)
        if cfg.ent_coef:
            ent.view(-1)[idx.nonzero().squeeze(1)] = -cfg.ent_coef * old_logp
        k = k_risk + ent
        ret = obj.reward_to_go(k, valid, gamma)
        # ---- thresholds first (faster time scale)
        eta_stats = self._update_eta(ep, disc)
        if explore is not None:
            x_disc = (gamma ** torch.arange(explore.reward.shape[0], device=self.device,
                                            dtype=torch.float32)).unsqueeze(1)
            self._update_eta(explore, x_disc)
        # ---- advantages
        stats: dict[str, torch.Tensor] = {}
        batches = [(ep, False)] + ([(explore, True)] if explore is not None else [])
        if self.closed_form_npg:
            stats.update(self._closed_form_npg(batches))
        elif cfg.variant == "actor_critic":
            if explore is not None:  # exploring starts train the critic too (the pair value
                # does not depend on how the pair was reached)
                x = self._npg_samples(explore, True, flat=False)
                x_idx = explore.valid.reshape(-1)
                x_obs = explore.obs.reshape(-1)[x_idx]
                self._critic_advantages(explore, x["stage"] + x["ent"], x["thr"], x_obs,
                                        explore.action.reshape(-1)[x_idx], x_idx)
            adv, stats["critic_loss"] = self._critic_advantages(ep, stage + ent, thr, obs, action, idx)
            if cfg.ac_natural:
                stats.update(self._closed_form_npg(batches, pair=self.model.critic.detach()))
        else:
            g = ret.reshape(-1)[idx]
            adv = g
            if cfg.baseline:
                adv = g - self.model.baseline_value(obs, first_v, eta_prev_v).detach()
                stats["baseline_loss"] = self._update_baseline(obs, first_v, eta_prev_v, g)
        if not (self.closed_form_npg or (cfg.variant == "actor_critic" and cfg.ac_natural)):
            stats.update(self._actor_step(obs, first_v, eta_prev_v, action, adv, weight, old_logp))
        # ---- metrics (one host sync for the scalars, one for the episode window)
        returns = ep.returns()
        values: dict[str, torch.Tensor] = {
            "ecrm/objective_estimate": (disc * k_risk).sum(0).mean(),
            "ecrm/return_cvar": cvar(returns.double(), None, alpha).float(),
            **{f"ecrm/{k}": v for k, v in eta_stats.items()},
            **{f"train/{k}": v for k, v in stats.items()},
        }
        if self.failure_reward is not None:
            fail = (valid & (ep.reward <= self.failure_reward)).any(0)
            values["ecrm/failure_rate"] = fail.float().mean()
        values = {k: v.detach().float() for k, v in values.items()}  # logged in float32, as before
        train = {k: v for k, v in values.items() if k.startswith("train/")}
        rest = {k: v for k, v in values.items() if k not in train}  # may be NaN, logged as is
        out = check_finite("ECRM", self.global_step, train, self.model.named_parameters(),
                           unchecked=rest)
        metrics = {k: out[k] for k in values}
        # rollout/ep_rew_mean / ep_len_mean: the last 100 episodes, as in every agent
        metrics.update(self.interaction.episodes.add(returns, valid.sum(0)))
        return metrics

    # -- thresholds ---------------------------------------------------------------------------
    def _update_eta(self, ep: Episodes, disc: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.config
        target, has = obj.next_rewards(ep.reward, ep.terminated, ep.truncated, ep.valid)
        idx = has.reshape(-1)
        t_len, b = ep.reward.shape
        obs = ep.obs.reshape(t_len * b, *ep.obs.shape[2:])[idx]
        action = ep.action.reshape(t_len * b, *ep.action.shape[2:])[idx]
        tgt = target.reshape(-1)[idx]
        w = torch.ones_like(tgt)
        if cfg.eta_weighting == "objective":  # the sampled dJ/deta: gamma^(t+1) lam / alpha
            w = (disc * cfg.gamma * cfg.risk_weight / cfg.alpha).expand(t_len, b).reshape(-1)[idx]
        n = tgt.numel()
        if n == 0:
            zero = torch.zeros((), device=self.device)
            return {"eta_mean": zero, "eta_min": zero, "eta_max": zero, "eta_below_rate": zero}
        for _ in range(cfg.eta_updates):
            if self.tabular:
                a_count = self.model.num_actions
                cell = obs.long() * a_count + action
                eta_sa = self.model.eta.detach().view(-1)[cell]
                step = w * obj.quantile_direction(tgt, eta_sa, cfg.alpha)
                sums, counts = _scatter_mean(cell, step, self.model.eta.numel())
                if cfg.eta_weighting == "uniform":  # per-(s, a) mean of the quantile step
                    delta = sums / counts.clamp_min(1.0)
                else:  # the sampled gradient, averaged over episodes
                    delta = sums / self.num_envs
                if cfg.eta_decay_by == "visits":  # each cell's own count of updates
                    lr = cfg.eta_lr / (1.0 + self.model.eta_visits.view(-1)) ** cfg.eta_lr_decay
                    self.model.eta_visits.view(-1).add_((counts > 0).float())
                else:
                    lr = cfg.eta_lr / (1.0 + self.iteration) ** cfg.eta_lr_decay
                with torch.no_grad():
                    new = self.model.eta.view(-1) + lr * delta
                    if self.eta_range is not None:
                        new = new.clamp(*self.eta_range)
                    self.model.eta.copy_(new.view_as(self.model.eta))
            else:
                eta_sa = self.model.threshold_of(obs, action)
                u = tgt - eta_sa
                pinball = u * (cfg.alpha - (u.detach() < 0).float())
                loss = (w * pinball).mean()
                opt = self.net_opts["eta"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        with torch.no_grad():
            eta_sa = self.model.threshold_of(obs, action)
            return {"eta_mean": eta_sa.mean(), "eta_min": eta_sa.min(), "eta_max": eta_sa.max(),
                    # -> alpha when eta is the lower alpha-quantile of R'
                    "eta_below_rate": (tgt < eta_sa).float().mean()}

    # -- baseline and critic ----------------------------------------------------------------------
    def _update_baseline(self, obs: torch.Tensor, first: torch.Tensor, eta_prev: torch.Tensor,
                         g: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if self.tabular:
            cell = first.long() * self.model.obs_dim + obs.long()
            b_now = self.model.baseline.detach().view(-1)[cell]
            sums, counts = _scatter_mean(cell, g - b_now, self.model.baseline.numel())
            with torch.no_grad():
                self.model.baseline.view(-1).add_(cfg.baseline_lr * sums / counts.clamp_min(1.0))
            return ((g - b_now) ** 2).mean()
        loss = ((self.model.baseline_value(obs, first, eta_prev) - g) ** 2).mean()
        opt = self.net_opts["baseline"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.detach()

    def _critic_advantages(self, ep: Episodes, stage: torch.Tensor, thr: torch.Tensor,
                           obs: torch.Tensor, action: torch.Tensor, idx: torch.Tensor
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """SARSA critic of the risk-adjusted process (``docs/ecrm.md``) and the actor's advantages."""
        cfg = self.config
        t_len, b = ep.reward.shape
        all_obs = ep.obs.reshape(t_len * b, *ep.obs.shape[2:])
        cont = torch.zeros_like(ep.valid)
        cont[:-1] = ep.valid[1:] & ~(ep.terminated[:-1] | ep.truncated[:-1])
        loss = torch.zeros((), device=self.device)
        for _ in range(cfg.critic_updates):
            with torch.no_grad():
                q_sa = self.model.q_values(all_obs).gather(1, ep.action.reshape(-1, 1)).view(t_len, b)
                nxt = torch.cat([stage[1:] + q_sa[1:], torch.zeros_like(q_sa[:1])], 0)
                target = (thr + cfg.gamma * torch.where(cont, nxt, 0.0)).reshape(-1)[idx]
            if self.tabular:
                cell = obs.long() * self.model.num_actions + action
                q_now = self.model.critic.detach().view(-1)[cell]
                sums, counts = _scatter_mean(cell, target - q_now, self.model.critic.numel())
                with torch.no_grad():
                    self.model.critic.view(-1).add_(cfg.critic_lr * sums / counts.clamp_min(1.0))
                loss = ((target - q_now) ** 2).mean()
            else:
                q = self.model.q_values(obs).gather(1, action.unsqueeze(1)).squeeze(1)
                loss = ((q - target) ** 2).mean()
                opt = self.net_opts["critic"]
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss = loss.detach()
        with torch.no_grad():
            q_all = self.model.q_values(obs)
            probs = self.model.probs(obs, ep.first.reshape(-1)[idx], ep.eta_prev.reshape(-1)[idx])
            baseline = (probs * q_all).sum(-1)
            adv = stage.reshape(-1)[idx] + q_all.gather(1, action.unsqueeze(1)).squeeze(1) - baseline
        return adv, loss

    # -- closed-form tabular NPG -----------------------------------------------------------------
    @torch.no_grad()
    def _npg_samples(self, ep: Episodes, explore: bool, flat: bool = True) -> dict[str, torch.Tensor]:
        """Per valid step: ``cell`` (s * A + a), the discount weight, the own reward ``R_t``,
        the stage signal ``stage_t`` (and whether it has a real predecessor), and the pair value
        target ``thr_t + G_{t+1}`` (with entropy bonuses of the later steps)."""
        cfg, model = self.config, self.model
        lam, alpha, gamma = cfg.risk_weight, cfg.alpha, cfg.gamma
        t_len, b = ep.reward.shape
        valid, first = ep.valid, ep.first
        disc = (gamma ** torch.arange(t_len, device=self.device, dtype=torch.float32)).unsqueeze(1)
        stage = obj.stage_rewards(ep.reward, ep.eta_prev, first, lam, alpha)
        thr = obj.threshold_terms(ep.eta, ep.terminated, ep.truncated, lam, alpha, gamma)
        ent = torch.zeros_like(stage)
        if cfg.ent_coef:  # -tau log pi(a_t | s_t) of the actor that acted
            acting_first = first & ~torch.full_like(first, explore)
            probs = model.probs(ep.obs.reshape(-1), acting_first.reshape(-1), ep.eta_prev.reshape(-1))
            logp = torch.log(probs.gather(1, ep.action.reshape(-1, 1)).clamp_min(1e-30)).view(t_len, b)
            ent = -cfg.ent_coef * logp
            if explore:  # the uniform first action is not the policy's
                ent = torch.where(first, 0.0, ent)
        ret = obj.reward_to_go(torch.where(valid, stage + thr + ent, 0.0), valid, gamma)
        if not flat:  # [T, B] pieces for the critic
            return {"stage": stage, "thr": thr, "ent": ent}
        idx = valid.reshape(-1)
        weight = disc if cfg.discount_weighting else torch.ones_like(disc)
        # The stage signal of a step after a real predecessor; with one shared table the first
        # step's own reward is that table's signal too (first_stage stage_t = R_t).
        has_pred = ~first if (explore or model.actor_first is not None) else torch.ones_like(first)
        # The pair value of the later policy's steps (values depend on the stages left, so the
        # first step's pair, with more stages after it, has its own table); an exploring start's
        # first pair is a later-policy pair.
        later_pair = has_pred | torch.full_like(first, explore)
        return {
            "cell": (ep.obs.long() * model.num_actions + ep.action).reshape(-1)[idx],
            "weight": weight.expand(t_len, b).reshape(-1)[idx],
            "reward": ep.reward.reshape(-1)[idx],
            "stage": stage.reshape(-1)[idx],
            "has_pred": has_pred.reshape(-1)[idx],
            "later_pair": later_pair.reshape(-1)[idx],
            "pair": (ret - stage - ent).reshape(-1)[idx],
        }

    @torch.no_grad()
    def _closed_form_npg(self, batches: list[tuple[Episodes, bool]], pair: torch.Tensor | None = None
                         ) -> dict[str, torch.Tensor]:
        """The exact natural-gradient step of softmax tables on Monte-Carlo Q tables.

        For ``pi(.|s) = softmax(theta(s, .))`` the Fisher of the state-action measure is block
        diagonal, ``d(s) (diag pi - pi pi^T)`` per state, and the policy gradient is ``d(s)
        pi(a|s) (Q(s, a) - V(s))``, so the natural gradient is ``Q(s, .)`` up to a constant per
        state: the state's visit frequency cancels (Kakade 2001; Agarwal et al. 2021, Lemma 5.1).
        With entropy regularization tau the step is Cen et al.'s (2022) ``theta <- (1 - step tau)
        theta + step Q_tau``, applied separately to the first-step and the later-stage tables.

        The ECRM's ``Q`` of an action (``docs/ecrm.md``) is its own stage signal plus the value of the
        pair: first stage ``R(s, a) + U(s, a)``, later stages ``E[stage_t | s_t = s, a_t = a] +
        U(s, a)``, with ``U(s, a) = thr(s, a) + E[stage_{t+1} + U(s_{t+1}, a_{t+1})]`` the
        actor-critic's pair value, which does not depend on how ``(s, a)`` was reached. Four
        tables of (discount-weighted) Monte-Carlo means keep them: ``U`` of later steps,
        ``E[stage_t | s, a]`` from the steps with a predecessor, ``R`` from every step, ``U`` of
        first steps (with a time limit the pair value depends on the stages left, so the first
        step's is kept apart); each visited cell moves ``npg_q_lr`` of the way to its batch mean.
        Every state with an estimate moves, visited in this batch or not, as in the exact update;
        exploring-start episodes (``explore_starts``) give estimates at states the policy stopped
        visiting. The step is then shortened to the trust region ``npg.max_kl`` (quadratic KL model
        over this batch's states), TRPO's step length along the same direction.
        ``pair``: use this ``[S, A]`` table for ``U`` instead (the natural actor-critic: the
        SARSA critic of the actor-critic variant).
        """
        cfg, model = self.config, self.model
        parts = [self._npg_samples(e, explore) for e, explore in batches]
        cat = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        cells = model.npg_q.shape[1] * model.npg_q.shape[2]
        pred, lp = cat["has_pred"], cat["later_pair"]
        # tables: 0 pair value U of later steps, 1 later stage signal, 2 own reward, 3 pair value
        # of first steps
        c, w = cat["cell"], cat["weight"]
        cell = torch.cat([c[lp], c[pred] + cells, c + 2 * cells, c[~lp] + 3 * cells])
        target = torch.cat([cat["pair"][lp], cat["stage"][pred], cat["reward"], cat["pair"][~lp]])
        weight = torch.cat([w[lp], w[pred], w, w[~lp]])
        size = model.npg_q.numel()
        sums, _ = _scatter_mean(cell, weight * target, size)
        wsum, _ = _scatter_mean(cell, weight, size)
        visited = wsum > 0
        mean = sums / wsum.clamp_min(1e-30)
        q, seen = model.npg_q.view(-1), model.npg_seen.view(-1)
        new = torch.where(seen, q + cfg.npg_q_lr * (mean - q), mean)
        q.copy_(torch.where(visited, new, q))
        seen |= visited

        def filled(k: int) -> torch.Tensor:
            # A cell never visited has no estimate: the state's mean (advantage 0).
            qk, sk = model.npg_q[k], model.npg_seen[k]
            fill = (qk * sk).sum(-1, keepdim=True) / sk.sum(-1, keepdim=True).clamp_min(1)
            return torch.where(sk, qk, fill)

        tables = [(model.actor, filled(1) + (filled(0) if pair is None else pair))]
        if model.actor_first is not None:
            tables.append((model.actor_first, filled(2) + (filled(3) if pair is None else pair)))
        decay = 1.0 - cfg.npg_step_size * cfg.ent_coef
        steps = [(table, table * (decay - 1.0) + cfg.npg_step_size * (qk - qk.mean(-1, keepdim=True)))
                 for table, qk in tables]
        # Trust region: shrink the step until the quadratic model of the mean KL over this batch's
        # states, 1/2 sum_s d(s) Var_pi(delta theta(s, .)), is at most npg.max_kl (TRPO's step length
        # along the same natural direction; the exact update's step can be too long for noisy Q).
        kl = torch.zeros((), device=self.device)
        first_real = batches[0][0].first[batches[0][0].valid]
        obs_real = batches[0][0].obs[batches[0][0].valid].long()
        for k, (table, delta) in enumerate(steps):
            on = first_real if k == 1 else (~first_real if model.actor_first is not None
                                             else torch.ones_like(first_real))
            freq = torch.zeros(table.shape[0], device=self.device).index_add_(
                0, obs_real[on], torch.ones(int(on.sum()), device=self.device)) / max(len(obs_real), 1)
            pi = torch.softmax(table, -1)
            centred = delta - (pi * delta).sum(-1, keepdim=True)
            kl = kl + 0.5 * (freq * (pi * centred**2).sum(-1)).sum()
        scale = torch.clamp(torch.sqrt(cfg.npg.max_kl / kl.clamp_min(1e-30)), max=1.0)
        change = torch.zeros((), device=self.device)
        for table, delta in steps:
            table.add_(scale * delta)
            change = torch.maximum(change, (scale * delta).abs().max())
        return {"npg_max_logit_change": change, "npg_step_fraction": scale,
                "npg_q_coverage": seen.view(4, -1)[0].float().mean()}

    # -- actor --------------------------------------------------------------------------------------
    def _actor_step(self, obs: torch.Tensor, first: torch.Tensor, eta_prev: torch.Tensor,
                    action: torch.Tensor, adv: torch.Tensor, weight: torch.Tensor,
                    old_logp: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg, model = self.config, self.model
        adv = adv.detach() * weight

        def log_prob() -> torch.Tensor:
            return model.log_prob(obs, first, eta_prev, action)

        if cfg.variant == "npg":
            def surrogate() -> torch.Tensor:
                return (torch.exp(log_prob() - old_logp) * adv).sum() / self.num_envs

            kl = detached_kl(lambda: model.distribution(obs, first, eta_prev))
            result = trpo_step(model.actor_parameters(), surrogate, kl,
                               cfg.npg)
            return {"npg_kl": torch.tensor(result.kl),
                    "npg_step_fraction": torch.tensor(result.step_fraction),
                    "policy_objective": torch.tensor(result.improvement)}
        objective = (log_prob() * adv).sum() / self.num_envs
        if cfg.log_barrier and cfg.parameterization == "softmax":
            tables = [model.actor] + ([model.actor_first] if model.actor_first is not None else [])
            objective = objective + obj.log_barrier(tables, cfg.log_barrier)
        params = model.actor_parameters()
        grads = torch.autograd.grad(objective, params, allow_unused=True)
        if cfg.parameterization == "direct":
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    if g is not None:
                        p.copy_(obj.project_simplex(p + cfg.policy_lr * g, cfg.direct_min_prob))
        else:
            assert self.actor_opt is not None
            for p, g in zip(params, grads, strict=True):
                p.grad = None if g is None else -g  # Adam minimizes: ascend the objective
            self.actor_opt.step()
        return {"policy_objective": objective.detach()}

    # -- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def final_metrics(self, env: BatchedEnv, params: Any, generator: torch.Generator) -> dict[str, float]:
        """The ECRM first (exact for tabular policies; else the sampled lower bound with the
        learned thresholds), then the mean, CVaR_alpha and failure rate of the episode return,
        all of the stochastic policy (one episode per copy of ``params``)."""
        cfg = self.config
        ep = collect_first_episodes(env, params, self.stage_policy(), generator, cfg.chunk_steps,
                                    cfg.max_episode_steps)
        t_len = ep.reward.shape[0]
        disc = (cfg.gamma ** torch.arange(t_len, device=ep.reward.device, dtype=torch.float32)).unsqueeze(1)
        stage = obj.stage_rewards(ep.reward, ep.eta_prev, ep.first, cfg.risk_weight, cfg.alpha)
        thr = obj.threshold_terms(ep.eta, ep.terminated, ep.truncated, cfg.risk_weight, cfg.alpha, cfg.gamma)
        returns = ep.returns()
        out: dict[str, float] = {}
        if self.mdp is not None:
            out["eval/ecrm_exact"] = self.exact_value()
        out["eval/ecrm_estimate"] = float((disc * torch.where(ep.valid, stage + thr, 0.0)).sum(0).mean())
        out["eval/mean_return"] = float(returns.mean())
        out["eval/return_cvar"] = float(cvar(returns.double(), None, cfg.alpha))
        # one fixed level as well, so that runs of different alphas compare on the same tail
        out[f"eval/return_cvar_{REPORT_CVAR_LEVEL}"] = float(cvar(returns.double(), None, REPORT_CVAR_LEVEL))
        out["eval/mean_length"] = float(ep.valid.float().sum(0).mean())
        if self.failure_reward is not None:
            fail = (ep.valid & (ep.reward <= self.failure_reward)).any(0)
            out["eval/failure_rate"] = float(fail.float().mean())
        describe = getattr(env, "episode_metrics", None)  # env-specific summaries of the walked paths
        if describe is not None:
            out.update({f"eval/{k}": float(v) for k, v in describe(ep.obs, ep.valid).items()})
        return out

    # -- checkpointing ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Model, optimizers, generators and counters (tensors and plain data)."""
        out: dict[str, Any] = {"model": self.model.state_dict(), **self.interaction.state_dict()}
        if self.actor_opt is not None:
            out["actor_opt"] = self.actor_opt.state_dict()
        for name, opt in self.net_opts.items():
            out[f"{name}_opt"] = opt.state_dict()
        return copy.deepcopy(out)

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.model.load_state_dict(data["model"])
        cfg = self.config  # the config's rates, not the ones the state was saved with
        if self.actor_opt is not None:
            load_optimizer(self.actor_opt, data["actor_opt"], cfg.policy_lr)
        rates = {"eta": cfg.eta_lr, "critic": cfg.critic_lr, "baseline": cfg.baseline_lr}
        for name, opt in self.net_opts.items():
            load_optimizer(opt, data[f"{name}_opt"], rates[name])
        self.interaction.load_state_dict(data)


__all__ = ["ECRM", "ECRMConfig", "reinforce_surrogate", "risk_neutral_greedy", "threshold_gradient_sample"]
