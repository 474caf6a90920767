"""configure_threads: one intra-op thread on CPU unless asked otherwise."""

from __future__ import annotations

import pytest
import torch

from rlsuite.core.threads import configure_threads, default_threads


@pytest.fixture(autouse=True)
def _restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_default_is_one_thread_on_cpu() -> None:
    torch.set_num_threads(2)
    assert default_threads("cpu") == 1
    assert configure_threads() == 1 and torch.get_num_threads() == 1


def test_explicit_count_is_applied() -> None:
    assert configure_threads(2) == 2 and torch.get_num_threads() == 2


def test_accelerator_default_leaves_torch_alone() -> None:
    torch.set_num_threads(2)
    assert default_threads("cuda") is None
    assert configure_threads(None, device="cuda") == 2 and torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_counts_are_rejected(bad) -> None:
    with pytest.raises(ValueError, match="num_threads must be a positive integer"):
        configure_threads(bad)
