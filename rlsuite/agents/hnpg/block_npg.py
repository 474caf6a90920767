"""H independent TRPO/NPG steps, one per time step's policy, computed together.

The official code (``trpo.py`` ``update_policy``) runs one TRPO step per step ``h``, each with its own
conjugate-gradient solve, max-KL scaling and line search. Here the ``H`` policies are stacked (every
parameter has a leading ``H`` dim), so:

* the surrogate and the KL are ``[H]`` vectors (one mean per step); the gradient of their sums
  has block ``h`` equal to block ``h``'s own gradient, and the Hessian of ``sum_h KL_h`` is block
  diagonal with the per-step Fisher matrices. The Fisher-vector product is the shared
  :func:`rlsuite.learners.npg.fisher_vector_product` of that sum;
* conjugate gradient runs on ``[H, P]`` blocks with per-block step sizes (each block is exactly the
  CG of :func:`rlsuite.learners.npg.conjugate_gradient`, stopping per block at the tolerance);
* each block is scaled so that ``0.5 s_h^T (F_h + damping I) s_h = max_kl``, and the backtracking
  line search tries fractions ``1, 1/2, ...`` for all still-undecided blocks in one evaluation, each
  block accepting its first fraction by the rule of :func:`rlsuite.learners.npg.trpo_step`
  (improvement > 0, improvement > accept_ratio x the linear prediction, measured KL <= max_kl
  unless ``check_kl`` is off: the official line search does not test the KL).

Block ``h``'s result equals ``trpo_step`` run on policy ``h`` alone (tests/test_hnpg.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from rlsuite.learners.npg import NPGConfig, fisher_vector_product

VectorClosure = Callable[[], torch.Tensor]


@dataclass(frozen=True)
class BlockNPGResult:
    """Per-block outcome of :func:`block_trpo_step`, each ``[H]`` (host-side logging reads them)."""

    accepted: torch.Tensor
    """bool: a fraction passed the line search (else that block's parameters are unchanged)."""
    step_fraction: torch.Tensor
    """Accepted fraction of the max-KL step (0 when rejected)."""
    kl: torch.Tensor
    """Measured mean KL(old || new) after the step."""
    surrogate_before: torch.Tensor
    """Surrogate at the old parameters."""
    surrogate_after: torch.Tensor
    """Surrogate at the new parameters (equal to before where rejected)."""
    expected_improvement: torch.Tensor
    """Linear prediction for the accepted (or, when rejected, the full) step."""


def to_blocks(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[H, P]``: row ``h`` concatenates ``t[h]`` of every tensor."""
    h = tensors[0].shape[0]
    return torch.cat([t.reshape(h, -1) for t in tensors], 1)


def from_blocks(blocks: torch.Tensor, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Inverse of :func:`to_blocks`: split ``[H, P]`` into tensors shaped like ``like``."""
    sizes = [t[0].numel() for t in like]
    parts = torch.split(blocks, sizes, dim=1)
    return [p.reshape(t.shape) for p, t in zip(parts, like, strict=True)]


def _param_major(blocks: torch.Tensor, like: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[H, P]`` blocks -> the flat vector layout of ``parameters_to_vector`` (param by param)."""
    return torch.cat([p.reshape(-1) for p in from_blocks(blocks, like)])


def _from_param_major(flat: torch.Tensor, like: Sequence[torch.Tensor]) -> torch.Tensor:
    parts = torch.split(flat, [t.numel() for t in like])
    return to_blocks([p.reshape(t.shape) for p, t in zip(parts, like, strict=True)])


def block_conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    iters: int = 10,
    residual_tol: float = 1e-10,
) -> torch.Tensor:
    """CG on each row of ``b [H, P]`` for a block-diagonal SPD operator ``matvec([H, P]) -> [H, P]``.

    Row ``h`` follows :func:`rlsuite.learners.npg.conjugate_gradient` exactly: it stops (keeps its
    iterate) from the first iteration at which its squared residual is below ``residual_tol``.
    """
    x = torch.zeros_like(b)
    r, p = b.clone(), b.clone()
    rr = (r * r).sum(1)
    for _ in range(iters):
        active = rr >= residual_tol
        if not bool(active.any()):
            break
        ap = matvec(p)
        pap = (p * ap).sum(1)
        alpha = torch.where(active, rr / torch.where(active, pap, torch.ones_like(pap)), torch.zeros_like(rr))
        x = x + alpha[:, None] * p
        r = r - alpha[:, None] * ap
        rr_new = (r * r).sum(1)
        beta = rr_new / torch.where(active, rr, torch.ones_like(rr))
        p = torch.where(active[:, None], r + beta[:, None] * p, p)
        rr = torch.where(active, rr_new, rr)
    return x


def block_trpo_step(
    params: Sequence[torch.Tensor],
    surrogate: VectorClosure,
    kl: VectorClosure,
    config: NPGConfig,
    check_kl: bool = True,
    gradient: torch.Tensor | None = None,
    fisher: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> BlockNPGResult:
    """One trust-region natural-gradient step for each of ``H`` independent parameter blocks.

    Args:
        params: trainable tensors, each ``[H, ...]``; block ``h`` is ``[t[h] for t in params]``
            and must influence only ``surrogate()[h]`` and ``kl()[h]``.
        surrogate: returns ``[H]`` objectives to maximize at the current parameters.
        kl: returns ``[H]`` mean KL(old || current); zero with zero gradient at the start.
        config: the shared NPG settings (max_kl, damping, CG and line-search constants).
        check_kl: also require the measured KL <= max_kl to accept a fraction (as
            :func:`rlsuite.learners.npg.trpo_step` does; the official HNPG line search does not).
        gradient: ``[H, P]`` gradient of ``surrogate()`` at the current parameters when known in
            closed form (default: autograd).
        fisher: ``v [H, P] -> F v`` without damping when known in closed form (default: double
            backprop of ``kl()``, :func:`rlsuite.learners.npg.fisher_vector_product`).

    Returns:
        A :class:`BlockNPGResult`; rejected blocks are restored bit for bit.
    """
    plist = list(params)
    with torch.no_grad():
        old = to_blocks(plist).clone()
        before = surrogate().detach()
    if gradient is None:
        grads = torch.autograd.grad(surrogate().sum(), plist, allow_unused=True)
        g = to_blocks([torch.zeros_like(p) if gr is None else gr for gr, p in zip(grads, plist, strict=True)])
    else:
        g = gradient
    if fisher is None:
        fvp_flat = fisher_vector_product(lambda: kl().sum(), plist, config.damping)

        def fvp(v: torch.Tensor) -> torch.Tensor:
            return _from_param_major(fvp_flat(_param_major(v, plist)), plist)

    else:

        def fvp(v: torch.Tensor) -> torch.Tensor:
            return fisher(v) + config.damping * v

    s = block_conjugate_gradient(fvp, g, config.cg_iters, config.cg_residual_tol)
    shs = (s * fvp(s)).sum(1)
    usable = torch.isfinite(shs) & (shs > 0)
    scale = torch.sqrt(2.0 * config.max_kl / torch.where(usable, shs, torch.ones_like(shs)))
    full = torch.where(usable[:, None], scale[:, None] * s, torch.zeros_like(s))
    expected_full = (g * full).sum(1)
    fraction = torch.zeros_like(shs)
    pending = usable.clone()
    zero = torch.zeros_like(shs)
    with torch.no_grad():
        for k in range(config.backtrack_iters):
            if not bool(pending.any()):
                break
            f = config.backtrack_coef**k
            trial = torch.where(pending, torch.full_like(fraction, f), fraction)
            _write(plist, old + trial[:, None] * full)
            improvement = surrogate() - before
            measured = kl()
            expected = expected_full * f
            ok = pending & torch.isfinite(improvement) & (improvement > 0) & (expected > 0)
            ok &= improvement > config.accept_ratio * expected
            if check_kl:
                ok &= torch.isfinite(measured) & (measured <= config.max_kl)
            fraction = torch.where(ok, torch.full_like(fraction, f), fraction)
            pending &= ~ok
        accepted = fraction > 0
        _write(plist, torch.where(accepted[:, None], old + fraction[:, None] * full, old))
        after = surrogate().detach()
        final_kl = torch.where(accepted, kl().detach(), zero)
    expected_out = torch.where(accepted, expected_full * fraction, expected_full)
    return BlockNPGResult(accepted, fraction, final_kl, before, after, expected_out)


def _write(params: Sequence[torch.Tensor], blocks: torch.Tensor) -> None:
    for p, value in zip(params, from_blocks(blocks, params), strict=True):
        p.copy_(value)
