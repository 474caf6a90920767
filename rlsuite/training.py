"""What every agent's training loop shares with its caller: hooks and the divergence error."""

from __future__ import annotations

import math
from typing import Any

import torch


class TrainingDiverged(RuntimeError):
    """A loss or parameter became NaN/inf; the run stops before the bad state is checkpointed."""


class TrainingHooks:
    """Called by an agent's ``learn`` loop after each iteration (logging, checkpoints, progress).

    The default does nothing, so agents train the same from Python and from the CLI.
    """

    def on_iteration(self, agent: Any, step: int, metrics: dict[str, float]) -> None:
        """``step``: env steps so far; ``metrics``: host floats, tagged SB3-style."""


def updates_due(utd: float, global_step: int, learning_starts: int, num_updates: int) -> int:
    """Gradient updates owed now by an off-policy learner: ``utd`` per env step after
    ``learning_starts``, minus the ``num_updates`` already made (never negative).

    The 1e-9 keeps e.g. ``0.29 * 100 = 28.999...`` from rounding down to 28.
    """
    owed = utd * max(0, global_step - learning_starts)
    return max(int(owed + 1e-9) - num_updates, 0)


class LossTotals:
    """Sums an iteration's per-update loss statistics on the device and averages them with the one
    host sync of the iteration; a non-finite mean raises :class:`TrainingDiverged`."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        """Accumulate one update's statistics (0-dim tensors, kept on the device)."""
        for key, value in stats.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        self.count += 1

    def means(self, who: str, step: int, prefix: str = "train/") -> dict[str, float]:
        """``{prefix + key: mean}`` as host floats ({} when nothing was added).

        Raises TrainingDiverged (naming ``who`` and ``step``) on a NaN/inf, before any caller can
        checkpoint the bad state.
        """
        if not self.sums:
            return {}
        values = (torch.stack(list(self.sums.values())) / self.count).tolist()
        metrics = {f"{prefix}{key}": v for key, v in zip(self.sums, values, strict=True)}
        if not all(math.isfinite(v) for v in metrics.values()):
            raise TrainingDiverged(f"non-finite {who} loss at step {step}: {metrics}")
        return metrics
