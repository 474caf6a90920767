"""``rollout/ep_rew_mean``: the mean return of the last 100 completed episodes, in every agent.

SB3 logs ``rollout/ep_rew_mean`` and ``rollout/ep_len_mean`` as the means over its
``ep_info_buffer``, the last ``stats_window_size = 100`` finished episodes. :class:`EpisodeWindow`
is that buffer, once for all agents: :class:`~rlsuite.engine.interaction.Interaction` feeds it the
episodes of each rollout, and agents that collect episodes their own way (HNPG, ECRM) feed it
theirs, so one tag means one thing in every run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import torch

EPISODE_WINDOW = 100
"""Finished episodes averaged into ``rollout/ep_rew_mean`` (SB3's ``stats_window_size``)."""


class EpisodeWindow:
    """Returns and lengths of the last ``size`` completed episodes.

    Args:
        size: the window (default :data:`EPISODE_WINDOW`).

    Raises:
        ValueError: for ``size < 1``.
    """

    def __init__(self, size: int = EPISODE_WINDOW) -> None:
        if size < 1:
            raise ValueError(f"EpisodeWindow size must be >= 1, got {size}")
        self.size = size
        self.returns: deque[float] = deque(maxlen=size)
        self.lengths: deque[float] = deque(maxlen=size)

    def add(self, returns: torch.Tensor | Iterable[float],
            lengths: torch.Tensor | Iterable[float]) -> dict[str, float]:
        """Append finished episodes (oldest first; one host sync for tensors) and return
        :meth:`metrics`.

        Raises:
            ValueError: when ``returns`` and ``lengths`` differ in length.
        """
        new_r = _floats(returns)
        new_l = _floats(lengths)
        if len(new_r) != len(new_l):
            raise ValueError(f"{len(new_r)} episode returns but {len(new_l)} lengths")
        self.returns.extend(new_r)
        self.lengths.extend(new_l)
        return self.metrics()

    def metrics(self) -> dict[str, float]:
        """``rollout/ep_rew_mean`` and ``rollout/ep_len_mean`` over the window (empty before any
        episode has finished, as SB3 logs nothing then)."""
        if not self.returns:
            return {}
        return {
            "rollout/ep_rew_mean": sum(self.returns) / len(self.returns),
            "rollout/ep_len_mean": sum(self.lengths) / len(self.lengths),
        }

    def state_dict(self) -> dict[str, Any]:
        """Plain lists, for checkpoints (keys as :class:`Interaction` has always saved them)."""
        return {"recent_returns": list(self.returns), "recent_lengths": list(self.lengths)}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        self.returns = deque((float(v) for v in data["recent_returns"]), maxlen=self.size)
        self.lengths = deque((float(v) for v in data["recent_lengths"]), maxlen=self.size)


def _floats(values: torch.Tensor | Iterable[float]) -> list[float]:
    if isinstance(values, torch.Tensor):
        return values.detach().reshape(-1).double().tolist()
    return [float(v) for v in values]
