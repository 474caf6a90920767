"""The natural-gradient / TRPO policy step, for any policy module.

One call of :func:`trpo_step` does what TRPO's update does (Schulman et al. 2015, *Trust Region
Policy Optimization*, Appendix C): the gradient ``g`` of a surrogate objective, the natural
direction ``s = F^-1 g`` by conjugate gradient with Fisher-vector products (never the Fisher matrix
itself), the largest step ``beta s`` whose quadratic KL model equals ``max_kl``
(``beta = sqrt(2 delta / s^T F s)``), then a backtracking line search that accepts the first
fraction of that step whose *measured* mean KL is within ``max_kl`` and whose surrogate improves
(by at least ``accept_ratio`` of the linear prediction, as in Schulman's ``modular_rl``). When no
fraction passes, the parameters are left exactly as they were.

The caller supplies two closures that read the policy's *current* parameters:

* ``surrogate()`` -- a scalar to maximize, e.g. ``(ratio * advantage).mean()``;
* ``kl()`` -- the mean KL divergence between the pre-update policy (detached) and the current one
  on the update states. :func:`detached_kl` builds it from a function returning the policy's
  ``torch.distributions.Distribution`` at those states.

The Fisher-vector product is the Hessian-vector product of that KL at the current parameters
(double backprop): at the old parameters the KL's gradient is zero and its Hessian is the Fisher
information matrix of the policy averaged over the states (Schulman et al. 2015, sec. 6). With
``NPGConfig.fast_path`` (the default) and a ``kl`` from :func:`detached_kl` over a categorical or
(independent) normal policy, the product is taken in its Gauss-Newton form instead,
``F v = J^T H (J v)`` (``J``: the Jacobian of the distribution's parameters, ``H``: the KL's Hessian
in those few outputs; Martens 2014, *New insights and perspectives on the natural gradient method*,
sec. 9): the terms of the Hessian that double backprop also differentiates are multiplied by the
KL's output gradient, which is exactly zero at the old parameters, so it is the same matrix (in
float64 the same products to ~1e-15) for about two thirds of the cost (:func:`fisher_vector_product`).

Everything works on one flat vector of the given parameters (``parameters_to_vector`` /
:func:`set_flat_params`), so HNPG,
the risk-averse NPG and any other on-policy learner use the same code for any ``nn.Module``. The
line search reads a few scalars on the host (one sync per tried fraction); it runs once per
update, never per env step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn.utils import parameters_to_vector

from rlsuite import validation as rules

Closure = Callable[[], torch.Tensor]
ParamsLike = nn.Module | Iterable[torch.Tensor]


@dataclass
class NPGConfig:
    """Natural-gradient step settings (defaults: TRPO's, Schulman et al. 2015 / Spinning Up)."""

    max_kl: float = 0.01
    """Trust-region radius delta: the bound on the mean KL(old || new) over the update states."""
    damping: float = 0.1
    """Added to the Fisher's diagonal (F + damping I) so CG is well conditioned."""
    cg_iters: int = 10
    """Conjugate-gradient iterations."""
    cg_residual_tol: float = 1e-10
    """Stop CG once the squared residual norm is below this."""
    backtrack_iters: int = 10
    """Fractions tried by the line search: coef^0, coef^1, ..., coef^(iters-1)."""
    backtrack_coef: float = 0.5
    """Shrink factor of the line search (Schulman's modular_rl uses 0.5)."""
    accept_ratio: float = 0.1
    """Accept a fraction only if actual / expected surrogate improvement exceeds this."""
    fast_path: bool = True
    """Fisher-vector products in Gauss-Newton form where the KL comes from :func:`detached_kl`
    over a supported distribution (:func:`fisher_vector_product`: the same products, ~1.5x less
    CPU per TRPO step of ECRM's neural policies); False: double backprop always."""

    CHECKS: ClassVar[rules.Checks] = {
        "max_kl": rules.POSITIVE, "damping": rules.NONNEG, "cg_iters": rules.POSITIVE_INT,
        "cg_residual_tol": rules.NONNEG, "backtrack_iters": rules.POSITIVE_INT,
        "backtrack_coef": rules.real(0.0, 1.0, low_open=True, high_open=True),
        "accept_ratio": rules.FINITE, "fast_path": rules.FLAG,
    }

    def __post_init__(self) -> None:
        rules.validate(self)


@dataclass(frozen=True)
class NPGResult:
    """What one step did (host floats, for logging under ``train/``)."""

    accepted: bool
    """True when a fraction passed the line search (else the parameters are unchanged)."""
    step_fraction: float
    """Accepted fraction of the max-KL step (0.0 when rejected)."""
    kl: float
    """Measured mean KL(old || new) after the step (0.0 when rejected)."""
    improvement: float
    """Measured surrogate(new) - surrogate(old) (0.0 when rejected)."""
    expected_improvement: float
    """Linear prediction g . step for the accepted (or, when rejected, the full) step."""
    cg_residual: float
    """Norm of the CG residual ``g - (F + damping I) s`` at exit."""
    backtracks: int
    """Fractions rejected before the accepted one (``backtrack_iters`` when none passed, 0 when
    the direction was degenerate and no fraction was tried)."""

    def metrics(self, prefix: str = "train/") -> dict[str, float]:
        """The result as logger-ready scalars (``train/npg_kl``, ...)."""
        return {f"{prefix}npg_{k}": float(v) for k, v in self.__dict__.items()}


# -- flat parameter vectors ---------------------------------------------------------------------
def param_list(params: ParamsLike) -> list[torch.Tensor]:
    """The trainable tensors of a module (or of an iterable of tensors), in a fixed order."""
    tensors = params.parameters() if isinstance(params, nn.Module) else params
    out = [p for p in tensors if p.requires_grad]
    if not out:
        raise ValueError("npg: no parameter with requires_grad=True was given")
    return out


def set_flat_params(vector: torch.Tensor, params: Sequence[torch.Tensor]) -> None:
    """Copy slices of a flat vector into ``params``, in place.

    Unlike ``torch.nn.utils.vector_to_parameters`` (which rebinds ``.data`` to views of
    ``vector``), each parameter keeps its own storage, so optimizers, ``state_dict`` and views
    held elsewhere stay valid.
    """
    total = sum(p.numel() for p in params)
    if vector.numel() != total:
        raise ValueError(f"set_flat_params: vector has {vector.numel()} entries, params {total}")
    with torch.no_grad():
        offset = 0
        for p in params:
            n = p.numel()
            p.copy_(vector[offset : offset + n].view_as(p))
            offset += n


def flat_grad(
    output: torch.Tensor,
    params: Sequence[torch.Tensor],
    create_graph: bool = False,
    retain_graph: bool = False,
) -> torch.Tensor:
    """``d output / d params`` as one flat vector; parameters ``output`` does not use get zeros."""
    grads = torch.autograd.grad(output, params, create_graph=create_graph, allow_unused=True,
                                retain_graph=retain_graph or create_graph)
    parts = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]
    return torch.cat([g.reshape(-1) for g in parts])


