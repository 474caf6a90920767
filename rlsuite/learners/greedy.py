"""Greedy policies of MLP learners as fused kernels, so their evaluation runs on the fast path.

PPO's greedy policy is a :class:`~rlsuite.engine.fastpath.FusedPolicy` over its own paired
layout (``ppo.py``). SAC's (``bias + scale * tanh(mean)``) and QR-DQN's (``argmax`` of the mean
quantile) are a plain MLP followed by a small head: :func:`greedy_mlp_policy` builds that fused
policy from the network's modules, so :func:`~rlsuite.engine.evaluate.evaluate` runs each step
(policy, env step, bookkeeping) as one kernel instead of a Python loop of module calls.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from rlsuite.engine.fastpath import FastKernel, FusedPolicy
from rlsuite.learners.mlp_grad import mlp_apply, mlp_layers


def greedy_mlp_policy(
    name: str,
    net: nn.Module,
    head: Callable[[torch.Tensor, tuple[torch.Tensor, ...]], torch.Tensor],
    activation: str = "relu",
    constants: Callable[[], tuple[torch.Tensor, ...]] = tuple,
) -> FusedPolicy | None:
    """``obs -> head(net(obs), constants())`` as a fused policy over the live weights.

    Args:
        name: shown when its kernels compile.
        net: an MLP ``Linear (Act Linear)*`` of ``activation``
            (:func:`~rlsuite.learners.mlp_grad.mlp_layers`); its parameters are read at every
            evaluation, so optimizer steps and ``load_state_dict`` are seen.
        head: the network's output (and the constants) to the env action; traced into the
            kernel, so plain tensor maths only.
        activation: the MLP's hidden activation.
        constants: further tensors the head needs (SAC's action scale and bias), read like the
            weights at every evaluation.

    Returns:
        The policy, or None where ``net`` is not such an MLP.
    """
    try:
        linears = mlp_layers(net, activation)
    except ValueError:
        return None
    n = len(linears)

    def weights() -> tuple[torch.Tensor, ...]:
        return (*[m.weight.detach() for m in linears], *[m.bias.detach() for m in linears],
                *constants())

    def step(*flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        obs = flat[-1]
        x = obs.reshape(obs.shape[0], -1).to(flat[0].dtype)  # as the modules' callers convert
        out = mlp_apply(list(flat[:n]), list(flat[n : 2 * n]), x, activation)[-1]
        return (head(out, tuple(flat[2 * n : -1])),)

    return FusedPolicy(FastKernel(name, step), weights, None, None, (), static=name)
