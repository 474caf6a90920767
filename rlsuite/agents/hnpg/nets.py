"""HNPG's per-time-step networks, stored stacked: one weight tensor ``[H, in, out]`` per layer.

The official code (``models.py``) keeps a Python list of ``H`` policies and ``H`` Q-networks and
calls them one at a time; here layer ``l`` of all ``H`` copies is one tensor, so the networks of all
steps run in one ``baddbmm`` per layer on inputs ``[H, N, in]`` (N states per step).

Sizes and initialisation follow ``models.py``:

* policy ``pi_h``: Linear(D, 16) - tanh - Linear(16, 16) - tanh - Linear(16, A) = mean, with the
  output layer's weights scaled by 0.1 and its bias zeroed, and a state-independent log-std
  parameter (one per step, initialised to 0);
* Q ``f_h``: Linear(D + A, 64) - tanh - Linear(64, 64) - tanh - Linear(64, 1), output layer weights
  x0.1, bias 0; the input is the observation concatenated with the continuous action vector.

Hidden layers use PyTorch's ``nn.Linear`` default (weights and biases uniform in
``+-1/sqrt(fan_in)``), drawn from an explicit generator so a seeded run is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


def _uniform(
    shape: tuple[int, ...], bound: float, generator: torch.Generator, dtype: torch.dtype
) -> torch.Tensor:
    return (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * bound


class StackedMLP(nn.Module):
    """``H`` tanh MLPs with identical shapes, evaluated together.

    Args:
        num: H, the number of stacked networks.
        sizes: ``[in, hidden..., out]``.
        out_scale: multiplies the output layer's initial weights (its bias starts at 0).
        generator: CPU generator for the initial weights.
        dtype: parameter dtype (float64 in the official code, which sets double as default).
    """

    def __init__(
        self,
        num: int,
        sizes: Sequence[int],
        out_scale: float,
        generator: torch.Generator,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.num, self.sizes = int(num), list(sizes)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        last = len(sizes) - 2
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            bound = 1.0 / math.sqrt(fan_in)
            w = _uniform((num, fan_in, fan_out), bound, generator, dtype)
            b = _uniform((num, 1, fan_out), bound, generator, dtype)
            if i == last:  # models.py: weight.data.mul_(0.1), bias.data.mul_(0.0)
                w, b = w * out_scale, torch.zeros_like(b)
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))

    def layers(self) -> list[torch.Tensor]:
        """``[W0, b0, W1, b1, ...]``, each with the leading ``H`` dim."""
        out: list[torch.Tensor] = []
        # the ParameterLists' own dicts: iterating a ParameterList goes through a __getattr__ per
        # item, and this is called ~100 times an iteration at H = 30
        for w, b in zip(self.weights._parameters.values(), self.biases._parameters.values(), strict=True):
            out += [w, b]
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [H, N, in] -> [H, N, out]``: network ``h`` on row block ``h``."""
        return stacked_forward(self.layers(), x)


