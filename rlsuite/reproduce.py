"""Regenerate results pages from run records: every number comes from a runner run on a preset.

A paper's reproduction is a *plan*, a list of :class:`Job` (an ``conf/experiment`` preset plus
command-line overrides, under a tag naming its run directory), and a *renderer* that turns the
jobs' :class:`Record` s (``result.json``, ``metrics.csv``, the run identity with its commit) into
markdown sections. ``scripts/reproduce.py <paper>`` runs the plan through :func:`rlsuite.runner.run`
(``resume=auto``: a finished run with the same identity is read back, an interrupted one continues
from its checkpoint) and writes each section between its markers in ``results/<paper>.md``::

    <!-- generated:NAME -->
    ... replaced on every regeneration ...
    <!-- /generated:NAME -->

``--quick`` runs the plan's reduced version into ``results/quick/<paper>.md`` (no commits, no
timings: only what the code computes), and ``--quick --check`` compares a fresh quick run with that
committed page and fails on any difference, which is how CI checks that committed numbers still
regenerate from the committed code.

Reuse is explicit about staleness: a completed run whose record names a commit that differs from
the working tree in ``rlsuite/`` or ``conf/`` is rerun, unless ``keep_stale`` is set (long runs
spanning sessions); the row stamps always name the commit each run was made at.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from rlsuite import records as run_records
from rlsuite.core.atomic_file import remove_stale_temps, write_text_atomically
from rlsuite.identity import CODE_PATHS  # where a code change makes a recorded run stale

REPO = Path(__file__).resolve().parents[1]
TIMING_FILE = "reproduce_timing.json"
"""Per-run list of process segments ``{wall_s, cpu_s, commit}``, kept current by :class:`SegmentClock`."""


@dataclass(frozen=True)
class Job:
    """One run of a reproduction: ``rlsuite experiment=<preset> <overrides>``."""

    tag: str
    """Run directory name under the paper's run root (unique within the plan)."""
    preset: str
    """``conf/experiment/<preset>.yaml``."""
    overrides: tuple[str, ...] = ()
    """Command-line overrides, exactly as on the ``rlsuite`` command line."""

    def __post_init__(self) -> None:
        if not self.tag or "/" in self.tag or self.tag.startswith("."):
            raise ValueError(f"Job.tag={self.tag!r}: must be a plain directory name")
        if not (REPO / "conf" / "experiment" / f"{self.preset}.yaml").exists():
            raise ValueError(f"Job.preset={self.preset!r}: no conf/experiment/{self.preset}.yaml")

    @property
    def command(self) -> str:
        """The CLI command that runs this job (without its run directory)."""
        return " ".join(["rlsuite", f"experiment={self.preset}", *(shlex.quote(o) for o in self.overrides)])


@dataclass
class Record:
    """A job's run, read back from its run directory."""

    job: Job
    run_dir: Path
    result: dict[str, Any]
    metrics: list[dict[str, float]] = field(default_factory=list)
    timing: list[dict[str, Any]] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        """The run finished (``result.json`` says completed)."""
        return self.result.get("status") == "completed"

    @property
    def score(self) -> float:
        """The run's score (the first final metric)."""
        return float(self.result["score"])

    @property
    def final(self) -> dict[str, float]:
        """Every final metric the runner recorded."""
        return dict(self.result.get("metrics") or {})

    @property
    def config(self) -> dict[str, Any]:
        """The keyed (resolved) config the run was made with."""
        return dict(self.result.get("identity", {}).get("config", {}))

    @property
    def commit(self) -> str:
        """Short commit the run was made at (``+dirty`` when the tree had changes)."""
        code = self.result.get("identity", {}).get("code", {})
        commit = (code.get("commit") or "unknown")[:10]
        return commit + ("+dirty" if code.get("dirty") else "")

    @property
    def wall_s(self) -> float:
        """Wall seconds over every process segment of the run (NaN if unknown)."""
        return sum(s["wall_s"] for s in self.timing) if self.timing else float("nan")

    @property
    def cpu_s(self) -> float:
        """CPU seconds over every process segment of the run (NaN if unknown)."""
        return sum(s["cpu_s"] for s in self.timing) if self.timing else float("nan")

    def curve(self, key: str) -> list[tuple[int, float]]:
        """``(step, value)`` of ``key`` over the logged rows (the final row included)."""
        return [(int(r["step"]), float(r[key])) for r in self.metrics if key in r and r[key] == r[key]]


