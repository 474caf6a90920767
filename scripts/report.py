"""Aggregate sweeps into a report: IQM final scores with stratified bootstrap CIs, learning curves.

    .venv/bin/python scripts/report.py runs/multirun/2026-11-22_10-00-00 --out results/my_study.md

Reads every run directory under the given paths (``config.yaml``, ``metrics.csv``,
``result.json``), groups runs by agent x env x the config keys that vary between them (or
``--by``), and writes a markdown table (IQM, 95% stratified-bootstrap CI, mean, completed/total
runs), the runs that did not complete and why, and one PNG of learning curves (IQM over runs with
a shaded 95% interval) beside the markdown file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rlsuite import report


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, write the report, print where it went; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dirs", nargs="+", help="sweep or run directories (searched recursively)")
    parser.add_argument("--out", required=True, help="markdown file to write (PNG goes beside it)")
    parser.add_argument("--by", nargs="*", default=None,
                        help="config keys that split cells (default: the keys that vary)")
    parser.add_argument("--metric", default="rollout/ep_rew_mean", help="metric of the curves")
    parser.add_argument("--title", default=None, help="report title (default: the file's stem)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
    args = parser.parse_args(argv)

    records = report.find_runs(args.dirs)
    if not records:
        print(f"report: no run directories under {args.dirs}", file=sys.stderr)
        return 1
    by = report.varying_keys(records) if args.by is None else args.by
    cells = report.summarize(records, by, reps=args.reps)
    out = Path(args.out)
    png = report.plot_curves(report.group_runs(records, by), out.with_suffix(".png"), args.metric)
    command = report.command_line(None if argv is None else ["scripts/report.py", *argv])
    lines = [f"# {args.title or out.stem}", "",
             f"Regenerate: `{command}`", "",
             f"{len(records)} runs, {sum(c.completed for c in cells)} completed. Final score: "
             "interquartile mean over runs with a 95% percentile interval from a stratified "
             f"bootstrap ({args.reps} resamples, Agarwal et al. 2021).", "",
             report.markdown_table(cells, by)]
    failed = report.failure_lines(records)
    if failed:
        lines += ["## Runs that did not complete", "", *[f"- {line}" for line in failed], ""]
    if png is not None:
        lines += [f"![learning curves]({png.name})", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"report: {len(records)} runs ({len(failed)} did not complete) -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
