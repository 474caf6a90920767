"""One VGDF gradient step on SAC's losses (Algorithm 1, lines 8-14; code ``train_ac``).

Critics: the target batch's soft TD loss plus the source batch's, each source sample weighted by
the filter (:mod:`rlsuite.agents.vgdf.filter`; DARC instead corrects the source rewards). The
losses are SAC's (:func:`rlsuite.learners.sac.critic_loss`, :func:`~rlsuite.learners.sac.actor_loss`,
:func:`~rlsuite.learners.sac.temperature_loss`) on the concatenated batch with per-sample weights.
Every ``policy_delay`` steps the actor is updated on the source and target states together, and the
optimistic exploration actor on the same states with ``max(Q1, Q2)`` in place of the minimum
(paper section 5.1, "optimistic data collection"). Gradient norms are clipped (code: 100).

With ``SACConfig.fast_path`` (``agent.sac.fast_path``, the default), CPU networks of SAC's layout
and a batch of at least ``sac_fast.COMPILE_MIN_ROWS`` transitions (as SAC decides), the same step
runs on SAC's compiled kernels (:mod:`rlsuite.learners.sac_fast`: closed-form gradients with the
norm clipping inside the kernels, the optimistic actor's own kernel variant, flat Adam blocks):
the same maths and random draws in the same order, rounding may differ
(``tests/test_vgdf_fast.py``). Otherwise the eager autograd step below, the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from rlsuite.learners.buffers import Transitions
from rlsuite.learners.nets import polyak_update
from rlsuite.learners.sac import (
    SACNetworks,
    SACOptimizers,
    SquashedGaussianActor,
    actor_loss,
    critic_loss,
    temperature_loss,
)

if TYPE_CHECKING:
    from rlsuite.learners.sac_fast import ExploreActor, FastSACStep


def optimistic_actor_loss(actor: SquashedGaussianActor, nets: SACNetworks, obs: torch.Tensor,
                          alpha: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``E[alpha log pi_E(a|s) - max(Q1, Q2)(s, a)]``: the exploration policy climbs the upper
    of the two critics (paper eq. 8's optimism; code ``_compute_opt_policy_loss``)."""
    action, log_prob = actor.sample(obs, generator)
    q1, q2 = nets.critic(obs, action)
    return (alpha * log_prob - torch.max(q1, q2)).mean()


def clip_grad_norm_(params: list[nn.Parameter], max_norm: float) -> None:
    """``torch.nn.utils.clip_grad_norm_(params, max_norm)`` on CPU tensors of one dtype, op for
    op (per-tensor norms, the norm of their stack, ``min(max_norm / (norm + 1e-6), 1)`` times every
    gradient: the same bits), without its grouping and argument handling (~0.2 ms a call)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    torch._foreach_mul_(grads, torch.clamp(float(max_norm) / (total + 1e-6), max=1.0))


def _lean_clip_applies(params: list[nn.Parameter]) -> bool:
    """Whether :func:`clip_grad_norm_` is torch's own computation for ``params`` (one CPU dtype,
    where torch takes the same foreach path); otherwise torch's function is called."""
    first = params[0]
    return first.device.type == "cpu" and all(p.dtype == first.dtype and p.device == first.device
                                              for p in params)


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor, params: list[nn.Parameter], clip: float) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if _lean_clip_applies(params):
        clip_grad_norm_(params, clip)
    else:
        nn.utils.clip_grad_norm_(params, clip)
    opt.step()


@dataclass(frozen=True)
class UpdateParams:
    """The parameter lists one update walks (clipping, freezing the critics, the Polyak step),
    gathered once: ``module.parameters()`` costs ~10 us a call, several calls an update. Valid
    while no parameter object is replaced (``load_state_dict`` and ``.to`` keep them)."""

    critic: list[nn.Parameter]
    critic_target: list[nn.Parameter]
    actor: list[nn.Parameter]
    explore_actor: list[nn.Parameter]

    @staticmethod
    def of(nets: SACNetworks, explore_actor: SquashedGaussianActor | None = None) -> UpdateParams:
        """The lists of ``nets`` (and of ``explore_actor``; empty when None)."""
        return UpdateParams(list(nets.critic.parameters()), list(nets.critic_target.parameters()),
                            list(nets.actor.parameters()),
                            [] if explore_actor is None else list(explore_actor.parameters()))