# -- the linear algebra ---------------------------------------------------------------------------
def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    b: torch.Tensor,
    iters: int = 10,
    residual_tol: float = 1e-10,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve ``A x = b`` for symmetric positive-definite ``A`` given only ``matvec(v) = A v``.

    Plain CG from ``x = 0`` (Nocedal & Wright, Algorithm 5.2); stops after ``iters`` iterations or
    once ``||r||^2 < residual_tol``. Returns ``(x, ||b - A x||)`` with the residual recomputed
    from ``x`` (one more product), so the reported number is the true one, not CG's recursion.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        if float(rr) < residual_tol:  # a host sync per CG iteration: CG runs once per update
            break
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    residual = torch.linalg.vector_norm(b - matvec(x))
    return x, residual


def fisher_vector_product(
    kl: Closure, params: ParamsLike, damping: float = 0.0, gauss_newton: bool = True
) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v -> (F + damping I) v`` at the current parameters.

    By double backprop of ``kl()``: the KL and its gradient (with ``create_graph``) are computed
    once, here; each product is then one backward pass through that gradient's graph (kept with
    ``retain_graph``).

    With ``gauss_newton`` and a ``kl`` made by :func:`detached_kl` over a distribution that
    :func:`_distribution_outputs` knows (categorical, normal, independent of those), each product
    is instead ``J^T H (J v)``: ``J v`` is one backward pass through the graph of ``J^T u``
    (linear in a dummy ``u``, built once), ``H`` the KL's Hessian in the distribution's own
    parameters (double backprop through the KL formula alone, on detached copies of them), and
    ``J^T`` one backward pass through the policy's forward graph. Both graphs are built here.
    At the parameters ``detached_kl`` froze this is the Hessian of ``kl()`` exactly (see the module
    docstring); elsewhere it is the Gauss-Newton matrix, not the Hessian.
    """
    plist = param_list(params)
    if gauss_newton and isinstance(kl, DetachedKL):
        product = _gauss_newton_product(kl, plist)
        if product is not None:
            return lambda v: product(v) + damping * v
    grad_kl = flat_grad(kl(), plist, create_graph=True)

    def product(v: torch.Tensor) -> torch.Tensor:
        hv = flat_grad(grad_kl @ v.detach(), plist, retain_graph=True)
        return hv + damping * v

    return product


def _distribution_outputs(
    dist: torch.distributions.Distribution,
) -> tuple[list[torch.Tensor], Callable[[list[torch.Tensor]], torch.distributions.Distribution]] | None:
    """The tensors that parameterize ``dist`` and a function that builds the same kind of
    distribution from replacements of them; None for a kind not supported here."""
    dists = torch.distributions
    if isinstance(dist, dists.Independent):
        inner = _distribution_outputs(dist.base_dist)
        if inner is None:
            return None
        outputs, build = inner
        ndims = dist.reinterpreted_batch_ndims
        return outputs, lambda o: dists.Independent(build(o), ndims)
    if type(dist) is dists.Normal:
        return [dist.loc, dist.scale], lambda o: dists.Normal(o[0], o[1])
    if type(dist) is dists.Categorical:
        return [dist.logits], lambda o: dists.Categorical(logits=o[0])
    return None


def _gauss_newton_product(
    kl: DetachedKL, plist: Sequence[torch.Tensor]
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """``v -> J^T H J v`` (no damping) for :func:`fisher_vector_product`, or None where the
    distribution's kind is not supported or its parameters do not depend on ``plist``."""
    parts = _distribution_outputs(kl.distribution())
    if parts is None:
        return None
    outputs, build = parts
    live = [i for i, o in enumerate(outputs) if o.requires_grad]
    if not live:
        return None
    # H: the KL's Hessian in the distribution's parameters, on detached copies of them.
    leaves = [o.detach().requires_grad_(i in live) for i, o in enumerate(outputs)]
    kl_out = torch.distributions.kl_divergence(kl.old, build(leaves)).mean()
    live_leaves = [leaves[i] for i in live]
    grad_out = torch.autograd.grad(kl_out, live_leaves, create_graph=True)
    # J^T u for a dummy u, with its graph: its backward in u, given v, is J v.
    live_outputs = [outputs[i] for i in live]
    dummies = [torch.zeros_like(o, requires_grad=True) for o in live_outputs]
    jt = torch.autograd.grad(live_outputs, plist, dummies, create_graph=True, allow_unused=True)
    used = [i for i, g in enumerate(jt) if g is not None]
    if not used:
        return None
    sizes = [p.numel() for p in plist]

    def product(v: torch.Tensor) -> torch.Tensor:
        pieces = torch.split(v.detach(), sizes)
        jv = torch.autograd.grad([jt[i] for i in used], dummies,
                                 [pieces[i].view_as(plist[i]) for i in used],
                                 retain_graph=True, allow_unused=True)
        jv = [torch.zeros_like(d) if g is None else g for g, d in zip(jv, dummies, strict=True)]
        hjv = torch.autograd.grad(grad_out, live_leaves, jv, retain_graph=True, allow_unused=True)
        hjv = [torch.zeros_like(x) if g is None else g for g, x in zip(hjv, live_leaves, strict=True)]
        grads = torch.autograd.grad(live_outputs, plist, hjv, retain_graph=True, allow_unused=True)
        return torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                          for g, p in zip(grads, plist, strict=True)])

    return product


