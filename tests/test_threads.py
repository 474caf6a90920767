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


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, 1),
    ({"RLSUITE_THREADS": "3"}, 3),
    ({"RLSUITE_THREADS": "0"}, None),
    ({"OMP_NUM_THREADS": "4"}, None),
    ({"MKL_NUM_THREADS": "4"}, None),
    ({"RLSUITE_THREADS": "2", "OMP_NUM_THREADS": "4"}, 2),  # rlsuite's own variable wins
])
def test_import_rule(environ, expected) -> None:
    from rlsuite.core.threads import import_threads

    assert import_threads(environ) == expected


@pytest.mark.parametrize("bad", ["x", "-1", "1.5"])
def test_import_rule_rejects_bad_variable(bad) -> None:
    from rlsuite.core.threads import import_threads

    with pytest.raises(ValueError, match=f"RLSUITE_THREADS must be a non-negative integer.*{bad!r}"):
        import_threads({"RLSUITE_THREADS": bad})


def test_import_sets_one_thread_in_a_fresh_process() -> None:
    import os
    import subprocess
    import sys

    code = "import torch; torch.set_num_threads(2); import rlsuite; print(torch.get_num_threads())"
    env = {k: v for k, v in os.environ.items()
           if k not in ("RLSUITE_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "RLSUITE_THREADS": "0"},
                         capture_output=True, text=True)
    assert out.stdout.strip() == "2"  # left alone
