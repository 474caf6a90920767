"""Proximal policy optimization (Schulman et al. 2017) on the batched engine.

The loop reads like CleanRL's ``ppo.py``: collect a ``[T, B]`` rollout, compute GAE with the
pre-reset next observation (so time limits bootstrap), then several epochs of clipped-surrogate
minibatch updates. Discrete actions use a categorical policy, Box actions a diagonal Gaussian with
a state-independent log-std. Every random draw (actions, minibatch order) comes from the agent's
own generator, so a seeded run is bit-identical on CPU and a resumed run continues exactly.

With ``fast_path`` on (the default) acting, collecting and greedy evaluation run through fused
kernels (:class:`~rlsuite.engine.fastpath.FusedPolicy`, the env's fused step), and the update
computes its gradients in closed form and steps Adam once over a flat parameter block
(:mod:`rlsuite.learners.ppo_fast`); the random draws are the eager path's
(``tests/test_fastpath.py``, ``tests/test_ppo_fast.py``).

Logged tags (SB3 names): ``rollout/ep_rew_mean``, ``rollout/ep_len_mean``, ``time/fps``,
``train/policy_gradient_loss``, ``train/value_loss``, ``train/entropy_loss``, ``train/approx_kl``,
``train/clip_fraction``, ``train/explained_variance``, ``train/learning_rate``, and with
``anneal_clip`` ``train/clip_range``.

SB3's PPO with RL Zoo's schedules (``lin_X`` learning rate and clip range, minibatches given as a
size) is ``minibatch_size``, ``anneal_clip`` and ``schedule_progress="sb3"``; the
``cartpole_ppo_zoo`` experiment preset is RL Zoo's tuned CartPole-v1 setting.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from rlsuite import validation as rules
from rlsuite.core import spaces, tree
from rlsuite.core.env import BatchedEnv
from rlsuite.engine.fastpath import FastKernel, FusedPolicy, Noise
from rlsuite.engine.interaction import Interaction, InteractionCounters
from rlsuite.learners import heads
from rlsuite.learners.budget import whole_iterations
from rlsuite.learners.nets import flat_dim, mlp
from rlsuite.learners.optim import adam, load_optimizer, set_lr
from rlsuite.learners.ppo_fast import FastPPOUpdate
from rlsuite.learners.returns import gae
from rlsuite.training import TrainingHooks, check_finite

SCHEDULE_PROGRESS = ("cleanrl", "sb3")
"""The values of :attr:`PPOConfig.schedule_progress`."""


@dataclass
class PPOConfig:
    """PPO hyperparameters (defaults: CleanRL's, with the 64-env CartPole setting of results/learners.md)."""

    name: str = "ppo"
    """Registry name of the agent."""
    num_steps: int = 128
    """Steps per env per rollout (T)."""
    learning_rate: float = 1e-3
    """Adam step size."""
    anneal_lr: bool = True
    """Decay the learning rate linearly to 0 over ``total_steps``."""
    gamma: float = 0.99
    """Discount factor."""
    gae_lambda: float = 0.95
    """GAE trace parameter."""
    num_minibatches: int = 4
    """Minibatches per epoch (unless ``minibatch_size`` is set)."""
    minibatch_size: int | None = None
    """Rows per minibatch, given as a size as SB3's ``batch_size`` is; when set it replaces
    ``num_minibatches`` (the count becomes ``num_envs * num_steps / minibatch_size``, which must
    be whole). None: ``num_minibatches`` decides."""
    update_epochs: int = 4
    """Passes over each rollout."""
    norm_adv: bool = True
    """Normalize advantages per minibatch."""
    clip_coef: float = 0.2
    """Surrogate clipping coefficient epsilon."""
    anneal_clip: bool = False
    """Decay ``clip_coef`` linearly to 0 on the learning rate's schedule (SB3 / RL Zoo's
    ``clip_range: lin_X``); the coefficient in use is logged as ``train/clip_range``."""
    schedule_progress: str = "cleanrl"
    """Where in the run the linear schedules (``anneal_lr``, ``anneal_clip``) read their
    fraction: ``"cleanrl"``, before the rollout, ``1 - iteration / num_iterations`` (CleanRL's
    ``frac``); ``"sb3"``, after the rollout, ``1 - env steps so far (this rollout's included) /
    total_steps`` (SB3's ``progress_remaining`` at ``train()``), floored at 0."""
    ent_coef: float = 0.0
    """Entropy bonus weight."""
    vf_coef: float = 0.5
    """Value-loss weight."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip."""
    target_kl: float | None = None
    """Stop the epochs early once the approximate KL exceeds this (None: never)."""
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden layer widths of the (separate) actor and critic MLPs."""
    init_log_std: float = 0.0
    """Initial log standard deviation of Gaussian policies."""
    fast_path: bool = True
    """Act, collect and evaluate through fused kernels (``rlsuite.engine.fastpath``) and update
    with closed-form gradients (``rlsuite.learners.ppo_fast``); False forces the eager path (op
    by op, autograd, nothing compiled)."""

    RESUMABLE: ClassVar[tuple[str, ...]] = ("learning_rate",)
    """Keys a resume may change (learning rates, evaluation settings: ``rlsuite.identity``)."""
    CHECKS: ClassVar[rules.Checks] = {
        "num_steps": rules.POSITIVE_INT, "learning_rate": rules.POSITIVE, "anneal_lr": rules.FLAG,
        "gamma": rules.UNIT, "gae_lambda": rules.UNIT, "num_minibatches": rules.POSITIVE_INT,
        "minibatch_size": rules.optional(rules.POSITIVE_INT),
        "update_epochs": rules.POSITIVE_INT, "norm_adv": rules.FLAG, "clip_coef": rules.POSITIVE,
        "anneal_clip": rules.FLAG, "schedule_progress": rules.choice(*SCHEDULE_PROGRESS),
        "ent_coef": rules.FINITE, "vf_coef": rules.NONNEG, "max_grad_norm": rules.POSITIVE,
        "target_kl": rules.optional(rules.POSITIVE), "hidden_sizes": rules.SIZES,
        "init_log_std": rules.FINITE, "fast_path": rules.FLAG,
    }

    def __post_init__(self) -> None:
        rules.validate(self)

    def minibatch_rows(self, batch: int) -> int:
        """Rows per minibatch for a rollout of ``batch`` rows (``num_envs * num_steps``); a
        :class:`~rlsuite.validation.ConfigError` naming the field when they do not divide it."""
        if self.minibatch_size is not None:
            if batch % self.minibatch_size:
                raise rules.ConfigError("minibatch_size", self.minibatch_size,
                                        f"must divide num_envs * num_steps = {batch}")
            return self.minibatch_size
        if batch % self.num_minibatches:
            raise rules.ConfigError("num_minibatches", self.num_minibatches,
                                    f"must divide num_envs * num_steps = {batch}")
        return batch // self.num_minibatches

    def schedule_fraction(self, iteration: int, num_iterations: int, steps_per_iter: int,
                          total_steps: int) -> float:
        """The linear schedules' remaining fraction at ``iteration`` (0-based) of a run of
        ``num_iterations`` iterations of ``steps_per_iter`` env steps towards ``total_steps``
        (see ``schedule_progress``)."""
        if self.schedule_progress == "sb3":
            return max(0.0, 1.0 - (iteration + 1) * steps_per_iter / total_steps)
        return 1.0 - iteration / num_iterations


NARROW_LAYER = 8
"""A layer with at most this many inputs or outputs runs as a product and sum in
:meth:`ActorCritic.paired_forward` (fused by TorchInductor), a wider one as a matmul."""


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x @ weight + bias`` for ``x [..., N, K]`` and ``weight [..., K, M]`` (batched alike)."""
    if min(weight.shape[-2:]) <= NARROW_LAYER:
        return (x.unsqueeze(-1) * weight.unsqueeze(-3)).sum(-2) + bias
    return torch.matmul(x, weight) + bias

class ActorCritic(nn.Module):
    """Separate actor and critic MLPs; categorical or diagonal-Gaussian action head."""

    def __init__(self, obs_space: spaces.Space, action_space: spaces.Space, config: PPOConfig):
        super().__init__()
        # Discrete observations (tabular state indices) enter the networks one-hot.
        self.obs_classes = obs_space.n if isinstance(obs_space, spaces.Discrete) else None
        obs_dim = self.obs_classes or flat_dim(obs_space.shape)
        self.discrete = isinstance(action_space, spaces.Discrete)
        if isinstance(action_space, spaces.Discrete):
            out_dim = action_space.n
        else:
            out_dim = flat_dim(action_space.shape)
        self.action_shape = action_space.shape
        self.actor = mlp(obs_dim, out_dim, config.hidden_sizes, out_gain=0.01)
        self.critic = mlp(obs_dim, 1, config.hidden_sizes, out_gain=1.0)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.full((out_dim,), float(config.init_log_std)))

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Network input ``[N, in_dim]`` for a batch of observations."""
        if self.obs_classes is not None:
            return nn.functional.one_hot(obs.long(), self.obs_classes).float()
        return obs.reshape(obs.shape[0], -1).float()

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(obs), ``[N]``."""
        return self.critic(self.features(obs)).squeeze(-1)

    def forward(
        self, obs: torch.Tensor, noise: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One rollout step: ``(action, log_prob, value)`` (see :meth:`act_with_noise`)."""
        action, log_prob = self.act_with_noise(obs, noise)
        return action, log_prob, self.value(obs)

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        """The policy's action distribution at ``obs`` (for analysis; the learner's hot paths use
        the plain-tensor heads of :mod:`rlsuite.learners.heads`)."""
        out = self.actor(self.features(obs))
        # validate_args=False: diverged (NaN) weights must reach the once-per-iteration check in
        # learn (TrainingDiverged), not fail inside torch.distributions' argument checks.
        if self.discrete:
            return torch.distributions.Categorical(logits=out, validate_args=False)
        return torch.distributions.Normal(out, self.log_std.exp().expand_as(out), validate_args=False)

    def draw_noise(self, obs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One step's randomness, ``[N, out_dim]``: uniforms (Gumbel-max) for a categorical policy,
        standard normals for a Gaussian one. Drawn outside the networks so a fused policy step
        consumes the generator exactly as the eager one does."""
        return self.noise().draw(obs.shape[0], generator, obs.device)

    def noise(self) -> Noise:
        """What :meth:`draw_noise` draws per copy (the fast path draws it the same way)."""
        return Noise("uniform" if self.discrete else "normal", self.actor[-1].out_features)

    def act_with_noise(
        self, obs: torch.Tensor, noise: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(action, log_prob)`` at ``obs`` given the step's ``noise`` (None: the greedy / mean
        action). A pure function of the weights and its arguments, so it can be fused."""
        out = self.actor(self.features(obs))
        if self.discrete:
            action = out.argmax(-1) if noise is None else heads.categorical_sample(out, noise)
            return action, heads.categorical_log_prob(out, action)
        log_std = self.log_std.expand_as(out)
        action = out if noise is None else heads.normal_sample(out, log_std, noise)
        return action, heads.normal_log_prob(action, out, log_std)

    def sample(
        self, obs: torch.Tensor, generator: torch.Generator, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw actions from the generator; return ``(action, log_prob)``."""
        noise = None if deterministic else self.draw_noise(obs, generator)
        return self.act_with_noise(obs, noise)

    def paired_weights(self, critic: bool = True) -> tuple[torch.Tensor, ...]:
        """Actor and critic weights laid out to run both networks as one: the first layers
        concatenated (one matmul on the shared input), each further layer's pair stacked for one
        batched matmul (the last layers zero-padded to the wider output), then the log-std of a
        Gaussian policy. Copies, made without autograd; read by :meth:`paired_forward`.
        ``critic=False``: the actor's alone in the same layout (a "pair" of one), for a greedy
        policy, which needs no value (a batched matmul of two costs ~1.7x one on this CPU).

        On this CPU a 64x64x64 matmul costs about what a pair of them costs batched (~7 us: call
        overhead, not arithmetic), so the pair halves the matmul calls of a rollout step.
        """
        actor = [m for m in self.actor if isinstance(m, nn.Linear)]
        if not critic:
            return self._actor_weights(actor)
        critic = [m for m in self.critic if isinstance(m, nn.Linear)]
        with torch.no_grad():
            out: list[torch.Tensor] = []
            if len(actor) > 1:  # hidden layers: the first one on the shared input
                out += [torch.cat([actor[0].weight, critic[0].weight]).T.contiguous(),
                        torch.cat([actor[0].bias, critic[0].bias])]
            for a, c in zip(actor[1:-1], critic[1:-1], strict=True):
                out += [torch.stack([a.weight.T, c.weight.T]), torch.stack([a.bias, c.bias])[:, None]]
            a, c = actor[-1], critic[-1]
            width = max(a.out_features, c.out_features)
            last = a.weight.new_zeros(2, a.in_features, width)
            last_bias = a.bias.new_zeros(2, 1, width)
            last[0, :, : a.out_features], last[1, :, : c.out_features] = a.weight.T, c.weight.T
            last_bias[0, 0, : a.out_features], last_bias[1, 0, : c.out_features] = a.bias, c.bias
            out += [last, last_bias]
            if not self.discrete:
                out.append(self.log_std.detach().clone())
        return tuple(out)

    def _actor_weights(self, actor: list[nn.Linear]) -> tuple[torch.Tensor, ...]:
        """:meth:`paired_weights` of the actor alone (leading dimension 1 where the pair has 2)."""
        with torch.no_grad():
            out: list[torch.Tensor] = []
            if len(actor) > 1:
                out += [actor[0].weight.T.contiguous(), actor[0].bias.clone()]
            for a in actor[1:] if len(actor) > 1 else actor:  # no hidden layer: the last alone
                out += [a.weight.T.unsqueeze(0).contiguous(), a.bias[None, None].clone()]
            if not self.discrete:
                out.append(self.log_std.detach().clone())
        return tuple(out)

    def paired_forward(
        self, weights: tuple[torch.Tensor, ...], obs: torch.Tensor, noise: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`forward` on :meth:`paired_weights` (the same maths, up to float rounding); the
        value is None on the actor's weights alone (``paired_weights(critic=False)``).

        Written for TorchInductor (the fused policy step is its only caller): a layer with a
        narrow side (:data:`NARROW_LAYER`: CartPole's 4 inputs, the 2 logits) is a broadcast
        product and sum that inductor fuses into the neighbouring ops, not a matmul it calls out
        to; a hidden layer is a matmul whose bias add inductor fuses into the tanh. Measured on
        the 64-copy CartPole rollout step: ~4.5 us of ~60 less than three (b)addmm calls.
        """
        n_layers = (len(weights) - (0 if self.discrete else 1)) // 2
        pairs = weights[2 * n_layers - 2].shape[0]  # 2: actor and critic; 1: the actor alone
        x = self.features(obs)
        if n_layers == 1:  # no hidden layer: the last layers on the input
            h = x.expand(pairs, *x.shape)
        else:
            h = torch.tanh(_linear(x, weights[0], weights[1]))
            h = h.view(x.shape[0], pairs, -1).transpose(0, 1)  # [pairs, N, hidden]
        for i in range(1, n_layers - 1):
            h = torch.tanh(_linear(h, weights[2 * i], weights[2 * i + 1]))
        last = _linear(h, weights[2 * n_layers - 2], weights[2 * n_layers - 1])
        out = last[0, :, : self.actor[-1].out_features]
        value = last[1, :, 0] if pairs == 2 else None
        if self.discrete:
            action = out.argmax(-1) if noise is None else heads.categorical_sample(out, noise)
            return action, heads.categorical_log_prob(out, action), value
        log_std = weights[-1].expand_as(out)
        action = out if noise is None else heads.normal_sample(out, log_std, noise)
        return action, heads.normal_log_prob(action, out, log_std), value

    def log_prob_entropy(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probability of ``action`` and the policy entropy at ``obs``, both ``[N]``."""
        out = self.actor(self.features(obs))
        if self.discrete:
            return heads.categorical_log_prob_entropy(out, action)
        log_std = self.log_std.expand_as(out)
        return heads.normal_log_prob(action, out, log_std), heads.normal_entropy(log_std)


def ppo_loss(
    model: ActorCritic, batch: dict[str, torch.Tensor], config: PPOConfig, clip: float | None = None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate + value + entropy loss on one minibatch (PPO paper, eq. 7 and 9), with
    clipping coefficient ``clip`` (None: ``config.clip_coef``)."""
    clip = config.clip_coef if clip is None else clip
    log_prob, entropy = model.log_prob_entropy(batch["obs"], batch["action"])
    log_ratio = log_prob - batch["log_prob"]
    ratio = log_ratio.exp()
    adv = batch["advantage"]
    if config.norm_adv:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss = torch.max(
        -adv * ratio, -adv * ratio.clamp(1 - clip, 1 + clip)
    ).mean()
    v_loss = 0.5 * (model.value(batch["obs"]) - batch["return"]).pow(2).mean()
    ent = entropy.mean()
    loss = pg_loss + config.vf_coef * v_loss - config.ent_coef * ent
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()  # Schulman's low-variance k3 estimator
        clip_frac = ((ratio - 1).abs() > clip).float().mean()
    stats = {"policy_gradient_loss": pg_loss.detach(), "value_loss": v_loss.detach(),
             "entropy_loss": -ent.detach(), "approx_kl": approx_kl, "clip_fraction": clip_frac}
    return loss, stats


class PPO(InteractionCounters):
    """PPO agent on an engine env. ``learn`` trains, ``act`` acts, ``state_dict`` checkpoints.

    Args:
        config: hyperparameters.
        env: the batched env; ``params`` sets the number of copies ``B`` and their physics.
        seed: seeds the networks, the env generator and the policy generator.
    """

    def __init__(self, config: PPOConfig, env: BatchedEnv, params: Any, seed: int = 0) -> None:
        self.config = config
        self.env = env
        self.params = params
        self.device = env.device
        self.num_envs = tree.batch_size(params)
        config.minibatch_rows(self.num_envs * config.num_steps)  # refuses a batch it does not divide
        torch.manual_seed(seed)  # network initialisation
        self.model = ActorCritic(env.observation_space, env.action_space, config).to(self.device)
        # The fast path steps Adam with torch's fused kernel (one call for all parameters).
        fused = {"fused": True} if config.fast_path else {}
        self.optimizer = adam(self.model.parameters(), lr=config.learning_rate, eps=1e-5, **fused)
        self.interaction = Interaction(env, params, seed)
        self.policy_generator = self.interaction.policy_generator
        self._policies: dict[bool, FusedPolicy] = {}
        self._fast_update: FastPPOUpdate | None = None  # built at the first update (fast path)

    # -- acting ---------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Actions for a batch of observations (greedy / mean action when ``deterministic``)."""
        if self.config.fast_path:
            return self.fused_policy(deterministic)(obs)[0]
        action, _ = self.model.sample(obs, self.policy_generator, deterministic)
        return self._to_env(action)

    def greedy_policy(self) -> Any:
        """The greedy policy as an engine ``Policy`` for :func:`~rlsuite.engine.evaluate.evaluate`
        (a :class:`FusedPolicy`, whose evaluation is fused, unless ``fast_path`` is off)."""
        if self.config.fast_path:
            return self.fused_policy(True)
        return lambda obs: self.act(obs, deterministic=True)

    def fused_policy(self, deterministic: bool) -> FusedPolicy:
        """The rollout policy (``deterministic=False``: env action, raw action, log-prob and value)
        or the greedy one, as one fused kernel over the live weights."""
        policy = self._policies.get(deterministic)
        if policy is None:
            model = self.model
            weights = self._actor_weights if deterministic else self._paired_weights
            n = len(weights())

            def step(*flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
                noise = None if deterministic else flat[n + 1]
                action, log_prob, value = model.paired_forward(flat[:n], flat[n], noise)
                if deterministic:
                    return (self._to_env(action),)
                return self._to_env(action), action, log_prob, value

            what = "ppo greedy policy" if deterministic else "ppo rollout policy"
            policy = self._policies[deterministic] = FusedPolicy(
                FastKernel(what, step), weights,
                None if deterministic else model.noise(),
                None if deterministic else self.policy_generator,
                () if deterministic else ("raw_action", "log_prob", "value"),
                static=deterministic,
            )
        return policy

    def _paired_weights(self) -> tuple[torch.Tensor, ...]:
        """The fused policies' weights (:meth:`ActorCritic.paired_weights`), laid out afresh on
        every call (~30 us; once per rollout or evaluation): nothing cheaper tells reliably that
        the weights changed (torch's fused Adam writes them without bumping version counters)."""
        return self.model.paired_weights()

    def _actor_weights(self) -> tuple[torch.Tensor, ...]:
        """The greedy policy's weights: the actor's alone, laid out as :meth:`_paired_weights`."""
        return self.model.paired_weights(critic=False)

    def _to_env(self, action: torch.Tensor) -> torch.Tensor:
        space = self.env.action_space
        if isinstance(space, spaces.Box):  # the env sees a clipped action, PPO keeps the raw one
            return torch.clamp(action, space.low, space.high).reshape(-1, *space.shape)
        return action

    @torch.no_grad()
    def _eager_rollout_policy(
        self, obs: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        action, log_prob = self.model.sample(obs, self.policy_generator)
        extras = {"raw_action": action, "log_prob": log_prob, "value": self.model.value(obs)}
        return self._to_env(action), extras

    def rollout_policy(self) -> Any:
        """The policy ``learn`` collects with: the :class:`FusedPolicy` on the fast path (so
        ``collect`` fuses each whole step), else the op-by-op policy."""
        return self.fused_policy(False) if self.config.fast_path else self._eager_rollout_policy

    # -- learning ---------------------------------------------------------------------------
    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> PPO:
        """Train until ``total_steps`` env steps (summed over copies) have been taken.

        Continues from the current counters, so a loaded agent resumes its curves.
        """
        cfg, hooks = self.config, hooks or TrainingHooks()
        steps_per_iter = self.num_envs * cfg.num_steps
        num_iterations = whole_iterations(total_steps, self.num_envs, cfg.num_steps, "PPO")
        while self.iteration < num_iterations:
            tic = time.perf_counter()
            # ---- linear schedules of the learning rate and the clip coefficient (to 0)
            lr, clip = cfg.learning_rate, cfg.clip_coef
            if cfg.anneal_lr or cfg.anneal_clip:
                frac = cfg.schedule_fraction(self.iteration, num_iterations, steps_per_iter,
                                             total_steps)
                lr = lr * frac if cfg.anneal_lr else lr
                clip = clip * frac if cfg.anneal_clip else clip
            set_lr(self.optimizer, lr)
            # ---- rollout
            data = self.interaction.collect(self.rollout_policy(), cfg.num_steps)
            # ---- advantages: bootstrap from V(pre-reset next obs), cut traces at episode ends
            with torch.no_grad():
                t, b = data.num_steps, data.num_envs
                next_value = self.model.value(data.next_obs.reshape(t * b, *data.next_obs.shape[2:]))
                advantages, returns = gae(
                    data.reward, data.extras["value"], next_value.reshape(t, b),
                    data.terminated, data.truncated, cfg.gamma, cfg.gae_lambda,
                )
            flat = {
                "obs": data.obs.reshape(t * b, *data.obs.shape[2:]),
                "action": data.extras["raw_action"].reshape(t * b, *data.extras["raw_action"].shape[2:]),
                "log_prob": data.extras["log_prob"].reshape(-1),
                "advantage": advantages.reshape(-1),
                "return": returns.reshape(-1),
            }
            # ---- clipped-surrogate epochs over shuffled minibatches
            stats = self._update(flat, clip)
            # ---- bookkeeping (the one host sync per iteration)
            values = data.extras["value"].reshape(-1)
            var_y = flat["return"].var()
            # One host sync for the losses and the NaN/inf checks of losses, weights and actions.
            metrics = check_finite("PPO", self.global_step, {f"train/{k}": s for k, s in stats.items()},
                                   self.model.named_parameters(), flat["action"])
            explained = 1 - (flat["return"] - values).var() / var_y if var_y > 0 else float("nan")
            metrics["train/explained_variance"] = float(explained)
            metrics["train/learning_rate"] = lr
            if cfg.anneal_clip:
                metrics["train/clip_range"] = clip
            metrics.update(self.interaction.record_episodes(data))
            metrics["time/fps"] = steps_per_iter / (time.perf_counter() - tic)
            self.interaction.iteration += 1
            hooks.on_iteration(self, self.global_step, metrics)
        return self

    def _update(self, flat: dict[str, torch.Tensor], clip: float | None = None) -> dict[str, torch.Tensor]:
        """The update epochs on one rollout's flattened fields, with surrogate clipping
        coefficient ``clip`` (None: ``clip_coef``); returns the mean statistics."""
        cfg = self.config
        clip = cfg.clip_coef if clip is None else clip
        if cfg.fast_path:  # closed-form gradients, flat parameter block, one fused Adam call
            if self._fast_update is None:
                self._fast_update = FastPPOUpdate(self.model, self.optimizer, cfg)
            return self._fast_update.update(flat, self.policy_generator, clip)
        n = flat["return"].shape[0]
        size = cfg.minibatch_rows(n)
        totals: dict[str, torch.Tensor] = {}
        count = 0
        for _ in range(cfg.update_epochs):
            order = torch.randperm(n, generator=self.policy_generator, device=self.device)
            for start in range(0, n, size):
                idx = order[start : start + size]
                loss, stats = ppo_loss(self.model, {k: v[idx] for k, v in flat.items()}, cfg, clip)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(
                    self.model.parameters(), cfg.max_grad_norm, foreach=cfg.fast_path or None
                )
                self.optimizer.step()
                for k, v in stats.items():
                    totals[k] = totals.get(k, 0) + v
                count += 1
            if cfg.target_kl is not None and float(stats["approx_kl"]) > cfg.target_kl:
                break
        return {k: v / count for k, v in totals.items()}

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a bit-exact resume needs, as tensors and plain data (weights-only loadable)."""
        out = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            # the base the optimizer's (annealed) rate derives from: a resume at another base
            # rescales it (rlsuite.learners.optim.load_optimizer)
            "learning_rate": float(self.config.learning_rate),
            **self.interaction.state_dict(),
        }
        # A snapshot, not live references: Adam's load_state_dict keeps same-device tensors as
        # they are, so two agents would otherwise share (and both update) the moment buffers.
        return copy.deepcopy(out)

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (the env and params must be the same as when saved)."""
        self.model.load_state_dict(data["model"])
        # The config's rate, at the saved place in the schedule (anneal_lr); learn() recomputes the
        # schedule from the config at every iteration. Checkpoints without the saved base get it.
        load_optimizer(self.optimizer, data["optimizer"], self.config.learning_rate,
                       data.get("learning_rate"))
        self.interaction.load_state_dict(data)