# -- running --------------------------------------------------------------------------------------


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})


def is_stale(result: dict[str, Any], keep_since: str | None = None) -> bool:
    """Whether a recorded run was made by code that differs from this checkout in
    :data:`CODE_PATHS` (or by a dirty tree, or where git cannot tell). With ``keep_since`` (a
    commit of this checkout's history) a run made at that commit or a later one counts as fresh:
    whoever passes it vouches that nothing since changed the plan's numbers (e.g. the quick check
    still regenerates), so a long plan is not restarted by every unrelated commit."""
    code = result.get("identity", {}).get("code", {})
    commit = code.get("commit")
    if not commit or code.get("dirty"):
        return True
    if keep_since is not None:
        # --is-ancestor: 0 when keep_since is the commit or an ancestor of it, 1 when not.
        if _git("merge-base", "--is-ancestor", keep_since, commit).returncode == 0:
            return False
    diff = _git("diff", "--quiet", commit, "--", *CODE_PATHS)
    return diff.returncode != 0  # 1: differs; 128: unknown commit


def check_commit(rev: str) -> str:
    """``rev`` resolved to a full commit of this checkout, or ValueError naming it."""
    out = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if out.returncode != 0:
        raise ValueError(f"keep_since={rev!r}: not a commit of this checkout")
    return out.stdout.strip()


def read_record(job: Job, run_dir: Path) -> Record:
    """``job``'s record from ``run_dir`` (empty result when it never ran)."""
    from rlsuite import jobs
    from rlsuite.logging import read_metrics

    result = jobs.read_result(run_dir) or {"status": "missing"}
    metrics = read_metrics(run_dir) if (run_dir / "metrics.csv").exists() else []
    timing_path = run_dir / TIMING_FILE
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else []
    return Record(job, run_dir, result, metrics, timing)


class SegmentClock:
    """This process's segment of a run in the run's timing file (:data:`TIMING_FILE`), kept
    current while the run goes: the file is rewritten every ``interval_s`` seconds (by a daemon
    thread) and once more by :meth:`stop`. A segment that ends without warning (SIGKILL, the
    machine taken away) still counts its wall and CPU seconds up to the last rewrite instead of
    leaving no trace, so a long run's CPU total stays close to what it spent. The segments of
    earlier processes, read when the clock starts, are kept as they are."""

    def __init__(self, path: Path, commit: str | None, interval_s: float = 60.0) -> None:
        """Start timing now; ``path`` may not exist yet (the runner creates the run directory)."""
        import threading

        self.path, self.commit, self.interval_s = Path(path), commit, interval_s
        self.earlier: list[dict[str, Any]] = (json.loads(self.path.read_text())
                                              if self.path.exists() else [])
        remove_stale_temps(self.path.parent, names=(self.path.name,))  # a killed segment's
        self.tic, self.cpu = time.perf_counter(), time.process_time()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._tick, name="reproduce-segment-clock",
                                        daemon=True)
        self._thread.start()

    def segment(self) -> dict[str, Any]:
        """The segment so far: ``{wall_s, cpu_s, commit}`` (CPU is the whole process's time)."""
        return {"wall_s": time.perf_counter() - self.tic, "cpu_s": time.process_time() - self.cpu,
                "commit": self.commit}

    def write(self) -> None:
        """Rewrite the file as the earlier segments plus this one (temp file, then rename)."""
        with self._lock:
            if not self.path.parent.exists():
                return  # the runner has not made the run directory yet
            write_text_atomically(self.path, json.dumps([*self.earlier, self.segment()], indent=1))

    def _tick(self) -> None:
        while not self._stopped.wait(self.interval_s):
            self.write()

    def stop(self) -> None:
        """End the segment: stop the thread and write the final time."""
        self._stopped.set()
        self._thread.join()
        self.write()


PREEMPTED = "preempted by a signal"
"""What :func:`_run_one` returns when its run was stopped by a signal: :func:`launch` stops there."""