def vgdf_update(
    nets: SACNetworks, opt: SACOptimizers, batch: Transitions, weight: torch.Tensor | None,
    gamma: float, tau: float, grad_clip: float, update_policy: bool, generator: torch.Generator,
    explore_actor: SquashedGaussianActor | None = None,
    explore_opt: torch.optim.Optimizer | None = None, params: UpdateParams | None = None,
) -> dict[str, torch.Tensor]:
    """Critic step on ``batch`` (``weight`` per sample, see :func:`rlsuite.learners.sac.critic_loss`),
    then, when ``update_policy``, the actor, the exploration actor and the temperature; then the
    target critics. ``params``: :meth:`UpdateParams.of` ``(nets, explore_actor)``, gathered here
    when None. Returns detached tensors. With ``nets.fast_path`` the step runs on the compiled
    kernels where they apply (:func:`_fast_update`; the exploration actor's optimizer must then be
    a :class:`~rlsuite.learners.flat.FlatOptimizer`, as the agent builds it on the fast path)."""
    if nets.fast_path:
        from rlsuite.learners import sac_fast  # the compiled step's modules only where it may run

        step = sac_fast.fast_step(nets, opt, len(batch))
        explore = None
        if step is not None and explore_actor is not None and explore_opt is not None:
            explore = sac_fast.fast_explore_actor(explore_actor, explore_opt)
            step = step if explore is not None else None
        if step is not None:
            return _fast_update(step, explore, batch, weight, gamma, tau, grad_clip, update_policy,
                                generator)
    if params is None:
        params = UpdateParams.of(nets, explore_actor)
    alpha = nets.log_alpha.detach().exp()
    loss_q, stats = critic_loss(nets, batch, alpha, gamma, generator, weight)
    _step(opt.critic, loss_q, params.critic, grad_clip)
    if update_policy:
        for p in params.critic:  # nets.critic.requires_grad_(False), without the module walk
            p.requires_grad_(False)
        loss_pi, log_prob = actor_loss(nets, batch.obs, alpha, generator)
        _step(opt.actor, loss_pi, params.actor, grad_clip)
        stats |= {"actor_loss": loss_pi.detach(), "entropy": -log_prob.detach().mean()}
        if explore_actor is not None and explore_opt is not None:
            loss_e = optimistic_actor_loss(explore_actor, nets, batch.obs, alpha, generator)
            _step(explore_opt, loss_e, params.explore_actor, grad_clip)
            stats["explore_actor_loss"] = loss_e.detach()
        for p in params.critic:
            p.requires_grad_(True)
        if opt.alpha is not None:
            loss_alpha = temperature_loss(nets.log_alpha, log_prob, nets.target_entropy)
            opt.alpha.zero_grad(set_to_none=True)
            loss_alpha.backward()
            opt.alpha.step()
    stats["ent_coef"] = alpha
    polyak_update(params.critic, params.critic_target, tau)
    return stats


@torch.no_grad()
def _fast_update(step: FastSACStep, explore: ExploreActor | None, batch: Transitions,
                 weight: torch.Tensor | None, gamma: float, tau: float, grad_clip: float,
                 update_policy: bool, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """:func:`vgdf_update` on SAC's compiled kernels (``step``; ``explore``: the exploration
    actor's, None without one): each gradient computed and norm-clipped in one kernel, each Adam
    step one fused call over a flat block. The statistics are the eager step's, key for key."""
    step.bind()
    n = len(batch)
    # The eager step's draws, in its order: the next-state sample's, the actor's, the explorer's.
    noise_next = step.draw(n, generator)
    noise_actor = step.draw(n, generator) if update_policy else None
    noise_explore = step.draw(n, generator) if update_policy and explore is not None else None
    alpha = step.nets().log_alpha.detach().exp()
    max_norm = torch.full((), float(grad_clip), device=noise_next.device)
    loss_q, q_mean = step.critic_step(batch, gamma, noise_next, alpha, weight, max_norm)
    stats = {"critic_loss": loss_q, "q_mean": q_mean}
    if update_policy:
        assert noise_actor is not None
        obs = batch.obs.reshape(n, -1).float()
        loss_pi, entropy, grad_alpha, _ = step.actor_step(obs, noise_actor, alpha, max_norm)
        stats |= {"actor_loss": loss_pi, "entropy": entropy}
        if explore is not None:
            assert noise_explore is not None
            stats["explore_actor_loss"] = step.optimistic_actor_step(explore, obs, noise_explore,
                                                                     alpha, max_norm)
        step.temperature_step(grad_alpha)  # never clipped, as the eager step
    stats["ent_coef"] = alpha
    step.polyak(tau)
    return stats
