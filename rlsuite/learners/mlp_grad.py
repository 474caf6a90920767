"""Forward and backward passes of a tanh or ReLU MLP (:func:`rlsuite.learners.nets.mlp`) written out
by hand.

At the learners' sizes (a 64x64 MLP on a few thousand rows, one CPU thread) autograd's graph
building and dispatch cost about as much as the arithmetic: PPO's minibatch gradient took ~3.7 ms
with autograd and ~2.5 ms as these explicit matmuls (measured in one process, CPU time). The
backward pass writes each layer's gradient into caller-given tensors (views of a flat block,
:class:`rlsuite.learners.flat.FlatParams`) with ``out=``, so no per-parameter gradient is
allocated. ``tests/test_ppo_fast.py`` checks both passes against autograd (tanh: PPO's networks),
``tests/test_quantile_fast.py`` the ReLU ones (QR-DQN's quantile network).
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}
"""The hidden activations the hand-written passes support, by the name the passes take."""


def mlp_layers(net: nn.Module, activation: str = "tanh") -> list[nn.Linear]:
    """The ``nn.Linear`` layers of ``net``, which must be ``Linear (Act Linear)*`` as
    :func:`rlsuite.learners.nets.mlp` builds it, ``Act`` the module of ``activation``
    (a key of :data:`ACTIVATIONS`).

    Raises:
        ValueError: ``net`` is anything else (the hand-written passes would compute another
            function), or ``activation`` is not supported.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"mlp_layers: activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    act = ACTIVATIONS[activation]
    modules = list(net.children()) if isinstance(net, nn.Sequential) else [net]
    ok = bool(modules) and len(modules) % 2 == 1 and all(
        isinstance(m, nn.Linear if i % 2 == 0 else act) for i, m in enumerate(modules))
    if not ok:
        raise ValueError(f"mlp_layers: expected Linear ({act.__name__} Linear)*, got {net}")
    return [m for m in modules if isinstance(m, nn.Linear)]


def tanh_mlp_layers(net: nn.Module) -> list[nn.Linear]:
    """:func:`mlp_layers` of a tanh MLP (the default activation of :func:`rlsuite.learners.nets.mlp`)."""
    return mlp_layers(net, "tanh")


LayerTensors = tuple[list[torch.Tensor], list[torch.Tensor]]
"""``(weights, biases)`` of an MLP's layers, detached: what :func:`layer_tensors` returns."""


def layer_tensors(layers: list[nn.Linear]) -> LayerTensors:
    """The detached weights and biases of ``layers`` (views of the parameters' storage, so they
    follow in-place optimizer steps): fetched once, they spare the passes a module attribute
    lookup and a ``detach`` per layer and call. Fetch them again after the parameters' ``.data``
    was replaced (a ``.to``, a :class:`~rlsuite.learners.flat.FlatParams` binding)."""
    return [m.weight.detach() for m in layers], [m.bias.detach() for m in layers]


def mlp_forward(layers: list[nn.Linear], x: torch.Tensor, activation: str = "tanh",
                tensors: LayerTensors | None = None) -> list[torch.Tensor]:
    """The activations ``[x, h_1, ..., h_{L-1}, out]`` of the MLP ``layers`` (hidden activation
    ``activation``: ``"tanh"`` or ``"relu"``) on ``x [N, in]`` (no autograd graph; the hidden ones
    are what :func:`mlp_backward` needs). ``tensors``: the layers' :func:`layer_tensors`, when the
    caller keeps them."""
    weights, biases = tensors or layer_tensors(layers)
    acts = [x]
    last = len(weights) - 1
    for i, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
        z = torch.addmm(bias, acts[-1], weight.T)
        if i < last:  # in place: the pre-activation is not needed
            z = z.tanh_() if activation == "tanh" else z.relu_()
        acts.append(z)
    return acts


