"""The run logger streams ``metrics.csv``: its memory does not grow with the rows logged, and the
file stays valid when a tag appears late or a resume rewinds it."""

from __future__ import annotations

import csv
import gc
import tracemalloc
from pathlib import Path

from rlsuite.logging import Logger, read_metrics

TAGS = [f"train/tag_{i}" for i in range(20)]


def _retained_bytes(log: Logger, first: int, count: int) -> int:
    for step in range(first, first + count):
        log.log(step, {tag: step + 0.5 for tag in TAGS})
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_memory_does_not_grow_with_the_rows_logged(tmp_path: Path) -> None:
    log = Logger(tmp_path, None, tensorboard=False)
    tracemalloc.start()
    try:
        after_100 = _retained_bytes(log, 0, 100)
        after_10_000 = _retained_bytes(log, 100, 9_900)
    finally:
        tracemalloc.stop()
    # Holding the rows (as the logger did before) retained ~2 kB per 20-tag row: ~20 MB here.
    assert after_10_000 - after_100 < 64_000
    assert not any(isinstance(v, (list, dict)) and len(v) > len(TAGS) + 1 for v in vars(log).values())
    log.close()
    rows = read_metrics(tmp_path)
    assert len(rows) == 10_000 and rows[-1] == {"step": 9_999.0, **{t: 9_999.5 for t in TAGS}}


def test_a_late_tag_widens_the_header_of_every_streamed_row(tmp_path: Path) -> None:
    log = Logger(tmp_path, None, tensorboard=False)
    for step in range(1, 501):
        log.log(step, {"a": float(step)})
    log.log(501, {"a": 1.0, "eval/late": 7.0})
    log.log(502, {"a": 2.0})
    with (tmp_path / "metrics.csv").open(newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == ["step", "a", "eval/late"]
    assert all(len(line) == 3 for line in lines) and len(lines) == 503
    rows = read_metrics(tmp_path)
    assert rows[0] == {"step": 1.0, "a": 1.0} and rows[500] == {"step": 501.0, "a": 1.0, "eval/late": 7.0}
    assert rows[-1] == {"step": 502.0, "a": 2.0}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.csv"]  # no temporary file left


def test_resume_rewinds_to_the_checkpoint_step_and_drops_a_partial_line(tmp_path: Path) -> None:
    log = Logger(tmp_path, None, tensorboard=False)
    for step in (10, 20, 30, 40):
        log.log(step, {"a": step / 10, **({"b": 1.0} if step == 20 else {})})
    with (tmp_path / "metrics.csv").open("a") as f:
        f.write("5")  # a kill in the middle of a write: the step cell cut short, no newline
    log = Logger(tmp_path, None, tensorboard=False, resume=True, rewind_to=20)
    log.log(30, {"a": 3.5})
    assert read_metrics(tmp_path) == [{"step": 10.0, "a": 1.0}, {"step": 20.0, "a": 2.0, "b": 1.0},
                                      {"step": 30.0, "a": 3.5}]
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == "step,a,b"


def test_resume_of_an_empty_file_writes_the_header(tmp_path: Path) -> None:
    (tmp_path / "metrics.csv").write_text("")
    log = Logger(tmp_path, None, tensorboard=False, resume=True)
    log.log(1, {})
    log.log(2, {"a": 1.0})
    assert read_metrics(tmp_path) == [{"step": 1.0}, {"step": 2.0, "a": 1.0}]


def test_a_resumed_writer_event_file_sorts_after_the_earlier_ones(tmp_path) -> None:
    # TensorBoard reads event files in name order; a file made in the same second as the one it
    # continues must not sort first (names compare pid and counter as text).
    import time

    now = int(time.time())
    earlier = tmp_path / f"events.out.tfevents.{now:010d}.host.99999.99"
    earlier.write_bytes(b"")
    logger = Logger(tmp_path, tensorboard=True, resume=True, rewind_to=0)
    logger.close()
    files = sorted(p.name for p in tmp_path.glob("events.out.tfevents.*"))
    assert len(files) == 2 and files[0] == earlier.name
    assert int(files[1].split(".")[3]) > now
