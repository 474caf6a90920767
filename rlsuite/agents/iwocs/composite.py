"""IWOCS's composite policy: act with the most pessimistic trusted expert (paper §5.1, App. F).

At state ``s_t`` expert ``j`` is *trusted* iff its next-state predictor explains the transition
that led here: ``|T_hat_j(s_{t-1}, a_{t-1}) - s_t|_1 <= rho_j``. Among trusted experts the one with
the lowest unregularized value of its own action, ``j* = argmin_j Q_j(s, pi_j(s))``, acts; when no
expert is trusted, the fallback (the domain-randomized SAC) acts. At the first step of an episode
there is no previous transition and every expert is trusted (the paper does not say; ``docs/iwocs.md``).

This is "pick the most pessimistic expert", not an argmax over a min of Q's: each expert's Q is
only meaningful for its own policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rlsuite.agents.iwocs.critic import ExpertHeads
from rlsuite.learners.sac import SACNetworks


def mean_action(nets: SACNetworks, obs: torch.Tensor) -> torch.Tensor:
    """A SAC actor's deterministic action ``bias + scale * tanh(mean(s))`` (what
    ``actor.sample(..., deterministic=True)`` returns, without computing the log-density)."""
    actor = nets.actor
    mean, _ = actor(obs)
    return actor.bias + actor.scale * torch.tanh(mean)


def composite_action(
    q: torch.Tensor, trusted: torch.Tensor, actions: torch.Tensor, fallback: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick each copy's action.

    Args:
        q: ``[J, B]`` each expert's value of its own action.
        trusted: ``[J, B]`` bool.
        actions: ``[J, B, *A]`` each expert's action.
        fallback: ``[B, *A]`` the fallback policy's action.

    Returns:
        ``(action [B, *A], chosen [B])`` with ``chosen = -1`` where the fallback acted (ties go to
        the lowest expert index).
    """
    if q.shape[0] == 0:
        return fallback, torch.full(fallback.shape[:1], -1, dtype=torch.int64, device=q.device)
    masked = torch.where(trusted, q, torch.full_like(q, float("inf")))
    best = masked.argmin(0)  # [B]
    any_trusted = trusted.any(0)
    rows = torch.arange(q.shape[1], device=q.device)
    picked = actions[best, rows]
    shape = (-1,) + (1,) * (fallback.dim() - 1)
    action = torch.where(any_trusted.reshape(shape), picked, fallback)
    return action, torch.where(any_trusted, best, torch.full_like(best, -1))


@dataclass
class Expert:
    """One identified model's solution: its SAC networks, heads, threshold and model params."""

    nets: SACNetworks
    heads: ExpertHeads
    rho: float
    """Trust threshold on the L1 one-step prediction error."""
    model: list[float]
    """The static model (box params) it was trained on."""


class CompositePolicy:
    """Deterministic composite policy over ``experts`` with ``fallback`` (a SAC's networks).

    Stateful: it remembers the previous observation and action of every copy. Call
    :meth:`reset` at the start of a batch of episodes (the search does); a change of batch size
    also resets.

    Args:
        experts: the experts (possibly none: then it is the fallback).
        fallback: the domain-randomized SAC's networks.
        rhos: optional thresholds overriding the experts' own (the threshold sweep).
    """

    def __init__(self, experts: Sequence[Expert], fallback: SACNetworks,
                 rhos: Sequence[float] | None = None) -> None:
        self.experts = list(experts)
        self.fallback = fallback
        rho = [e.rho for e in self.experts] if rhos is None else list(rhos)
        if len(rho) != len(self.experts):
            raise ValueError(f"CompositePolicy: {len(rho)} thresholds for {len(self.experts)} experts")
        self.rho = torch.tensor(rho, dtype=torch.float32)
        self.prev_obs: torch.Tensor | None = None
        self.prev_action: torch.Tensor | None = None
        self.chosen_counts = torch.zeros(len(self.experts) + 1, dtype=torch.int64)
        """Steps each expert acted (last entry: the fallback), summed over copies (no sync)."""

    def reset(self) -> None:
        """Forget the previous transition (every expert is trusted at the next step)."""
        self.prev_obs = self.prev_action = None
        self.chosen_counts = torch.zeros(len(self.experts) + 1, dtype=torch.int64)

    @torch.no_grad()
    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        """``[B, *A]`` actions for ``[B, obs]`` observations."""
        b = obs.shape[0]
        fb = mean_action(self.fallback, obs)
        if self.prev_obs is not None and self.prev_obs.shape[0] != b:
            self.reset()
        if not self.experts:
            action = fb
            chosen = torch.full((b,), -1, dtype=torch.int64)
        else:
            acts, qs, trusted = [], [], []
            for e in self.experts:
                a = mean_action(e.nets, obs)
                acts.append(a)
                qs.append(e.heads.value(obs, a))
                if self.prev_obs is None:
                    trusted.append(torch.ones(b, dtype=torch.bool, device=obs.device))
                else:
                    trusted.append(e.heads.predictor.error(self.prev_obs, self.prev_action, obs))
            if self.prev_obs is not None:
                err = torch.stack(trusted)  # [J, B]
                ok = err <= self.rho.to(err.device)[:, None]
            else:
                ok = torch.stack(trusted)
            action, chosen = composite_action(torch.stack(qs), ok, torch.stack(acts), fb)
        self.prev_obs, self.prev_action = obs, action
        idx = torch.where(chosen < 0, len(self.experts), chosen)
        self.chosen_counts = self.chosen_counts.to(idx.device) + torch.bincount(
            idx, minlength=len(self.experts) + 1)
        return action

    def fallback_fraction(self) -> float:
        """Fraction of steps since :meth:`reset` where no expert was trusted."""
        total = int(self.chosen_counts.sum())
        return float(self.chosen_counts[-1]) / total if total else 0.0
