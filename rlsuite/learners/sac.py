"""Soft actor-critic (Haarnoja et al. 2018, "Soft Actor-Critic Algorithms and Applications",
arXiv 1812.05905: twin Q critics, no V network, automatic temperature) on the batched engine.

The maths are module-level functions that IWOCS and VGDF reuse: :func:`soft_q_target`,
:func:`critic_loss`, :func:`actor_loss`, :func:`temperature_loss` (the soft target update is
:func:`rlsuite.learners.nets.polyak_update`), and one full gradient step, :func:`sac_update`,
over a :class:`SACNetworks`. The :class:`SAC` agent is the thin shell: each iteration steps
``B`` copies ``num_steps`` times into a device-resident
:class:`~rlsuite.learners.buffers.ReplayBuffer`, then takes ``utd`` gradient steps per env step.
Bootstrapping is cut by ``terminated`` only: a time-limit truncation bootstraps from the
pre-reset final observation (``Rollout.next_obs``).

Logged tags (SB3 names): ``rollout/ep_rew_mean``, ``rollout/ep_len_mean``, ``time/fps``,
``train/actor_loss``, ``train/critic_loss``, ``train/ent_coef``, ``train/ent_coef_loss``,
``train/n_updates``; also ``train/q_mean`` and ``train/entropy`` (of the current policy).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from rlsuite import validation as rules
from rlsuite.core import spaces, tree
from rlsuite.core.env import BatchedEnv
from rlsuite.engine.interaction import Interaction, InteractionCounters
from rlsuite.learners.budget import whole_iterations
from rlsuite.learners.buffers import ReplayBuffer, Transitions
from rlsuite.learners.flat import FlatOptimizer
from rlsuite.learners.greedy import greedy_mlp_policy
from rlsuite.learners.heads import squashed_log_prob
from rlsuite.learners.nets import flat_dim, polyak_update
from rlsuite.learners.optim import adam, load_optimizer, set_lr
from rlsuite.training import LossTotals, TrainingHooks, updates_due

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0
"""Clamp of the policy's log standard deviation (SB3's and the authors' softlearning values)."""


