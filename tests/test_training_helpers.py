"""The update schedule and loss bookkeeping shared by the off-policy learners."""

import math

import pytest
import torch

from rlsuite.training import LossTotals, TrainingDiverged, updates_due


def test_updates_due_counts_utd_per_step_after_learning_starts():
    assert updates_due(1.0, global_step=50, learning_starts=100, num_updates=0) == 0
    assert updates_due(1.0, global_step=150, learning_starts=100, num_updates=0) == 50
    assert updates_due(0.5, global_step=150, learning_starts=100, num_updates=20) == 5
    # 0.29 * 100 is 28.999... in floating point: still 29 updates owed
    assert updates_due(0.29, global_step=100, learning_starts=0, num_updates=0) == 29
    # already ahead (e.g. after changing utd on resume): never negative
    assert updates_due(0.5, global_step=100, learning_starts=0, num_updates=80) == 0


def test_loss_totals_average_and_prefix():
    totals = LossTotals()
    assert totals.means("X", 0) == {}
    totals.add({"a": torch.tensor(1.0), "b": torch.tensor(4.0)})
    totals.add({"a": torch.tensor(3.0), "b": torch.tensor(0.0)})
    assert totals.means("X", 7) == {"train/a": 2.0, "train/b": 2.0}


def test_loss_totals_raise_on_non_finite_naming_learner_and_step():
    totals = LossTotals()
    totals.add({"critic_loss": torch.tensor(math.nan)})
    with pytest.raises(TrainingDiverged, match=r"SAC diverged at step 1234: non-finite loss train/critic"):
        totals.means("SAC", 1234)
