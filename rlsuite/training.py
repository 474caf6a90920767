"""What every agent's training loop shares with its caller: hooks and the divergence error."""

from __future__ import annotations

from typing import Any


class TrainingDiverged(RuntimeError):
    """A loss or parameter became NaN/inf; the run stops before the bad state is checkpointed."""


class TrainingHooks:
    """Called by an agent's ``learn`` loop after each iteration (logging, checkpoints, progress).

    The default does nothing, so agents train the same from Python and from the CLI.
    """

    def on_iteration(self, agent: Any, step: int, metrics: dict[str, float]) -> None:
        """``step``: env steps so far; ``metrics``: host floats, tagged SB3-style."""
