"""SAC's gradient step on the fast path: closed-form gradients, compiled, into flat blocks.

The same step as the eager :func:`rlsuite.learners.sac.sac_update` (critics, then the actor on the
*updated* critics, then the temperature, then the Polyak targets; Algorithm 1 of the paper), with
the autograd graphs replaced by written-out passes through the ReLU MLPs
(:mod:`rlsuite.learners.mlp_grad`), each gradient one TorchInductor kernel
(:class:`~rlsuite.engine.fastpath.FastKernel`):

* the critic kernel: the next-state action sample and its log-probability, the target critics'
  soft target (:func:`~rlsuite.learners.sac.soft_q_target`), both critics' forward passes and the
  gradient of :func:`~rlsuite.learners.sac.critic_loss` (optionally per-sample weighted) as one
  flat gradient of the critic block;
* the actor kernel, on the critic weights *after* their Adam step: the reparameterised squashed
  Gaussian sample, the frozen critics' gradient with respect to the action, the gradient of
  :func:`~rlsuite.learners.sac.actor_loss` with respect to the actor's block, and the gradient
  of :func:`~rlsuite.learners.sac.temperature_loss` with respect to ``log_alpha``.

Each Adam step is one fused call over the part's block (:class:`~rlsuite.learners.flat.FlatOptimizer`,
as on the eager path) and the Polyak update two ops over the critic block and a target block.
The standard normals of both samples are drawn outside the kernels, from the same generator, in
the same order and shapes as the eager step draws them, so the random stream is unchanged.
``tests/test_sac_fast.py`` checks gradients, parameters, statistics and the generator's state
against the eager step.

VGDF's update (:func:`rlsuite.agents.vgdf.update.vgdf_update`) is built from the same parts:
:class:`FastSACStep`'s :meth:`~FastSACStep.critic_step`, :meth:`~FastSACStep.actor_step`,
:meth:`~FastSACStep.temperature_step` and :meth:`~FastSACStep.polyak`, with each gradient's norm
clipped inside its kernel (:func:`clip_by_norm`, torch's ``clip_grad_norm_`` formula), and its
optimistic exploration actor stepped by a variant of the actor kernel on ``max(Q1, Q2)`` without
the temperature (:func:`optimistic_actor_gradient`, :meth:`~FastSACStep.optimistic_actor_step`);
``tests/test_vgdf_fast.py`` checks it against VGDF's eager step.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable

import torch
from torch import nn

from rlsuite.core.compiled import signature
from rlsuite.engine.fastpath import FastKernel
from rlsuite.engine.fused_loop import KERNEL_OPTIONS
from rlsuite.learners.buffers import Transitions
from rlsuite.learners.flat import FlatOptimizer, FlatParams
from rlsuite.learners.heads import squashed_log_prob
from rlsuite.learners.mlp_grad import mlp_apply, mlp_gradients, mlp_input_gradient, mlp_layers
from rlsuite.learners.nets import polyak_update
from rlsuite.learners.sac import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    SACNetworks,
    SACOptimizers,
    SquashedGaussianActor,
    TwinQ,
    soft_q_target,
)

Kernel = Callable[..., tuple[torch.Tensor, ...]]
"""A kernel's pure function of tensors."""
Layout = tuple[tuple[int, tuple[int, int], int], ...]
"""Where an MLP's layers lie in a flat block: ``(weight offset, (out, in), bias offset)`` each."""


def block_layout(params: list[nn.Parameter], layers: list[nn.Linear]) -> Layout:
    """The :data:`Layout` of ``layers`` inside the block of ``params`` (a
    :class:`~rlsuite.learners.flat.FlatParams` order)."""
    offsets, at = {}, 0
    for p in params:
        offsets[id(p)] = at
        at += p.numel()
    return tuple((offsets[id(m.weight)], (m.out_features, m.in_features), offsets[id(m.bias)])
                 for m in layers)