def _run_one(job: Job, run_dir: str, extra: tuple[str, ...], fresh: bool = False) -> str | None:
    """Worker: run ``job`` in ``run_dir`` through the runner; the error text, or None.
    ``fresh``: the directory holds a stale completed run, removed first (only now, when the job
    starts: a plan stopped before it keeps that record)."""
    import torch

    if fresh:
        shutil.rmtree(run_dir, ignore_errors=True)

    torch.set_num_threads(1)
    from rlsuite.identity import RunMismatch, code_version
    from rlsuite.runner import compose, run

    overrides = [f"experiment={job.preset}", *job.overrides, f"run_dir={run_dir}", "resume=auto",
                 "progress=false", "threads=1", *extra]
    from rlsuite.jobs import PreemptionExit

    clock = SegmentClock(Path(run_dir) / TIMING_FILE, code_version().get("commit"))
    try:
        try:
            run(compose(overrides))
        except RunMismatch as mismatch:
            # An interrupted run of another experiment holds the directory (the preset or the
            # config's fields changed since it started): its checkpoint cannot be continued as
            # this job, so the job starts again (only incomplete runs get here, see launch).
            print(f"reproduce: {job.tag}: the interrupted run there is another experiment "
                  f"({mismatch}); starting it again", file=sys.stderr)
            shutil.rmtree(run_dir)
            clock.earlier = []  # those segments were the removed run's
            run(compose(overrides))
    except PreemptionExit:  # a signal (SIGTERM, Slurm's SIGUSR2): checkpointed; stop the plan
        return PREEMPTED
    except BaseException as err:  # noqa: BLE001 (recorded; the plan goes on with the other jobs)
        return f"{type(err).__name__}: {err}"
    finally:
        clock.stop()
    return None


def launch(plan: Sequence[Job], root: Path, *, workers: int = 1, keep_stale: bool = False,
           extra: Sequence[str] = (), progress: bool = True,
           keep_since: str | None = None,
           records: run_records.RecordStore | None = None) -> list[Record]:
    """Run every job of ``plan`` under ``root/<tag>`` and return their records, in plan order.

    Completed runs of the same identity are read back (not rerun) unless stale (:func:`is_stale`
    with ``keep_since``, overridden by ``keep_stale``); interrupted ones continue from their
    checkpoints. ``extra``
    overrides go to every job but are not part of its command (e.g. ``time_limit_s=3600``).
    ``records``: the committed records of the plan (:mod:`rlsuite.records`), restored into run
    directories that have none before anything runs, and written back as each job completes.
    """
    tags = [job.tag for job in plan]
    if len(set(tags)) != len(tags):
        raise ValueError(f"plan: duplicate tags {sorted({t for t in tags if tags.count(t) > 1})}")
    root.mkdir(parents=True, exist_ok=True)
    todo, stale = [], set()
    for job in plan:
        run_dir = root / job.tag
        if records is not None:
            records.load(job.tag, run_dir)
        result = read_record(job, run_dir).result
        if (result.get("status") == "completed" and not keep_stale
                and is_stale(result, keep_since)):
            print(f"reproduce: {job.tag}: recorded at {result['identity']['code'].get('commit')}, "
                  f"code changed since: rerunning", file=sys.stderr)
            stale.add(job.tag)  # its directory is removed when the job starts, not before
            result = {}
        if result.get("status") != "completed":
            todo.append(job)
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc=f"runs ({len(plan) - len(todo)} of {len(plan)} recorded)",
                   unit="run", file=sys.stderr)
    errors: dict[str, str] = {}

    def done(job: Job, error: str | None) -> None:
        if records is not None:
            records.save(job.tag, root / job.tag)
        if error:
            errors[job.tag] = error
            print(f"reproduce: {job.tag} did not complete: {error}", file=sys.stderr)
        if bar is not None:
            bar.update(1)

    # A signal stops the whole plan (each run checkpoints; the same command continues); a time
    # limit or a failure stops only its own run.
    if workers <= 1:
        for job in todo:
            done(job, _run_one(job, str(root / job.tag), tuple(extra), job.tag in stale))
            if errors.get(job.tag) == PREEMPTED:
                break
    else:
        with ProcessPoolExecutor(workers) as pool:
            futures = [(job, pool.submit(_run_one, job, str(root / job.tag), tuple(extra),
                                         job.tag in stale)) for job in todo]
            for job, future in futures:
                done(job, future.result())
                if errors.get(job.tag) == PREEMPTED:
                    for _, rest in futures:
                        rest.cancel()
                    break
    if bar is not None:
        bar.close()
    return [read_record(job, root / job.tag) for job in plan]


# -- rendering ------------------------------------------------------------------------------------


