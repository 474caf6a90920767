"""How many CPU threads torch's ops use: one by default, for env stepping and small networks.

Why one (``docs/performance.md``, "One intra-op thread on CPU", measured on this project's 2-vCPU
machine with ``scripts/benchmark_envs.py --threads 1`` / ``--threads 2`` while other processes kept
most of both cores busy): an intra-op-parallel op runs an OpenMP team whose barrier waits for a
thread the scheduler has parked, so two threads ran *slower* than one (a CartPole step at
B = 16384: 1.12 M against 8.24 M env-steps/s at the median, 0.32 M at the worst run). Batched env
steps are elementwise and memory-light, so a second thread has little to win even on an idle
machine. More threads pay off only for very large batches or large matrix products, on cores
nothing else uses: ask for them explicitly.

Importing ``rlsuite`` applies the same default to library use (:func:`configure_on_import`): one
thread, unless ``RLSUITE_THREADS`` says otherwise (``0`` leaves torch alone) or the user chose a
count for OpenMP/MKL (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``), which torch then follows. A
``torch.set_num_threads(n)`` after the import wins as usual.

Compiled CPU code is specialised to the thread count in effect when it compiles (a compiled env
recompiles when the count changes), so set the count once, before stepping.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

THREADS_VARIABLE = "RLSUITE_THREADS"
# Variables through which a user has already chosen a thread count for torch's CPU ops.
USER_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def default_threads(device: torch.device | str = "cpu") -> int | None:
    """The intra-op thread count rlsuite uses on ``device`` unless told otherwise.

    1 on CPU; ``None`` (leave torch's setting alone) where the work runs on an accelerator.
    """
    return 1 if torch.device(device).type == "cpu" else None


def configure_threads(num_threads: int | None = None, device: torch.device | str = "cpu") -> int:
    """Set torch's intra-op thread count and return the count in effect.

    Args:
        num_threads: threads to use; ``None`` means :func:`default_threads` (1 on CPU).
        device: where the envs step; on an accelerator ``None`` leaves torch's count unchanged.

    Raises:
        ValueError: if ``num_threads`` is not a positive integer.
    """
    if num_threads is None:
        num_threads = default_threads(device)
        if num_threads is None:
            return torch.get_num_threads()
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive integer or None, got {num_threads!r}")
    torch.set_num_threads(num_threads)
    return torch.get_num_threads()


def import_threads(environ: Mapping[str, str] | None = None) -> int | None:
    """The thread count ``import rlsuite`` sets, from the environment; None leaves torch's own.

    ``RLSUITE_THREADS=n`` gives ``n`` (``0``: leave torch alone); otherwise a set
    ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` leaves torch alone (it already follows them);
    otherwise 1 (see the module docstring for why).

    Raises:
        ValueError: if ``RLSUITE_THREADS`` is not a non-negative integer.
    """
    environ = os.environ if environ is None else environ
    value = environ.get(THREADS_VARIABLE, "").strip()
    if value:
        try:
            count = int(value)
        except ValueError:
            count = -1
        if count < 0:
            raise ValueError(f"{THREADS_VARIABLE} must be a non-negative integer (0: leave torch's "
                             f"thread count alone), got {value!r}")
        return count or None
    if any(environ.get(name, "").strip() for name in USER_THREAD_VARIABLES):
        return None
    return 1


def configure_on_import() -> int:
    """Apply :func:`import_threads` to torch; return the count in effect."""
    count = import_threads()
    if count is not None:
        torch.set_num_threads(count)
    return torch.get_num_threads()
