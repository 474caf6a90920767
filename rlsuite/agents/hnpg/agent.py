"""HNPG: hybrid natural policy gradient (Zhou, Sekhari, Song, Sun 2023, arXiv 2311.08384,
Appendix E.3 Algorithms 4-5), as the official code ``YifeiZhou02/HNPG`` runs it.

Each iteration (official ``main.py`` loop and ``trpo.py`` ``update_params``):

1. run ``ceil(batch_steps / H)`` whole episodes with the current per-step Gaussian policies
   (all copies step together, so the rollout ``[H, B]`` is already grouped by step);
2. draw, for every step ``h``, as many offline transitions of step ``h`` as there are on-policy
   ones (``m_off = m_on``: the implicit lambda = 1);
3. fit the critics backwards over ``h`` on Monte-Carlo returns (on-policy) + TD targets (offline)
   (:mod:`rlsuite.agents.hnpg.critic`);
4. GAE advantages (gamma 1, tau 0.97) with ``V_h(s)`` = 10-sample average of ``f_h(s, a~pi_h)``;
5. offline advantages ``f_h(s, a) - V_h(s)`` at actions ``a ~ pi_h(s)`` re-sampled from the current
   policy (``offline_actor_actions="policy"``; ``"dataset"`` uses the stored actions instead);
6. one TRPO/NPG step per step ``h`` on the union of on-policy and offline states (surrogate
   ``mean A * ratio``, CG with damping 0.1, max KL 0.01, backtracking line search), all ``H``
   steps together (:mod:`rlsuite.agents.hnpg.block_npg`);
7. 30 evaluation episodes with the stochastic policy; 50-iteration moving averages of train and
   test return and success rate. Training stops once the moving-average train success rate
   exceeds 0.5 (the paper's stopping rule) or the sample budget ``total_steps`` is spent.

``hybrid=False`` is the paper's TRPO baseline (the official ``HYBRID = False``): critics fitted on
on-policy returns only, policies updated on on-policy states only.

Logged tags: ``rollout/ep_rew_mean`` and ``rollout/ep_len_mean`` (over the last 100 training
episodes, :mod:`rlsuite.engine.episode_window`, as in every agent), ``eval/mean_reward``
(this iteration's test return), ``hnpg/train_return_ma`` and ``hnpg/test_return_ma`` (official
``train_episode_reward`` / ``test_episode_reward``), ``hnpg/success_rate``, ``hnpg/success_rate_ma``,
``hnpg/test_success_rate``, ``hnpg/online_samples`` (official ``env_steps``; evaluation episodes are
not counted, as there), ``train/on_critic_loss`` / ``train/off_critic_loss`` (official ``on_loss`` /
``off_loss``), ``train/loss_before`` / ``train/loss_after`` (line-search surrogate loss, averaged over
h), ``train/npg_kl``, ``train/npg_accepted``, ``time/iteration_s``, ``time/fps``.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from typing import Any

import torch

from rlsuite.agents.hnpg.block_npg import block_trpo_step, from_blocks, to_blocks
from rlsuite.agents.hnpg.config import HNPGConfig
from rlsuite.agents.hnpg.critic import CriticBatch, CriticSettings, fit_critic
from rlsuite.agents.hnpg.fisher import StackedGaussianFisher
from rlsuite.agents.hnpg.nets import (
    StackedGaussianPolicy,
    StackedQ,
    gaussian_kl,
    gaussian_log_prob,
    per_sample_forward,
    state_value,
)
from rlsuite.core import tree
from rlsuite.core.env import BatchedEnv
from rlsuite.engine.interaction import Interaction, InteractionCounters
from rlsuite.learners.buffers import OfflineDataset
from rlsuite.learners.npg import NPGConfig
from rlsuite.learners.returns import discounted_returns, gae
from rlsuite.training import TrainingHooks, check_finite

OFFLINE_SEED_OFFSET = 7_919
"""The offline dataset is collected with seed ``run seed + OFFLINE_SEED_OFFSET``."""
EVAL_SEED_OFFSET = 104_729


class StepSampler:
    """Uniform draws of offline transitions of a given step h, for all steps at once."""

    def __init__(self, dataset: OfflineDataset, horizon: int) -> None:
        if "timestep" not in dataset.data.extras:
            raise ValueError("hnpg: the offline dataset needs a 'timestep' extra (collect_offline adds it)")
        ts = dataset.data.extras["timestep"]
        if bool((ts[1:] >= ts[:-1]).all()):  # collect_offline's step-major order: no copy needed
            self.data = dataset.data
        else:
            self.data = dataset.data.index(torch.argsort(ts, stable=True))
        self.counts = torch.bincount(ts, minlength=horizon)[:horizon]
        if bool((self.counts == 0).any()) or int(ts.max()) >= horizon:
            raise ValueError(
                f"hnpg: offline data must cover steps 0..{horizon - 1} exactly; "
                f"per-step counts {torch.bincount(ts).tolist()}"
            )
        self.starts = torch.cumsum(self.counts, 0) - self.counts

    def sample(
        self, per_step: int, generator: torch.Generator, dtype: torch.dtype
    ) -> dict[str, torch.Tensor]:
        """``per_step`` transitions of each step: tensors ``[H, per_step, ...]``."""
        h = self.counts.shape[0]
        u = torch.rand((h, per_step), generator=generator, device=self.counts.device, dtype=torch.float64)
        idx = self.starts[:, None] + (u * self.counts[:, None]).long().clamp_max(self.counts[:, None] - 1)
        flat = idx.reshape(-1)
        d = self.data

        def take(x: torch.Tensor) -> torch.Tensor:
            return x.index_select(0, flat).reshape(h, per_step, *x.shape[1:])

        return {
            "obs": take(d.obs).to(dtype),
            "action": take(d.action).to(dtype),
            "reward": take(d.reward).to(dtype),
            "next_obs": take(d.next_obs).to(dtype),
            "terminated": take(d.terminated),
        }


class HNPG(InteractionCounters):
    """HNPG on a combination-lock-like env with a fixed horizon (every episode lasts H steps).

    Args:
        config: hyperparameters.
        env: the lock (needs ``horizon``; ``act`` reads the step off the observation with
            ``env.decode_latent_and_step``).
        params: env params; copy 0 is used for every training and evaluation copy.
        seed: seeds networks, env, policy sampling and the offline data.
        dataset: offline data (default: :func:`rlsuite.agents.hnpg.offline_data.collect_offline`).
    """

    def __init__(
        self,
        config: HNPGConfig,
        env: BatchedEnv,
        params: Any,
        seed: int = 0,
        dataset: OfflineDataset | None = None,
    ) -> None:
        self.config = config
        self.env = env
        self.horizon = int(getattr(env, "horizon", 0))
        if self.horizon < 1 or env.max_episode_steps is not None and env.max_episode_steps < self.horizon:
            raise ValueError(
                "hnpg needs a fixed-horizon env with a 'horizon' attribute and no shorter "
                f"time limit; got {env!r}"
            )
        self.device = env.device
        self.dtype = torch.float64 if config.dtype == "float64" else torch.float32
        self.num_envs = math.ceil(config.batch_steps / self.horizon)
        one = tree.index(params, 0)
        self.params = tree.map_tensors(lambda x: x.expand(self.num_envs, *x.shape[1:]).clone(), one)
        self.eval_params = tree.map_tensors(
            lambda x: x.expand(config.eval_episodes, *x.shape[1:]).clone(), one
        )
        obs_dim = env.observation_space.shape[0]
        act_dim = env.action_space.shape[0]
        init = torch.Generator().manual_seed(seed)
        self.policy = StackedGaussianPolicy(
            self.horizon,
            obs_dim,
            act_dim,
            config.policy_hidden,
            config.out_scale,
            config.init_log_std,
            init,
            self.dtype,
        ).to(self.device)
        critic_dtype = torch.float64 if config.critic_dtype == "float64" else torch.float32
        self.q = StackedQ(
            self.horizon, obs_dim, act_dim, config.critic_hidden, config.out_scale, init, critic_dtype
        ).to(self.device)
        self.interaction = Interaction(env, self.params, seed)
        self.generator = self.interaction.policy_generator
        self.eval_interaction = Interaction(env, self.eval_params, seed + EVAL_SEED_OFFSET)
        if dataset is None:
            from rlsuite.agents.hnpg.offline_data import collect_offline

            dataset = collect_offline(
                env, config.offline_episodes, config.offline_epsilon, seed + OFFLINE_SEED_OFFSET, params=one
            )
        self.dataset = dataset
        self.sampler = StepSampler(dataset.to(self.device), self.horizon)
        self.npg = config.npg
        self.critic_settings = CriticSettings(
            config.critic_steps,
            config.critic_lr,
            config.critic_on_weight,
            config.hybrid,
            config.critic_l2,
            config.gamma,
            config.critic_scripted,
        )
        self.train_returns: deque[float] = deque(maxlen=config.moving_average)
        self.test_returns: deque[float] = deque(maxlen=config.moving_average)
        self.successes: deque[float] = deque(maxlen=config.moving_average)
        self.solved_at: int | None = None
        self._t = 0

    # -- acting ---------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions for observations of any steps (the step is read off the observation), in the
        env's action dtype: the policy computes in ``config.dtype``, and the env casts the action to
        float32 before its softmax anyway, so rounding here changes no env step."""
        _, h = self.env.decode_latent_and_step(obs)  # type: ignore[attr-defined]
        h = h.clamp_max(self.horizon - 1)
        x = obs.to(self.dtype)
        mean = per_sample_forward(self.policy.mean_net.layers(), x, h)
        out_dtype = self.env.action_space.dtype
        if deterministic:
            return mean.to(out_dtype)
        std = self.policy.log_std[:, 0].index_select(0, h).exp()
        return (mean + std * torch.randn(
            mean.shape, generator=self.generator, dtype=self.dtype, device=mean.device
        )).to(out_dtype)

    def _step_policy(self, generator: torch.Generator):
        """Rollout policy for copies that all start at h = 0 and step together (h = call index)."""
        counter = {"h": 0}
        layers = self.policy.mean_net.layers()

        @torch.no_grad()
        def policy(obs: torch.Tensor) -> torch.Tensor:
            h = counter["h"]
            counter["h"] = (h + 1) % self.horizon
            mean = torch.addmm(layers[1][h], obs.to(self.dtype), layers[0][h])
            for i in range(1, len(layers) // 2):
                mean = torch.addmm(layers[2 * i + 1][h], torch.tanh(mean), layers[2 * i][h])
            noise = torch.randn(mean.shape, generator=generator, dtype=self.dtype, device=mean.device)
            return mean + self.policy.log_std[h].exp() * noise

        return policy

    # -- one iteration --------------------------------------------------------------------------
    def _update(self, data: Any) -> dict[str, float]:
        cfg, gen, dt = self.config, self.generator, self.dtype
        obs, action = data.obs.to(dt), data.action.to(dt)  # [H, B, D], [H, B, A]
        reward = data.reward.to(dt)
        zeros = torch.zeros_like(reward)
        returns = discounted_returns(reward, zeros, data.terminated, data.truncated, cfg.gamma)
        off = self.sampler.sample(self.num_envs, gen, dt)  # m_off = m_on per step
        batch = CriticBatch(
            obs, action, returns, off["obs"], off["action"], off["reward"], off["next_obs"], off["terminated"]
        )
        on_loss, off_loss = fit_critic(
            self.policy, self.q, batch, self.critic_settings, gen, cfg.critic_sweep
        )
        # GAE with the refitted critics (trpo.py recomputes the values after the fit).
        with torch.no_grad():
            value = state_value(self.policy, self.q, obs, cfg.value_samples, gen)
            next_value = torch.cat([value[1:], torch.zeros_like(value[:1])])
            adv, _ = gae(
                reward, value, next_value, data.terminated, data.truncated, cfg.gamma, cfg.gae_lambda
            )
            states, actions, advantages = obs, action, adv
            if cfg.hybrid:
                # the policy mean at the offline states, computed once for the re-sampled
                # actions and V_h (StackedGaussianPolicy.sample's ops, the same numbers)
                off_mean = self.policy.mean_net(off["obs"])
                if cfg.offline_actor_actions == "policy":
                    noise = torch.randn(
                        off_mean.shape, generator=gen, dtype=off_mean.dtype, device=off_mean.device
                    )
                    off_act = off_mean + self.policy.log_std.exp() * noise
                else:
                    off_act = off["action"]
                off_adv = self.q(off["obs"], off_act).to(dt) - state_value(
                    self.policy, self.q, off["obs"], cfg.value_samples, gen, off_mean
                )
                states = torch.cat([obs, off["obs"]], 1)
                actions = torch.cat([action, off_act], 1)
                advantages = torch.cat([adv, off_adv], 1)
        result = npg_update(
            self.policy,
            states,
            actions,
            advantages,
            self.npg,
            cfg.linesearch_kl_check,
            cfg.npg_products == "closed_form",
        )
        stats = torch.stack(
            [
                on_loss.mean().to(dt),
                off_loss.mean().to(dt),
                (-result.surrogate_before).mean(),
                (-result.surrogate_after).mean(),
                result.kl.mean(),
                result.accepted.to(dt).mean(),
            ]
        ).tolist()
        names = ("on_critic_loss", "off_critic_loss", "loss_before", "loss_after", "npg_kl", "npg_accepted")
        return {f"train/{k}": v for k, v in zip(names, stats, strict=True)}

    @torch.no_grad()
    def _evaluate(self) -> tuple[float, float]:
        """Test return and success rate of ``eval_episodes`` stochastic-policy episodes."""
        data = self.eval_interaction.collect(self._step_policy(self.generator), self.horizon)
        final = data.reward[-1]
        return float(data.reward.sum(0).mean()), float((final >= 1.0).float().mean())

    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> HNPG:
        """Iterate until ``total_steps`` online steps are spent or the stopping rule fires."""
        cfg, hooks = self.config, hooks or TrainingHooks()
        while self.global_step < total_steps:
            if cfg.stop_on_success and self.solved_at is not None:
                break
            tic = time.perf_counter()
            data = self.interaction.collect(self._step_policy(self.generator), self.horizon)
            metrics = self._update(data)
            metrics = check_finite("HNPG", self.global_step, metrics,
                                   [*self.policy.named_parameters(), *self.q.named_parameters()])
            ep_return = float(data.reward.sum(0).mean())
            success = float((data.reward[-1] >= 1.0).float().mean())
            test_return, test_success = self._evaluate()
            self.train_returns.append(ep_return)
            self.test_returns.append(test_return)
            self.successes.append(success)
            success_ma = sum(self.successes) / len(self.successes)
            if self.solved_at is None and success_ma > cfg.stop_success:
                self.solved_at = self.global_step
            elapsed = time.perf_counter() - tic
            metrics.update(self.interaction.record_episodes(data))
            metrics.update(
                {
                    "eval/mean_reward": test_return,
                    "hnpg/train_return_ma": sum(self.train_returns) / len(self.train_returns),
                    "hnpg/test_return_ma": sum(self.test_returns) / len(self.test_returns),
                    "hnpg/success_rate": success,
                    "hnpg/success_rate_ma": success_ma,
                    "hnpg/test_success_rate": test_success,
                    "hnpg/online_samples": float(self.global_step),
                    "time/iteration_s": elapsed,
                    "time/fps": self.num_envs * self.horizon / elapsed,
                }
            )
            self.interaction.iteration += 1
            hooks.on_iteration(self, self.global_step, metrics)
        return self

    @torch.no_grad()
    def final_metrics(self, env: BatchedEnv, params: Any, generator: torch.Generator) -> dict[str, float]:
        """Stochastic-policy success rate first (the paper's quantity), then greedy success,
        mean return and the online samples at which the stopping rule fired (-1: never)."""
        out: dict[str, float] = {}
        for tag, det in (("eval/success_rate", False), ("eval/greedy_success_rate", True)):
            obs, state = env.reset(params, generator)
            total = torch.zeros(tree.batch_size(params), device=self.device)
            for _ in range(self.horizon):
                step = env.step(state, self.act(obs, deterministic=det), params, generator)
                total += step.reward
                obs, state = step.obs, step.state
            out[tag] = float((step.reward >= 1.0).float().mean())
            if not det:
                out["eval/mean_reward"] = float(total.mean())
        out["hnpg/samples_to_success"] = float(-1 if self.solved_at is None else self.solved_at)
        return out

    # -- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Networks, counters, generators, moving averages (the offline data is rebuilt from the seed)."""
        out = {
            "policy": self.policy.state_dict(),
            "q": self.q.state_dict(),
            **self.interaction.state_dict(),
            "eval": self.eval_interaction.state_dict(),
            "train_returns": list(self.train_returns),
            "test_returns": list(self.test_returns),
            "successes": list(self.successes),
            "solved_at": -1 if self.solved_at is None else int(self.solved_at),
        }
        return copy.deepcopy(out)

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.policy.load_state_dict(data["policy"])
        self.q.load_state_dict(data["q"])
        self.interaction.load_state_dict(data)
        self.eval_interaction.load_state_dict(data["eval"])
        for name in ("train_returns", "test_returns", "successes"):
            getattr(self, name).clear()
            getattr(self, name).extend(float(v) for v in data[name])
        self.solved_at = None if int(data["solved_at"]) < 0 else int(data["solved_at"])


def npg_update(
    policy: StackedGaussianPolicy,
    states: torch.Tensor,
    actions: torch.Tensor,
    advantages: torch.Tensor,
    config: NPGConfig,
    check_kl: bool = True,
    closed_form: bool = True,
):
    """The per-step TRPO updates of ``trpo.py`` ``update_policy`` for all ``H`` policies at once.

    Surrogate ``S_h = mean_i A_i exp(log pi(a_i|s_i) - log pi_old(a_i|s_i))`` over step h's states
    (no advantage normalisation, no entropy bonus); KL ``mean_i KL(pi_old(s_i) || pi(s_i))``.
    ``closed_form`` takes the gradient and the Fisher products from
    :class:`rlsuite.agents.hnpg.fisher.StackedGaussianFisher` instead of autograd.
    """
    params = [*policy.mean_net.layers(), policy.log_std]
    gradient = fisher = None
    with torch.no_grad():
        log_std0 = policy.log_std.detach().clone()  # freeze a copy of the parameter
        if closed_form:
            products = StackedGaussianFisher(policy.mean_net.layers(), policy.log_std, states)
            mean0 = products.mean  # the same ops as policy(states): bit-identical
            gradient = to_blocks(products.surrogate_gradient(actions, advantages))

            def fisher(v: torch.Tensor) -> torch.Tensor:
                return to_blocks(products.fisher_product(from_blocks(v, params)))

        else:
            mean0 = policy(states)[0]
        old_log_prob = gaussian_log_prob(actions, mean0, log_std0)

    # With the closed-form products every surrogate()/kl() call runs without autograd, so the
    # line search's surrogate and KL at the same trial parameters share one policy forward
    # (keyed on the parameters' in-place version counters; seeded with the forward above).
    cache: dict[str, Any] = {}
    if closed_form:
        cache["key"], cache["mean"] = tuple(p._version for p in params), mean0

    def forward() -> tuple[torch.Tensor, torch.Tensor]:
        if not closed_form or torch.is_grad_enabled():
            return policy(states)
        key = tuple(p._version for p in params)
        if cache["key"] != key:
            cache["key"], cache["mean"] = key, policy.mean_net(states)
        return cache["mean"], policy.log_std

    def surrogate() -> torch.Tensor:
        mean, log_std = forward()
        ratio = torch.exp(gaussian_log_prob(actions, mean, log_std) - old_log_prob)
        return (advantages * ratio).mean(1)

    def kl() -> torch.Tensor:
        mean, log_std = forward()
        return gaussian_kl(mean0, log_std0, mean, log_std.expand_as(mean)).mean(1)

    return block_trpo_step(params, surrogate, kl, config, check_kl, gradient, fisher)