class DetachedKL:
    """The ``kl()`` closure of :func:`detached_kl`: mean KL(old || current), ``old`` frozen at
    construction. It keeps ``old`` and ``distribution`` so that :func:`fisher_vector_product`
    can take the Gauss-Newton route."""

    def __init__(self, distribution: Callable[[], torch.distributions.Distribution]) -> None:
        self.distribution = distribution
        with torch.no_grad():
            self.old = distribution()

    def __call__(self) -> torch.Tensor:
        """Mean KL(old || current) over the update states."""
        return torch.distributions.kl_divergence(self.old, self.distribution()).mean()


def detached_kl(distribution: Callable[[], torch.distributions.Distribution]) -> DetachedKL:
    """A ``kl()`` closure: mean KL(old || current) with ``old`` frozen now, at call time.

    ``distribution()`` must return the policy's distribution at the update states with the
    current parameters, one event per state (wrap per-dimension Gaussians in
    ``torch.distributions.Independent(..., 1)`` so their KL sums over action dimensions).
    """
    return DetachedKL(distribution)


@dataclass(frozen=True)
class NaturalGradient:
    """The natural direction and the scale that puts its quadratic KL model at ``max_kl``."""

    gradient: torch.Tensor
    """``g``: the surrogate's gradient (flat)."""
    direction: torch.Tensor
    """``s ~= (F + damping I)^-1 g`` from CG."""
    shs: torch.Tensor
    """``s^T (F + damping I) s`` (0-dim)."""
    cg_residual: torch.Tensor
    """``||g - (F + damping I) s||`` (0-dim)."""

    def max_step(self, max_kl: float) -> torch.Tensor:
        """``beta s`` with ``beta = sqrt(2 max_kl / s^T F s)``: 0.5 step^T F step = max_kl."""
        return torch.sqrt(2.0 * max_kl / self.shs) * self.direction


