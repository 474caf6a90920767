"""Greedy policies of MLP learners as fused kernels, so their evaluation runs on the fast path.

PPO's greedy policy is a :class:`~rlsuite.engine.fastpath.FusedPolicy` over its own paired
layout (``ppo.py``). QR-DQN's (``argmax`` of the mean quantile) is a plain MLP followed by a small
head: :func:`greedy_mlp_policy` builds that fused policy from the network's modules, so
:func:`~rlsuite.engine.evaluate.evaluate` runs each step (policy, env step, bookkeeping) as one
kernel instead of a Python loop of module calls. SAC's greedy policy was built this way too and
taken back: on Pendulum a process that compiled the evaluation kernel and one that loaded it
scored the same weights differently (-1615.87329 against -1615.87317,
``tests/test_time_limit.py``); continuous actions carry such rounding into the returns, discrete
ones (an ``argmax``) did not in any test.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from rlsuite.engine.fastpath import FastKernel, FusedPolicy

_ACTIVATIONS: dict[type[nn.Module], Callable[[torch.Tensor], torch.Tensor]] = {
    nn.ReLU: torch.relu, nn.Tanh: torch.tanh,
}


def mlp_layout(net: nn.Sequential) -> tuple[list[nn.Linear], list[Callable]] | None:
    """``(linear layers, activations between them)`` of ``Linear, act, ..., Linear``, or None
    for any other structure (the caller then keeps its module path)."""
    modules = list(net)
    linears, activations = modules[::2], modules[1::2]
    if not linears or not all(type(m) is nn.Linear for m in linears):
        return None
    if len(activations) != len(linears) - 1 or any(type(m) not in _ACTIVATIONS
                                                   for m in activations):
        return None
    return linears, [_ACTIVATIONS[type(m)] for m in activations]


def greedy_mlp_policy(
    name: str,
    net: nn.Sequential,
    head: Callable[[torch.Tensor, tuple[torch.Tensor, ...]], torch.Tensor],
    constants: Callable[[], tuple[torch.Tensor, ...]] = tuple,
) -> FusedPolicy | None:
    """``obs -> head(net(obs), constants)`` as a fused policy over the live weights.

    Args:
        name: shown when its kernels compile.
        net: a ReLU/Tanh MLP (:func:`mlp_layout`); its parameters are read at every evaluation,
            so optimizer steps and ``load_state_dict`` are seen.
        head: the network's output (and the constants) to the env action; traced into the
            kernel, so plain tensor maths only.
        constants: further tensors the head needs (e.g. an action scale), read like the weights.

    Returns:
        The policy, or None where ``net`` is not a plain MLP.
    """
    layout = mlp_layout(net)
    if layout is None:
        return None
    linears, activations = layout
    n = 2 * len(linears)

    def weights() -> tuple[torch.Tensor, ...]:
        return (*[t.detach() for m in linears for t in (m.weight, m.bias)], *constants())

    def step(*flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
        obs = flat[-1]
        x = obs.reshape(obs.shape[0], -1).to(flat[0].dtype)  # as the modules' callers convert
        for i in range(len(linears)):
            x = F.linear(x, flat[2 * i], flat[2 * i + 1])
            if i < len(activations):
                x = activations[i](x)
        return (head(x, tuple(flat[n:-1])),)

    return FusedPolicy(FastKernel(name, step), weights, None, None, (), static=name)
