"""HNPG's hybrid critic fit (paper Eq. 1 / Algorithm 4; official ``trpo.py`` ``update_q``).

For each step ``h`` the Q-network ``f_h`` minimises

    lambda * mean_on (f_h(s, a) - G)^2  +  mean_off (f_h(s, a) - y_off)^2  (+ l2 * ||last layer||^2)

with ``G`` the on-policy Monte-Carlo return-to-go and ``y_off = r + gamma * f_{h+1}(s', a')``,
``a' ~ pi_{h+1}(s')`` (just ``r`` where ``s'`` is terminal). The official code uses lambda = 1
(equal-size batches, unweighted sum), 30 full-batch Adam steps with lr 3e-4 and a fresh optimizer
per call, and fits backwards ``h = H-1 .. 0`` so that each offline target uses the ``f_{h+1}``
fitted a moment before (``sweep="backward"``). ``sweep="parallel"`` computes every target from the
critics as they were at the start of the iteration and fits all steps in one batched run (cheaper
for long horizons; not the official schedule).

Adam is element-wise and the per-step losses are summed, so fitting a set of steps together is
exactly fitting each alone.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from rlsuite.agents.hnpg.nets import StackedGaussianPolicy, StackedQ, q_forward, stacked_forward


@dataclass(frozen=True)
class CriticBatch:
    """The data of one critic fit, every tensor with the leading step dim ``H``."""

    on_obs: torch.Tensor
    """``[H, N_on, D]`` on-policy states."""
    on_action: torch.Tensor
    """``[H, N_on, A]`` on-policy actions."""
    on_return: torch.Tensor
    """``[H, N_on]`` Monte-Carlo returns-to-go G."""
    off_obs: torch.Tensor
    """``[H, N_off, D]`` offline states."""
    off_action: torch.Tensor
    """``[H, N_off, A]`` offline (dataset) actions."""
    off_reward: torch.Tensor
    """``[H, N_off]``."""
    off_next_obs: torch.Tensor
    """``[H, N_off, D]``."""
    off_terminated: torch.Tensor
    """``[H, N_off]`` bool: no bootstrap."""


@dataclass(frozen=True)
class CriticSettings:
    """How one fit runs (copied from the agent config)."""

    steps: int = 30
    lr: float = 3e-4
    on_weight: float = 1.0
    hybrid: bool = True
    l2: float = 0.0
    gamma: float = 1.0
    scripted: bool = True
    """Run the Adam loop through TorchScript (the same arithmetic, less interpreter overhead)."""


def offline_targets(
    policy: StackedGaussianPolicy,
    q: StackedQ,
    batch: CriticBatch,
    steps: slice,
    gamma: float,
    generator: torch.Generator,
    discount: torch.Tensor | None = None,
) -> torch.Tensor:
    """``y_off`` for the steps in ``steps`` (a slice of ``0 .. H-1``), from ``f_{h+1}`` and ``pi_{h+1}``.

    Step ``H-1`` (and any terminal transition) gets ``r`` alone; the official code draws a single
    ``a' ~ pi_{h+1}(s')``. ``discount`` is :func:`_bootstrap_discount` of all ``H`` steps where the
    caller has it (a backward sweep computes it once).
    """
    h = q.net.num
    lo, hi = steps.start or 0, steps.stop if steps.stop is not None else h
    reward = batch.off_reward[lo:hi]
    nxt_lo, nxt_hi = lo + 1, min(hi + 1, h)
    boot = torch.zeros_like(reward)
    if nxt_hi > nxt_lo:
        with torch.no_grad():
            nxt = batch.off_next_obs[nxt_lo - 1 : nxt_hi - 1]
            mean, log_std = policy.mean_net.layers(), policy.log_std[nxt_lo:nxt_hi]
            mu = stacked_forward([t[nxt_lo:nxt_hi] for t in mean], nxt)
            noise = torch.randn(mu.shape, generator=generator, dtype=mu.dtype, device=mu.device)
            a_next = mu + log_std.exp() * noise
            values = q_forward([t[nxt_lo:nxt_hi] for t in q.net.layers()], nxt, a_next)
        boot[: nxt_hi - nxt_lo] = values
    if discount is None:
        discount = _bootstrap_discount(batch, gamma)
    return reward + discount[lo:hi] * boot.to(reward.dtype)


def _bootstrap_discount(batch: CriticBatch, gamma: float) -> torch.Tensor:
    """``gamma * alive`` ``[H, N_off]``: the factor of ``f_{h+1}`` in the offline targets."""
    return gamma * (~batch.off_terminated).to(batch.off_reward.dtype)


def fit_steps(
    q: StackedQ, steps: slice, batch: CriticBatch, off_target: torch.Tensor, settings: CriticSettings
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ``f_h`` for ``h`` in ``steps`` with a fresh Adam; return the last step's per-``h``
    on-policy and offline losses (``[len(steps)]``, as ``update_q`` logs them: before its last
    optimizer step).

    The gradient of the tanh MLP's square loss is written out by hand (one forward and one
    backward pass of batched matmuls, no autograd graph) and Adam (PyTorch's update, betas
    (0.9, 0.999), eps 1e-8) runs on one flat parameter block; tests/test_hnpg.py checks both
    against autograd + ``torch.optim.Adam``.
    """
    x, y, row_weight = _fit_inputs(batch, settings, q.net.layers()[0].dtype)
    y = torch.cat([y[steps], off_target.to(y.dtype)], 1).unsqueeze(-1)
    return _fit(q, steps, x[steps], y, row_weight, batch.on_obs.shape[1], settings)


