"""Small network builders shared by the learners."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import nn


def mlp(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int] = (64, 64),
    activation: type[nn.Module] = nn.Tanh,
    out_gain: float = 1.0,
) -> nn.Sequential:
    """An MLP with orthogonal init (gain sqrt 2 on hidden layers, ``out_gain`` on the last).

    Orthogonal init with these gains is the PPO implementation detail of Engstrom et al. (2020)
    and CleanRL's ``layer_init``.
    """
    layers: list[nn.Module] = []
    dims = [in_dim, *hidden]
    for a, b in zip(dims[:-1], dims[1:], strict=False):
        layers += [_init(nn.Linear(a, b), math.sqrt(2)), activation()]
    layers.append(_init(nn.Linear(dims[-1], out_dim), out_gain))
    return nn.Sequential(*layers)


def _init(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def flat_dim(shape: Sequence[int]) -> int:
    """Number of features in an observation of event shape ``shape``."""
    return int(math.prod(shape)) if shape else 1


@torch.no_grad()
def polyak_update(params: Iterable[torch.Tensor], targets: Iterable[torch.Tensor], tau: float) -> None:
    """``target <- (1 - tau) target + tau param``, in place, for matching tensor lists.

    The soft target update of DDPG/SAC (Lillicrap et al. 2016); ``tau = 1`` copies.
    """
    params, targets = list(params), list(targets)
    torch._foreach_mul_(targets, 1.0 - tau)
    torch._foreach_add_(targets, params, alpha=tau)
