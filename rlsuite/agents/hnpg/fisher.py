"""Closed-form surrogate gradient and Fisher-vector product of HNPG's stacked Gaussian policies.

The official ``trpo.py`` (after ikostrikov/pytorch-trpo) gets both by autograd: the gradient of the
surrogate ``mean_i A_i exp(log pi(a_i|s_i) - log pi_old(a_i|s_i))`` and the Hessian-vector product of
the mean ``KL(pi_old || pi)`` by double backprop. At ``theta = theta_old`` both have closed forms for
a Gaussian with a state-independent log-std (``mu = MLP(s)``, ``sigma = exp(log_std)``):

* gradient: ``ratio = 1`` exactly, so ``g = mean_i A_i grad log pi(a_i|s_i)``; with ``r = a - mu``,
  ``d log pi / d mu = r / sigma^2`` (back-propagated through the MLP) and
  ``d log pi / d log_std = r^2 / sigma^2 - 1``;
* Fisher: the KL's Hessian at ``theta_old`` is ``mean_i J_i^T diag(1 / sigma^2) J_i`` on the MLP's
  parameters (``J_i = d mu(s_i) / d theta``; the term with the MLP's second derivative is multiplied
  by ``mu - mu_old = 0``), ``2 I`` on the log-std, and zero between the two (its factor is also
  ``mu - mu_old``). So ``F v`` is one forward-mode pass (``J v``) and one reverse pass (``J^T u``).

Both are the same mathematical quantities as the autograd versions (tests/test_hnpg.py compares them
to double backprop to 1e-12); each product costs about a tenth of a double-backward pass.
All tensors carry the leading step dim ``H``; parameters are the policy's
``[W0, b0, W1, b1, ..., W_out, b_out, log_std]`` as in :func:`rlsuite.agents.hnpg.agent.npg_update`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


class StackedGaussianFisher:
    """Gradient and Fisher products of ``H`` tanh-MLP Gaussian policies at their current parameters.

    Args:
        layers: ``[W0, b0, W1, b1, ...]`` of the mean MLPs, each ``[H, ...]`` (``W [H, in, out]``,
            ``b [H, 1, out]``).
        log_std: ``[H, 1, A]``.
        states: ``[H, N, D]`` update states (the mean over ``N`` is the per-step average).
    """

    def __init__(self, layers: Sequence[torch.Tensor], log_std: torch.Tensor, states: torch.Tensor) -> None:
        with torch.no_grad():
            self.weights = [w.detach() for w in layers[0::2]]
            self.acts = [states]  # inputs of each layer
            self.derivs: list[torch.Tensor] = []  # tanh' = 1 - a^2 of each hidden layer
            x = states
            n = len(self.weights)
            for i in range(n):
                x = torch.baddbmm(layers[2 * i + 1].detach(), x, self.weights[i])
                if i < n - 1:
                    x = torch.tanh(x)
                    self.acts.append(x)
                    self.derivs.append(1 - x * x)
            self.mean = x
            self.inv_var = torch.exp(-2 * log_std.detach())
            self.count = states.shape[1]

    def backward(self, u: torch.Tensor) -> list[torch.Tensor]:
        """``J^T u`` for output cotangents ``u [H, N, A]``: ``[gW0, gb0, gW1, gb1, ...]``."""
        out: list[torch.Tensor] = []
        n = len(self.weights)
        for i in range(n - 1, -1, -1):
            out.append(u.sum(1, keepdim=True))
            out.append(torch.bmm(self.acts[i].transpose(1, 2), u))
            if i > 0:
                u = torch.bmm(u, self.weights[i].transpose(1, 2)) * self.derivs[i - 1]
        out.reverse()
        return out

    def forward_tangent(self, tangent: Sequence[torch.Tensor]) -> torch.Tensor:
        """``J v`` for parameter tangents ``[dW0, db0, ...]``: ``[H, N, A]``."""
        n = len(self.weights)
        dz = torch.baddbmm(tangent[1], self.acts[0], tangent[0])
        for i in range(1, n):
            da = dz * self.derivs[i - 1]
            dz = torch.baddbmm(tangent[2 * i + 1], da, self.weights[i])
            dz = dz.baddbmm_(self.acts[i], tangent[2 * i])
        return dz

    def surrogate_gradient(self, actions: torch.Tensor, advantages: torch.Tensor) -> list[torch.Tensor]:
        """Gradient of ``mean_i A_i pi(a_i|s_i) / pi_old(a_i|s_i)`` at ``theta_old``, as the list of
        parameter gradients (log-std last)."""
        resid = (actions - self.mean) * self.inv_var  # d log pi / d mu
        weight = (advantages / self.count).unsqueeze(-1)
        grads = self.backward(weight * resid)
        log_std_grad = (weight * (resid * (actions - self.mean) - 1)).sum(1, keepdim=True)
        return grads + [log_std_grad]

    def fisher_product(self, vector: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``F v`` (no damping) for ``v = [dW0, db0, ..., d log_std]``."""
        u = self.forward_tangent(vector[:-1]) * (self.inv_var / self.count)
        return self.backward(u) + [2 * vector[-1]]
