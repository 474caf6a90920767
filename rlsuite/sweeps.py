"""The end of a sweep: a summary of every job, failed ones first, as a Hydra callback.

Registered in ``conf/config.yaml`` (``hydra.callbacks.sweep_summary``), so every ``rlsuite -m``
ends by writing ``summary.md`` and ``summary.json`` into the sweep directory and printing which
jobs failed and why (from each job's ``result.json``). The process then exits with status 1 if any
job did not complete, after every other job has run: a failure never stops the sweep, and scripts
still notice it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rlsuite import report


def write_summary(sweep_dir: str | Path) -> tuple[Path, list[report.RunRecord]]:
    """Write ``summary.md``/``summary.json`` for the runs under ``sweep_dir``; return the path of
    the markdown file and the runs that did not complete."""
    sweep_dir = Path(sweep_dir)
    records = report.find_runs([sweep_dir])
    by = report.varying_keys(records)
    cells = report.summarize(records, by)
    bad = report.failures(records)
    lines = [f"# Sweep {sweep_dir}", "",
             f"{len(records)} jobs: {len(records) - len(bad)} completed, {len(bad)} did not.", ""]
    if bad:
        lines += ["## Jobs that did not complete", ""]
        lines += [f"- {line}" for line in report.failure_lines(records)] + [""]
    lines += ["## Scores", "", report.method_text(), "", report.markdown_table(cells, by)]
    path = sweep_dir / "summary.md"
    path.write_text("\n".join(lines))
    payload = [{"run_dir": str(r.path), "status": r.status, "score": r.score,
                "error": (r.result or {}).get("error")} for r in records]
    (sweep_dir / "summary.json").write_text(json.dumps(payload, indent=2) + "\n")
    return path, bad


class SweepSummary(Callback):
    """Hydra callback: summarize the sweep when the multirun ends."""

    def __init__(self, fail_exit: bool = True) -> None:
        self.fail_exit = fail_exit

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write the summary; exit with status 1 if a job did not complete."""
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.exists():
            return
        path, bad = write_summary(sweep_dir)
        print(f"rlsuite: sweep summary in {path}", file=sys.stderr)
        if bad:
            print(f"rlsuite: {len(bad)} job(s) did not complete:", file=sys.stderr)
            for line in report.failure_lines(bad):
                print(f"  {line}", file=sys.stderr)
            if self.fail_exit:
                raise SystemExit(1)
