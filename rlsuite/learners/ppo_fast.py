"""PPO's update on the fast path: closed-form gradients, one flat parameter block, fused Adam.

The same maths as the eager update (:func:`rlsuite.learners.ppo.ppo_loss`, autograd, ``clip_grad_norm_``,
``torch.optim.Adam``), computed with fewer, larger ops:

* the gradient of the clipped surrogate + value loss - entropy bonus with respect to the actor's
  output (categorical logits or Gaussian mean and log-std) and the critic's value is written out
  (:func:`ppo_output_grads`), then backpropagated through both tanh MLPs by hand
  (:mod:`rlsuite.learners.mlp_grad`), straight into a flat gradient block;
* gradient clipping is one norm and one scale of that block, Adam one fused call over the
  parameter block (:mod:`rlsuite.learners.flat`);
* each epoch gathers its shuffled rows once (one ``index_select`` per field), and the minibatches
  are slices of that; the features of the observations are computed once per update;
* the five logged statistics are stacked into one tensor and summed with one op per minibatch.

The minibatch order comes from the same ``randperm`` draws as on the eager path. Results agree with
the eager update to float rounding (``tests/test_ppo_fast.py``: one update on a fixed batch, in
float64, to 1e-6 relative, for categorical and Gaussian heads).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from rlsuite.core.compiled import signature
from rlsuite.learners import heads
from rlsuite.learners.flat import FlatAdam, FlatParams
from rlsuite.learners.mlp_grad import (
    layer_tensors,
    mlp_backward,
    mlp_forward,
    tanh_mlp_apply,
    tanh_mlp_gradients,
    tanh_mlp_layers,
)

if TYPE_CHECKING:
    from rlsuite.learners.ppo import ActorCritic, PPOConfig

STATS = ("policy_gradient_loss", "value_loss", "entropy_loss", "approx_kl", "clip_fraction")
"""The statistics of one minibatch, in the order of :func:`ppo_output_grads`'s stacked tensor."""


