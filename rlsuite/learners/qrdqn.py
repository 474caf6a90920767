"""Quantile-regression DQN (Dabney, Rowland, Bellemare & Munos 2018, *Distributional Reinforcement
Learning with Quantile Regression*, AAAI, arXiv 1710.10044) on the batched engine.

The return distribution of each action is ``N`` Diracs at learned locations ``theta_i(s, a)``,
the quantiles of the return at the midpoints ``tau_hat_i = (2 i + 1) / (2 N)`` (the paper's
Lemma 2: these midpoints minimize the 1-Wasserstein distance to the true distribution). Training
regresses them on the distributional Bellman target ``r + gamma theta_j(s', a*)`` with
``a* = argmax_a mean_j theta_j(s', a)``, by the quantile Huber loss (the paper's Algorithm 1)::

    loss = sum_i mean_j rho_kappa(tau_hat_i, T theta_j - theta_i),
    rho_kappa(tau, u) = |tau - 1{u < 0}| L_kappa(u) / kappa   (L_kappa: Huber with threshold kappa)

The maths are module-level functions that the deep distributional-DP agent (DηN) extends:
:func:`quantile_midpoints`, :func:`quantile_huber_loss`, :func:`greedy_action`,
:func:`action_quantiles`, :func:`target_quantiles` and :func:`qrdqn_loss`. The :class:`QRDQN`
agent is the thin shell: each iteration steps ``B`` copies ``num_steps`` times epsilon-greedily
into a device-resident replay buffer, then takes ``utd`` gradient steps per env step; the loop is
:func:`replay_learning_loop`, whose per-batch ``update`` and ``after_iteration`` hooks DηN plugs
its own step into. The target
bootstraps through time limits: it is cut by ``terminated`` only, from the pre-reset final
observation.

Defaults: the paper's and SB3-contrib's ``n_quantiles = 200``, ``kappa = 1``, Adam with
``eps = 0.01 / batch_size`` and a hard target copy; the rest is the RL Zoo's tuned CartPole-v1
QR-DQN (learning rate 2.3e-3, batch 64, 1e5 buffer, 1000 warm-up steps, 0.5 gradient steps per
env step, epsilon 1 -> 0.04 over 16% of the run, 256x256 ReLU MLP), with collection batched over
``B`` copies. The paper's Atari values (lr 5e-5, target copy every 10k updates, ...) do not fit
the classic-control budgets this suite runs by default. ``experiment=cartpole_qrdqn`` is the Zoo's
CartPole setting whole, 10 quantiles included (a gradient step costs ~2 ms there, ~10 ms with
200 quantiles on this project's CPU).

Logged tags (SB3 names): ``rollout/ep_rew_mean``, ``rollout/ep_len_mean``,
``rollout/exploration_rate``, ``time/fps``, ``train/loss``, ``train/q_mean``, ``train/n_updates``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from rlsuite import validation as rules
from rlsuite.core import spaces, tree
from rlsuite.core.env import BatchedEnv
from rlsuite.engine.interaction import Interaction, InteractionCounters
from rlsuite.learners.budget import whole_iterations
from rlsuite.learners.buffers import ReplayBuffer, Transitions
from rlsuite.learners.flat import FlatOptimizer
from rlsuite.learners.greedy import greedy_mlp_policy
from rlsuite.learners.nets import flat_dim, mlp, polyak_update
from rlsuite.learners.optim import adam, load_optimizer
from rlsuite.training import LossTotals, TrainingHooks, updates_due


@dataclass
class QRDQNConfig:
    """QR-DQN hyperparameters (see the module docstring for where each default comes from)."""

    name: str = "qrdqn"
    """Registry name of the agent."""
    n_quantiles: int = 200
    """Quantiles N per action (paper and SB3-contrib: 200)."""
    kappa: float = 1.0
    """Huber threshold of the quantile loss (paper: 1); 0 gives the plain quantile loss."""
    hidden_sizes: list[int] = field(default_factory=lambda: [256, 256])
    """Hidden widths of the ReLU quantile network."""
    learning_rate: float = 2.3e-3
    """Adam step size."""
    adam_eps: float | None = None
    """Adam epsilon; None means 0.01 / batch_size (the paper's, as in SB3-contrib)."""
    batch_size: int = 64
    """Transitions per gradient step."""
    buffer_size: int = 100_000
    """Replay capacity in transitions (summed over copies)."""
    learning_starts: int = 1000
    """Env steps of uniform random actions before the first gradient step."""
    gamma: float = 0.99
    """Discount factor."""
    num_steps: int = 4
    """Steps per env copy per iteration, collected before that iteration's gradient steps."""
    utd: float = 0.5
    """Gradient steps per env step (summed over copies), once ``learning_starts`` have passed."""
    target_update_interval: int = 128
    """Gradient steps between target-network updates (the paper counts updates, as DQN)."""
    tau: float = 1.0
    """Target update rate: 1 copies the online network (the paper), < 1 is a Polyak average."""
    exploration_fraction: float = 0.16
    """Fraction of ``total_steps`` over which epsilon decays linearly."""
    exploration_initial_eps: float = 1.0
    """Epsilon at the start of the decay."""
    exploration_final_eps: float = 0.04
    """Epsilon after the decay."""
    max_grad_norm: float | None = None
    """Global gradient-norm clip (None: no clipping, as SB3-contrib's default)."""
    fast_path: bool = True
    """Compute the gradient step's gradients in closed form (:mod:`rlsuite.learners.qrdqn_fast`)
    into flat blocks of parameters, gradients and Adam moments, and step Adam with one fused call
    (:func:`quantile_optimizer`): the same update up to float rounding, ~1.7x less CPU per
    gradient step of the CartPole preset; False runs autograd and ``torch.optim.Adam`` per tensor
    (the reference the fast path is tested against)."""

    RESUMABLE: ClassVar[tuple[str, ...]] = ("learning_rate",)
    """Keys a resume may change (learning rates, evaluation settings: ``rlsuite.identity``)."""
    CHECKS: ClassVar[rules.Checks] = {
        "n_quantiles": rules.POSITIVE_INT, "kappa": rules.NONNEG, "hidden_sizes": rules.SIZES,
        "learning_rate": rules.POSITIVE, "adam_eps": rules.optional(rules.POSITIVE),
        "batch_size": rules.POSITIVE_INT, "buffer_size": rules.POSITIVE_INT,
        "learning_starts": rules.NONNEG_INT, "gamma": rules.UNIT, "num_steps": rules.POSITIVE_INT,
        "utd": rules.POSITIVE, "target_update_interval": rules.POSITIVE_INT, "tau": rules.UNIT_OPEN_LOW,
        "exploration_fraction": rules.UNIT, "exploration_initial_eps": rules.UNIT,
        "exploration_final_eps": rules.UNIT, "max_grad_norm": rules.optional(rules.POSITIVE),
        "fast_path": rules.FLAG,
    }

    def __post_init__(self) -> None:
        rules.validate(self)


class QuantileNetwork(nn.Module):
    """``obs -> theta [N_batch, A, N]``: a ReLU MLP with ``A * N`` outputs (orthogonal init,
    :func:`rlsuite.learners.nets.mlp`)."""

    def __init__(self, obs_dim: int, n_actions: int, n_quantiles: int, hidden: list[int]):
        super().__init__()
        self.n_actions, self.n_quantiles = n_actions, n_quantiles
        self.net = mlp(obs_dim, n_actions * n_quantiles, hidden, activation=nn.ReLU)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Quantile locations ``[N_batch, A, N]``."""
        # In the network's dtype (float32 unless a caller converted it, e.g. to float64 for a test).
        out = self.net(obs.reshape(obs.shape[0], -1).to(self.net[0].weight.dtype))
        return out.view(-1, self.n_actions, self.n_quantiles)


# -- the maths ------------------------------------------------------------------------------
def quantile_midpoints(
    n: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``tau_hat_i = (2 i + 1) / (2 n)``, ``i = 0 .. n-1`` (paper, Lemma 2), computed in float64
    and rounded once to ``dtype``."""
    if n < 1:
        raise ValueError(f"n_quantiles must be >= 1, got {n}")
    i = torch.arange(n, dtype=torch.float64, device=device)
    return ((2 * i + 1) / (2 * n)).to(dtype)


CHUNK_ELEMENTS = 1 << 18
"""Pairwise ``u_ij`` entries per chunk of rows (1 MiB of float32): small enough to stay in the
CPU's L2 cache through the fused passes below (measured: 8-row chunks of ``[200, 200]`` ran
3.3 ms vs 5.0 ms for all 64 rows at once)."""


def _pairwise_rows(current: torch.Tensor, target: torch.Tensor, tau: torch.Tensor, kappa: float,
                   target_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Per-row loss ``[R]`` and its gradients ``[R, N]``, ``[R, M]`` for ``[R, N]`` / ``[R, M]``
    (the last None without ``target_grad``: one pass over ``[R, N, M]`` fewer).

    With ``c = L_kappa'(u) / kappa`` (``sign(u)`` for the pinball loss), ``L_kappa(u) / kappa``
    equals ``c (u - kappa c / 2)`` on all three pieces of the Huber function, and since ``c``
    has the sign of ``u``, ``|tau - 1{u < 0}| c = c / 2 + (tau - 1/2) |c|`` (at ``u = 0`` both
    sides are 0). That avoids boolean masks, which are the slowest passes on CPU.
    """
    m = target.shape[-1]
    u = target.unsqueeze(-2) - current.unsqueeze(-1)  # [R, N, M]: u_ij = target_j - current_i
    if kappa > 0:
        c = u.clamp(-kappa, kappa)
        if kappa != 1.0:
            c.div_(kappa)
    else:
        c = u.sign()
    wc = c.abs().mul_(tau.unsqueeze(-1) - 0.5).add_(c, alpha=0.5)  # |tau - 1{u < 0}| c
    d_current = wc.sum(-1).div_(-m)
    d_target = wc.sum(-2).div_(m) if target_grad else None
    if kappa > 0:  # the pinball loss (kappa = 0) is c u: skip a pass over [R, N, M] that subtracts 0
        u.sub_(c, alpha=0.5 * kappa)
    loss = u.mul_(wc).sum((-2, -1)).div_(m)
    return loss, d_current, d_target


class _QuantileHuber(torch.autograd.Function):
    """The pairwise loss with its gradient written out, in cache-sized chunks of rows.

    Plain autograd through the ``[..., N, M]`` pairwise tensor keeps several intermediates of
    that size for the backward pass; here only the ``[..., N]`` and ``[..., M]`` gradients are
    kept. Forward + backward for ``B = 64, N = M = 200`` on this project's CPU (one thread):
    60 ms with plain autograd, 14 ms written out with boolean masks, 5.3 ms mask-free and
    chunked (a gradient step of the whole agent: 26 -> 10 ms)."""

    @staticmethod
    def forward(ctx: Any, current: torch.Tensor, target: torch.Tensor, tau_hat: torch.Tensor,
                kappa: float) -> torch.Tensor:
        n, m = current.shape[-1], target.shape[-1]
        lead = torch.broadcast_shapes(current.shape[:-1], target.shape[:-1])
        cur = current.expand(*lead, n).reshape(-1, n)
        tgt = target.expand(*lead, m).reshape(-1, m)
        target_grad = ctx.needs_input_grad[1]  # a detached target needs no [R, M] gradient
        loss, d_current, d_target = pairwise_loss_rows(cur, tgt, tau_hat, kappa, target_grad)
        ctx.shapes = (lead, current.shape, target.shape)
        ctx.save_for_backward(d_current, d_target)
        return loss.reshape(lead)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        d_current, d_target = ctx.saved_tensors
        lead, current_shape, target_shape = ctx.shapes
        g = grad.reshape(-1, 1)
        return ((g * d_current).reshape(*lead, -1).sum_to_size(current_shape),
                None if d_target is None else
                (g * d_target).reshape(*lead, -1).sum_to_size(target_shape), None, None)


def pairwise_loss_rows(
    current: torch.Tensor, target: torch.Tensor, tau_hat: torch.Tensor, kappa: float,
    target_grad: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The quantile Huber loss of each row of ``current [R, N]`` against ``target [R, M]`` and its
    gradients: ``(loss [R], d loss / d current [R, N], d loss / d target [R, M] or None)``.

    Computed in chunks of rows that stay in the CPU's cache (:data:`CHUNK_ELEMENTS`); the forward
    pass of :func:`quantile_huber_loss` and QR-DQN's closed-form update
    (:mod:`rlsuite.learners.qrdqn_fast`) both come here.
    """
    n, m = current.shape[-1], target.shape[-1]
    tau = tau_hat.to(current.dtype)
    rows = max(1, CHUNK_ELEMENTS // (n * m))
    parts = [_pairwise_rows(current[i : i + rows], target[i : i + rows], tau, kappa, target_grad)
             for i in range(0, current.shape[0], rows)]
    if len(parts) == 1:
        return parts[0]
    loss, d_current, d_target = zip(*parts, strict=True)
    return torch.cat(loss), torch.cat(d_current), torch.cat(d_target) if target_grad else None


def quantile_huber_loss(
    current: torch.Tensor,
    target: torch.Tensor,
    tau_hat: torch.Tensor,
    kappa: float = 1.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """Quantile Huber loss of ``current`` quantiles against ``target`` samples (Algorithm 1).

    Args:
        current: ``[..., N]`` predicted quantiles ``theta_i`` at levels ``tau_hat`` (``[N]``).
        target: ``[..., M]`` target samples ``T theta_j`` (the caller usually detaches them;
            if not, they get the loss's gradient too).
        kappa: Huber threshold; ``0`` gives the plain quantile (pinball) loss.
        reduction: ``"mean"`` over the leading dims, or ``"none"`` for the per-sample ``[...]``.

    Returns:
        ``sum_i mean_j |tau_i - 1{u_ij < 0}| L_kappa(u_ij) / kappa`` with
        ``u_ij = target_j - current_i``, reduced as asked. The indicator is treated as a
        constant (it is piecewise constant in ``u``), as in every QR-DQN implementation.
    """
    if kappa < 0:
        raise ValueError(f"kappa must be >= 0, got {kappa}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if tau_hat.shape != current.shape[-1:]:
        raise ValueError(f"tau_hat has shape {tuple(tau_hat.shape)}, expected "
                         f"({current.shape[-1]},) to match current's last dim")
    per_sample = _QuantileHuber.apply(current, target, tau_hat, float(kappa))
    return per_sample.mean() if reduction == "mean" else per_sample


def greedy_action(quantiles: torch.Tensor) -> torch.Tensor:
    """``argmax_a mean_i theta_i(s, a)`` for ``[B, A, N]`` quantiles: ``[B]`` int64."""
    return quantiles.mean(dim=-1).argmax(dim=-1)


def action_quantiles(quantiles: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """The ``[B, N]`` quantiles of the chosen ``action`` (``[B]``) from ``[B, A, N]``."""
    index = action.long().view(-1, 1, 1).expand(-1, 1, quantiles.shape[-1])
    return quantiles.gather(1, index).squeeze(1)


def target_quantiles(
    reward: torch.Tensor, terminated: torch.Tensor, next_quantiles: torch.Tensor, gamma: float
) -> torch.Tensor:
    """``r + gamma (1 - terminated) theta_j(s', a*)``: ``[B, N]`` from ``[B]``, ``[B]``, ``[B, N]``.

    Only ``terminated`` cuts the bootstrap; a time-limit truncation bootstraps from the pre-reset
    observation, as gymnasium's TimeLimit semantics require.
    """
    keep = (~terminated).to(next_quantiles.dtype).unsqueeze(-1)
    return reward.to(next_quantiles.dtype).unsqueeze(-1) + gamma * keep * next_quantiles


def qrdqn_loss(
    online: QuantileNetwork, target: QuantileNetwork, batch: Transitions, gamma: float,
    tau_hat: torch.Tensor, kappa: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The QR-DQN loss on one batch (the paper's Algorithm 1, with the target network's greedy
    action at the next state)."""
    with torch.no_grad():
        next_all = target(batch.next_obs)
        next_q = action_quantiles(next_all, greedy_action(next_all))
        goal = target_quantiles(batch.reward, batch.terminated, next_q, gamma)
    current = action_quantiles(online(batch.obs), batch.action)
    loss = quantile_huber_loss(current, goal, tau_hat, kappa)
    return loss, {"loss": loss.detach(), "q_mean": current.detach().mean()}


def quantile_optimizer(net: nn.Module, lr: float, eps: float,
                       fast_path: bool) -> torch.optim.Optimizer | FlatOptimizer:
    """Adam over ``net``'s parameters, shared by the quantile-critic agents (QR-DQN, DηN).

    On the fast path the parameters, gradients and moments are views of flat blocks and a step is
    one call of torch's fused Adam kernel (:class:`~rlsuite.learners.flat.FlatOptimizer`; the
    ``state_dict`` keeps torch's per-parameter layout). A gradient step of the 256x256 CartPole
    preset spent about a third of its CPU in ``torch.optim.Adam``'s per-tensor Python and ops.
    """
    if fast_path:
        # built without TorchDynamo's lazy import; FlatAdam never calls optimizer.step()
        return FlatOptimizer(adam(net.parameters(), lr=lr, eps=eps, fused=True))
    return torch.optim.Adam(net.parameters(), lr=lr, eps=eps)


def clipped_step(optimizer: torch.optim.Optimizer | FlatOptimizer, net: nn.Module,
                 max_grad_norm: float | None) -> None:
    """Clip the global gradient norm of ``net`` to ``max_grad_norm`` (None: no clip) and step
    ``optimizer`` (from :func:`quantile_optimizer`; a flat one clips its block with one norm)."""
    if isinstance(optimizer, FlatOptimizer):
        if max_grad_norm is not None:
            optimizer.clip_grad_norm_(max_grad_norm)
    elif max_grad_norm is not None:
        nn.utils.clip_grad_norm_(net.parameters(), max_grad_norm)
    optimizer.step()


def linear_epsilon(step: int, total_steps: int, config: QRDQNConfig) -> float:
    """Epsilon after ``step`` env steps: linear from initial to final over
    ``exploration_fraction * total_steps``, then constant (SB3's ``get_linear_fn``)."""
    horizon = config.exploration_fraction * total_steps
    progress = 1.0 if horizon <= 0 else min(1.0, step / horizon)
    start, end = config.exploration_initial_eps, config.exploration_final_eps
    return start + progress * (end - start)


# -- the agent --------------------------------------------------------------------------------
class QuantileAgentCheckpoint:
    """Checkpointing shared by the quantile-critic agents (QR-DQN and DηN, which keeps the same
    ``q_net`` / ``target_net`` / ``optimizer`` / ``buffer`` / ``interaction`` attributes)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything a bit-exact resume needs (networks, optimizer, generators, replay buffer,
        env state, counters) as tensors and plain data (weights-only loadable)."""
        out: dict[str, Any] = {
            "q_net": self.q_net.state_dict(),
            "target_net": self.target_net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "exploration_rate": self.exploration_rate,
            "num_updates": self.num_updates,
            **self.interaction.state_dict(),
        }
        # A snapshot, not live references (as PPO's and SAC's): the agent keeps training in place.
        out = copy.deepcopy(out)
        out["buffer"] = self.buffer.state_dict()  # already a copy of the filled rows
        return out

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (the env and params must be the same as when saved)."""
        self.q_net.load_state_dict(data["q_net"])
        self.target_net.load_state_dict(data["target_net"])
        load_optimizer(self.optimizer, data["optimizer"], self.config.learning_rate)
        self.buffer.load_state_dict(data["buffer"])
        self.exploration_rate = float(data["exploration_rate"])
        self.num_updates = int(data["num_updates"])
        self.interaction.load_state_dict(data)


class QRDQN(QuantileAgentCheckpoint, InteractionCounters):
    """QR-DQN agent on an engine env with a Discrete action space.

    Args:
        config: hyperparameters.
        env: the batched env; ``params`` sets the number of copies ``B`` and their physics.
        seed: seeds the network, the env generator and the policy generator (exploration,
            replay sampling).
    """

    def __init__(self, config: QRDQNConfig, env: BatchedEnv, params: Any, seed: int = 0) -> None:
        space = env.action_space
        if not isinstance(space, spaces.Discrete):
            raise ValueError(f"QR-DQN needs a Discrete action space, got {type(space).__name__}")
        for name in ("n_quantiles", "batch_size", "num_steps", "target_update_interval"):
            if getattr(config, name) < 1:
                raise ValueError(f"QR-DQN: {name} must be >= 1, got {getattr(config, name)}")
        if config.utd < 0 or not 0 < config.tau <= 1:
            raise ValueError(f"QR-DQN: need utd >= 0 and 0 < tau <= 1, got utd={config.utd}, "
                             f"tau={config.tau}")
        self.config = config
        self.env = env
        self.params = params
        self.device = env.device
        self.num_envs = tree.batch_size(params)
        torch.manual_seed(seed)  # network initialisation
        obs_dim = flat_dim(env.observation_space.shape)
        self.q_net = QuantileNetwork(obs_dim, space.n, config.n_quantiles,
                                     config.hidden_sizes).to(self.device)
        self.target_net = copy.deepcopy(self.q_net).requires_grad_(False)
        eps = config.adam_eps if config.adam_eps is not None else 0.01 / config.batch_size
        self.optimizer = quantile_optimizer(self.q_net, config.learning_rate, eps, config.fast_path)
        self.tau_hat = quantile_midpoints(config.n_quantiles, self.device)
        self.buffer = ReplayBuffer.for_env(env, config.buffer_size)
        self.interaction = Interaction(env, params, seed)
        self.policy_generator = self.interaction.policy_generator
        self.exploration_rate = config.exploration_initial_eps
        self.num_updates = 0
        self._fast_step: Any = None  # the fast path's FastQuantileStep, built at the first update
        self._greedy_fused: Any = None  # built at the first greedy_policy()

    # -- acting ---------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Greedy actions (``deterministic``) or epsilon-greedy ones at the current rate."""
        greedy = greedy_action(self.q_net(obs))
        if deterministic:
            return greedy
        # Both draws happen every call, so the generator advances the same way whatever epsilon.
        explore = torch.rand(obs.shape[0], generator=self.policy_generator, device=self.device)
        random = self._random_action(obs)
        return torch.where(explore < self.exploration_rate, random, greedy)

    def greedy_policy(self) -> Any:
        """The greedy policy (``argmax`` of the mean quantile) for
        :func:`~rlsuite.engine.evaluate.evaluate`: a fused one on the fast path, else :meth:`act`
        with ``deterministic=True``."""
        if self.config.fast_path and self._greedy_fused is None:
            q = self.q_net

            def head(out: torch.Tensor, _: tuple[torch.Tensor, ...]) -> torch.Tensor:
                return greedy_action(out.view(-1, q.n_actions, q.n_quantiles))

            self._greedy_fused = greedy_mlp_policy("qrdqn greedy policy", q.net, head)
        if self.config.fast_path and self._greedy_fused is not None:
            return self._greedy_fused
        return lambda obs: self.act(obs, deterministic=True)

    def _random_action(self, obs: torch.Tensor) -> torch.Tensor:
        n_actions = self.env.action_space.n  # type: ignore[union-attr]
        return torch.randint(n_actions, (obs.shape[0],), generator=self.policy_generator,
                             device=self.device)

    # -- learning ---------------------------------------------------------------------------
    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> QRDQN:
        """Train until ``total_steps`` env steps (summed over copies) have been taken.

        Continues from the current counters, so a loaded agent resumes its curves (epsilon's
        schedule is a function of ``global_step`` and ``total_steps``). The loop is
        :func:`replay_learning_loop`, with :meth:`gradient_step` as its update.
        """
        replay_learning_loop(self, total_steps, hooks, label="QR-DQN", update=self.gradient_step)
        return self

    def gradient_step(self, batch: Transitions) -> dict[str, torch.Tensor]:
        """One update on a sampled replay batch: the target copy (every
        ``target_update_interval`` updates, before the loss), the quantile Huber loss, one Adam
        step with the gradient-norm clip. Returns the loss statistics."""
        cfg = self.config
        if self.num_updates % cfg.target_update_interval == 0:
            polyak_update(self.q_net.parameters(), self.target_net.parameters(), cfg.tau)
        if cfg.fast_path:  # closed-form gradients into the flat block (rlsuite.learners.qrdqn_fast)
            if self._fast_step is None:
                from rlsuite.learners.qrdqn_fast import FastQuantileStep  # imports this module

                self._fast_step = FastQuantileStep(self.q_net, self.target_net, self.optimizer)
            return self._fast_step.step(batch, cfg, self.tau_hat)
        loss, stats = qrdqn_loss(self.q_net, self.target_net, batch, cfg.gamma, self.tau_hat, cfg.kappa)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clipped_step(self.optimizer, self.q_net, cfg.max_grad_norm)
        return stats


def replay_learning_loop(agent: Any, total_steps: int, hooks: TrainingHooks | None, *, label: str,
                         update: Callable[[Transitions], dict[str, torch.Tensor]],
                         after_iteration: Callable[[int], None] | None = None) -> None:
    """QR-DQN's training loop, shared with the agents that extend it (DηN), until ``total_steps``
    env steps: each iteration collects ``num_envs x num_steps`` epsilon-greedy transitions (uniform
    random before ``learning_starts``) into the replay buffer, takes the gradient steps owed (``utd``
    per env step after ``learning_starts``), logs, and calls ``hooks.on_iteration``.

    The extension points:

    * ``update(batch) -> stats``: one gradient step on a batch sampled from the buffer (target
      update included); QR-DQN's is :meth:`QRDQN.gradient_step`, DηN's relabels the batch's stocks
      and steps on its own loss. The loop counts ``agent.num_updates`` after each call.
    * ``after_iteration(step_before)``: runs once the iteration's counters have advanced and before
      the hooks see the agent (``step_before``: ``global_step`` when the iteration began); DηN
      keeps its weight snapshots there.

    ``agent`` provides ``config`` (``num_steps``, ``learning_starts``, ``utd``, ``batch_size`` and
    the epsilon schedule of :func:`linear_epsilon`), ``interaction``, ``buffer``,
    ``policy_generator``, ``act``, ``_random_action``, ``exploration_rate``, ``num_updates``,
    ``q_net`` (its weights are checked and summarized under ``label``) and the counters.
    """
    cfg, hooks = agent.config, hooks or TrainingHooks()
    steps_per_iter = agent.interaction.num_envs * cfg.num_steps
    num_iterations = whole_iterations(total_steps, agent.interaction.num_envs, cfg.num_steps,
                                      label)
    while agent.iteration < num_iterations:
        tic = time.perf_counter()
        step_before = agent.global_step
        # ---- collect B x num_steps transitions (uniform random during the warm-up)
        agent.exploration_rate = linear_epsilon(agent.global_step, total_steps, cfg)
        warmup = agent.global_step < cfg.learning_starts
        policy = agent._random_action if warmup else agent.act
        data = agent.interaction.collect(policy, cfg.num_steps)
        agent.buffer.add_rollout(data)
        # ---- gradient steps owed: utd per env step after learning_starts
        due = updates_due(cfg.utd, agent.global_step, cfg.learning_starts, agent.num_updates)
        totals = LossTotals()
        for _ in range(due):
            batch = agent.buffer.sample(cfg.batch_size, agent.policy_generator)
            stats = update(batch)
            agent.num_updates += 1
            totals.add(stats)
        # ---- bookkeeping (the one host sync per iteration)
        metrics = totals.means(label, agent.global_step, params=agent.q_net.named_parameters())
        metrics.update(agent.interaction.record_episodes(data))
        metrics["rollout/exploration_rate"] = 1.0 if warmup else agent.exploration_rate
        metrics["train/n_updates"] = float(agent.num_updates)
        metrics["time/fps"] = steps_per_iter / (time.perf_counter() - tic)
        agent.interaction.iteration += 1
        if after_iteration is not None:
            after_iteration(step_before)
        hooks.on_iteration(agent, agent.global_step, metrics)