@dataclass
class SACConfig:
    """SAC hyperparameters (defaults: SB3's and CleanRL's ``sac_continuous_action``)."""

    name: str = "sac"
    """Registry name of the agent."""
    buffer_size: int = 1_000_000
    """Replay capacity in transitions (summed over copies)."""
    learning_starts: int = 100
    """Env steps of uniform random actions before the first gradient step (SB3: 100)."""
    num_steps: int = 1
    """Steps per env copy per iteration, collected before that iteration's gradient steps."""
    utd: float = 1.0
    """Update-to-data ratio: gradient steps per env step (summed over copies)."""
    batch_size: int = 256
    """Transitions per gradient step."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    learning_rate: float = 3e-4
    """Adam step size of the actor, the critics and the temperature."""
    alpha: float | None = None
    """Fixed entropy coefficient; None tunes it to reach ``target_entropy`` (paper eq. 18)."""
    init_alpha: float = 1.0
    """Initial entropy coefficient when tuned."""
    target_entropy: float | None = None
    """Entropy target of the tuned temperature; None means -dim(A) (the paper's heuristic)."""
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """Hidden widths of the actor and of each critic (ReLU)."""
    fast_path: bool = True
    """Greedy evaluation as fused kernels (``rlsuite.learners.greedy``), and each gradient step
    on CPU (batches of ``sac_fast.COMPILE_MIN_ROWS`` or more) through compiled closed-form
    gradients (:mod:`rlsuite.learners.sac_fast`: the same maths and random draws, rounding may
    differ); False: module calls and the eager autograd step (nothing compiled)."""

    RESUMABLE: ClassVar[tuple[str, ...]] = ("learning_rate",)
    """Keys a resume may change (learning rates, evaluation settings: ``rlsuite.identity``)."""
    CHECKS: ClassVar[rules.Checks] = {
        "buffer_size": rules.POSITIVE_INT, "learning_starts": rules.NONNEG_INT,
        "num_steps": rules.POSITIVE_INT, "utd": rules.POSITIVE, "batch_size": rules.POSITIVE_INT,
        "gamma": rules.UNIT, "tau": rules.UNIT_OPEN_LOW, "learning_rate": rules.POSITIVE,
        "alpha": rules.optional(rules.NONNEG), "init_alpha": rules.POSITIVE,
        "target_entropy": rules.optional(rules.FINITE), "hidden_sizes": rules.SIZES,
        "fast_path": rules.FLAG,
    }

    def __post_init__(self) -> None:
        rules.validate(self)


class MLP(nn.Sequential):
    """``nn.Sequential`` whose forward calls ``F.linear`` and the layers' ``forward`` itself: the
    same ops (so the same numbers to the last bit) without ``Module.__call__``'s hook machinery,
    ~4 us a layer, which adds up at SAC's several small forwards per gradient step. Forward hooks
    on the layers are therefore not run (none are registered in rlsuite)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The layers in order; a ReLU right after a linear layer rectifies that layer's fresh
        output in place (one allocation fewer; autograd allows it: a linear layer's backward needs
        its inputs, not its output)."""
        after_linear = False
        for layer in self._modules.values():
            kind = type(layer)
            if kind is nn.Linear:  # nn.Linear.forward's own call
                x = F.linear(x, layer.weight, layer.bias)
            elif after_linear and kind is nn.ReLU:
                x = torch.relu_(x)
            else:
                x = layer.forward(x)
            after_linear = kind is nn.Linear
        return x


def mlp(in_dim: int, out_dim: int, hidden: Sequence[int]) -> nn.Sequential:
    """ReLU MLP with PyTorch's default init (SB3's and CleanRL's SAC networks)."""
    dims = [in_dim, *hidden]
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-1], dims[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return MLP(*layers, nn.Linear(dims[-1], out_dim))


class SquashedGaussianActor(nn.Module):
    """``a = bias + scale * tanh(u)`` with ``u ~ N(mu(s), sigma(s))``: a squashed Gaussian."""

    def __init__(self, obs_dim: int, low: torch.Tensor, high: torch.Tensor, hidden: Sequence[int]):
        super().__init__()
        self.act_dim = low.numel()
        self.net = mlp(obs_dim, 2 * self.act_dim, hidden)  # mean and log-std heads in one layer
        self.register_buffer("scale", ((high - low) / 2).reshape(-1).float())
        self.register_buffer("bias", ((high + low) / 2).reshape(-1).float())

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, log_std)`` of the pre-squash Gaussian, each ``[N, |A|]``."""
        mean, log_std = self.net(obs.reshape(obs.shape[0], -1).float()).chunk(2, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(
        self, obs: torch.Tensor, generator: torch.Generator, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterized draw: ``(action in the Box [N, |A|], log_prob [N])``."""
        mean, log_std, u = self._pre_squash(obs, generator, deterministic)
        return self.bias + self.scale * torch.tanh(u), squashed_log_prob(u, mean, log_std)

    def action(
        self, obs: torch.Tensor, generator: torch.Generator, deterministic: bool = False
    ) -> torch.Tensor:
        """The action of :meth:`sample` (the same draw) without its log-density, for callers
        that discard it (acting, VGDF's filter)."""
        return self.bias + self.scale * torch.tanh(self._pre_squash(obs, generator, deterministic)[2])

    def _pre_squash(
        self, obs: torch.Tensor, generator: torch.Generator, deterministic: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(mean, log_std, u)``: ``u = mean`` when ``deterministic``, else one normal draw."""
        mean, log_std = self(obs)
        if deterministic:
            return mean, log_std, mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device)
        return mean, log_std, mean + log_std.exp() * noise


class TwinQ(nn.Module):
    """Two independent Q networks ``Q_i(s, a)`` on the concatenated observation and Box action."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.q1 = mlp(obs_dim + act_dim, 1, hidden)
        self.q2 = mlp(obs_dim + act_dim, 1, hidden)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(Q1, Q2)``, each ``[N]``."""
        x = torch.cat([obs.reshape(obs.shape[0], -1).float(), action.reshape(len(action), -1)], -1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


class SACNetworks(nn.Module):
    """Actor, twin critics, their Polyak targets and ``log_alpha`` (fixed or learned)."""

    def __init__(self, obs_space: spaces.Space, action_space: spaces.Space, config: SACConfig):
        super().__init__()
        if not isinstance(action_space, spaces.Box):
            raise ValueError(f"SAC needs a Box action space, got {type(action_space).__name__}")
        if not bool((torch.isfinite(action_space.low) & torch.isfinite(action_space.high)).all()):
            raise ValueError("SAC squashes actions into the Box: its bounds must be finite, got "
                             f"low={action_space.low.tolist()} high={action_space.high.tolist()}")
        obs_dim, act_dim = flat_dim(obs_space.shape), flat_dim(action_space.shape)
        self.actor = SquashedGaussianActor(obs_dim, action_space.low, action_space.high,
                                           config.hidden_sizes)
        self.critic = TwinQ(obs_dim, act_dim, config.hidden_sizes)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        init = config.init_alpha if config.alpha is None else config.alpha
        learned = config.alpha is None
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init)), requires_grad=learned)
        self.target_entropy = (-float(act_dim) if config.target_entropy is None
                               else float(config.target_entropy))
        self.fast_path = config.fast_path
        """Whether :func:`sac_update` may take the compiled step (``SACConfig.fast_path``)."""


def soft_q_target(
    reward: torch.Tensor, terminated: torch.Tensor, next_q1: torch.Tensor, next_q2: torch.Tensor,
    next_log_prob: torch.Tensor, alpha: torch.Tensor | float, gamma: float,
) -> torch.Tensor:
    """``y = r + gamma (1 - terminated) (min(Q1', Q2') - alpha log pi(a'|s'))`` (paper eq. 3, 5;
    the minimum over two target critics is its section 5 / TD3's clipped double Q)."""
    soft_value = torch.min(next_q1, next_q2) - alpha * next_log_prob
    return reward + gamma * (~terminated).to(soft_value.dtype) * soft_value


def critic_loss(
    nets: SACNetworks, batch: Transitions, alpha: torch.Tensor, gamma: float,
    generator: torch.Generator, weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``0.5 * sum_i E[w (Q_i(s, a) - y)^2]`` with ``y`` from the target critics (paper eq. 5).

    ``weight`` ([N], optional) scales each transition (VGDF's data filter; 1 when omitted).
    """
    with torch.no_grad():
        next_action, next_log_prob = nets.actor.sample(batch.next_obs, generator)
        next_q1, next_q2 = nets.critic_target(batch.next_obs, next_action)
        target = soft_q_target(batch.reward, batch.terminated, next_q1, next_q2, next_log_prob,
                               alpha, gamma)
    q1, q2 = nets.critic(batch.obs, batch.action)
    err = (q1 - target).pow(2) + (q2 - target).pow(2)
    loss = 0.5 * (err if weight is None else weight * err).mean()
    return loss, {"critic_loss": loss.detach(), "q_mean": q1.detach().mean()}


def actor_loss(
    nets: SACNetworks, obs: torch.Tensor, alpha: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``E[alpha log pi(a|s) - min_i Q_i(s, a)]``, ``a`` reparameterized (paper eq. 7, 12).

    Returns ``(loss, log_prob)``; the log-probabilities feed :func:`temperature_loss`.
    """
    action, log_prob = nets.actor.sample(obs, generator)
    q1, q2 = nets.critic(obs, action)
    return (alpha * log_prob - torch.min(q1, q2)).mean(), log_prob


def temperature_loss(
    log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float
) -> torch.Tensor:
    """``-E[log_alpha (log pi(a|s) + target_entropy)]`` (paper eq. 18, optimized in ``log alpha``
    as the authors' softlearning and SB3 do, so alpha stays positive)."""
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()


@dataclass
class SACOptimizers:
    """One Adam per learned part; ``alpha`` is None when the temperature is fixed."""

    actor: torch.optim.Optimizer | FlatOptimizer
    critic: torch.optim.Optimizer | FlatOptimizer
    alpha: torch.optim.Optimizer | FlatOptimizer | None

    @staticmethod
    def make(nets: SACNetworks, lr: float) -> SACOptimizers:
        """Adam (fused on one device: fewer kernel launches per step) for each part."""

        def flat_adam(params: Iterable[nn.Parameter]) -> FlatOptimizer:
            # Built without TorchDynamo's lazy import, and stepped by FlatAdam's own fused call,
            # never optimizer.step() (which imports TorchDynamo): ~0.9 s of a process's start.
            return FlatOptimizer(adam(params, lr=lr, fused=True))

        # Each part steps as a flat block (one zero, one fused Adam call; the same numbers to the
        # last bit): ~13% less CPU per gradient step of the 64x64 Pendulum preset.
        alpha = flat_adam([nets.log_alpha]) if nets.log_alpha.requires_grad else None
        return SACOptimizers(flat_adam(nets.actor.parameters()),
                             flat_adam(nets.critic.parameters()), alpha)

    def state_dict(self) -> dict[str, Any]:
        """Optimizer states (tensors and plain data)."""
        out = {"actor": self.actor.state_dict(), "critic": self.critic.state_dict()}
        return out | ({"alpha": self.alpha.state_dict()} if self.alpha is not None else {})

    def set_lrs(self, actor: float, critic: float, alpha: float) -> None:
        """The learning rate of each part (:func:`rlsuite.learners.optim.set_lr`)."""
        set_lr(self.actor, actor)
        set_lr(self.critic, critic)
        if self.alpha is not None:
            set_lr(self.alpha, alpha)

    def load_state_dict(self, data: dict[str, Any], actor: float, critic: float,
                        alpha: float) -> None:
        """Restore from :meth:`state_dict`, then set the config's learning rates ``actor``,
        ``critic`` and ``alpha`` (a loaded state carries the rates it was saved with)."""
        load_optimizer(self.actor, data["actor"], actor)
        load_optimizer(self.critic, data["critic"], critic)
        if self.alpha is not None:
            load_optimizer(self.alpha, data["alpha"], alpha)


def sac_update(
    nets: SACNetworks, opt: SACOptimizers, batch: Transitions, gamma: float, tau: float,
    generator: torch.Generator, weight: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """One gradient step in the paper's order (Algorithm 1): critics, actor, temperature, targets.

    Returns detached device tensors (no host sync). With ``nets.fast_path``, CPU networks of
    this module's layout and a batch of at least ``sac_fast.COMPILE_MIN_ROWS`` transitions the
    step is :class:`rlsuite.learners.sac_fast.FastSACStep` (the same maths and random draws,
    compiled); otherwise the eager autograd step below.
    """
    if nets.fast_path:
        from rlsuite.learners.sac_fast import fast_step  # imports this module

        step = fast_step(nets, opt, len(batch))
        if step is not None:
            return step(batch, gamma, tau, generator, weight)
    alpha = nets.log_alpha.detach().exp()
    loss_q, stats = critic_loss(nets, batch, alpha, gamma, generator, weight)
    opt.critic.zero_grad(set_to_none=True)
    loss_q.backward()
    opt.critic.step()
    # The actor's gradient flows through the critics; freezing them skips their weight gradients.
    nets.critic.requires_grad_(False)
    loss_pi, log_prob = actor_loss(nets, batch.obs, alpha, generator)
    opt.actor.zero_grad(set_to_none=True)
    loss_pi.backward()
    opt.actor.step()
    nets.critic.requires_grad_(True)
    stats |= {"actor_loss": loss_pi.detach(), "ent_coef": alpha,
              "entropy": -log_prob.detach().mean()}
    if opt.alpha is not None:
        loss_alpha = temperature_loss(nets.log_alpha, log_prob, nets.target_entropy)
        opt.alpha.zero_grad(set_to_none=True)
        loss_alpha.backward()
        opt.alpha.step()
        stats["ent_coef_loss"] = loss_alpha.detach()
    polyak_update(nets.critic.parameters(), nets.critic_target.parameters(), tau)
    return stats


class SAC(InteractionCounters):
    """SAC agent on an engine env with a Box action space.

    Args:
        config: hyperparameters.
        env: the batched env; ``params`` sets the number of copies ``B`` and their physics.
        seed: seeds the networks, the env generator and the policy generator (actions, replay
            sampling, target and actor noise).
    """

    def __init__(self, config: SACConfig, env: BatchedEnv, params: Any, seed: int = 0) -> None:
        if config.utd < 0 or config.num_steps < 1 or config.batch_size < 1:
            raise ValueError(f"SAC: need utd >= 0, num_steps >= 1, batch_size >= 1; got "
                             f"utd={config.utd}, num_steps={config.num_steps}, "
                             f"batch_size={config.batch_size}")
        self.config = config
        self.env = env
        self.params = params
        self.device = env.device
        self.num_envs = tree.batch_size(params)
        torch.manual_seed(seed)  # network initialisation
        self.nets = SACNetworks(env.observation_space, env.action_space, config).to(self.device)
        self.opt = SACOptimizers.make(self.nets, config.learning_rate)
        self.buffer = ReplayBuffer.for_env(env, config.buffer_size)
        self.interaction = Interaction(env, params, seed)
        self.policy_generator = self.interaction.policy_generator
        self.num_updates = 0
        self._greedy_fused: Any = None  # built at the first greedy_policy()

    # -- acting ---------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Box actions for a batch of observations (``bias + scale * tanh(mean)`` when
        ``deterministic``)."""
        action = self.nets.actor.action(obs, self.policy_generator, deterministic)
        return action.reshape(-1, *self.env.action_space.shape)

    def greedy_policy(self) -> Any:
        """The greedy policy (``bias + scale * tanh(mean)``) for
        :func:`~rlsuite.engine.evaluate.evaluate`: a fused one on the fast path (same maths,
        float rounding aside), else :meth:`act` with ``deterministic=True``."""
        if self.config.fast_path and self._greedy_fused is None:
            actor, shape = self.nets.actor, self.env.action_space.shape
            dim = actor.act_dim

            def head(out: torch.Tensor, scale_bias: tuple[torch.Tensor, ...]) -> torch.Tensor:
                scale, bias = scale_bias
                return (bias + scale * torch.tanh(out[:, :dim])).reshape(-1, *shape)

            self._greedy_fused = greedy_mlp_policy("sac greedy policy", actor.net, head,
                                                   constants=lambda: (actor.scale, actor.bias))
        if self.config.fast_path and self._greedy_fused is not None:
            return self._greedy_fused
        return lambda obs: self.act(obs, deterministic=True)

    def _random_action(self, obs: torch.Tensor) -> torch.Tensor:
        """Uniform in the Box (the warm-up before ``learning_starts``, as in SB3 and CleanRL)."""
        space = self.env.action_space
        u = torch.rand((obs.shape[0], *space.shape), generator=self.policy_generator,
                       device=self.device)
        return space.low + (space.high - space.low) * u

    # -- learning ---------------------------------------------------------------------------
    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> SAC:
        """Train until ``total_steps`` env steps (summed over copies) have been taken.

        Continues from the current counters, so a loaded agent resumes its curves.
        """
        cfg, hooks = self.config, hooks or TrainingHooks()
        steps_per_iter = self.num_envs * cfg.num_steps
        num_iterations = whole_iterations(total_steps, self.num_envs, cfg.num_steps, "SAC")
        while self.iteration < num_iterations:
            tic = time.perf_counter()
            # ---- collect B x num_steps transitions into the replay buffer
            warmup = self.global_step < cfg.learning_starts
            policy = self._random_action if warmup else self.act
            data = self.interaction.collect(policy, cfg.num_steps)
            self.buffer.add_rollout(data)
            # ---- gradient steps owed at this point: utd per env step after learning_starts
            due = updates_due(cfg.utd, self.global_step, cfg.learning_starts, self.num_updates)
            totals = LossTotals()
            for _ in range(due):
                batch = self.buffer.sample(cfg.batch_size, self.policy_generator)
                totals.add(sac_update(self.nets, self.opt, batch, cfg.gamma, cfg.tau,
                                      self.policy_generator))
            self.num_updates += due
            # ---- bookkeeping (the one host sync per iteration)
            metrics = totals.means("SAC", self.global_step, params=self.nets.named_parameters())
            metrics.update(self.interaction.record_episodes(data))
            metrics["train/n_updates"] = float(self.num_updates)
            metrics["time/fps"] = steps_per_iter / (time.perf_counter() - tic)
            self.interaction.iteration += 1
            hooks.on_iteration(self, self.global_step, metrics)
        return self

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a bit-exact resume needs (networks, optimizers, generators, replay buffer,
        env state, counters) as tensors and plain data (weights-only loadable)."""
        out: dict[str, Any] = {
            "nets": self.nets.state_dict(),
            "optimizers": self.opt.state_dict(),
            "num_updates": self.num_updates,
            **self.interaction.state_dict(),
        }
        # A snapshot, not live references (as PPO's): Adam's load_state_dict keeps same-device
        # tensors, so two agents would otherwise share and both update the moment buffers.
        out = copy.deepcopy(out)
        out["buffer"] = self.buffer.state_dict()  # already a copy of the filled rows
        return out

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (the env and params must be the same as when saved)."""
        self.nets.load_state_dict(data["nets"])
        lr = self.config.learning_rate
        self.opt.load_state_dict(data["optimizers"], lr, lr, lr)
        self.buffer.load_state_dict(data["buffer"])
        self.num_updates = int(data["num_updates"])
        self.interaction.load_state_dict(data)
