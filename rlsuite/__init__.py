"""rlsuite: six research agents on one batched torch rollout engine."""

__version__ = "0.1.0"
