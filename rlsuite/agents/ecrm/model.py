"""The ECRM agent's parameters: first-step and later-stage actors, thresholds, critic, baseline.

Tabular parameterizations (``softmax``, ``direct``) index ``[S, A]`` tables by the state; the
``neural`` one feeds the observation (one-hot for discrete ones) to MLPs, and the later-stage actor
also the previous stage's threshold when ``condition_on_prev``. For a Box action space the neural
actors are Gaussian (an MLP mean, a state-independent log standard deviation per actor, no
squashing: the env clips) and ``eta(s, a)`` is an MLP of the state and the action. Otherwise
thresholds ``eta(s, a)``, the actor-critic's ``Q(s, a)`` and the baseline ``b(first, s)`` are
tables on discrete observations and MLPs on continuous ones.
"""

from __future__ import annotations

import torch
from torch import nn

from rlsuite.agents.ecrm.config import ECRMConfig
from rlsuite.core import spaces
from rlsuite.learners.nets import flat_dim, mlp


def sample_categorical(probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Inverse-CDF draws from ``probs [N, A]`` (rows may hold exact zeros)."""
    u = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device, dtype=probs.dtype)
    cdf = torch.cumsum(probs, -1)
    return (cdf < u * cdf[:, -1:]).sum(-1).clamp(max=probs.shape[-1] - 1)


class ECRMModel(nn.Module):
    """Actors, thresholds, critic and baseline of one ECRM agent (module docstring)."""

    def __init__(self, obs_space: spaces.Space, action_space: spaces.Space, cfg: ECRMConfig) -> None:
        super().__init__()
        self.kind = cfg.parameterization
        self.continuous = isinstance(action_space, spaces.Box)
        if not (self.continuous or isinstance(action_space, spaces.Discrete)):
            raise ValueError(
                f"the ECRM agent needs a Discrete or Box action space; got {type(action_space).__name__}"
            )
        if self.continuous and self.kind != "neural":
            raise ValueError(f"a Box action space needs parameterization='neural' (a Gaussian "
                             f"policy); got parameterization={self.kind!r}")
        # Discrete: the number of actions; Box: the action dimension (Gaussian mean / eta input).
        self.num_actions = a = flat_dim(action_space.shape) if self.continuous else action_space.n
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
        if self.continuous:  # Gaussian: state-independent log standard deviations per actor
            self.log_std = nn.Parameter(torch.full((a,), cfg.init_log_std))
            self.log_std_first = (None if self.share_first
                                  else nn.Parameter(torch.full((a,), cfg.init_log_std)))
        if self.discrete_obs:
            self.eta = nn.Parameter(torch.zeros(s, a))
            self.critic = nn.Parameter(torch.zeros(s, a))
            self.baseline = nn.Parameter(torch.zeros(2, s))
            # Closed-form NPG: Monte-Carlo tables [later pair value, later stage signal, own
            # reward, first pair value][S, A]
            # and which cells have an estimate (buffers: not trained by autograd, saved).
            self.register_buffer("eta_visits", torch.zeros(s, a))  # threshold updates per cell
            self.register_buffer("npg_q", torch.zeros(4, s, a))
            self.register_buffer("npg_seen", torch.zeros(4, s, a, dtype=torch.bool))
        elif self.continuous:  # eta(s, a) and Q(s, a) take the action as an input
            self.eta = mlp(s + a, 1, cfg.hidden_sizes, out_gain=1.0)
            self.critic = mlp(s + a, 1, cfg.hidden_sizes, out_gain=1.0)
            self.baseline = mlp(s + 2, 1, cfg.hidden_sizes, out_gain=1.0)
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
        if self.continuous:
            parts += [p for p in (self.log_std, self.log_std_first) if p is not None]
        out: list[torch.Tensor] = []
        for p in parts:
            out += list(p.parameters()) if isinstance(p, nn.Module) else [p]
        return out

    def distribution(self, obs: torch.Tensor, first: torch.Tensor, eta_prev: torch.Tensor
                     ) -> torch.distributions.Distribution:
        """The action law per row: ``Categorical`` (discrete) or a diagonal ``Normal`` (Box)."""
        if not self.continuous:
            return torch.distributions.Categorical(probs=self.probs(obs, first, eta_prev))
        mean, log_std = self._gaussian(obs, first, eta_prev)
        return torch.distributions.Independent(torch.distributions.Normal(mean, log_std.exp()), 1)

    def _gaussian(self, obs: torch.Tensor, first: torch.Tensor, eta_prev: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.features(obs)
        xin = torch.cat([x, eta_prev.float().unsqueeze(-1)], -1) if self.condition_on_prev else x
        mean, log_std = self.actor(xin), self.log_std.expand(x.shape[0], -1)
        if self.actor_first is not None:
            assert self.log_std_first is not None
            pick = first.unsqueeze(-1)
            mean = torch.where(pick, self.actor_first(x), mean)
            log_std = torch.where(pick, self.log_std_first.expand_as(log_std), log_std)
        return mean, log_std

    def log_prob(self, obs: torch.Tensor, first: torch.Tensor, eta_prev: torch.Tensor,
                 action: torch.Tensor) -> torch.Tensor:
        """``[N]`` log-probabilities (densities for Box actions) of ``action``."""
        if self.continuous:
            return self.distribution(obs, first, eta_prev).log_prob(action)
        probs = self.probs(obs, first, eta_prev)
        return torch.log(probs.gather(1, action.long().unsqueeze(1)).squeeze(1).clamp_min(1e-30))

    def sample(self, obs: torch.Tensor, first: torch.Tensor, eta_prev: torch.Tensor,
               generator: torch.Generator) -> torch.Tensor:
        """Actions drawn with ``generator`` (``[N]`` long or ``[N, act_dim]`` float)."""
        if self.continuous:
            mean, log_std = self._gaussian(obs, first, eta_prev)
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            return mean + log_std.exp() * noise
        return sample_categorical(self.probs(obs, first, eta_prev), generator)

    def mode(self, obs: torch.Tensor, first: torch.Tensor, eta_prev: torch.Tensor) -> torch.Tensor:
        """The most likely action (argmax, or the Gaussian mean)."""
        if self.continuous:
            return self._gaussian(obs, first, eta_prev)[0]
        return self.probs(obs, first, eta_prev).argmax(-1)

    def threshold_of(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """``eta(s, a)`` of the taken actions, ``[N]``."""
        if self.continuous:
            return self.eta(torch.cat([self.features(obs), action.float()], -1)).squeeze(-1)
        return self.thresholds(obs).gather(1, action.long().unsqueeze(1)).squeeze(1)

    def probs(self, obs: torch.Tensor, first: torch.Tensor, eta_prev: torch.Tensor) -> torch.Tensor:
        """``[N, A]`` action probabilities; ``first [N]`` bool picks the first-step actor."""
        if self.continuous:
            raise ValueError("probs needs a Discrete action space (use distribution / log_prob)")
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

    def conditioned_policies(self, eta_range: tuple[float, float] | None = None
                             ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(later [S, A, S, A], first [S, A])`` float64 of a ``condition_on_prev`` actor on a
        discrete observation space: ``later[s, a, s']`` is its law at ``s'`` after the pair
        ``(s, a)``, fed ``eta(s, a)`` (clipped to ``eta_range`` as when acting)."""
        if not self.discrete_obs or not self.condition_on_prev:
            raise ValueError("conditioned_policies needs a discrete observation space and condition_on_prev")
        s, a = self.obs_dim, self.num_actions
        eta = self.thresholds(torch.arange(s, device=self.eta.device))  # [S, A]
        if eta_range is not None:
            eta = eta.clamp(*eta_range)
        states = torch.arange(s, device=eta.device).repeat(s * a)  # s' fastest
        eta_prev = eta.reshape(-1).repeat_interleave(s)
        later = self.probs(states, torch.zeros_like(states, dtype=torch.bool), eta_prev).view(s, a, s, a)
        first_states = torch.arange(s, device=eta.device)
        first = self.probs(first_states, torch.ones_like(first_states, dtype=torch.bool), torch.zeros(s))
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
