"""Action heads as plain tensor maths: sample, log-probability and entropy.

The learners' hot loops (a rollout step, a loss on a minibatch) used to build a
``torch.distributions`` object per call; its argument validation, broadcasting and lazy
properties cost more than the maths at the batch sizes used here, and they cannot be traced into a
fused kernel. These functions are the same formulas on raw tensors, with the randomness passed in
(uniforms or standard normals drawn by the caller from its generator), so they are pure and can be
compiled (:mod:`rlsuite.engine.fastpath`). ``tests/test_heads.py`` checks each against
``torch.distributions`` to ~1e-6.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)
GUMBEL_TINY = 1e-20
"""Uniforms are clamped to this before ``-log(-log u)``, so ``u == 0`` gives a finite key."""


def categorical_sample(logits: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """A categorical draw per row by Gumbel-max: ``argmax(logits + Gumbel(u))``, ``[N]`` int64.

    ``uniform`` has the shape of ``logits`` (U[0, 1) draws from the caller's generator).
    """
    gumbel = -torch.log(-torch.log(uniform.clamp_min(GUMBEL_TINY)))
    return (logits + gumbel).argmax(-1)


def categorical_log_prob(logits: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[action]``, ``[N]``."""
    log_p = F.log_softmax(logits, dim=-1)
    return log_p.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """``-sum p log p`` per row, ``[N]`` (0 log 0 = 0, as torch.distributions has it)."""
    log_p = F.log_softmax(logits, dim=-1)
    p_log_p = torch.where(log_p.exp() > 0, log_p.exp() * log_p, torch.zeros_like(log_p))
    return -p_log_p.sum(-1)


def categorical_log_prob_entropy(
    logits: torch.Tensor, action: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`categorical_log_prob` and :func:`categorical_entropy` sharing one log-softmax."""
    log_p = F.log_softmax(logits, dim=-1)
    p = log_p.exp()
    entropy = -torch.where(p > 0, p * log_p, torch.zeros_like(log_p)).sum(-1)
    return log_p.gather(-1, action.long().unsqueeze(-1)).squeeze(-1), entropy


def normal_log_prob(x: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Diagonal Gaussian log-density, summed over the last dimension, ``[N]``."""
    z = (x - mean) * torch.exp(-log_std)
    return (-0.5 * z * z - log_std - LOG_SQRT_2PI).sum(-1)


def normal_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """Diagonal Gaussian entropy summed over the last dimension (``[...]`` of ``log_std``)."""
    return (0.5 + LOG_SQRT_2PI + log_std).sum(-1)


def normal_sample(mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """``mean + exp(log_std) * noise``, with ``noise`` standard normal draws of ``mean``'s shape."""
    return mean + torch.exp(log_std) * noise


def squashed_log_prob(u: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """log-density of ``tanh(u)`` when ``u ~ N(mean, exp(log_std))``, summed over action dims.

    Change of variables (SAC paper, appendix C): ``log pi(a) = log N(u) - sum log(1 - tanh(u)^2)``,
    with ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))``, exact and finite for large |u|.
    The density is that of the action in ``[-1, 1]^d`` (as in SB3), so SAC's entropy target
    ``-dim(A)`` does not depend on the env's action bounds.
    """
    z = (u - mean) * torch.exp(-log_std)
    gaussian = -0.5 * z.pow(2) - log_std - LOG_SQRT_2PI
    log_det = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
    return (gaussian - log_det).sum(-1)


def squashed_sample(
    mean: torch.Tensor, log_std: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """A tanh-Gaussian draw: ``(tanh(u), log_prob)`` with ``u = mean + std * noise``."""
    u = normal_sample(mean, log_std, noise)
    return torch.tanh(u), squashed_log_prob(u, mean, log_std)
