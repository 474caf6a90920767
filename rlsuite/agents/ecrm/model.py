"""The ECRM agent's parameters: first-step and later-stage actors, thresholds, critic, baseline.

Tabular parameterizations (``softmax``, ``direct``) index ``[S, A]`` tables by the state; the
``neural`` one feeds the observation (one-hot for discrete ones) to MLPs, and the later-stage actor
also the previous stage's threshold when ``condition_on_prev``. Thresholds ``eta(s, a)``, the
actor-critic's ``Q(s, a)`` and the baseline ``b(first, s)`` are tables on discrete observations
and MLPs otherwise.
"""

from __future__ import annotations

import torch
from torch import nn

from rlsuite.agents.ecrm.config import ECRMConfig
from rlsuite.core import spaces
from rlsuite.learners.nets import flat_dim, mlp


class ECRMModel(nn.Module):
    """Actors, thresholds, critic and baseline of one ECRM agent (module docstring)."""

    def __init__(self, obs_space: spaces.Space, action_space: spaces.Space, cfg: ECRMConfig) -> None:
        super().__init__()
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(
                f"the ECRM agent needs a Discrete action space; got {type(action_space).__name__}"
            )
        self.kind = cfg.parameterization
        self.num_actions = a = action_space.n
        self.discrete_obs = isinstance(obs_space, spaces.Discrete)
        if self.kind != "neural" and not self.discrete_obs:
            raise ValueError(
                f"parameterization={self.kind!r} needs a Discrete observation space (a tabular "
                f"env); got {type(obs_space).__name__}: use parameterization='neural'"
            )
        self.obs_dim = obs_space.n if self.discrete_obs else flat_dim(obs_space.shape)
        self.share_first = cfg.share_first_policy
        self.condition_on_prev = cfg.condition_on_prev
        s = self.obs_dim
        if self.kind == "softmax":
            self.actor = nn.Parameter(torch.zeros(s, a))
            self.actor_first = None if self.share_first else nn.Parameter(torch.zeros(s, a))
        elif self.kind == "direct":  # probabilities, updated by projected ascent (not autograd)
            self.actor = nn.Parameter(torch.full((s, a), 1.0 / a))
            self.actor_first = None if self.share_first else nn.Parameter(torch.full((s, a), 1.0 / a))
        else:
            extra = 1 if self.condition_on_prev else 0
            self.actor = mlp(s + extra, a, cfg.hidden_sizes, out_gain=0.01)
            self.actor_first = None if self.share_first else mlp(s, a, cfg.hidden_sizes, out_gain=0.01)
        if self.discrete_obs:
            self.eta = nn.Parameter(torch.zeros(s, a))
            self.critic = nn.Parameter(torch.zeros(s, a))
            self.baseline = nn.Parameter(torch.zeros(2, s))
        else:
            self.eta = mlp(s, a, cfg.hidden_sizes, out_gain=1.0)
            self.critic = mlp(s, a, cfg.hidden_sizes, out_gain=1.0)
            self.baseline = mlp(s + 2, 1, cfg.hidden_sizes, out_gain=1.0)

    # -- features ---------------------------------------------------------------------------------
    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """Network input ``[N, obs_dim]``."""
        if self.discrete_obs:
            return nn.functional.one_hot(obs.long(), self.obs_dim).float()
        return obs.reshape(obs.shape[0], -1).float()

    # -- actors -----------------------------------------------------------------------------------
    def actor_parameters(self) -> list[torch.Tensor]:
        """The parameters the actor step updates (both actors)."""
        parts: list[nn.Module | torch.Tensor] = [self.actor]
        if self.actor_first is not None:
            parts.append(self.actor_first)
        out: list[torch.Tensor] = []
        for p in parts:
            out += list(p.parameters()) if isinstance(p, nn.Module) else [p]
        return out

    def probs(self, obs: torch.Tensor, first: torch.Tensor, eta_prev: torch.Tensor) -> torch.Tensor:
        """``[N, A]`` action probabilities; ``first [N]`` bool picks the first-step actor."""
        later = self._probs(self.actor, obs, eta_prev if self.condition_on_prev else None)
        if self.actor_first is None:
            return later
        first_p = self._probs(self.actor_first, obs, None)
        return torch.where(first.unsqueeze(-1), first_p, later)

    def _probs(self, actor: nn.Module | torch.Tensor, obs: torch.Tensor,
               eta_prev: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "softmax":
            return torch.softmax(actor[obs], -1)
        if self.kind == "direct":
            return actor[obs]
        x = self.features(obs)
        if eta_prev is not None:
            x = torch.cat([x, eta_prev.float().unsqueeze(-1)], -1)
        return torch.softmax(actor(x), -1)

    def table_policies(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(later, first)`` ``[S, A]`` float64 policies of a tabular agent (for exact ECRMs);
        a neural actor is read at every one-hot state (needs ``condition_on_prev`` off)."""
        if not self.discrete_obs or self.condition_on_prev:
            raise ValueError("table_policies needs a discrete observation space and no eta input")
        states = torch.arange(self.obs_dim, device=self.eta.device)
        zeros = torch.zeros(self.obs_dim, device=states.device)
        later = self.probs(states, torch.zeros_like(states, dtype=torch.bool), zeros)
        first = self.probs(states, torch.ones_like(states, dtype=torch.bool), zeros)
        return later.double(), first.double()

    # -- thresholds, critic, baseline ---------------------------------------------------------------
    def thresholds(self, obs: torch.Tensor) -> torch.Tensor:
        """``eta(s, .)``, ``[N, A]``."""
        if self.discrete_obs:
            return self.eta[obs]
        return self.eta(self.features(obs))

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Critic ``Q(s, .)``, ``[N, A]`` (actor-critic)."""
        if self.discrete_obs:
            return self.critic[obs]
        return self.critic(self.features(obs))

    def baseline_value(self, obs: torch.Tensor, first: torch.Tensor, eta_prev: torch.Tensor) -> torch.Tensor:
        """``b(first, s)`` (tables) or ``b(s, first, eta_prev)`` (MLP), ``[N]``; never a_t."""
        if self.discrete_obs:
            return self.baseline[first.long(), obs]
        x = torch.cat([self.features(obs), first.float().unsqueeze(-1), eta_prev.float().unsqueeze(-1)], -1)
        return self.baseline(x).squeeze(-1)
