"""One command per paper: run its experiments through the runner and regenerate its results page.

    .venv/bin/python scripts/reproduce.py --list
    .venv/bin/python scripts/reproduce.py hnpg                  # full runs -> results/hnpg.md
    .venv/bin/python scripts/reproduce.py hnpg --quick          # reduced runs -> results/quick/hnpg.md
    .venv/bin/python scripts/reproduce.py all --quick --check   # what CI runs: rerun, compare, fail on a diff
    .venv/bin/python scripts/reproduce.py all --verify          # CI too: pages == their committed records

Full runs leave their records (result, identity, timing, packed metrics) in
``results/records/<paper>/``, which is committed: the next machine reads them back instead of
rerunning, and ``--save-records --checkpoint-mb 8`` also keeps interrupted runs' checkpoints there
so that a long reproduction continues on another machine.

Each paper has a module in ``scripts/papers/`` (its plan and its tables), reproduced by
:mod:`rlsuite.reproduce`: every run is ``rlsuite experiment=<preset> <overrides>`` through the
runner, in ``runs/reproduce/<paper>/<tag>``
(``resume=auto``: recorded runs are read back, interrupted ones continue; ``--time-limit`` stops
each run after that many seconds with a checkpoint, so long reproductions span several sittings),
and the page's generated sections name the command and commit behind every row.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rlsuite import reproduce  # noqa: E402


def _names() -> list[str]:
    return reproduce.papers()


def main(argv: list[str] | None = None) -> int:
    """Reproduce one paper (or ``all``); returns the exit status (non-zero: a run did not
    complete, or ``--check`` found a difference)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("paper", nargs="?", choices=[*_names(), "all"], help="which paper")
    parser.add_argument("--list", action="store_true", help="list the papers and their runs")
    parser.add_argument("--dry-run", action="store_true", help="print the runs, run nothing")
    parser.add_argument("--quick", action="store_true",
                        help="the reduced experiments -> results/quick/<paper>.md")
    parser.add_argument("--check", action="store_true",
                        help="with --quick: rerun from scratch and compare with the committed page")
    parser.add_argument("--workers", type=int, default=1, help="runs in parallel (processes)")
    parser.add_argument("--keep-stale", action="store_true",
                        help="read back runs recorded by an older commit instead of rerunning them")
    parser.add_argument("--keep-since", default=None, metavar="REV",
                        help="read back runs recorded at commit REV or a later one (you vouch that "
                             "nothing since changed this paper's numbers) and rerun older ones")
    parser.add_argument("--time-limit", type=float, default=None, metavar="S",
                        help="stop each run after S seconds with a checkpoint (rerun to continue)")
    parser.add_argument("--no-run", action="store_true",
                        help="run nothing: render the page from the runs recorded so far")
    parser.add_argument("--only", nargs="+", default=(), metavar="TAG",
                        help="run only the jobs whose tags match these shell patterns (hnpg_H30_*); "
                             "the page renders every recorded run")
    parser.add_argument("--runs", type=Path, default=None, help="run root (default runs/reproduce*/<paper>)")
    parser.add_argument("--save-records", action="store_true",
                        help="run nothing, write no page: copy every run's record into "
                             "results/records/<paper>/ (completed runs are copied there anyway)")
    parser.add_argument("--verify", action="store_true",
                        help="run nothing: check that the page's generated sections are what its "
                             "committed records render (papers whose records are complete)")
    parser.add_argument("--checkpoint-mb", type=float, default=0.0, metavar="MB",
                        help="with --save-records: also keep each interrupted run's latest "
                             "checkpoint up to MB megabytes, so another machine continues it")
    args = parser.parse_args(argv)
    if args.checkpoint_mb and not args.save_records:
        parser.error("--checkpoint-mb goes with --save-records")
    if args.checkpoint_mb < 0:
        parser.error(f"--checkpoint-mb={args.checkpoint_mb}: must be at least 0")
    if args.verify and (args.quick or args.no_run or args.only or args.check or args.save_records):
        parser.error("--verify renders the full pages from committed records: use it alone")
    if args.save_records and (args.quick or args.no_run or args.only or args.check):
        parser.error("--save-records runs nothing and keeps full runs: drop --quick, --check, "
                     "--no-run and --only")
    if args.check and not args.quick:
        parser.error("--check compares the quick pages: add --quick")
    if args.check and args.only:
        parser.error("--check reruns the whole quick plan: drop --only")
    if args.check and args.no_run:
        parser.error("--check reruns the quick plan: drop --no-run")
    if args.check and args.keep_since:
        parser.error("--check reruns the quick plan from scratch: drop --keep-since")
    if args.workers < 1:
        parser.error(f"--workers={args.workers}: must be at least 1")
    if args.list or args.paper is None:
        for name in _names():
            paper = reproduce.load_paper(name)
            print(f"{name}: {paper.title} -> {paper.module.PAGE}")
            for job in paper.plan(quick=args.quick):
                print(f"    {job.command}")
        return 0
    names = _names() if args.paper == "all" else [args.paper]
    extra = [f"time_limit_s={args.time_limit}"] if args.time_limit else []
    status = 0
    for name in names:
        if args.dry_run:
            for job in reproduce.load_paper(name).plan(args.quick):
                print(f"  $ {job.command}")
            continue
        if args.verify:
            status = reproduce.verify(name) or status
            continue
        tic = time.perf_counter()
        rc = reproduce.regenerate(name, quick=args.quick, check=args.check, runs_root=args.runs,
                                  workers=args.workers, keep_stale=args.keep_stale, extra=extra,
                                  run=not args.no_run, only=args.only, keep_since=args.keep_since,
                                  save_records=int(args.checkpoint_mb * 2**20)
                                  if args.save_records else None)
        print(f"reproduce {name}: exit {rc} after {time.perf_counter() - tic:.0f} s", flush=True)
        status = status or rc
    return status


if __name__ == "__main__":
    raise SystemExit(main())
