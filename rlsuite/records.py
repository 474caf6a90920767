"""Committed run records: a reproduction's runs kept in the repository, so they outlive a machine.

A results page is rendered from run directories (:mod:`rlsuite.reproduce`). Run directories are
not committed (checkpoints and TensorBoard logs are large), so a page could only be regenerated on
the machine that made every one of its runs, and a long reproduction spread over several machines
(or a wiped one) lost its finished runs. A *record* is the part of a run directory that the pages
and the run identity need, small enough to commit under ``results/records/<paper>/<tag>/``:

- ``result.json`` (status, score, final metrics, the identity with its commit),
- ``identity.json`` and ``config.yaml`` (what was run),
- ``reproduce_timing.json`` (process segments: wall and CPU seconds),
- ``metrics.csv.gz`` (the logged rows, compressed; :func:`restore` unpacks it): every column, or
  only those the page reads where its paper module lists them (``RECORD_METRICS``),
- for an interrupted run only, and only when asked (``checkpoint_limit``), its latest checkpoint,
  so that another machine continues the run instead of starting it again;
- for a completed run whose final checkpoint the page itself reads (a paper module's
  ``keeps_checkpoint(tag)``, e.g. ECRM's path heatmaps), that checkpoint.

:func:`restore` copies a record into an empty run directory before a plan runs. A run directory
that already holds a result or a checkpoint is left alone, unless the record is the same run
further along (:func:`supersedes`: completed there and not here, or checkpointed at a later step),
which happens when this machine's copy came from an older record; :func:`archive` copies a run
directory's record back after the run.
"""

from __future__ import annotations

import csv
import gzip
import io
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rlsuite import checkpoint
from rlsuite.checkpoint import LATEST
from rlsuite.identity import IDENTITY_FILE, LOCK_FILE, RunInUse, RunLock, read_claim
from rlsuite.jobs import RESULT_FILE, read_result

RECORD_FILES = (RESULT_FILE, IDENTITY_FILE, "config.yaml", "reproduce_timing.json")
"""Plain files copied as they are."""
METRICS = "metrics.csv"
PACKED_METRICS = METRICS + ".gz"
CHECKPOINT = Path("checkpoints") / LATEST