class Citations:
    """Numbered run stamps for a page: a table row cites its runs as ``[3-5]``, and
    :meth:`markdown` lists each number's command and the commit it ran at (commits and times are
    left out of quick pages, which must regenerate identically at every commit)."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        self.entries: list[Record] = []

    def cite(self, records: Sequence[Record]) -> str:
        """The citation mark for ``records`` (numbered in order of first citation)."""
        numbers = []
        for record in records:
            if record not in self.entries:
                self.entries.append(record)
            numbers.append(self.entries.index(record) + 1)
        numbers.sort()
        if not numbers:
            return ""
        if numbers == list(range(numbers[0], numbers[-1] + 1)) and len(numbers) > 1:
            return f"[{numbers[0]}-{numbers[-1]}]"
        return "[" + ",".join(map(str, numbers)) + "]"

    def markdown(self) -> str:
        """The list of cited runs: ``[n] `command` `` (at ``commit``, CPU seconds)."""
        lines = []
        for n, record in enumerate(self.entries, 1):
            line = f"[{n}] `{record.job.command}`"
            if not self.quick:
                line += f" (commit {record.commit}"
                if record.timing:
                    line += f", {record.cpu_s:.0f} CPU s"
                line += ")"
            if not record.completed:
                line += f" - **{record.result.get('status', 'missing')}**"
            lines.append(line)
        return "<details><summary>Runs behind the table</summary>\n\n" + "  \n".join(lines) + \
            "\n\n</details>" if lines else ""


def fmt(value: float | None, digits: int = 3) -> str:
    """``value`` to ``digits`` significant figures (``-`` for a missing or NaN one)."""
    if value is None or value != value:
        return "-"
    return f"{value:.{digits}g}"


MARK_BEGIN = "<!-- generated:{} -->"
MARK_END = "<!-- /generated:{} -->"


def splice(page: str, sections: dict[str, str]) -> str:
    """``page`` with the text between each section's markers replaced; a section without markers
    is an error (the hand-written page decides where each generated section goes)."""
    for name, body in sections.items():
        begin, end = MARK_BEGIN.format(name), MARK_END.format(name)
        start, stop = page.find(begin), page.find(end)
        if start < 0 or stop < start:
            raise ValueError(f"the page has no markers {begin} ... {end} for section {name!r}")
        page = page[: start + len(begin)] + "\n" + body.strip("\n") + "\n" + page[stop:]
    return page


def quick_page(paper: str, title: str, sections: dict[str, str]) -> str:
    """The committed quick page of ``paper``: every section, under one header."""
    head = [f"# {title}: quick check", "",
            f"Command (from the repository root): `.venv/bin/python scripts/reproduce.py {paper} --quick`",
            "",
            f"CI runs `.venv/bin/python scripts/reproduce.py {paper} --quick --check`, which reruns "
            "these reduced experiments from scratch and fails if any number below differs. The "
            f"budgets are far below the paper's; the full tables are in `results/{paper}.md`.", ""]
    body = [f"## {name}\n\n{text.strip()}\n" for name, text in sections.items()]
    return "\n".join(head) + "\n" + "\n".join(body)


# -- papers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paper:
    """A paper's reproduction, loaded from ``scripts/papers/<name>.py``.

    The module defines ``TITLE`` (str), ``PAGE`` (the results page, relative to the repository),
    ``plan(quick: bool) -> list[Job]`` and ``render(records: dict[str, Record], quick: bool,
    out: Path) -> dict[str, str]`` (section name -> markdown; it may write figures into ``out``
    when not quick), and optionally ``keeps_checkpoint(tag) -> bool`` (the full page reads that
    run's final checkpoint, so its committed record keeps it) and ``RECORD_METRICS`` (the only
    metrics columns the full page reads, so the records keep only those).
    """

    name: str
    module: ModuleType
    root: Path = REPO
    """The repository the page belongs to."""

    @property
    def title(self) -> str:
        """The paper, as the pages name it."""
        return str(self.module.TITLE)

    @property
    def page(self) -> Path:
        """The hand-written results page the full sections go into."""
        return self.root / self.module.PAGE

    def plan(self, quick: bool) -> list[Job]:
        """The jobs (reduced ones with ``quick``)."""
        return list(self.module.plan(quick))

    def render(self, records: dict[str, Record], quick: bool, out: Path) -> dict[str, str]:
        """The generated sections from the jobs' records."""
        return dict(self.module.render(records, quick, out))

    def keeps_checkpoint(self, tag: str) -> bool:
        """Whether the page reads job ``tag``'s final checkpoint, which its committed record
        must then hold (the module's optional ``keeps_checkpoint(tag)``; default no)."""
        keeps = getattr(self.module, "keeps_checkpoint", None)
        return bool(keeps(tag)) if keeps is not None else False

    def records(self) -> run_records.RecordStore:
        """The page's committed run records (``results/records/<paper>/``), keeping the final
        checkpoints it reads and, where the module lists them (``RECORD_METRICS``), only the
        metrics it reads."""
        columns = getattr(self.module, "RECORD_METRICS", None)
        return run_records.RecordStore(records_root(self.root, self.name), self.keeps_checkpoint,
                                       tuple(columns) if columns is not None else None)


