"""One run as a job of a sweep: its outcome record, preemption signals, and its device.

Every run writes ``result.json`` into its run directory when it ends: ``completed`` with its score,
``failed`` with the error and traceback, or ``preempted`` with the step it checkpointed at and a
``reason`` (the signal received, or the time limit reached). The
sweep summary (:mod:`rlsuite.sweeps`) and the report (:mod:`rlsuite.report`) read these records, so
a failed job is reported, not lost, and a relaunch can skip what already finished.

Preemption: Slurm (through submitit) sends ``SIGUSR2`` some time before it kills a job, and a
cluster or a user sends ``SIGTERM``. :class:`PreemptionGuard` turns those signals into a request
that the training loop honours at its next iteration boundary, where the agent's state is
consistent: it writes the checkpoint there, records ``preempted``, and then hands the signal to
whoever handled it before (submitit requeues the job; otherwise the process exits with
``128 + signum``). Relaunched with the same overrides into the same run directory, the run resumes
from that checkpoint (``resume=auto``, the default).

Wall-clock limit: with ``time_limit_s`` set, :class:`TimeLimit` is checked at the same iteration
boundaries; once the run has used its time it checkpoints, records ``preempted`` with the reason,
and :class:`TimeLimitReached` leaves the run (the CLI exits with :data:`TIME_LIMIT_EXIT`). The same
command with ``resume=auto`` continues, and finishes with the numbers of an uninterrupted run.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import torch

from rlsuite.core.atomic_file import write_text_atomically

RESULT_FILE = "result.json"
COMPLETED, FAILED, PREEMPTED = "completed", "failed", "preempted"
PREEMPTION_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)
TIME_LIMIT_EXIT = 3
"""Exit status of the ``rlsuite`` command when a run stopped at its ``time_limit_s`` (checkpointed;
the same command with ``resume=auto`` continues): neither success (0) nor failure (1)."""


def write_result(run_dir: str | Path, status: str, **fields: Any) -> Path:
    """Write ``run_dir/result.json`` = ``{status, time, **fields}`` (atomically, by rename)."""
    record = {"status": status, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **fields}
    return write_text_atomically(Path(run_dir) / RESULT_FILE,
                                 json.dumps(record, indent=2, default=str) + "\n")


def read_result(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``result.json`` record, or None if it has none (still running, or killed hard)."""
    path = Path(run_dir) / RESULT_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def failure_fields(error: BaseException) -> dict[str, str]:
    """``error`` (type and message) and ``traceback`` fields for a ``failed`` record."""
    return {
        "error": f"{type(error).__name__}: {error}",
        "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
    }


class Preempted(Exception):
    """Raised after a preemption signal: at an iteration boundary once the checkpoint is written
    (``checkpointed``), or at an interrupt point between checkpoints, where the last checkpoint
    stands (:meth:`rlsuite.training.TrainingHooks.interrupt_point`)."""

    def __init__(self, signum: int, checkpointed: bool = True) -> None:
        super().__init__(f"received {signal.Signals(signum).name}")
        self.signum, self.checkpointed = signum, checkpointed


class TimeLimitReached(Exception):
    """A run used its ``time_limit_s``: it wrote its checkpoint at an iteration boundary and
    recorded ``preempted``. :func:`rlsuite.runner.run` raises it to library callers; rerunning with
    ``resume=auto`` continues the run."""

    def __init__(self, limit_s: float, step: int, total_steps: int, run_dir: str | Path) -> None:
        super().__init__(f"time limit of {limit_s:g} s reached at step {step}/{total_steps}; "
                         f"checkpointed in {run_dir}; the same command with resume=auto continues")
        self.limit_s, self.step, self.total_steps, self.run_dir = limit_s, step, total_steps, run_dir


@dataclass
class TimeLimit:
    """A wall-clock budget, counted from construction (the start of this process's run) on
    ``clock`` (monotonic by default; a test injects its own instead of sleeping)."""

    limit_s: float
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.start = self.clock()

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return self.clock() - self.start

    def reached(self) -> bool:
        """True once more than ``limit_s`` seconds have passed."""
        return self.elapsed() > self.limit_s


class PreemptionGuard:
    """Defers ``SIGUSR2``/``SIGTERM`` to the next :meth:`check` (an iteration boundary).

    Use as a context manager around training; the previous handlers are restored on exit. Only the
    main thread may install signal handlers, so elsewhere (a thread pool) the guard is inert.
    """

    def __init__(self, signals: tuple[signal.Signals, ...] = PREEMPTION_SIGNALS) -> None:
        self.signals = signals
        self.received: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> PreemptionGuard:
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in self.signals:
                self.previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only note it: the agent may be mid-update; the loop checkpoints at its next boundary.
        self.received = signum

    def check(self, on_preempt: Callable[[], None], checkpointed: bool = True) -> None:
        """If a signal arrived: run ``on_preempt`` (write the checkpoint), then raise Preempted
        (``checkpointed`` says whether ``on_preempt`` saved the state)."""
        if self.received is not None:
            on_preempt()
            raise Preempted(self.received, checkpointed)

    def forward(self, signum: int) -> NoReturn:
        """After the guard has exited: hand ``signum`` to the handler installed before it
        (submitit's requeues the job and exits); with none, exit with status ``128 + signum``.
        Either way the exit is a :class:`PreemptionExit`, which sweeps let through."""
        previous = self.previous.get(signum, signal.SIG_DFL)
        try:
            if callable(previous):
                previous(signum, None)
        except SystemExit as exit_:
            raise PreemptionExit(exit_.code) from None
        raise PreemptionExit(128 + signum)


class PreemptionExit(SystemExit):
    """The process leaves because it was preempted (after checkpointing): not a job failure."""


def job_number() -> int:
    """This job's number within a Hydra multirun (0 outside one)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return int(HydraConfig.get().job.get("num", 0) or 0)
    except (ValueError, ImportError):  # HydraConfig not initialised: library use
        return 0


def pick_device(name: str, job: int = 0) -> torch.device:
    """The device of a run: ``auto`` is CUDA when present, else the CPU.

    With several visible GPUs, ``auto`` and ``cuda`` put job ``n`` of a sweep on GPU
    ``n mod count``, so parallel jobs on one multi-GPU machine (joblib launcher) do not pile onto
    GPU 0; under Slurm or Ray each job sees only its own GPU and this is ``cuda:0``. An explicit
    index (``cuda:1``) is kept. A CUDA request without CUDA is an error.
    """
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        name = "cuda"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} but CUDA is not available (use device=cpu or auto)")
        if device.index is None:
            return torch.device("cuda", job % torch.cuda.device_count())
    return device


def gpus_per_job() -> int:
    """1 when this machine has a GPU, else 0: what launcher presets reserve per job by default."""
    return 1 if torch.cuda.is_available() else 0