def has_progress(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a result or a checkpoint (something a restore must not replace)."""
    return (run_dir / RESULT_FILE).exists() or (run_dir / CHECKPOINT).exists()


def archive(run_dir: Path, record_dir: Path, checkpoint_limit: int = 0,
            final_checkpoint: bool = False, columns: Sequence[str] | None = None) -> bool:
    """Copy ``run_dir``'s record into ``record_dir`` (replacing what was there); returns whether
    it copied. A completed run is always copied, with its final checkpoint only if
    ``final_checkpoint``; a run that did not complete only with its latest checkpoint, and only
    when that is at most ``checkpoint_limit`` bytes (0: never). ``columns``: a completed run's
    record keeps only these metrics (and ``step``), in the rows that have one of them, their text
    as logged (so each of their curves reads back exactly); None keeps every column."""
    result = read_result(run_dir)
    checkpoint = run_dir / CHECKPOINT
    completed = result is not None and result.get("status") == "completed"
    partial = not completed and checkpoint.exists() and checkpoint.stat().st_size <= checkpoint_limit
    if not completed and not partial:
        return False  # nothing worth keeping (and an older record of the run stays as it was)
    if completed and final_checkpoint and not checkpoint.exists():
        raise FileNotFoundError(f"{checkpoint}: the page reads this run's final checkpoint, and "
                                f"the run directory has none")
    staging = record_dir.with_name(record_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in RECORD_FILES:
        if (run_dir / name).exists():
            shutil.copy2(run_dir / name, staging / name)
    if (run_dir / METRICS).exists():
        # mtime=0: the same rows pack to the same bytes, so an unchanged record makes no git diff.
        with (run_dir / METRICS).open("rb") as src, \
                gzip.GzipFile(staging / PACKED_METRICS, "wb", compresslevel=9, mtime=0) as dst:
            if columns is None or not completed:  # a run to continue needs every column
                shutil.copyfileobj(src, dst)
            else:
                dst.write(_select(src.read().decode(), columns).encode())
    if partial or (completed and final_checkpoint):
        (staging / CHECKPOINT).parent.mkdir()
        shutil.copy2(checkpoint, staging / CHECKPOINT)
    shutil.rmtree(record_dir, ignore_errors=True)
    staging.rename(record_dir)
    return True


def _select(text: str, columns: Sequence[str]) -> str:
    """``metrics.csv`` text reduced to ``step`` and ``columns`` (those it has), in the rows where
    one of them has a value."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    keep = ["step", *(c for c in columns if c in (reader.fieldnames or ()) and c != "step")]
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=keep, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(row for row in reader if any(row.get(c) for c in keep[1:]))
    return out.getvalue()


@dataclass(frozen=True)
class RecordStore:
    """A paper's committed records, ``<root>/<tag>/``, and what each keeps."""

    root: Path
    final_checkpoint: Callable[[str], bool] = lambda tag: False
    """Whether the page reads job ``tag``'s final checkpoint (then the record keeps it)."""
    columns: tuple[str, ...] | None = None
    """The metrics the page reads (None: every column of ``metrics.csv``)."""

    def save(self, tag: str, run_dir: Path, checkpoint_limit: int = 0) -> bool:
        """:func:`archive` ``run_dir`` as job ``tag``'s record."""
        return archive(run_dir, self.root / tag, checkpoint_limit, self.final_checkpoint(tag),
                       self.columns)

    def load(self, tag: str, run_dir: Path) -> bool:
        """:func:`restore` job ``tag``'s record into ``run_dir``."""
        return restore(self.root / tag, run_dir)


def restore(record_dir: Path, run_dir: Path) -> bool:
    """Copy the record in ``record_dir`` into ``run_dir`` unless ``run_dir`` already has progress
    of its own (:func:`has_progress`) that the record does not supersede (:func:`supersedes`);
    returns whether it copied anything. A superseded run directory is emptied first, under its
    run lock, so a run training there now is never touched."""
    if not (record_dir / RESULT_FILE).exists() and not (record_dir / CHECKPOINT).exists():
        return False
    if has_progress(run_dir):
        if not supersedes(record_dir, run_dir):
            return False
        lock = RunLock(run_dir)
        try:
            lock.acquire()
        except RunInUse:
            return False
        try:
            for path in run_dir.iterdir():
                if path.name != LOCK_FILE:
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
            _copy_record(record_dir, run_dir)
        finally:
            lock.release()
        return True
    run_dir.mkdir(parents=True, exist_ok=True)
    _copy_record(record_dir, run_dir)
    return True


def supersedes(record_dir: Path, run_dir: Path) -> bool:
    """Whether the record in ``record_dir`` is further along than ``run_dir``'s own progress: the
    same run (equal identity keys), not completed here, and completed in the record or checkpointed
    there at a later step (or only there). The case: this machine's run directory was restored from
    an older record, and a newer one arrived with the repository (another machine went on)."""
    here = read_result(run_dir)
    if here is not None and here.get("status") == "completed":
        return False
    ours, theirs = _identity_key(run_dir), _identity_key(record_dir)
    if ours is None or ours != theirs:
        return False
    record = read_result(record_dir)
    if record is not None and record.get("status") == "completed":
        return True
    their_step = _checkpoint_step(record_dir / CHECKPOINT)
    our_step = _checkpoint_step(run_dir / CHECKPOINT)
    return their_step is not None and (our_step is None or their_step > our_step)


def _identity_key(run_dir: Path) -> str | None:
    try:
        claim = read_claim(run_dir)
    except ValueError:  # malformed: not known to be the same run
        return None
    return claim.key if claim is not None else None


def _checkpoint_step(path: Path) -> int | None:
    """The agent's ``global_step`` in the checkpoint at ``path`` (None: no checkpoint, or none
    recorded)."""
    if not path.exists():
        return None
    try:
        return int(checkpoint.load(path)["agent"]["global_step"])
    except (OSError, ValueError, RuntimeError, KeyError, TypeError):
        return None


def _copy_record(record_dir: Path, run_dir: Path) -> None:
    for name in RECORD_FILES:
        if (record_dir / name).exists():
            shutil.copy2(record_dir / name, run_dir / name)
    if (record_dir / PACKED_METRICS).exists():
        with gzip.open(record_dir / PACKED_METRICS, "rb") as src, (run_dir / METRICS).open("wb") as dst:
            shutil.copyfileobj(src, dst)
    if (record_dir / CHECKPOINT).exists():
        (run_dir / CHECKPOINT).parent.mkdir(exist_ok=True)
        shutil.copy2(record_dir / CHECKPOINT, run_dir / CHECKPOINT)