def records_root(root: Path, name: str) -> Path:
    """Where paper ``name``'s committed run records live (:mod:`rlsuite.records`)."""
    return root / "results" / "records" / name


def papers(root: Path = REPO) -> list[str]:
    """Names of the papers with a reproduction module (``scripts/papers/*.py`` under ``root``)."""
    return sorted(p.stem for p in (root / "scripts" / "papers").glob("*.py") if not p.stem.startswith("_"))


def load_paper(name: str, root: Path = REPO) -> Paper:
    """The reproduction of paper ``name`` (``<root>/scripts/papers/<name>.py``)."""
    path = root / "scripts" / "papers" / f"{name}.py"
    if not path.exists():
        raise ValueError(f"paper={name!r}: unknown; the papers are {papers(root)}")
    spec = importlib.util.spec_from_file_location(f"rlsuite_papers.{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # process-pool workers unpickle Jobs only; the module stays here
    spec.loader.exec_module(module)
    for attr in ("TITLE", "PAGE", "plan", "render"):
        if not hasattr(module, attr):
            raise ValueError(f"{path}: a paper module must define {attr}")
    return Paper(name, module, root)


def regenerate(name: str, *, quick: bool, check: bool = False, runs_root: Path | None = None,
               workers: int = 1, keep_stale: bool = False, extra: Sequence[str] = (),
               progress: bool = True, root: Path = REPO, run: bool = True,
               only: Sequence[str] = (), keep_since: str | None = None,
               save_records: int | None = None) -> int:
    """Run paper ``name``'s plan and write its page (see the module doc); with ``check`` (quick
    only) compare instead of writing. Returns the exit status: 0, or 1 when a job did not
    complete or the check found a difference. ``root`` is the repository (tests use a copy).
    A check's scratch run root is removed afterwards. ``run=False`` runs nothing: the page is
    rendered from the records already there (the rows of runs not made yet say so), e.g. to
    publish what a long reproduction has so far. ``only`` (shell patterns on tags) runs just those
    jobs; the page still renders every recorded run. ``keep_since``: see :func:`is_stale`.

    A full (not quick) plan keeps its committed records in ``results/records/<paper>/``
    (:mod:`rlsuite.records`): they are restored into the run root first and each completed run is
    written back. ``save_records`` (a size in bytes) runs nothing and writes no page: it copies
    every run's record into the records folder, with the latest checkpoint of each interrupted
    run up to that size, so that another machine continues it."""
    paper = load_paper(name, root)
    if keep_since is not None:
        if check:
            raise ValueError("--check reruns the quick plan from scratch: drop --keep-since")
        keep_since = check_commit(keep_since)
    if check and not quick:
        raise ValueError("--check compares quick pages: use it with --quick")
    if check and not run:
        raise ValueError("--check reruns the quick plan: it cannot be combined with --no-run")
    default_root = root / "runs" / ("reproduce_quick" if quick else "reproduce") / name
    run_root = runs_root if runs_root is not None else default_root
    if save_records is not None:
        if quick:
            raise ValueError("--save-records keeps full runs: drop --quick")
        store = paper.records()
        saved = [job.tag for job in paper.plan(False)
                 if store.save(job.tag, run_root / job.tag, checkpoint_limit=save_records)]
        print(f"reproduce {name}: saved {len(saved)} records into "
              f"{records_root(root, name).relative_to(root)}: {saved}")
        return 0
    scratch = check and runs_root is None  # a check reruns everything from scratch
    if scratch:
        import tempfile

        run_root = Path(tempfile.mkdtemp(prefix=f"rlsuite-check-{name}-"))
    try:
        return _regenerate(paper, quick, check, run_root, workers, keep_stale, extra, progress,
                           root, run, only, keep_since)
    finally:
        if scratch:
            shutil.rmtree(run_root, ignore_errors=True)


def verify(name: str, *, root: Path = REPO) -> int:
    """Check that paper ``name``'s page is what its committed records render (runs nothing).

    The records in ``results/records/<paper>/`` are restored into a scratch run root and rendered
    (figures go to a scratch folder); the generated sections must equal the page's. A page that
    differs while some job has no completed record cannot be judged (it may have been made from
    runs the repository does not hold): that is reported, and is not a failure. Returns 1 on a
    difference with every record present, else 0."""
    import tempfile

    paper = load_paper(name, root)
    plan = paper.plan(False)
    store = paper.records()
    records = store.root
    with tempfile.TemporaryDirectory(prefix=f"rlsuite-verify-{name}-") as scratch:
        runs = []
        for job in plan:
            store.load(job.tag, Path(scratch) / "runs" / job.tag)
            runs.append(read_record(job, Path(scratch) / "runs" / job.tag))
        recorded = sum(r.completed for r in runs)
        figures = Path(scratch) / "figures"
        figures.mkdir()
        sections = paper.render({r.job.tag: r for r in runs}, False, figures)
    old = paper.page.read_text()
    new = splice(old, sections)
    if old != new and recorded < len(runs):
        print(f"reproduce {name} --verify: not checked, {paper.page.relative_to(root)} differs from "
              f"what its records render but only {recorded} of {len(runs)} runs have a completed "
              f"record in {records.relative_to(root)}")
        return 0
    if old != new:
        import difflib

        sys.stdout.writelines(difflib.unified_diff(
            old.splitlines(True), new.splitlines(True), str(paper.page.relative_to(root)),
            "rendered from the records"))
        print(f"reproduce {name} --verify: {paper.page.relative_to(root)} is not what its "
              f"{len(runs)} committed records render (diff above)", file=sys.stderr)
        return 1
    print(f"reproduce {name} --verify: {paper.page.relative_to(root)} is what its committed records "
          f"render ({recorded} of {len(runs)} runs completed)")
    return 0


def _regenerate(paper: Paper, quick: bool, check: bool, run_root: Path, workers: int,
                keep_stale: bool, extra: Sequence[str], progress: bool, root: Path, run: bool,
                only: Sequence[str], keep_since: str | None = None) -> int:
    """:func:`regenerate` once its run root is chosen."""
    name = paper.name
    plan = paper.plan(quick)
    records = None if quick else paper.records()
    if only:
        import fnmatch

        unmatched = [p for p in only if not any(fnmatch.fnmatch(j.tag, p) for j in plan)]
        if unmatched:
            raise ValueError(f"only={unmatched}: no job of {name} matches; its tags are "
                             f"{[j.tag for j in plan]}")
        selected = [j for j in plan if any(fnmatch.fnmatch(j.tag, p) for p in only)]
        if run:
            launch(selected, run_root, workers=workers, keep_stale=keep_stale, extra=extra,
                   progress=progress, keep_since=keep_since, records=records)
        run = False  # the page renders from every recorded run
    if run:
        runs = launch(plan, run_root, workers=workers, keep_stale=keep_stale and not check,
                      extra=extra, progress=progress, keep_since=keep_since, records=records)
    else:
        if records is not None:
            for job in plan:
                records.load(job.tag, run_root / job.tag)
        runs = [read_record(job, run_root / job.tag) for job in plan]
    missing = [r.job.tag for r in runs if not r.completed]
    if missing:
        print(f"reproduce {name}: {len(missing)} of {len(runs)} runs did not complete: {missing}; "
              f"their rows say so. The same command continues them.", file=sys.stderr)
    out = root / "results"
    sections = paper.render({r.job.tag: r for r in runs}, quick, out)
    if quick:
        path = out / "quick" / f"{name}.md"
        text = quick_page(name, paper.title, sections)
        if check:
            old = path.read_text() if path.exists() else ""
            if old != text:
                import difflib

                sys.stdout.writelines(difflib.unified_diff(
                    old.splitlines(True), text.splitlines(True), str(path), "regenerated"))
                print(f"reproduce {name} --quick --check: results/quick/{name}.md does not "
                      f"regenerate (diff above)", file=sys.stderr)
                return 1
            print(f"reproduce {name} --quick --check: {len(runs)} runs, page regenerates")
            return 1 if missing else 0
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"reproduce {name} --quick: wrote {path.relative_to(root)}")
    else:
        paper.page.write_text(splice(paper.page.read_text(), sections))
        print(f"reproduce {name}: wrote the generated sections of {paper.page.relative_to(root)}")
    return 1 if missing else 0
