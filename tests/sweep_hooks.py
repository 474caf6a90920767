"""Test-only Hydra callbacks, loaded by sweeps in tests through ``+hydra.callbacks...``."""

from __future__ import annotations

import os
import signal
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


class KillWorker(Callback):
    """SIGKILLs the job's own process when the job's seed is ``seed``: a worker that dies
    without a word (the OOM killer, a segfault), as the joblib launcher sees it."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Die here if this is the doomed job."""
        if int(config.seed) == self.seed:
            os.kill(os.getpid(), signal.SIGKILL)