def natural_gradient(
    surrogate: Closure, kl: Closure, params: ParamsLike, config: NPGConfig
) -> NaturalGradient:
    """Gradient of ``surrogate()`` and its natural direction at the current parameters."""
    plist = param_list(params)
    g = flat_grad(surrogate(), plist).detach()
    fvp = fisher_vector_product(kl, plist, config.damping, config.fast_path)
    s, residual = conjugate_gradient(fvp, g, config.cg_iters, config.cg_residual_tol)
    return NaturalGradient(g, s.detach(), (s @ fvp(s)).detach(), residual.detach())


# -- the TRPO step --------------------------------------------------------------------------------
def trpo_step(
    params: ParamsLike, surrogate: Closure, kl: Closure, config: NPGConfig | None = None
) -> NPGResult:
    """One trust-region natural-gradient step on ``params``, in place.

    Args:
        params: the policy module (or its parameters); every trainable tensor is updated.
        surrogate: returns the scalar objective to maximize at the current parameters.
        kl: returns the mean KL(old || current) at the current parameters (see
            :func:`detached_kl`); it must be 0 with zero gradient at the starting parameters.
        config: step settings (defaults: :class:`NPGConfig`).

    Returns:
        An :class:`NPGResult`. When the line search finds no acceptable fraction (or the
        direction is degenerate: zero or non-finite), the parameters are restored bit for bit.
    """
    cfg = config or NPGConfig()
    plist = param_list(params)
    old = parameters_to_vector(plist).detach().clone()
    with torch.no_grad():
        old_value = surrogate()
    ng = natural_gradient(surrogate, kl, plist, cfg)
    shs = float(ng.shs)
    residual = float(ng.cg_residual)
    if not (math.isfinite(shs) and shs > 0.0):  # zero gradient, or a broken objective
        return NPGResult(False, 0.0, 0.0, 0.0, 0.0, residual, 0)
    full_step = ng.max_step(cfg.max_kl)
    expected_full = float(ng.gradient @ full_step)
    with torch.no_grad():
        for k in range(cfg.backtrack_iters):
            fraction = cfg.backtrack_coef**k
            set_flat_params(old + fraction * full_step, plist)
            improvement = float(surrogate() - old_value)
            measured_kl = float(kl())
            expected = expected_full * fraction
            if (math.isfinite(improvement) and math.isfinite(measured_kl)
                    and measured_kl <= cfg.max_kl and improvement > 0.0 and expected > 0.0
                    and improvement > cfg.accept_ratio * expected):
                return NPGResult(True, fraction, measured_kl, improvement, expected, residual, k)
        set_flat_params(old, plist)
    return NPGResult(False, 0.0, 0.0, 0.0, expected_full, residual, cfg.backtrack_iters)