def mlp_backward(
    layers: list[nn.Linear],
    acts: list[torch.Tensor],
    grad_out: torch.Tensor,
    weight_grads: list[torch.Tensor],
    bias_grads: list[torch.Tensor],
    activation: str = "tanh",
    tensors: LayerTensors | None = None,
) -> None:
    """Backpropagate ``grad_out`` (d loss / d out, ``[N, out]``) through the MLP whose
    :func:`mlp_forward` (with the same ``activation``) gave ``acts``; write d loss / d W_i into
    ``weight_grads[i]`` and d loss / d b_i into ``bias_grads[i]`` (overwritten, not accumulated).
    The input gets no gradient. ``tensors``: the layers' :func:`layer_tensors`, when the caller
    keeps them."""
    weights = (tensors or layer_tensors(layers))[0]
    g = grad_out
    for i in range(len(weights) - 1, -1, -1):
        torch.sum(g, 0, out=bias_grads[i])
        # dW = g^T a, computed as (a^T g)^T: MKL is ~3x faster on the thin first and last layers
        # in this orientation (64x2048x4: 11 us against 38 us), the same on square ones.
        weight_grads[i].copy_(torch.mm(acts[i].T, g).T)
        if i > 0:  # through the layer, then the activation's derivative at the layer's input
            g = _activation_backward(torch.mm(g, weights[i]), acts[i], activation)


def mlp_apply(weights: list[torch.Tensor], biases: list[torch.Tensor], x: torch.Tensor,
              activation: str = "tanh") -> list[torch.Tensor]:
    """:func:`mlp_forward` as a pure function of the weights (nothing written in place): the
    form a compiled kernel traces (:class:`rlsuite.learners.ppo_fast.CompiledGradient`,
    :mod:`rlsuite.learners.sac_fast`). ``activation``: ``"tanh"`` or ``"relu"``."""
    act = torch.tanh if activation == "tanh" else torch.relu
    acts = [x]
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        z = torch.addmm(b, acts[-1], w.T)
        acts.append(act(z) if i < len(weights) - 1 else z)
    return acts


def _activation_backward(g: torch.Tensor, h: torch.Tensor, activation: str) -> torch.Tensor:
    """``g`` times the activation's derivative, from the activation's output ``h`` (autograd's
    own backward ops: tanh' = 1 - h^2, relu' = 1{h > 0})."""
    if activation == "tanh":
        return torch.ops.aten.tanh_backward(g, h)
    return torch.ops.aten.threshold_backward(g, h, 0)


def mlp_gradients(weights: list[torch.Tensor], acts: list[torch.Tensor], grad_out: torch.Tensor,
                  activation: str = "tanh") -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """:func:`mlp_backward` as a pure function: ``(d loss / d W_i, d loss / d b_i)`` for every
    layer, from the activations :func:`mlp_apply` (with the same ``activation``) returned."""
    g = grad_out
    weight_grads: list[torch.Tensor] = [g] * len(weights)
    bias_grads: list[torch.Tensor] = [g] * len(weights)
    for i in range(len(weights) - 1, -1, -1):
        bias_grads[i] = g.sum(0)
        weight_grads[i] = torch.mm(g.T, acts[i])
        if i > 0:  # through the layer, then the activation's derivative at the layer's input
            g = _activation_backward(torch.mm(g, weights[i]), acts[i], activation)
    return weight_grads, bias_grads


def mlp_input_gradient(weights: list[torch.Tensor], acts: list[torch.Tensor],
                       grad_out: torch.Tensor, activation: str = "tanh") -> torch.Tensor:
    """d loss / d x ``[N, in]`` of the MLP whose :func:`mlp_apply` gave ``acts``, without the
    weights' gradients (a frozen network the gradient only passes through: SAC's critics
    under the actor's loss)."""
    g = grad_out
    for i in range(len(weights) - 1, 0, -1):
        g = _activation_backward(torch.mm(g, weights[i]), acts[i], activation)
    return torch.mm(g, weights[0])


def tanh_mlp_apply(weights: list[torch.Tensor], biases: list[torch.Tensor],
                   x: torch.Tensor) -> list[torch.Tensor]:
    """:func:`mlp_apply` of a tanh MLP."""
    return mlp_apply(weights, biases, x, "tanh")


def tanh_mlp_gradients(weights: list[torch.Tensor], acts: list[torch.Tensor],
                       grad_out: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """:func:`mlp_gradients` of a tanh MLP."""
    return mlp_gradients(weights, acts, grad_out, "tanh")
