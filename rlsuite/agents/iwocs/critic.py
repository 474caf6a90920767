"""The extra heads IWOCS trains beside each expert's SAC (paper App. F, "enhanced critic").

* An *unregularized* twin Q of the expert's own policy, target ``r + gamma (1 - terminated)
  min_i Qbar_i(s', a')`` with ``a' ~ pi(s')`` and no entropy term. SAC's soft Q carries the
  entropy bonus, whose scale depends on each expert's temperature, so soft values of different
  experts cannot be compared; the composite policy compares these instead. The paper
  gives Q one more hidden layer than SAC's critic.
* A deterministic next-state predictor ``T_hat(s, a)`` trained with the L1 loss
  ``|T_hat(s, a) - s'|_1`` on the expert's replay ("predictive coding"): its one-step error on the
  current trajectory decides where the expert is trusted (:mod:`rlsuite.agents.iwocs.composite`).
  It predicts ``s + delta`` (a residual parametrization of the same map).

Each has its own Adam, as in the paper (three losses, three optimizers, counting SAC's).
:class:`HeadsTrainer` trains them *inside* :meth:`rlsuite.learners.sac.SAC.learn` through its
training hook, one heads step per SAC gradient step, on batches from the SAC's replay buffer: the
SAC loop is reused, not copied.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from rlsuite.learners.buffers import Transitions
from rlsuite.learners.nets import polyak_update
from rlsuite.learners.sac import SAC, SACNetworks, TwinQ, mlp
from rlsuite.training import TrainingHooks, check_finite


class NextStatePredictor(nn.Module):
    """``T_hat(s, a) = s + f(s, a)``, a deterministic one-step model of the observation."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.net = mlp(obs_dim + act_dim, obs_dim, hidden)

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``[N, obs_dim]`` predicted next observation."""
        o = obs.reshape(obs.shape[0], -1).float()
        return o + self.net(torch.cat([o, action.reshape(len(action), -1).float()], -1))

    def error(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor) -> torch.Tensor:
        """``[N]`` L1 prediction error ``|T_hat(s, a) - s'|_1``."""
        target = next_obs.reshape(next_obs.shape[0], -1).float()
        return (self(obs, action) - target).abs().sum(-1)


class ExpertHeads(nn.Module):
    """The unregularized twin Q (with its Polyak target) and the next-state predictor."""

    def __init__(self, obs_dim: int, act_dim: int, q_hidden: Sequence[int],
                 predictor_hidden: Sequence[int]):
        super().__init__()
        self.q = TwinQ(obs_dim, act_dim, q_hidden)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.predictor = NextStatePredictor(obs_dim, act_dim, predictor_hidden)

    def value(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``[N]`` ``min(Q1, Q2)(s, a)``: the pessimistic unregularized value."""
        q1, q2 = self.q(obs, action)
        return torch.minimum(q1, q2)


def unregularized_q_loss(
    heads: ExpertHeads, actor_nets: SACNetworks, batch: Transitions, gamma: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """``0.5 sum_i E[(Q_i(s, a) - y)^2]``, ``y = r + gamma (1 - term) min_i Qbar_i(s', a')``,
    ``a' ~ pi(s')`` from the expert's current actor (App. F: the value of the same policy without
    the entropy term)."""
    with torch.no_grad():
        next_action, _ = actor_nets.actor.sample(batch.next_obs, generator)
        nq1, nq2 = heads.q_target(batch.next_obs, next_action)
        target = batch.reward + gamma * (~batch.terminated).float() * torch.minimum(nq1, nq2)
    q1, q2 = heads.q(batch.obs, batch.action)
    return 0.5 * ((q1 - target).pow(2) + (q2 - target).pow(2)).mean()


def predictor_loss(heads: ExpertHeads, batch: Transitions) -> torch.Tensor:
    """``E |T_hat(s, a) - s'|_1`` (App. F)."""
    return heads.predictor.error(batch.obs, batch.action, batch.next_obs).mean()


class HeadsTrainer(TrainingHooks):
    """A SAC training hook that takes one heads step per SAC gradient step, then forwards.

    Args:
        heads: the expert's heads.
        lr: Adam step size of both heads (the paper's critic rate, 1e-3).
        gamma, tau, batch_size: as the SAC's.
        generator: the heads' own random stream (batches, next actions).
        forward: optional hook to call after (IWOCS's own logging).
    """

    def __init__(self, heads: ExpertHeads, lr: float, gamma: float, tau: float, batch_size: int,
                 generator: torch.Generator, forward: TrainingHooks | None = None) -> None:
        self.heads, self.gamma, self.tau, self.batch_size = heads, gamma, tau, batch_size
        self.generator = generator
        self.q_opt = torch.optim.Adam(heads.q.parameters(), lr=lr)
        self.p_opt = torch.optim.Adam(heads.predictor.parameters(), lr=lr)
        self.forward = forward
        self.done = 0
        """Heads steps taken (equal to the SAC's ``num_updates`` after each iteration)."""

    def on_iteration(self, agent: Any, step: int, metrics: dict[str, float]) -> None:
        """Catch up with the SAC's gradient steps, then forward the metrics."""
        assert isinstance(agent, SAC)
        due = agent.num_updates - self.done
        q_total = p_total = torch.zeros((), device=agent.device)
        for _ in range(due):
            batch = agent.buffer.sample(self.batch_size, self.generator)
            loss_q = unregularized_q_loss(self.heads, agent.nets, batch, self.gamma, self.generator)
            self.q_opt.zero_grad(set_to_none=True)
            loss_q.backward()
            self.q_opt.step()
            loss_p = predictor_loss(self.heads, batch)
            self.p_opt.zero_grad(set_to_none=True)
            loss_p.backward()
            self.p_opt.step()
            polyak_update(self.heads.q.parameters(), self.heads.q_target.parameters(), self.tau)
            q_total = q_total + loss_q.detach()
            p_total = p_total + loss_p.detach()
        self.done += max(due, 0)
        if due > 0:
            losses = {"iwocs/q_loss": q_total / due, "iwocs/predictor_l1": p_total / due}
            metrics = metrics | check_finite("IWOCS", step, losses, self.heads.named_parameters())
        if self.forward is not None:
            self.forward.on_iteration(agent, step, metrics)