def _fit_inputs(
    batch: CriticBatch, settings: CriticSettings, dt: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The parts of a fit's data that do not depend on the targets, for all ``H`` steps (a
    backward sweep builds them once, not once per step): inputs ``[s, a]`` (on-policy rows, then
    offline) ``[H, N_on + N_off, D + A]`` and on-policy returns ``[H, N_on]`` in the critic's dtype
    ``dt`` (cast before the copy: the same values), and the per-row loss weights ``[1, N, 1]``."""
    x = torch.cat(
        [
            torch.cat([batch.on_obs.to(dt), batch.on_action.to(dt)], -1),
            torch.cat([batch.off_obs.to(dt), batch.off_action.to(dt)], -1),
        ],
        1,
    )
    n_on, n_off = batch.on_obs.shape[1], batch.off_obs.shape[1]
    # d loss / d out per row: 2 (out - y) / n, times lambda on the on-policy rows
    row_weight = torch.cat(
        [
            torch.full((n_on,), 2.0 * settings.on_weight / n_on, dtype=dt),
            torch.full((n_off,), 2.0 / n_off if settings.hybrid else 0.0, dtype=dt),
        ]
    )
    return x, batch.on_return.to(dt), row_weight.to(x.device).view(1, -1, 1)


def _fit(
    q: StackedQ,
    steps: slice,
    x: torch.Tensor,
    y: torch.Tensor,
    row_weight: torch.Tensor,
    n_on: int,
    settings: CriticSettings,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`fit_steps` on prepared inputs ``x [H', N, D + A]``, targets ``y [H', N, 1]``."""
    src = q.net.layers()
    h = src[0][steps].shape[0]
    flat = torch.cat([t[steps].detach().reshape(h, -1) for t in src], 1).clone()
    grad = torch.empty_like(flat)  # the gradient is written in place, block by block
    views, grad_views, offset = [], [], 0
    for t in src:
        n = t[0].numel()
        views.append(flat[:, offset : offset + n].view(h, *t.shape[1:]))
        grad_views.append(grad[:, offset : offset + n].view(h, *t.shape[1:]))
        offset += n
    n_last = src[-1][0].numel()
    loop = _adam_loop(settings.scripted)
    on_loss, off_loss = loop(
        flat, grad, views, grad_views, x, y, row_weight, settings.steps, settings.lr, n_on, settings.l2,
        n_last,
    )
    with torch.no_grad():
        for dest, value in zip(src, views, strict=True):
            dest[steps] = value
    return on_loss, off_loss


