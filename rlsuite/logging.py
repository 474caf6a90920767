"""One logger per run: TensorBoard event files, ``metrics.csv`` and the resolved config.

Tags follow SB3 (``rollout/ep_rew_mean``, ``time/fps``, ``train/...``, ``eval/...``); agents put
their own quantities under their name. Values arrive as host floats: agents sync once per
iteration, here, never inside a rollout.

Rows are streamed to disk, never kept: the logger holds only the CSV's columns, so its memory does
not grow with the run (a long RLPD run logs one row per iteration, millions of steps; holding every
row took ~1.5 GB). The two operations that rewrite the file (a new tag widens the header, a resume
drops the rows after its checkpoint) stream it from disk into a temporary file that replaces it.
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from rlsuite.core.atomic_file import replaced_atomically

METRICS_FILE = "metrics.csv"
"""A run's scalars, one row per logged step, in its run directory."""

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
        self.csv_path = self.run_dir / METRICS_FILE
        self._columns: list[str] = [STEP_COLUMN]
        """The CSV's header: the only state kept across rows."""
        if resume and self.csv_path.exists():
            _drop_partial_line(self.csv_path)
            with self.csv_path.open(newline="") as f:
                header = csv.DictReader(f).fieldnames
            if header:
                self._columns = list(header)
            if rewind_to is not None or not header:  # an empty file gets its header back
                self._rewrite(keep=None if rewind_to is None else _up_to(rewind_to))
        elif self.csv_path.exists():
            self.csv_path.unlink()
        if config is not None:
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(dict(config), sort_keys=False))
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = rewind_to + 1 if resume and rewind_to is not None else None
            _wait_past_event_files(self.run_dir)
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
        if new or not self.csv_path.exists():
            # A new tag: rewrite the file with the wider header (SB3's CSV writer does too). Rare:
            # a run's tags appear within its first evaluations.
            self._columns += new
            self._rewrite(extra=row)
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

    def _rewrite(self, keep: Callable[[dict[str, str]], bool] | None = None,
                 extra: dict[str, str] | None = None) -> None:
        """Rewrite ``metrics.csv`` under the current header: its rows streamed from disk (those
        ``keep`` accepts, all when None), then ``extra``. Written to a temporary file that
        replaces the old one, so a kill mid-rewrite leaves the old file whole."""
        with replaced_atomically(self.csv_path, "w", newline="") as out:
            # extrasaction: cells beyond the header (only a corrupted line has them) are dropped.
            writer = csv.DictWriter(out, self._columns, restval="", extrasaction="ignore")
            writer.writeheader()
            if self.csv_path.exists():
                with self.csv_path.open(newline="") as f:
                    for row in csv.DictReader(f):
                        if keep is None or keep(row):
                            writer.writerow(row)
            if extra is not None:
                writer.writerow(extra)

    def flush(self) -> None:
        """Push pending TensorBoard events to disk."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _drop_partial_line(path: Path, chunk: int = 1 << 16) -> None:
    """Cut a last line that has no newline (a write killed midway, whose cells may be cut short:
    ``512`` written as ``5``), so that a resume neither keeps it nor appends to it."""
    with path.open("rb+") as f:
        end = f.seek(0, os.SEEK_END)
        pos = end
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            block = f.read(pos - start)
            if pos == end and block.endswith(b"\n"):
                return
            newline = block.rfind(b"\n")
            if newline >= 0:
                f.truncate(start + newline + 1)
                return
            pos = start
        f.truncate(0)


def _up_to(step: int) -> Callable[[dict[str, str]], bool]:
    """Row filter of a resume: rows logged at or before ``step`` (a row whose step cell is not a
    number, the partial last line of a killed write, is dropped)."""

    def keep(row: dict[str, str]) -> bool:
        try:
            return int(row[STEP_COLUMN]) <= step
        except (TypeError, ValueError):
            return False

    return keep


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
    with (Path(run_dir) / METRICS_FILE).open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


EVENT_FILE_PREFIX = "events.out.tfevents."


def _wait_past_event_files(run_dir: Path) -> None:
    """Wait (at most about a second) until the clock's second is past that of every event file
    already in ``run_dir``.

    TensorBoard reads a run's event files in name order, and a name is
    ``events.out.tfevents.<second>.<host>.<pid>.<counter>``: two files made in the same second
    compare by pid and counter *as text* (``...7.10`` sorts before ``...7.9``), so a resumed
    writer's file could be read before the file it continues, and its purge of the later steps
    would come first and do nothing (seen as out-of-order steps in a quickly resumed run).
    """
    seconds = []
    for path in run_dir.glob(EVENT_FILE_PREFIX + "*"):
        stamp = path.name[len(EVENT_FILE_PREFIX):].split(".", 1)[0]
        if stamp.isdigit():
            seconds.append(int(stamp))
    if seconds:
        while time.time() < max(seconds) + 1:
            time.sleep(0.02)
