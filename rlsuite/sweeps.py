"""The end of a sweep: a summary of every job the launcher ran, failed ones first (a Hydra callback).

Registered in ``conf/config.yaml`` (``hydra.callbacks.sweep_summary``), so every ``rlsuite -m``
ends by writing ``summary.md`` and ``summary.json`` into the sweep directory and printing which
jobs did not complete and why. The process then exits with status 1 if any job did not complete,
or if the sweep ran no job at all, after every other job has run: a failure never stops the
sweep, and scripts still notice it.

The job list comes from the launcher, not from a scan of the sweep directory, so a job whose run
directory lies elsewhere (``run_dir=...``) or that died without writing anything is still listed:

- :class:`JobLedger` stands between the sweeper and the launcher (installed by
  :meth:`SweepSummary.on_multirun_start`; Hydra offers callbacks no other view of the jobs
  launched) and records every job of every ``launch`` call with its outcome. When the launcher
  itself fails (a joblib worker killed: joblib's ``TerminatedWorkerError`` takes down the whole
  batch), it runs that batch's jobs again one launch each: finished jobs return their recorded
  score at once (``resume=auto``), interrupted ones resume from their checkpoints, and a job whose
  process dies again is recorded as failed, with NaN as its score, so the sweeper goes on.
- :meth:`SweepSummary.on_job_start` runs in the job's own process and writes
  ``<sweep dir>/.jobs/<num>.json``: the job's resolved run directory and its identity
  (:mod:`rlsuite.identity`), so the summary reads the right ``result.json`` and can tell a run
  directory that holds another run's record from the job's own.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf

from rlsuite import identity, jobs, report
from rlsuite.core.atomic_file import write_text_atomically
from rlsuite.logging import read_metrics

JOBS_DIR = ".jobs"
log = logging.getLogger(__name__)


@dataclass
class LaunchedJob:
    """One job as the launcher saw it: its number, its overrides and, if its process died or the
    launcher failed on it, the error."""

    num: int
    overrides: list[str]
    crash: str | None = None


class JobLedger(Launcher):
    """Wraps the configured launcher: records each job launched and survives a lost worker."""

    def __init__(self, inner: Launcher, ledger: list[LaunchedJob]) -> None:
        self.inner, self.ledger = inner, ledger

    def setup(self, **kwargs: Any) -> None:
        """Set up the wrapped launcher (already done by Hydra before wrapping)."""
        self.inner.setup(**kwargs)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
               ) -> Sequence[JobReturn]:
        """Launch the jobs with the wrapped launcher; if it fails, launch them one at a time."""
        try:
            returns = list(self.inner.launch(job_overrides, initial_job_idx))
            crashes: list[str | None] = [None] * len(returns)
        except Exception as err:  # noqa: BLE001  (any launcher failure: retry each job alone)
            print(f"rlsuite: the launcher failed ({type(err).__name__}); running this "
                  f"batch's {len(job_overrides)} job(s) one at a time", file=sys.stderr)
            returns, crashes = [], []
            for i, overrides in enumerate(job_overrides):
                ret, crash = self._launch_alone(list(overrides), initial_job_idx + i)
                returns.append(ret)
                crashes.append(crash)
        for i, (overrides, crash) in enumerate(zip(job_overrides, crashes, strict=True)):
            self.ledger.append(LaunchedJob(initial_job_idx + i, list(overrides), crash))
        return returns

    def _launch_alone(self, overrides: list[str], num: int) -> tuple[JobReturn, str | None]:
        sweep_dir = OmegaConf.select(getattr(self.inner, "config", None) or OmegaConf.create(),
                                     "hydra.sweep.dir")
        if sweep_dir is not None:  # finished before the launcher failed: no need to start it
            done = _job_outcome(LaunchedJob(num, overrides), Path(sweep_dir))
            if done.score is not None:
                return JobReturn(overrides=overrides, status=JobStatus.COMPLETED,
                                 _return_value=done.score), None
        try:
            [ret] = self.inner.launch([overrides], num)
            return ret, None
        except Exception as err:  # noqa: BLE001
            # NaN: what the CLI returns for a failed job, so sweepers (Optuna) record a failure.
            ret = JobReturn(overrides=overrides, status=JobStatus.COMPLETED,
                            _return_value=float("nan"))
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            return ret, f"the job's process died ({type(err).__name__}: {first})"


def _job_record_path(sweep_dir: str | Path, num: int) -> Path:
    return Path(sweep_dir) / JOBS_DIR / f"{num}.json"


def write_job_record(config: DictConfig) -> Path:
    """In a job's process: record its resolved run directory, config and identity (see module)."""
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get()
    task = OmegaConf.to_container(config, resolve=True)
    assert isinstance(task, dict)
    task.pop("hydra", None)
    explicit = task.get("resume") not in (None, "auto")
    run_dir = str(task["resume"] if explicit else task.get("run_dir"))
    record = {"num": int(hydra.job.num), "run_dir": str(Path(run_dir).resolve()), "config": task,
              "identity": None if explicit else identity.make(task).to_dict()}
    path = _job_record_path(hydra.sweep.dir, int(hydra.job.num))
    return write_text_atomically(path, json.dumps(record, indent=2, default=str) + "\n")


