"""Whole first episodes of every env copy, collected on the batched engine.

REINFORCE needs complete episodes and the ECRM objective needs each step's stage index (the first
step acts with its own policy). So every collection restarts all ``B`` copies, steps them with
:func:`rlsuite.engine.rollout.collect` in chunks until each copy's first episode has ended, and
keeps only those first episodes (``valid``); later episodes in the same window would be biased
towards short ones. The acting closure tracks the stage and the previous step's threshold
``eta(s_{t-1}, a_{t-1})`` itself, which is exact for the first episode of every copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from rlsuite.agents.ecrm.objective import first_episode_mask
from rlsuite.core.env import BatchedEnv
from rlsuite.engine.rollout import Rollout, collect, start


@dataclass
class Episodes:
    """``[T, B]`` tensors of the first episode of each copy (``valid`` marks its steps)."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    """Also set where the agent's own step cap cut a still-running episode."""
    eta: torch.Tensor
    """``eta(s_t, a_t)`` used while acting."""
    eta_prev: torch.Tensor
    """``eta(s_{t-1}, a_{t-1})`` (0 at the first step)."""
    valid: torch.Tensor
    steps: int
    """Env steps taken, summed over copies (including discarded ones)."""

    @property
    def first(self) -> torch.Tensor:
        """``[T, B]`` bool: the first stage."""
        t, b = self.reward.shape
        return (torch.arange(t, device=self.reward.device) == 0).unsqueeze(1).expand(t, b)

    def returns(self) -> torch.Tensor:
        """``[B]`` undiscounted episode returns."""
        return torch.where(self.valid, self.reward, 0.0).sum(0)


class StagePolicy:
    """The acting closure: ``act(obs, first [B] bool, eta_prev [B]) -> (action, eta_sa)``,
    called with the stage and the previous threshold it tracks itself."""

    def __init__(self, act: Callable[[torch.Tensor, torch.Tensor, torch.Tensor],
                                     tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.act = act
        self.t = 0
        self.eta_prev: torch.Tensor | None = None

    def __call__(self, obs: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        b = obs.shape[0]
        if self.eta_prev is None:
            self.eta_prev = torch.zeros(b, device=obs.device)
        first = torch.full((b,), self.t == 0, dtype=torch.bool, device=obs.device)
        action, eta = self.act(obs, first, self.eta_prev)
        extras = {"eta": eta, "eta_prev": self.eta_prev}
        self.eta_prev = eta
        self.t += 1
        return action, extras


def collect_first_episodes(
    env: BatchedEnv,
    params: Any,
    policy: StagePolicy,
    generator: torch.Generator,
    chunk_steps: int,
    max_steps: int,
) -> Episodes:
    """Restart every copy and collect until each has finished one episode (or ``max_steps``)."""
    state = start(env, params, generator)
    chunks: list[Rollout] = []
    finished: torch.Tensor | None = None
    steps = 0
    while steps < max_steps:
        n = min(chunk_steps, max_steps - steps)
        data, state = collect(env, state, params, policy, n, generator)
        chunks.append(data)
        steps += n
        ended = data.done.any(0)
        finished = ended if finished is None else finished | ended
        if bool(finished.all()):  # one host sync per chunk
            break
    assert finished is not None

    def cat(get: Callable[[Rollout], torch.Tensor]) -> torch.Tensor:
        return torch.cat([get(c) for c in chunks], 0)

    terminated, truncated = cat(lambda c: c.terminated), cat(lambda c: c.truncated).clone()
    truncated[-1] |= ~finished  # cut at the cap: no next stage
    return Episodes(
        obs=cat(lambda c: c.obs), action=cat(lambda c: c.action),
        reward=cat(lambda c: c.reward).float(), terminated=terminated, truncated=truncated,
        eta=cat(lambda c: c.extras["eta"]), eta_prev=cat(lambda c: c.extras["eta_prev"]),
        valid=first_episode_mask(terminated, truncated), steps=steps * terminated.shape[1],
    )
