"""QR-DQN's gradient step on the fast path: closed-form gradients into a flat block, fused Adam.

The same maths as the eager step (:func:`rlsuite.learners.qrdqn.qrdqn_loss`, autograd,
``clip_grad_norm_``, ``torch.optim.Adam``), with fewer ops and no autograd graph:

* the target network's greedy quantiles and the online network's quantiles come from hand-written
  forward passes of the ReLU MLPs (:mod:`rlsuite.learners.mlp_grad`), keeping the online one's
  activations;
* the loss's gradient with respect to the chosen action's quantiles is the one the loss's own
  forward pass already computes (:func:`rlsuite.learners.qrdqn.pairwise_loss_rows`, without the
  target's gradient, which the eager step discards); it is scattered into the ``[B, A, N]`` output
  and backpropagated by hand straight into the optimizer's flat gradient block;
* clipping is one norm over that block and Adam one fused call
  (:class:`~rlsuite.learners.flat.FlatOptimizer`).

``tests/test_quantile_fast.py`` checks it against the eager step in float64 (to 1e-10 over 40
steps, clipped and not) and over a float32 training run.
"""

from __future__ import annotations

import torch

from rlsuite.learners.buffers import Transitions
from rlsuite.learners.flat import FlatOptimizer
from rlsuite.learners.mlp_grad import mlp_backward, mlp_forward, mlp_layers
from rlsuite.learners.qrdqn import (
    QRDQNConfig,
    QuantileNetwork,
    action_quantiles,
    clipped_step,
    greedy_action,
    pairwise_loss_rows,
    target_quantiles,
)


class FastQuantileStep:
    """The loss, gradient and Adam step of QR-DQN for one agent's networks and flat Adam.

    Args:
        online, target: the agent's :class:`~rlsuite.learners.qrdqn.QuantileNetwork` pair (ReLU
            MLPs as :func:`rlsuite.learners.nets.mlp` builds them; anything else raises).
        optimizer: the online network's :class:`FlatOptimizer`; the gradient views are fetched
            again whenever it has rebound its blocks (after a ``.to``/``.double()``).
    """

    def __init__(self, online: QuantileNetwork, target: QuantileNetwork, optimizer: FlatOptimizer) -> None:
        if not isinstance(optimizer, FlatOptimizer):
            raise TypeError(f"FastQuantileStep needs a FlatOptimizer, got {type(optimizer).__name__}")
        self.online, self.target, self.optimizer = online, target, optimizer
        self.layers = mlp_layers(online.net, "relu")
        self.target_layers = mlp_layers(target.net, "relu")
        self._flat = None
        self._weight_grads: list[torch.Tensor] = []
        self._bias_grads: list[torch.Tensor] = []

    def _grads(self) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The per-layer gradient views of the optimizer's current block (its ``zero_grad`` rebinds
        the block first where the parameters were replaced)."""
        self.optimizer.zero_grad()  # one op on the block; keeps every .grad a view of it
        flat = self.optimizer.flat
        if flat is not self._flat:
            grads = {id(p): g for p, g in zip(flat.params, flat.grads, strict=True)}
            self._weight_grads = [grads[id(m.weight)] for m in self.layers]
            self._bias_grads = [grads[id(m.bias)] for m in self.layers]
            self._flat = flat
        return self._weight_grads, self._bias_grads

    @torch.no_grad()
    def step(self, batch: Transitions, config: QRDQNConfig, tau_hat: torch.Tensor) -> dict[str, torch.Tensor]:
        """One gradient step on ``batch`` (the target update is the caller's, before this);
        returns ``loss`` and ``q_mean`` as :func:`~rlsuite.learners.qrdqn.qrdqn_loss` does."""
        b, a, n = batch.obs.shape[0], self.online.n_actions, self.online.n_quantiles
        dtype = self.layers[0].weight.dtype
        next_all = mlp_forward(self.target_layers, batch.next_obs.reshape(b, -1).to(dtype), "relu")[-1]
        next_all = next_all.view(b, a, n)
        goal = target_quantiles(batch.reward, batch.terminated,
                                action_quantiles(next_all, greedy_action(next_all)), config.gamma)
        loss, current = self.online_step(batch.obs.reshape(b, -1).to(dtype), batch.action, goal,
                                         tau_hat, config.kappa, config.max_grad_norm)
        return {"loss": loss.mean(), "q_mean": current.mean()}

    @torch.no_grad()
    def online_step(self, x: torch.Tensor, action: torch.Tensor, goal: torch.Tensor,
                    tau_hat: torch.Tensor, kappa: float, max_grad_norm: float | None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The online network's part of the step: its quantiles on ``x`` (``[B, in]``, already in
        the network's dtype: the observation, or DηN's transformed one, which has no parameters),
        the quantile Huber loss of ``action``'s quantiles towards ``goal [B, M]`` (fixed), its
        gradient backpropagated into the flat block, the clip and the fused Adam step.

        Returns ``(loss per row [B], the chosen action's quantiles [B, N])``."""
        online = self.online
        b, a, n = x.shape[0], online.n_actions, online.n_quantiles
        acts = mlp_forward(self.layers, x, "relu")
        out = acts[-1].view(b, a, n)
        index = action.long().view(-1, 1, 1).expand(-1, 1, n)
        current = out.gather(1, index).squeeze(1)
        loss, d_current, _ = pairwise_loss_rows(current, goal, tau_hat, kappa, target_grad=False)
        # d mean(loss) / d out: each row's gradient / B at its action's quantiles, zero elsewhere.
        grad_out = torch.zeros_like(out).scatter_(1, index, d_current.div_(b).unsqueeze(1))
        weight_grads, bias_grads = self._grads()
        mlp_backward(self.layers, acts, grad_out.view(b, a * n), weight_grads, bias_grads, "relu")
        clipped_step(self.optimizer, online, max_grad_norm)
        return loss, current
