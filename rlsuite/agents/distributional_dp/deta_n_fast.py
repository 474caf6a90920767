"""DηN's gradient step on QR-DQN's written-out fast path (:mod:`rlsuite.learners.qrdqn_fast`).

DηN's online network is QR-DQN's ReLU quantile MLP after a parameter-free input transform
(:meth:`~rlsuite.agents.distributional_dp.deta_n.StockQuantileNetwork.features`: the scaled
observation, optionally the time one-hot). So with the quantile head its gradient step is QR-DQN's
online step (:meth:`~rlsuite.learners.qrdqn_fast.FastQuantileStep.online_step`: hand-written
forward and backward into the flat gradient block, one clip, one fused Adam call) on the
transformed input, towards DηN's own target, computed under ``no_grad`` (the target MLP by the
hand-written forward pass, the rest eager)
(:func:`~rlsuite.agents.distributional_dp.deta_n.deta_n_bootstrap`: the target network's
quantiles at its greedy-by-objective action at ``(s', c')``). Same maths as the eager
:func:`~rlsuite.agents.distributional_dp.deta_n.deta_n_loss` + autograd + Adam step; rounding
may differ. ``tests/test_deta_n_fast.py`` checks it against the eager step.

Where it does not apply (a categorical head, a network off the CPU or not float32, an optimizer
that is not a :class:`~rlsuite.learners.flat.FlatOptimizer`) :func:`fast_step_applies` says so and
DηN keeps its eager step.
"""

from __future__ import annotations

import torch
from torch import nn

from rlsuite.agents.distributional_dp import objectives as obj_lib
from rlsuite.agents.distributional_dp.deta_n import (
    CategoricalHead,
    QuantileHead,
    StockQuantileNetwork,
    deta_n_bootstrap,
)
from rlsuite.learners.buffers import Transitions
from rlsuite.learners.flat import FlatOptimizer
from rlsuite.learners.mlp_grad import mlp_forward, mlp_layers
from rlsuite.learners.qrdqn import target_quantiles
from rlsuite.learners.qrdqn_fast import FastQuantileStep


def fast_step_applies(net: nn.Module, head: QuantileHead | CategoricalHead, optimizer: object) -> bool:
    """Whether :class:`FastDetaNStep` computes DηN's step for ``net`` / ``head`` / ``optimizer``:
    the quantile head, a :class:`StockQuantileNetwork` whose body is a plain ReLU MLP in float32 on
    the CPU (what the hand-written passes were checked for), and a flat optimizer."""
    if not (isinstance(head, QuantileHead) and isinstance(net, StockQuantileNetwork)
            and isinstance(optimizer, FlatOptimizer)):
        return False
    try:
        layers = mlp_layers(net.body.net, "relu")
    except ValueError:
        return False
    return all(p.device.type == "cpu" and p.dtype == torch.float32
               for m in layers for p in (m.weight, m.bias))


class FastDetaNStep:
    """DηN's loss, gradient and Adam step with the quantile head, for one agent's networks.

    Args:
        online, target: the agent's :class:`StockQuantileNetwork` pair.
        optimizer: the online network's :class:`FlatOptimizer` (``quantile_optimizer`` on the
            fast path).
    """

    def __init__(self, online: StockQuantileNetwork, target: StockQuantileNetwork,
                 optimizer: FlatOptimizer) -> None:
        self.online, self.target = online, target
        # QR-DQN's kernel on the bodies: the transform in front has no parameters.
        self.kernel = FastQuantileStep(online.body, target.body, optimizer)

    def _target_outputs(self, obs: torch.Tensor) -> torch.Tensor:
        """The target network's raw outputs ``[B, A, N]``, its MLP by the hand-written forward pass
        (the module's forward, without ``nn.Sequential``'s per-layer dispatch)."""
        body = self.target.body
        out = mlp_forward(self.kernel.target_layers, self.target.features(obs), "relu")[-1]
        return out.view(-1, body.n_actions, body.n_quantiles)

    @torch.no_grad()
    def step(self, batch: Transitions, objective: obj_lib.Objective, stock_col: int, gamma: float,
             head: QuantileHead, time_in_obs: bool, max_grad_norm: float | None
             ) -> dict[str, torch.Tensor]:
        """One gradient step on the (already relabelled) ``batch``; returns ``loss`` and
        ``q_mean`` as :func:`~rlsuite.agents.distributional_dp.deta_n.deta_n_loss` does. The
        target update is the caller's."""
        next_out, done = deta_n_bootstrap(self._target_outputs, batch, objective, stock_col, head,
                                          time_in_obs)
        goal = target_quantiles(batch.reward, done, next_out, gamma)
        loss, current = self.kernel.online_step(self.online.features(batch.obs), batch.action, goal,
                                                head.tau_hat, head.kappa, max_grad_norm)
        # q_mean as the eager statistics take it (mean over quantiles, then over the batch)
        return {"loss": loss.mean(), "q_mean": current.mean(-1).mean()}
