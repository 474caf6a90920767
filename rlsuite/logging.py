"""One logger per run: TensorBoard event files, ``metrics.csv`` and the resolved config.

Tags follow SB3 (``rollout/ep_rew_mean``, ``time/fps``, ``train/...``, ``eval/...``); agents put
their own quantities under their name. Values arrive as host floats: agents sync once per
iteration, here, never inside a rollout.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

STEP_COLUMN = "step"


class Logger:
    """Writes scalars to TensorBoard and to a CSV whose columns grow as new tags appear.

    Args:
        run_dir: the run directory (created if needed).
        config: the resolved config, saved as ``config.yaml`` (skipped when None).
        tensorboard: also write TensorBoard event files.
        resume: append to an existing ``metrics.csv`` instead of starting a new one.
        rewind_to: with ``resume``, the step the run resumes from (its checkpoint's): rows logged
            after it (by a run killed between checkpoints) are dropped from ``metrics.csv``, and
            TensorBoard is told to purge its later points (``purge_step``), so the resumed curve
            has no duplicated or out-of-order steps.
    """

    def __init__(
        self,
        run_dir: str | Path,
        config: Mapping[str, Any] | None = None,
        tensorboard: bool = True,
        resume: bool = False,
        rewind_to: int | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.csv_path = self.run_dir / "metrics.csv"
        self._rows: list[dict[str, str]] = []
        self._columns: list[str] = [STEP_COLUMN]
        if resume and self.csv_path.exists():
            with self.csv_path.open(newline="") as f:
                reader = csv.DictReader(f)
                self._columns = list(reader.fieldnames or [STEP_COLUMN])
                self._rows = list(reader)
            if rewind_to is not None:
                self._rows = [r for r in self._rows if int(r[STEP_COLUMN]) <= rewind_to]
                self._rewrite()
        elif self.csv_path.exists():
            self.csv_path.unlink()
        if config is not None:
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(dict(config), sort_keys=False))
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = rewind_to + 1 if resume and rewind_to is not None else None
            self._writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=purge)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record ``metrics`` at env step ``step``."""
        row = {STEP_COLUMN: str(int(step))}
        for tag, value in metrics.items():
            value = float(value)
            row[tag] = repr(value)
            if self._writer is not None and math.isfinite(value):
                self._writer.add_scalar(tag, value, int(step))
        new = [tag for tag in row if tag not in self._columns]
        self._rows.append(row)
        if new:  # a new tag: rewrite the file with the wider header (SB3's CSV writer does too)
            self._columns += new
            self._rewrite()
        else:
            with self.csv_path.open("a", newline="") as f:
                csv.DictWriter(f, self._columns, restval="").writerow(row)

    def add_text(self, tag: str, text: str) -> None:
        """A text entry in TensorBoard (e.g. the config as a markdown table)."""
        if self._writer is not None:
            self._writer.add_text(tag, text)

    def write_hparams(self, config: Mapping[str, Any], metrics: Mapping[str, float]) -> None:
        """The run's hyperparameters and final metrics for TensorBoard's HParams dashboard.

        ``config`` is flattened to dotted keys (``agent.learning_rate``); values that are not a
        number, string or bool (None, lists) are written as their ``str``. The three hparams
        plugin summaries go into this run's own event file, not the fresh subdirectory
        ``SummaryWriter.add_hparams`` makes, so a run stays one TensorBoard run; the dashboard
        reads each metric's values from the scalars of the same tag (``log`` them as well).
        """
        if self._writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        flat = flatten_config(config)
        experiment, session_start, session_end = hparams(
            flat, {tag: float(value) for tag, value in metrics.items()}
        )
        for summary in (experiment, session_start, session_end):
            self._writer.file_writer.add_summary(summary)

    def _rewrite(self) -> None:
        with self.csv_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, self._columns, restval="")
            writer.writeheader()
            writer.writerows(self._rows)

    def flush(self) -> None:
        """Push pending TensorBoard events to disk."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, float | int | str | bool]:
    """``{"agent": {"lr": 3e-4}}`` -> ``{"agent.lr": 3e-4}``; anything but a number, string or
    bool (None, a list) becomes its ``str`` (the types the hparams plugin stores)."""
    flat: dict[str, float | int | str | bool] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, name + "."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


def read_metrics(run_dir: str | Path) -> list[dict[str, float]]:
    """Rows of a run's ``metrics.csv`` as floats (empty cells omitted)."""
    with (Path(run_dir) / "metrics.csv").open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