def ppo_output_grads(
    out: torch.Tensor,
    value: torch.Tensor,
    log_std: torch.Tensor | None,
    action: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantage: torch.Tensor,
    returns: torch.Tensor,
    config: PPOConfig,
    clip: float | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """The PPO loss's gradient at the networks' outputs, and the minibatch statistics.

    Args:
        out: ``[N, K]`` the actor's output: logits (``log_std`` None) or Gaussian means.
        value: ``[N]`` the critic's values.
        log_std: ``[K]`` the Gaussian log-std parameter, or None for a categorical head.
        action, old_log_prob, advantage, returns: the minibatch's rollout fields.
        config: ``norm_adv``, ``clip_coef``, ``vf_coef``, ``ent_coef`` as in ``ppo_loss``.
        clip: the clipping coefficient in use (None: ``config.clip_coef``; ``anneal_clip``), a
            0-dim tensor in a compiled kernel (so a changed coefficient is an input, not a
            recompilation).

    Returns:
        ``(d loss / d out [N, K], d loss / d value [N, 1], d loss / d log_std [K] or None,
        stats [5])`` with ``stats`` the values of :data:`STATS` (those ``ppo_loss`` logs).

    The derivatives follow torch's conventions where the loss is not differentiable: the
    elementwise max passes the gradient to the unclipped term where the two terms tie (then the
    ratio is inside the clip range, where both have the same gradient), and the clamp passes it
    on its closed range.
    """
    n = out.shape[0]
    clip = config.clip_coef if clip is None else clip
    if log_std is None:
        # log-softmax as out - logsumexp: ~25% cheaper than F.log_softmax over 2 logits
        log_p = out - torch.logsumexp(out, dim=-1, keepdim=True)
        p = log_p.exp()
        index = action.long().unsqueeze(-1)
        log_prob = log_p.gather(-1, index).squeeze(-1)
        entropy = -torch.where(p > 0, p * log_p, 0.0).sum(-1)
    else:
        inv_std = torch.exp(-log_std)
        z = (action - out) * inv_std
        log_prob = (-0.5 * z * z - log_std - heads.LOG_SQRT_2PI).sum(-1)
        entropy = heads.normal_entropy(log_std.expand_as(out))
    log_ratio = log_prob - old_log_prob
    ratio = log_ratio.exp()
    adv = advantage
    if config.norm_adv:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    neg_adv = -adv
    unclipped = neg_adv * ratio
    clipped = neg_adv * ratio.clamp(1 - clip, 1 + clip)
    residual = value - returns
    ratio_m1 = ratio - 1
    stats = torch.stack([
        torch.max(unclipped, clipped).mean(),
        0.5 * residual.pow(2).mean(),
        -entropy.mean(),
        (ratio_m1 - log_ratio).mean(),  # Schulman's k3 estimator of the KL
        (ratio_m1.abs() > clip).to(out.dtype).mean(),
    ])
    # d pg_loss / d log_prob: -A * ratio / N where the unclipped term is the max, else 0.
    g_log_prob = torch.where(unclipped >= clipped, neg_adv, 0.0)
    g_log_prob = g_log_prob.mul_(ratio).div_(n)
    g_log_std = None
    if log_std is None:
        # d log p_a / d logits = onehot(a) - p; d H / d logits = -p (log p + H).
        g_out = p * (-g_log_prob).unsqueeze(-1)
        g_out.scatter_add_(-1, index, g_log_prob.unsqueeze(-1))
        if config.ent_coef:
            g_out += (config.ent_coef / n) * p * (log_p + entropy.unsqueeze(-1))
    else:
        # d log N / d mean = z / std; d log N / d log_std = z^2 - 1; d H / d log_std = 1 per row.
        g_col = g_log_prob.unsqueeze(-1)
        g_out = (g_col * z) * inv_std
        g_log_std = (g_col * (z * z - 1)).sum(0) - config.ent_coef
    g_value = residual.mul(config.vf_coef / n).unsqueeze(-1)
    return g_out, g_value, g_log_std, stats


COMPILE_MIN_ROWS = 256
"""Minibatches of at least this many rows take their gradient from one compiled kernel
(:class:`CompiledGradient`); smaller ones run the eager ops, where a kernel's first compilation
(~10-25 s on this project's CPU) would cost more than it saves."""


class CompiledGradient:
    """The whole minibatch gradient (both MLPs' forward passes, :func:`ppo_output_grads`, both
    backward passes) as one TorchInductor kernel (:class:`~rlsuite.engine.fastpath.FastKernel`).

    In eager ops that gradient is ~40 ops over ``[N, 64]`` tensors, each a pass over memory; the
    kernel keeps the matmuls as library calls and fuses everything between them (tanh computed
    from ``exp``, as in the fused rollout, ``rlsuite.engine.fused_loop.KERNEL_OPTIONS``). Measured
    on PPO's default CartPole setting (2048-row minibatches, 64x64 actor and critic, one thread,
    CPU time): 2.2 ms per minibatch gradient against ~3.8 ms for the eager ops. The result equals
    the eager gradient to float rounding (``tests/test_ppo_fast.py``). The clipping coefficient is
    an input, so an annealed coefficient does not recompile; the other coefficients are constants
    of the traced program (a changed one is another kernel, compiled or loaded once).
    """

    def __init__(self, n_actor: int, n_critic: int, gaussian: bool, config: PPOConfig) -> None:
        from rlsuite.engine.fastpath import FastKernel
        from rlsuite.engine.fused_loop import KERNEL_OPTIONS

        self.n_actor, self.n_critic, self.gaussian = n_actor, n_critic, gaussian
        self.config = config
        self.kernel = FastKernel("ppo minibatch gradient", self._gradient, KERNEL_OPTIONS)

    def _gradient(self, *flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(*actor W, *actor b, *critic W, *critic b, [log_std], x, action, old log-prob,
        advantage, return, clip) -> (*actor dW, *actor db, *critic dW, *critic db, [d log_std],
        stats)``."""
        na, nc = self.n_actor, self.n_critic
        aw, ab = list(flat[:na]), list(flat[na : 2 * na])
        cw, cb = list(flat[2 * na : 2 * na + nc]), list(flat[2 * na + nc : 2 * na + 2 * nc])
        rest = flat[2 * na + 2 * nc :]
        log_std = rest[0] if self.gaussian else None
        x, action, old_log_prob, advantage, returns, clip = rest[1:] if self.gaussian else rest
        actor_acts = tanh_mlp_apply(aw, ab, x)
        critic_acts = tanh_mlp_apply(cw, cb, x)
        g_out, g_value, g_log_std, stats = ppo_output_grads(
            actor_acts[-1], critic_acts[-1].squeeze(-1), log_std, action, old_log_prob,
            advantage, returns, self.config, clip)
        a_dw, a_db = tanh_mlp_gradients(aw, actor_acts, g_out)
        c_dw, c_db = tanh_mlp_gradients(cw, critic_acts, g_value)
        return (*a_dw, *a_db, *c_dw, *c_db, *([g_log_std] if self.gaussian else []), stats)

    def __call__(self, args: list[torch.Tensor]) -> Sequence[torch.Tensor]:
        """The gradients and statistics for one minibatch's argument list (in
        :meth:`_gradient`'s order)."""
        return self.kernel.call(args, (None, signature(args)))


class FastPPOUpdate:
    """The clipped-surrogate epochs of PPO on the fast path, for one agent's model and Adam.

    Rebinds the model's parameters into a flat block on construction (:class:`FlatParams`; the
    ``state_dict`` keeps its keys and shapes) and binds the Adam moments likewise
    (:class:`FlatAdam`). Both are bound again when something replaced them (a ``.to``, an
    optimizer ``load_state_dict``).
    """

    def __init__(self, model: ActorCritic, optimizer: torch.optim.Optimizer, config: PPOConfig) -> None:
        self.model, self.optimizer, self.config = model, optimizer, config
        self.actor = tanh_mlp_layers(model.actor)
        self.critic = tanh_mlp_layers(model.critic)
        self.compiled = CompiledGradient(len(self.actor), len(self.critic), not model.discrete,
                                         config)
        self._bind()

    def _bind(self) -> None:
        self.flat = FlatParams(self.model.parameters())
        self.adam = FlatAdam(self.optimizer, self.flat)
        grads = dict(zip([id(p) for p in self.flat.params], self.flat.grads, strict=True))
        self.actor_grads = ([grads[id(m.weight)] for m in self.actor],
                            [grads[id(m.bias)] for m in self.actor])
        self.critic_grads = ([grads[id(m.weight)] for m in self.critic],
                             [grads[id(m.bias)] for m in self.critic])
        self.log_std_grad = None if self.model.discrete else grads[id(self.model.log_std)]
        # Detached views of the block, fetched once per binding (they follow Adam's in-place steps).
        self.actor_tensors = layer_tensors(self.actor)
        self.critic_tensors = layer_tensors(self.critic)
        self.log_std = None if self.model.discrete else self.model.log_std.detach()
        # The compiled gradient's inputs and outputs, in order: the parameters and where each
        # gradient is written.
        self.compiled_params = [*self.actor_tensors[0], *self.actor_tensors[1],
                                *self.critic_tensors[0], *self.critic_tensors[1],
                                *([] if self.log_std is None else [self.log_std])]
        self.grad_targets = [*self.actor_grads[0], *self.actor_grads[1], *self.critic_grads[0],
                             *self.critic_grads[1],
                             *([] if self.log_std_grad is None else [self.log_std_grad])]

    @torch.no_grad()
    def minibatch_step(self, x: torch.Tensor, batch: dict[str, torch.Tensor],
                       clip: float | None = None) -> torch.Tensor:
        """Gradient, clipping and Adam step on one minibatch (``x``: its network features;
        ``clip``: the surrogate's clipping coefficient, None for ``clip_coef``); returns its
        :data:`STATS` as one tensor."""
        return self._minibatch_step(x, batch, clip)

    def _minibatch_step(self, x: torch.Tensor, batch: dict[str, torch.Tensor],
                        clip: float | None) -> torch.Tensor:
        """:meth:`minibatch_step` for a caller already under ``torch.no_grad`` (:meth:`update`
        enters it once for all its minibatches: ~14 us a step less than a context per step)."""
        if x.shape[0] >= COMPILE_MIN_ROWS:
            stats = self._compiled_gradient(x, batch, clip)
        else:
            stats = self._eager_gradient(x, batch, clip)
        self.flat.clip_grad_norm_(self.config.max_grad_norm)
        # update() checked the binding once for all its steps (nothing rebinds in between)
        self.adam.step(check=False)
        return stats

    def _compiled_gradient(self, x: torch.Tensor, batch: dict[str, torch.Tensor],
                           clip: float | None) -> torch.Tensor:
        """Write the minibatch gradient into the flat block through :class:`CompiledGradient`."""
        coef = torch.full((), self.config.clip_coef if clip is None else clip, dtype=x.dtype,
                          device=x.device)
        *grads, stats = self.compiled([*self.compiled_params, x, batch["action"],
                                       batch["log_prob"], batch["advantage"], batch["return"],
                                       coef])
        torch._foreach_copy_(self.grad_targets, grads)
        return stats

    def _eager_gradient(self, x: torch.Tensor, batch: dict[str, torch.Tensor],
                        clip: float | None) -> torch.Tensor:
        """Write the minibatch gradient into the flat block with eager ops."""
        actor_acts = mlp_forward(self.actor, x, tensors=self.actor_tensors)
        critic_acts = mlp_forward(self.critic, x, tensors=self.critic_tensors)
        g_out, g_value, g_log_std, stats = ppo_output_grads(
            actor_acts[-1], critic_acts[-1].squeeze(-1), self.log_std, batch["action"],
            batch["log_prob"], batch["advantage"], batch["return"], self.config, clip)
        mlp_backward(self.actor, actor_acts, g_out, *self.actor_grads, tensors=self.actor_tensors)
        mlp_backward(self.critic, critic_acts, g_value, *self.critic_grads,
                     tensors=self.critic_tensors)
        if g_log_std is not None:
            self.log_std_grad.copy_(g_log_std)
        return stats

    @torch.no_grad()
    def update(self, flat: dict[str, torch.Tensor], generator: torch.Generator,
               clip: float | None = None) -> dict[str, Any]:
        """The update epochs over one rollout's flattened fields (``obs``, ``action``,
        ``log_prob``, ``advantage``, ``return``) with clipping coefficient ``clip`` (None:
        ``clip_coef``); returns the mean statistics (tensors)."""
        if not self.flat.bound():
            self._bind()
        if not self.adam.bound():  # an optimizer load_state_dict replaced the moments
            self.adam.bind()
        cfg = self.config
        n = flat["return"].shape[0]
        size = cfg.minibatch_rows(n)
        fields = {k: v for k, v in flat.items() if k != "obs"}
        features = self.model.features(flat["obs"]).to(self.flat.data.dtype)
        totals, count = None, 0
        for _ in range(cfg.update_epochs):
            order = torch.randperm(n, generator=generator, device=features.device)
            x_epoch = features.index_select(0, order)
            epoch = {k: v.index_select(0, order) for k, v in fields.items()}
            for start in range(0, n, size):
                if size == n:  # one minibatch: the whole epoch, no slices to make
                    stats = self._minibatch_step(x_epoch, epoch, clip)
                else:
                    stats = self._minibatch_step(
                        x_epoch[start : start + size],
                        {k: v[start : start + size] for k, v in epoch.items()}, clip)
                totals = stats.clone() if totals is None else totals.add_(stats)
                count += 1
            if cfg.target_kl is not None and float(stats[3]) > cfg.target_kl:
                break
        means = totals / count
        return {name: means[i] for i, name in enumerate(STATS)}