def _job_outcome(job: LaunchedJob, sweep_dir: Path) -> report.RunRecord:
    """The job's run as a :class:`rlsuite.report.RunRecord` whose ``result`` is the job's own."""
    try:
        return _read_job_outcome(job, sweep_dir)
    except Exception as err:  # noqa: BLE001  (an unreadable record must not lose the summary)
        return report.RunRecord(sweep_dir / f"job {job.num}", {}, {
            "status": jobs.FAILED, "error": f"unreadable job record ({type(err).__name__}: {err})"})


def _read_job_outcome(job: LaunchedJob, sweep_dir: Path) -> report.RunRecord:
    record_path = _job_record_path(sweep_dir, job.num)
    record = json.loads(record_path.read_text()) if record_path.exists() else None
    run_dir = Path(record["run_dir"]) if record else sweep_dir / f"job {job.num}"
    config = record["config"] if record else {}
    if job.crash is not None:
        return report.RunRecord(run_dir, config, {"status": jobs.FAILED, "error": job.crash})
    if record is None:
        return report.RunRecord(run_dir, config, {"status": jobs.FAILED,
                                                  "error": "the job never started"})
    result = jobs.read_result(run_dir)
    owner = (result or {}).get("identity")
    if owner is None and (run_dir / identity.IDENTITY_FILE).exists():
        owner = json.loads((run_dir / identity.IDENTITY_FILE).read_text())
    if record["identity"] is not None and owner is not None:
        mine = identity.RunIdentity.from_dict(record["identity"])
        theirs = identity.RunIdentity.from_dict(owner)
        if mine.key != theirs.key:  # the runner refused: the directory belongs to another run
            diff = identity.describe(identity.differences(theirs, mine))
            return report.RunRecord(run_dir, config, {
                "status": jobs.FAILED,
                "error": f"refused: {run_dir} holds another run ({diff})"})
    metrics = read_metrics(run_dir) if (run_dir / "metrics.csv").exists() else []
    return report.RunRecord(run_dir, config, result, metrics)


def write_summary(sweep_dir: str | Path, launched: Sequence[LaunchedJob]
                  ) -> tuple[Path, list[report.RunRecord]]:
    """Write ``summary.md``/``summary.json`` for the jobs ``launched``; return the path of the
    markdown file and the runs that did not complete."""
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    ordered = sorted(launched, key=lambda j: j.num)
    records = [_job_outcome(job, sweep_dir) for job in ordered]
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
    payload = [{"job": job.num, "overrides": job.overrides, "run_dir": str(r.path),
                "status": r.status, "score": r.score, "error": (r.result or {}).get("error"),
                "reason": (r.result or {}).get("reason")}
               for job, r in zip(ordered, records, strict=True)]
    (sweep_dir / "summary.json").write_text(json.dumps(payload, indent=2) + "\n")
    return path, bad


class SweepSummary(Callback):
    """Hydra callback: record the jobs of a multirun, summarize them when it ends."""

    def __init__(self, fail_exit: bool = True) -> None:
        self.fail_exit = fail_exit
        self.launched: list[LaunchedJob] = []
        self._restore: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # Sent to job processes (joblib, submitit): they only write their own job record.
        return {"fail_exit": self.fail_exit, "launched": [], "_restore": None}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Have every launcher the sweeper instantiates wrapped in a :class:`JobLedger`."""
        from hydra.core.plugins import Plugins

        plugins = Plugins.instance()
        vars(plugins).pop("instantiate_launcher", None)  # a previous sweep that raised kept its
        original = plugins.instantiate_launcher
        launched = self.launched

        def instantiate_launcher(*args: Any, **kw: Any) -> Launcher:
            return JobLedger(original(*args, **kw), launched)

        plugins.instantiate_launcher = instantiate_launcher  # type: ignore[method-assign]
        self._restore = lambda: vars(plugins).pop("instantiate_launcher", None)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Record the job's run directory and identity (in the job's process)."""
        try:
            write_job_record(config)
        except Exception as err:  # noqa: BLE001  (a bad config fails the job itself, with its message)
            log.warning("rlsuite: could not record job: %s", err)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write the summary; exit with status 1 if a job did not complete or none ran."""
        if self._restore is not None:
            self._restore()
        path, bad = write_summary(Path(config.hydra.sweep.dir), self.launched)
        print(f"rlsuite: sweep summary in {path}", file=sys.stderr)
        if not self.launched:
            print("rlsuite: the sweep ran no jobs", file=sys.stderr)
        if bad:
            print(f"rlsuite: {len(bad)} job(s) did not complete:", file=sys.stderr)
            for line in report.failure_lines(bad):
                print(f"  {line}", file=sys.stderr)
        if self.fail_exit and (bad or not self.launched):
            raise SystemExit(1)