class _SigmoidTanh(torch.autograd.Function):
    """``tanh(x) = 2 sigmoid(2x) - 1`` with the backward ``g (1 - y^2)``: the same function, about
    3x cheaper than ``torch.tanh`` on this CPU build (measured 174 us vs 64 us on 400 x 64
    float32). Only first derivatives are defined (used by the critic, never inside the NPG's
    double backward)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = torch.sigmoid(2 * x).mul_(2).sub_(1)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        (y,) = ctx.saved_tensors
        return grad * (1 - y * y)


def fast_tanh(x: torch.Tensor) -> torch.Tensor:
    """``tanh`` through ``sigmoid`` (first-order autograd only)."""
    return _SigmoidTanh.apply(x)


def stacked_forward(layers: Sequence[torch.Tensor], x: torch.Tensor, fast: bool = False) -> torch.Tensor:
    """Run stacked tanh-MLP layers ``[W0, b0, W1, b1, ...]`` (each ``[H', ...]``) on ``x [H', N, in]``.

    ``fast`` uses :func:`fast_tanh` (no double backward).
    """
    act = fast_tanh if fast else torch.tanh
    if fast and not torch.is_grad_enabled():
        act = _sigmoid_tanh_
    n = len(layers) // 2
    for i in range(n):
        x = torch.baddbmm(layers[2 * i + 1], x, layers[2 * i])
        if i < n - 1:
            x = act(x)
    return x


_CONSTANTS: dict[tuple[torch.dtype, torch.device], tuple[torch.Tensor, torch.Tensor]] = {}


def _sigmoid_tanh_(x: torch.Tensor) -> torch.Tensor:
    """:func:`fast_tanh`'s forward, in place on ``x`` (a fresh layer output) and without the
    autograd function: the same ops on the same values. Its constants are 0-dim tensors of
    ``x``'s dtype, because a Python number is wrapped as float64 and a float32 op first copies it
    (critic.adam_fit_loop explains)."""
    key = (x.dtype, x.device)
    if key not in _CONSTANTS:
        one = torch.ones((), dtype=x.dtype, device=x.device)
        _CONSTANTS[key] = (one, one * 2)
    one, two = _CONSTANTS[key]
    return x.mul_(two).sigmoid_().mul_(two).sub_(one)


def per_sample_forward(layers: Sequence[torch.Tensor], x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Run network ``index[i]`` on row ``i``: ``x [N, in], index [N] -> [N, out]`` (for ``act``)."""
    picked = [t.index_select(0, index) for t in layers]
    return stacked_forward(picked, x.unsqueeze(1)).squeeze(1)


class StackedGaussianPolicy(nn.Module):
    """``pi_h(a|s) = N(mean_h(s), diag(exp(log_std_h))^2)`` for ``h = 0 .. H-1``."""

    def __init__(
        self,
        horizon: int,
        obs_dim: int,
        act_dim: int,
        hidden: int,
        out_scale: float,
        init_log_std: float,
        generator: torch.Generator,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.mean_net = StackedMLP(horizon, [obs_dim, hidden, hidden, act_dim], out_scale, generator, dtype)
        self.log_std = nn.Parameter(torch.full((horizon, 1, act_dim), float(init_log_std), dtype=dtype))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs [H, N, D] -> (mean [H, N, A], log_std [H, 1, A])``."""
        return self.mean_net(obs), self.log_std

    def sample(self, obs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One action per state, ``[H, N, A]`` (no clipping, as in the official code)."""
        mean, log_std = self(obs)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
        return mean + log_std.exp() * noise


def gaussian_log_prob(action: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Diagonal Gaussian log-density summed over the last dim (``utils.normal_log_density``)."""
    var = torch.exp(2 * log_std)
    return (-(action - mean).pow(2) / (2 * var) - 0.5 * math.log(2 * math.pi) - log_std).sum(-1)


def gaussian_kl(
    mean0: torch.Tensor, log_std0: torch.Tensor, mean1: torch.Tensor, log_std1: torch.Tensor
) -> torch.Tensor:
    """KL(N0 || N1) of diagonal Gaussians, summed over the last dim (``trpo.py`` ``get_kl``)."""
    var0, var1 = torch.exp(2 * log_std0), torch.exp(2 * log_std1)
    return (log_std1 - log_std0 + (var0 + (mean0 - mean1).pow(2)) / (2.0 * var1) - 0.5).sum(-1)


class StackedQ(nn.Module):
    """``f_h(s, a)`` for ``h = 0 .. H-1`` on the concatenation ``[s, a]``."""

    def __init__(
        self,
        horizon: int,
        obs_dim: int,
        act_dim: int,
        hidden: int,
        out_scale: float,
        generator: torch.Generator,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.net = StackedMLP(horizon, [obs_dim + act_dim, hidden, hidden, 1], out_scale, generator, dtype)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``[H, N, D], [H, N, A] -> [H, N]`` (in the critic's dtype)."""
        return q_forward(self.net.layers(), obs, action)


def q_forward(layers: Sequence[torch.Tensor], obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """:meth:`StackedQ.forward` with explicit layers (a slice of the steps, or leaf copies); the
    critic is never differentiated twice, so it uses :func:`fast_tanh`. Inputs are cast to the
    layers' dtype (the critic may run in float32 while the policy runs in float64)."""
    dt = layers[0].dtype
    x = torch.cat([obs.to(dt), action.to(dt)], -1)  # cast, then copy: the same values, half the bytes
    return stacked_forward(layers, x, fast=True).squeeze(-1)


@torch.no_grad()
def state_value(
    policy: StackedGaussianPolicy,
    q: StackedQ,
    obs: torch.Tensor,
    samples: int,
    generator: torch.Generator,
    mean: torch.Tensor | None = None,
) -> torch.Tensor:
    """``V_h(s) = mean_k f_h(s, a_k)``, ``a_k ~ pi_h(s)`` i.i.d. (``models.py`` ``QValue.get_value``
    with its 10 samples), for every step at once: ``obs [H, N, D] -> [H, N]``. ``mean`` is the
    policy mean at ``obs`` where the caller already has it (the same numbers: it is not recomputed)."""
    h, n, d = obs.shape
    # The policy mean is computed once per state and repeated (the same numbers as running the
    # policy on the repeated states); the noise has the repeated shape, drawn in the same order.
    if mean is None:
        mean = policy.mean_net(obs)
    a = mean.shape[-1]
    mean = mean.unsqueeze(1).expand(h, samples, n, a).reshape(h, samples * n, a)
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    actions = mean + policy.log_std.exp() * noise
    # The critic's input [s, a] over the repeated states, written straight in the critic's dtype
    # (q_forward's cat of the repeated obs and the actions, cast: the same values, two copies fewer)
    layers = q.net.layers()
    x = torch.empty(h, samples, n, d + a, dtype=layers[0].dtype, device=obs.device)
    x[..., :d] = obs.unsqueeze(1)
    x[..., d:] = actions.view(h, samples, n, a)
    value = stacked_forward(layers, x.view(h, samples * n, d + a), fast=True).squeeze(-1)
    return value.reshape(h, samples, n).mean(1).to(obs.dtype)