def unpack(block: torch.Tensor, layout: Layout) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The weights and biases of the MLP at ``layout`` in ``block``, as views."""
    weights = [block[w : w + r * c].view(r, c) for w, (r, c), _ in layout]
    biases = [block[b : b + r] for _, (r, _c), b in layout]
    return weights, biases


def squashed_sample(out: torch.Tensor, noise: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor
                    ) -> tuple[torch.Tensor, ...]:
    """The actor's reparameterised draw from its output ``out [N, 2A]`` (mean and raw log-std
    heads) as :meth:`~rlsuite.learners.sac.SquashedGaussianActor.sample` computes it:
    ``(action, log_prob, mean, raw log-std, log_std, u, tanh(u))``."""
    mean, raw = out.chunk(2, dim=-1)
    log_std = raw.clamp(LOG_STD_MIN, LOG_STD_MAX)
    u = mean + log_std.exp() * noise
    squashed = torch.tanh(u)
    return bias + scale * squashed, squashed_log_prob(u, mean, log_std), mean, raw, log_std, u, squashed


def clip_by_norm(grad: torch.Tensor, max_norm: torch.Tensor) -> torch.Tensor:
    """``grad`` scaled as ``torch.nn.utils.clip_grad_norm_`` scales it (``min(max_norm / (norm +
    1e-6), 1)``), the 2-norm taken over the whole block at once (torch takes the norm of the
    per-tensor norms: the same value up to rounding)."""
    norm = torch.linalg.vector_norm(grad)
    return grad * torch.clamp(max_norm / (norm + 1e-6), max=1.0)


def critic_gradient(actor: Layout, q1: Layout, q2: Layout, weighted: bool,
                    clipped: bool = False) -> Kernel:
    """The critic kernel's function: ``(actor block, critic block, target block, scale, bias,
    alpha, gamma, obs, action, reward, terminated, next obs, noise[, weight][, max_norm]) ->
    (critic block's gradient, loss, q_mean)``, the gradient of
    :func:`~rlsuite.learners.sac.critic_loss`; ``clipped``: scaled by :func:`clip_by_norm`
    (VGDF clips each gradient's norm)."""

    def gradient(actor_block: torch.Tensor, critic_block: torch.Tensor, target_block: torch.Tensor,
                 scale: torch.Tensor, bias: torch.Tensor, alpha: torch.Tensor, gamma: torch.Tensor,
                 obs: torch.Tensor, action: torch.Tensor, reward: torch.Tensor,
                 terminated: torch.Tensor, next_obs: torch.Tensor, noise: torch.Tensor,
                 *extra: torch.Tensor) -> tuple[torch.Tensor, ...]:
        weight = extra[:1] if weighted else ()
        out = mlp_apply(*unpack(actor_block, actor), next_obs, "relu")[-1]
        next_action, next_log_prob = squashed_sample(out, noise, scale, bias)[:2]
        x_next = torch.cat([next_obs, next_action], -1)
        next_q1 = mlp_apply(*unpack(target_block, q1), x_next, "relu")[-1].squeeze(-1)
        next_q2 = mlp_apply(*unpack(target_block, q2), x_next, "relu")[-1].squeeze(-1)
        target = soft_q_target(reward, terminated, next_q1, next_q2, next_log_prob, alpha, gamma)
        x = torch.cat([obs, action], -1)
        w1, b1 = unpack(critic_block, q1)
        w2, b2 = unpack(critic_block, q2)
        acts1, acts2 = mlp_apply(w1, b1, x, "relu"), mlp_apply(w2, b2, x, "relu")
        d1 = acts1[-1].squeeze(-1) - target
        d2 = acts2[-1].squeeze(-1) - target
        err = d1.pow(2) + d2.pow(2)
        n = x.shape[0]
        if weighted:
            err = weight[0] * err
            d1, d2 = weight[0] * d1, weight[0] * d2
        loss = 0.5 * err.mean()
        # d loss / d Q_i = 0.5 * w * 2 (Q_i - y) / N
        grads = []
        for w, acts, d in ((w1, acts1, d1), (w2, acts2, d2)):
            dw, db = mlp_gradients(w, acts, (d / n).unsqueeze(-1), "relu")
            for gw, gb in zip(dw, db, strict=True):
                grads += [gw.reshape(-1), gb]
        grad = torch.cat(grads)
        if clipped:
            grad = clip_by_norm(grad, extra[-1])
        return grad, loss, acts1[-1].mean()

    return gradient


def _policy_gradient(aw: list[torch.Tensor], ab: list[torch.Tensor], critic_block: torch.Tensor,
                     q1: Layout, q2: Layout, obs_dim: int, scale: torch.Tensor, bias: torch.Tensor,
                     alpha: torch.Tensor, obs: torch.Tensor, noise: torch.Tensor,
                     optimistic: bool) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """``(the pieces of the actor block's gradient, loss, log_prob)`` of ``E[alpha log pi(a|s)
    - Q(s, a)]`` through the frozen critics, ``Q = min(Q1, Q2)``
    (:func:`~rlsuite.learners.sac.actor_loss`) or, when ``optimistic``, ``max(Q1, Q2)`` (VGDF's
    exploration actor, ``optimistic_actor_loss``)."""
    actor_acts = mlp_apply(aw, ab, obs, "relu")
    action, log_prob, mean, raw, log_std, u, squashed = squashed_sample(
        actor_acts[-1], noise, scale, bias)
    x = torch.cat([obs, action], -1)
    w1, b1 = unpack(critic_block, q1)
    w2, b2 = unpack(critic_block, q2)
    acts1, acts2 = mlp_apply(w1, b1, x, "relu"), mlp_apply(w2, b2, x, "relu")
    v1, v2 = acts1[-1].squeeze(-1), acts2[-1].squeeze(-1)
    value = torch.max(v1, v2) if optimistic else torch.min(v1, v2)
    loss = (alpha * log_prob - value).mean()
    n = obs.shape[0]
    # d loss / d Q_i of -min(Q1, Q2) / N (-max): autograd's minimum (maximum) backward, a tie
    # splits it; the critic not chosen gets nothing.
    g = torch.full_like(v1, -1.0 / n)
    tie = v1 == v2
    g_q1 = torch.where(tie, g / 2, g).masked_fill(v1 < v2 if optimistic else v1 > v2, 0.0)
    g_q2 = torch.where(tie, g / 2, g).masked_fill(v1 > v2 if optimistic else v1 < v2, 0.0)
    g_x = (mlp_input_gradient(w1, acts1, g_q1.unsqueeze(-1), "relu")
           + mlp_input_gradient(w2, acts2, g_q2.unsqueeze(-1), "relu"))
    g_action = g_x[:, obs_dim:]
    # d log_prob: log N(u; mean, std) - sum log(1 - tanh(u)^2), z = (u - mean) / std:
    # d/dz = -z, d/du of the log-det term = 2 tanh(u), d/dlog_std directly = -1.
    g_lp = alpha / n
    inv_std = torch.exp(-log_std)
    z = (u - mean) * inv_std
    g_u = (torch.ops.aten.tanh_backward(g_action * scale, squashed)
           + g_lp * (2.0 * squashed - z * inv_std))
    g_mean = g_u + g_lp * z * inv_std
    g_log_std = g_u * (log_std.exp() * noise) + g_lp * (z * z - 1.0)
    g_raw = torch.where((raw >= LOG_STD_MIN) & (raw <= LOG_STD_MAX), g_log_std, 0.0)
    dw, db = mlp_gradients(aw, actor_acts, torch.cat([g_mean, g_raw], -1), "relu")
    grads = []
    for gw, gb in zip(dw, db, strict=True):
        grads += [gw.reshape(-1), gb]
    # The pieces, not their concatenation: SAC's kernel concatenates after its temperature terms,
    # the order of its graph before this function was shared (the same compiled code).
    return grads, loss, log_prob


def actor_gradient(actor: Layout, q1: Layout, q2: Layout, obs_dim: int,
                   clipped: bool = False) -> Kernel:
    """The actor kernel's function: ``(actor block, critic block, scale, bias, alpha, log_alpha,
    target_entropy, obs, noise[, max_norm]) -> (actor block's gradient, actor loss, entropy,
    d temperature loss / d log_alpha [1], temperature loss)``: the gradients of
    :func:`~rlsuite.learners.sac.actor_loss` (through the frozen critics; ``clipped``: scaled by
    :func:`clip_by_norm`) and of :func:`~rlsuite.learners.sac.temperature_loss` (never clipped)."""

    def gradient(actor_block: torch.Tensor, critic_block: torch.Tensor, scale: torch.Tensor,
                 bias: torch.Tensor, alpha: torch.Tensor, log_alpha: torch.Tensor,
                 target_entropy: torch.Tensor, obs: torch.Tensor,
                 noise: torch.Tensor, *max_norm: torch.Tensor) -> tuple[torch.Tensor, ...]:
        grad, loss, log_prob = _policy_gradient(*unpack(actor_block, actor), critic_block, q1, q2,
                                                obs_dim, scale, bias, alpha, obs, noise, False)
        shifted = log_prob + target_entropy
        temperature_loss = -(log_alpha * shifted).mean()
        grad = torch.cat(grad)
        if clipped:
            grad = clip_by_norm(grad, max_norm[0])
        return (grad, loss, -log_prob.mean(), -shifted.mean().reshape(1), temperature_loss)

    return gradient


def optimistic_actor_gradient(actor: Layout, q1: Layout, q2: Layout, obs_dim: int,
                              clipped: bool = False) -> Kernel:
    """The optimistic actor kernel's function (VGDF's exploration actor): ``(actor block, critic
    block, scale, bias, alpha, obs, noise[, max_norm]) -> (actor block's gradient, loss)``, the
    gradient of ``E[alpha log pi_E(a|s) - max(Q1, Q2)(s, a)]``
    (:func:`rlsuite.agents.vgdf.update.optimistic_actor_loss`) through the frozen critics; no
    temperature (the exploration actor has none of its own)."""

    def gradient(actor_block: torch.Tensor, critic_block: torch.Tensor, scale: torch.Tensor,
                 bias: torch.Tensor, alpha: torch.Tensor, obs: torch.Tensor, noise: torch.Tensor,
                 *max_norm: torch.Tensor) -> tuple[torch.Tensor, ...]:
        grad, loss, _ = _policy_gradient(*unpack(actor_block, actor), critic_block, q1, q2,
                                         obs_dim, scale, bias, alpha, obs, noise, True)
        grad = torch.cat(grad)
        return (clip_by_norm(grad, max_norm[0]) if clipped else grad), loss

    return gradient


_OPTIONS = {"cpp_wrapper": True}
"""Besides :data:`~rlsuite.engine.fused_loop.KERNEL_OPTIONS`: the call's buffer allocations and
~40 library and fused-loop calls in C++ rather than in inductor's Python wrapper (measured 1.34 ->
0.96 ms CPU per step of the Pendulum preset, 1.08 -> 0.80 ms of RLPD's)."""
_KERNELS: dict[tuple, FastKernel] = {}
"""The kernels by what their traced functions close over (layouts, weighting), shared by every
:class:`FastSACStep` with that structure (IWOCS's experts, a second agent in the process)."""


def _kernel(key: tuple, name: str, make: Callable[[], Kernel]) -> FastKernel:
    """The kernel of ``key`` (built from ``make()`` on first use)."""
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = FastKernel(name, make(), {**KERNEL_OPTIONS, **_OPTIONS})
    return kernel


def _relu_layers(net: nn.Module) -> list[nn.Linear] | None:
    try:
        return mlp_layers(net, "relu")
    except ValueError:
        return None


def _block_of(flat: FlatParams, layers: list[list[nn.Linear]]) -> bool:
    """Whether ``flat`` holds exactly ``layers``' weights and biases, layer by layer in order."""
    expected = [p for net in layers for m in net for p in (m.weight, m.bias)]
    return [id(p) for p in flat.params] == [id(p) for p in expected]


def _rebind(part: FlatOptimizer) -> None:
    """Bind ``part``'s blocks again where its parameters were replaced (a ``.to()``): its
    ``zero_grad`` does, and points every ``.grad`` at the gradient block's views."""
    if not part.flat.bound():
        part.zero_grad()


def _adam_step(part: FlatOptimizer, grad: torch.Tensor) -> None:
    """``grad`` into ``part``'s gradient block (so the ``.grad`` views hold it, as after the eager
    step), then its fused Adam step: ``FlatOptimizer.step`` without its check that autograd left
    the ``.grad`` views in place (nothing here replaces them)."""
    part.flat.grad.copy_(grad)
    part.adam.step()


class FastSACStep:
    """:func:`~rlsuite.learners.sac.sac_update` for one :class:`SACNetworks` and its
    :class:`SACOptimizers`, on the fast path (see the module docstring). Build it with
    :func:`fast_step`, which says whether the networks qualify."""

    def __init__(self, nets: SACNetworks, opt: SACOptimizers, actor: list[nn.Linear],
                 critics: tuple[list[nn.Linear], list[nn.Linear]]) -> None:
        # A weak reference: the step is the value of _STEPS's entry keyed by these networks,
        # which a strong one would keep alive for the life of the process.
        self._nets, self.opt = weakref.ref(nets), opt
        self.actor_layers, self.critic_layers = actor, critics
        self.obs_dim = actor[0].in_features
        self.act_dim = nets.actor.act_dim
        self.target: FlatParams | None = None
        self._layouts: tuple[Layout, Layout, Layout] | None = None
        self._flats: tuple[FlatParams, FlatParams] | None = None

    def nets(self) -> SACNetworks:
        """The networks this step updates."""
        nets = self._nets()
        assert nets is not None, "FastSACStep: its networks were freed"
        return nets

    def bind(self) -> tuple[Layout, Layout, Layout]:
        """Bind the optimizers' blocks (their ``zero_grad``) and the target critics' block; the
        layouts of the actor and of both critics in their blocks. Each step calls it first (a
        ``.to()`` may have replaced the parameters since the last one)."""
        opt = self.opt
        for part in (opt.actor, opt.critic):
            _rebind(part)
        flats = (opt.actor.flat, opt.critic.flat)
        if self.target is None or not self.target.bound():
            # The target critics as one block too: the Polyak step is two ops over blocks.
            self.target = FlatParams(self.nets().critic_target.parameters())
        if self._flats is None or any(a is not b for a, b in zip(flats, self._flats, strict=True)):
            q1, q2 = self.critic_layers
            self._layouts = (block_layout(flats[0].params, self.actor_layers),
                             block_layout(flats[1].params, q1), block_layout(flats[1].params, q2))
            self._flats = flats
        assert self._layouts is not None
        return self._layouts

    def draw(self, rows: int, generator: torch.Generator) -> torch.Tensor:
        """One sample's standard normals ``[rows, |A|]``, drawn as the eager actor's ``sample``
        draws them (the random stream stays the eager step's)."""
        return torch.randn((rows, self.act_dim), generator=generator,
                           device=self.opt.critic.flat.data.device)

    def critic_step(self, batch: Transitions, gamma: float, noise: torch.Tensor,
                    alpha: torch.Tensor, weight: torch.Tensor | None = None,
                    max_norm: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The critics' gradient (``weight`` per sample; norm clipped to ``max_norm`` when given)
        and their Adam step, ``noise`` the next-state sample's normals; ``(loss, q_mean)``.
        After :meth:`bind`."""
        actor_layout, q1, q2 = self._layouts  # type: ignore[misc]
        opt = self.opt
        critic_block = opt.critic.flat.data
        assert self.target is not None
        n = batch.obs.shape[0]
        gamma_t = torch.full((), gamma, dtype=critic_block.dtype, device=critic_block.device)
        weighted, clipped = weight is not None, max_norm is not None
        scale, bias = self.nets().actor.scale, self.nets().actor.bias
        critic = _kernel(("critic", actor_layout, q1, q2, weighted, clipped), "sac critic gradient",
                         lambda: critic_gradient(actor_layout, q1, q2, weighted, clipped))
        args = [opt.actor.flat.data, critic_block, self.target.data, scale, bias, alpha, gamma_t,
                batch.obs.reshape(n, -1).float(), batch.action.reshape(n, -1), batch.reward,
                batch.terminated, batch.next_obs.reshape(n, -1).float(), noise,
                *([weight] if weighted else []), *([max_norm] if clipped else [])]
        grad, loss_q, q_mean = critic.call(args, (None, signature(args)))
        _adam_step(opt.critic, grad)
        return loss_q, q_mean

    def actor_step(self, obs: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor,
                   max_norm: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """The actor's gradient on the current critics (norm clipped to ``max_norm`` when given)
        and its Adam step, ``obs [N, obs_dim]`` float, ``noise`` the sample's normals;
        ``(loss, entropy, d temperature loss / d log_alpha, temperature loss)``. After
        :meth:`bind`."""
        actor_layout, q1, q2 = self._layouts  # type: ignore[misc]
        nets, opt = self.nets(), self.opt
        critic_block = opt.critic.flat.data
        clipped = max_norm is not None
        actor = _kernel(("actor", actor_layout, q1, q2, self.obs_dim, clipped), "sac actor gradient",
                        lambda: actor_gradient(actor_layout, q1, q2, self.obs_dim, clipped))
        entropy_target = torch.full((), nets.target_entropy, dtype=critic_block.dtype,
                                    device=critic_block.device)
        args = [opt.actor.flat.data, critic_block, nets.actor.scale, nets.actor.bias, alpha,
                nets.log_alpha.detach(), entropy_target, obs, noise,
                *([max_norm] if clipped else [])]
        grad, loss_pi, entropy, grad_alpha, loss_alpha = actor.call(args, (None, signature(args)))
        _adam_step(opt.actor, grad)
        return loss_pi, entropy, grad_alpha, loss_alpha

    def optimistic_actor_step(self, explore: ExploreActor, obs: torch.Tensor, noise: torch.Tensor,
                              alpha: torch.Tensor, max_norm: torch.Tensor | None = None
                              ) -> torch.Tensor:
        """VGDF's optimistic exploration actor: the gradient of ``E[alpha log pi_E - max(Q1,
        Q2)]`` on the current critics (norm clipped to ``max_norm`` when given) and its Adam step;
        the loss. After :meth:`bind`."""
        _actor_layout, q1, q2 = self._layouts  # type: ignore[misc]
        layout = explore.bind()
        clipped = max_norm is not None
        kernel = _kernel(("optimistic actor", layout, q1, q2, self.obs_dim, clipped),
                         "vgdf optimistic actor gradient",
                         lambda: optimistic_actor_gradient(layout, q1, q2, self.obs_dim, clipped))
        actor = explore.actor
        args = [explore.opt.flat.data, self.opt.critic.flat.data, actor.scale, actor.bias, alpha,
                obs, noise, *([max_norm] if clipped else [])]
        grad, loss = kernel.call(args, (None, signature(args)))
        _adam_step(explore.opt, grad)
        return loss

    def temperature_step(self, grad_alpha: torch.Tensor) -> None:
        """The temperature's Adam step from the actor kernel's ``d loss / d log_alpha`` (none
        when the temperature is fixed)."""
        if self.opt.alpha is not None:
            _rebind(self.opt.alpha)
            _adam_step(self.opt.alpha, grad_alpha)

    def polyak(self, tau: float) -> None:
        """The target critics' Polyak step (two ops over the blocks). After :meth:`bind`."""
        assert self.target is not None
        polyak_update([self.opt.critic.flat.data], [self.target.data], tau)

    @torch.no_grad()
    def __call__(self, batch: Transitions, gamma: float, tau: float, generator: torch.Generator,
                 weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One gradient step; returns :func:`~rlsuite.learners.sac.sac_update`'s statistics."""
        self.bind()
        n = batch.obs.shape[0]
        # The eager step's draws, in its order: the next-state sample's, then the actor's.
        noise_next = self.draw(n, generator)
        noise_actor = self.draw(n, generator)
        alpha = self.nets().log_alpha.detach().exp()
        loss_q, q_mean = self.critic_step(batch, gamma, noise_next, alpha, weight)
        loss_pi, entropy, grad_alpha, loss_alpha = self.actor_step(
            batch.obs.reshape(n, -1).float(), noise_actor, alpha)
        stats = {"critic_loss": loss_q, "q_mean": q_mean, "actor_loss": loss_pi,
                 "ent_coef": alpha, "entropy": entropy}
        if self.opt.alpha is not None:
            self.temperature_step(grad_alpha)
            stats["ent_coef_loss"] = loss_alpha
        self.polyak(tau)
        return stats


class ExploreActor:
    """A second :class:`~rlsuite.learners.sac.SquashedGaussianActor` (VGDF's optimistic exploration
    actor) stepped by its own flat Adam: its layers and the :data:`Layout` of them in the block.
    Build it with :func:`fast_explore_actor`, which says whether the actor qualifies."""

    def __init__(self, actor: SquashedGaussianActor, opt: FlatOptimizer,
                 layers: list[nn.Linear]) -> None:
        # A weak reference, as FastSACStep's to its networks (the cache's key is the actor).
        self._actor, self.opt, self.layers = weakref.ref(actor), opt, layers
        self._flat: FlatParams | None = None
        self._layout: Layout | None = None

    @property
    def actor(self) -> SquashedGaussianActor:
        """The exploration actor."""
        actor = self._actor()
        assert actor is not None, "ExploreActor: its actor was freed"
        return actor

    def bind(self) -> Layout:
        """Bind the optimizer's block (its ``zero_grad``); the actor's layout in it."""
        _rebind(self.opt)
        if self._flat is not self.opt.flat or self._layout is None:
            self._layout = block_layout(self.opt.flat.params, self.layers)
            self._flat = self.opt.flat
        return self._layout


_EXPLORERS: weakref.WeakKeyDictionary[nn.Module, tuple[object, ExploreActor | None]] = (
    weakref.WeakKeyDictionary())


def fast_explore_actor(actor: nn.Module, opt: object) -> ExploreActor | None:
    """The :class:`ExploreActor` of ``actor`` and ``opt`` (built once per pair), or None where the
    eager step must run: an actor other than a ReLU
    :class:`~rlsuite.learners.sac.SquashedGaussianActor`, an optimizer other than a
    :class:`~rlsuite.learners.flat.FlatOptimizer` holding exactly its layers in order, or
    parameters off the CPU or not float32."""
    cached = _EXPLORERS.get(actor)
    if cached is None or cached[0] is not opt:
        explore = None
        if type(actor) is SquashedGaussianActor and isinstance(opt, FlatOptimizer):
            layers = _relu_layers(actor.net)
            if layers is not None and _block_of(opt.flat, [layers]):
                explore = ExploreActor(actor, opt, layers)
        cached = _EXPLORERS[actor] = (opt, explore)
    explore = cached[1]
    if explore is None:
        return None
    param = explore.opt.flat.params[0]  # each call: a .to() may have moved or cast it since
    if param.device.type != "cpu" or param.dtype != torch.float32:
        return None
    return explore


_STEPS: weakref.WeakKeyDictionary[SACNetworks, tuple[SACOptimizers, FastSACStep | None]] = (
    weakref.WeakKeyDictionary())


COMPILE_MIN_ROWS = 64
"""Batches of at least this many transitions take the fast step; smaller ones (tests, smoke runs)
the eager one, where the kernels' first compilation (tens of seconds on a cold cache on this
project's CPU) would cost more than the ~2 ms a step saves over a short run. Every preset's batch
(128 or 256) is above it."""


def fast_step(nets: SACNetworks, opt: SACOptimizers, rows: int) -> FastSACStep | None:
    """The fast step of ``nets`` and ``opt`` (built once per pair) for a batch of ``rows``
    transitions, or None where the eager step must run: fewer than :data:`COMPILE_MIN_ROWS` rows,
    networks other than this module's layout (``Linear (ReLU Linear)*`` actor and critics of
    :class:`~rlsuite.learners.sac.SquashedGaussianActor` and :class:`~rlsuite.learners.sac.TwinQ`),
    optimizers other than flat Adam, parameters off the CPU or not float32."""
    if rows < COMPILE_MIN_ROWS:
        return None
    cached = _STEPS.get(nets)
    if cached is None or cached[0] is not opt:
        cached = _STEPS[nets] = (opt, _build(nets, opt))
    step = cached[1]
    if step is None:
        return None
    # Each call: a .to() may have moved or cast the networks since (the blocks rebind later).
    for param in (opt.actor.flat.params[0], opt.critic.flat.params[0]):
        if param.device.type != "cpu" or param.dtype != torch.float32:
            return None
    return step


def _build(nets: SACNetworks, opt: SACOptimizers) -> FastSACStep | None:
    """:class:`FastSACStep` for ``nets`` and ``opt`` where they qualify (see :func:`fast_step`)."""
    if type(nets.actor) is not SquashedGaussianActor or type(nets.critic) is not TwinQ:
        return None
    if type(nets.critic_target) is not TwinQ:
        return None
    if not all(isinstance(o, FlatOptimizer) for o in (opt.actor, opt.critic)):
        return None
    if opt.alpha is not None and not isinstance(opt.alpha, FlatOptimizer):
        return None
    actor = _relu_layers(nets.actor.net)
    critics = [_relu_layers(m) for m in (nets.critic.q1, nets.critic.q2,
                                         nets.critic_target.q1, nets.critic_target.q2)]
    if actor is None or any(c is None for c in critics):
        return None
    q1, q2, t1, t2 = critics
    assert q1 is not None and q2 is not None and t1 is not None and t2 is not None
    same = [(m.in_features, m.out_features) for m in q1 + q2] == [
        (m.in_features, m.out_features) for m in t1 + t2]
    if not (same and _block_of(opt.actor.flat, [actor]) and _block_of(opt.critic.flat, [q1, q2])):
        return None
    if opt.alpha is not None and [id(p) for p in opt.alpha.flat.params] != [id(nets.log_alpha)]:
        return None
    return FastSACStep(nets, opt, actor, (q1, q2))