def adam_fit_loop(
    flat: torch.Tensor,
    grad: torch.Tensor,
    views: list[torch.Tensor],
    grad_views: list[torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    row_weight: torch.Tensor,
    steps: int,
    lr: float,
    n_on: int,
    l2: float,
    n_last: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``steps`` full-batch Adam steps of the stacked tanh MLPs ``views`` (``[W0, b0, ...]``, views
    into the parameter block ``flat [H', P]``; ``grad_views`` view ``grad`` the same way) on the
    weighted square loss ``sum_rows row_weight / 2 * (MLP(x) - y)^2``. Returns the last step's
    per-``h`` on-policy (first ``n_on`` rows) and offline mean squared residuals.

    Written for TorchScript (the same ops, run without the Python interpreter between them:
    tests/test_hnpg.py checks scripted == eager bit for bit).
    """
    layers = len(views) // 2
    m, v = torch.zeros_like(flat), torch.zeros_like(flat)
    weights_t = [views[2 * i].transpose(1, 2) for i in range(layers)]  # views: follow the updates
    inputs_t = x.transpose(1, 2)
    b1, b2, eps = 0.9, 0.999, 1e-8
    # The constants of the in-place scalar ops as 0-dim tensors of the parameters' dtype: a Python
    # number is wrapped as a float64 tensor, which a float32 op first copies to float32 (an
    # aten::to per op, ~12 per Adam step, about a third of a step at H = 30's 68 rows). The op
    # sees the same float32 value either way, so the arithmetic is unchanged bit for bit.
    one = torch.ones((), dtype=flat.dtype, device=flat.device)
    two = one * 2
    b1_t, b2_t = one * b1, one * b2
    eps_t = one * eps
    on_loss = torch.zeros(flat.shape[0], dtype=flat.dtype)
    off_loss = torch.zeros(flat.shape[0], dtype=flat.dtype)
    for k in range(1, steps + 1):
        # Forward, in place where a value is not needed again: tanh(z) = 2 sigmoid(2z) - 1.
        acts = [x]
        for i in range(layers):
            z = torch.baddbmm(views[2 * i + 1], acts[-1], views[2 * i])
            if i < layers - 1:
                z.mul_(two).sigmoid_().mul_(two).sub_(one)
            acts.append(z)
        delta = acts[-1].sub_(y)  # the residual (the output is not needed again)
        if k == steps:  # logged values only: the losses before the last update
            sq = delta.squeeze(-1).pow(2)
            on_loss, off_loss = sq[:, :n_on].mean(1), sq[:, n_on:].mean(1)
        delta.mul_(row_weight)  # d loss / d out
        for j in range(layers):
            i = layers - 1 - j
            torch.sum(delta, [1], keepdim=True, out=grad_views[2 * i + 1])  # bias
            if i == 0:
                torch.bmm(inputs_t, delta, out=grad_views[0])
            else:
                a = acts[i]
                torch.bmm(a.transpose(1, 2), delta, out=grad_views[2 * i])
                # tanh' = 1 - a^2, computed over a (no longer needed)
                delta = torch.bmm(delta, weights_t[i]).mul_(a.mul_(a).neg_().add_(one))
        if l2 > 0:  # trpo.py adds l2 * sum(p^2) of the last parameter tensor only
            grad[:, -n_last:] += 2 * l2 * flat[:, -n_last:]
        m.mul_(b1_t).add_(grad, alpha=1 - b1)
        v.mul_(b2_t).addcmul_(grad, grad, value=1 - b2)
        # sqrt(1 - b2^k) in double, rounded once to the dtype as the wrapped scalar was (not
        # torch.tensor of a list: TorchScript builds that in float32 first, ~1e-9 off in float64)
        bias2 = torch.full((), math.sqrt(1 - b2**k), dtype=flat.dtype, device=flat.device)
        denom = v.sqrt().div_(bias2).add_(eps_t)
        flat.addcdiv_(m, denom, value=-lr / (1 - b1**k))
    return on_loss, off_loss


_SCRIPTED: list = []


def _adam_loop(scripted: bool):
    """:func:`adam_fit_loop`, compiled with TorchScript on first use when ``scripted`` (about 1/3
    less time per Adam step on the 68-row batches of H = 30, where interpreter overhead dominates;
    falls back to the eager function if scripting is unavailable)."""
    if not scripted:
        return adam_fit_loop
    if not _SCRIPTED:
        try:
            with warnings.catch_warnings():  # torch.jit.script is deprecated in favour of compile,
                warnings.simplefilter("ignore")  # which takes ~30 s to build here (measured)
                _SCRIPTED.append(torch.jit.script(adam_fit_loop))
        except Exception:  # noqa: BLE001 - any TorchScript failure: run eagerly
            _SCRIPTED.append(adam_fit_loop)
    return _SCRIPTED[0]


def fit_critic(
    policy: StackedGaussianPolicy,
    q: StackedQ,
    batch: CriticBatch,
    settings: CriticSettings,
    generator: torch.Generator,
    sweep: str = "backward",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit all ``H`` critics; return per-step ``(on_loss [H], off_loss [H])``."""
    h = q.net.num
    if sweep == "parallel":
        target = offline_targets(policy, q, batch, slice(0, h), settings.gamma, generator)
        return fit_steps(q, slice(0, h), batch, target, settings)
    if sweep != "backward":
        raise ValueError(f"critic sweep must be 'backward' or 'parallel', got {sweep!r}")
    dt = q.net.layers()[0].dtype
    on, off = torch.zeros(h, dtype=dt), torch.zeros(h, dtype=dt)
    # what does not depend on the refitted critics, built once for the sweep (the same values as
    # fit_steps and offline_targets build per step)
    x, y_on, row_weight = _fit_inputs(batch, settings, dt)
    discount = _bootstrap_discount(batch, settings.gamma)
    n_on = batch.on_obs.shape[1]
    for step in range(h - 1, -1, -1):  # official order: f_{h+1} is refitted before f_h's targets
        s = slice(step, step + 1)
        target = offline_targets(policy, q, batch, s, settings.gamma, generator, discount)
        y = torch.cat([y_on[s], target.to(dt)], 1).unsqueeze(-1)
        on[s], off[s] = _fit(q, s, x[s], y, row_weight, n_on, settings)
    return on, off
