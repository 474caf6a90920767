"""Read a sweep's run directories and aggregate them: IQM, stratified bootstrap CIs, curves.

The statistics follow Agarwal et al. (2021), "Deep RL at the Edge of the Statistical Precipice",
written here with numpy:

- the point estimate is the interquartile mean (the mean of the sorted scores with
  ``floor(n / 4)`` cut from each end): ``scipy.stats.trim_mean(x, 0.25)``, which is what the
  ``rliable`` package computes, so it equals rliable's IQM (tested to 1e-10);
- the interval is a 95% *percentile* interval from a *stratified* bootstrap, the method rliable
  uses by default: every resample draws each task's (agent x env cell's) runs with replacement,
  separately, so every task keeps its number of runs. It is not bit-for-bit rliable's: rliable
  draws through ``arch`` with 50,000 resamples, we draw with ``numpy.random.default_rng(0)`` and
  :data:`BOOTSTRAP_REPS` resamples, so the endpoints agree with rliable's only up to Monte Carlo
  error (at 10,000 resamples an endpoint's standard error is about 0.7% of the interval's width
  for a near-normal bootstrap distribution).

Every interval rlsuite reports (the sweep summary, ``rlsuite-report``, the curves' bands) comes from
:func:`stratified_bootstrap_ci` with these settings, and the reports say so in
:func:`method_text`'s words.

``rlsuite-report`` (:func:`main`) writes such a report for any sweep or run directories.

A run directory is anything holding ``config.yaml`` (written by :class:`rlsuite.logging.Logger`);
``metrics.csv`` gives the curves and ``result.json`` (:mod:`rlsuite.jobs`) the outcome.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from rlsuite import identity, jobs
from rlsuite.logging import read_metrics

SCORE_KEYS = ("eval/mean_reward", "eval/score")


@dataclass
class RunRecord:
    """One run directory, read."""

    path: Path
    config: dict[str, Any]
    result: dict[str, Any] | None
    metrics: list[dict[str, float]] = field(default_factory=list)

    @property
    def agent(self) -> str:
        """The agent's name (``agent.name``)."""
        return str(self.config.get("agent", {}).get("name", "?"))

    @property
    def env(self) -> str:
        """The env's name (``env.name``)."""
        return str(self.config.get("env", {}).get("name", "?"))

    @property
    def status(self) -> str:
        """``completed``, ``failed``, ``preempted``, or ``unfinished`` (no record: killed or running)."""
        return self.result["status"] if self.result else "unfinished"

    @property
    def score(self) -> float | None:
        """The final score of a completed run."""
        if self.result and self.result["status"] == jobs.COMPLETED:
            return float(self.result["score"])
        return None

    def lookup(self, dotted: str) -> Any:
        """A config value by dotted key (``agent.learning_rate``); None if absent."""
        node: Any = self.config
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return None
            node = node[part]
        return node


def find_runs(roots: Iterable[str | Path]) -> list[RunRecord]:
    """Every run directory under ``roots`` (searched recursively), sorted by path.

    A run directory holds rlsuite's ``config.yaml`` or a ``result.json``; a job that failed before
    its logger started has only the latter, and its config is read from Hydra's ``.hydra/``.
    """
    records = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"no such run or sweep directory: {root}")
        marked = {*root.rglob("config.yaml"), *root.rglob(jobs.RESULT_FILE)}
        run_dirs = sorted({p.parent for p in marked if p.parent.name != ".hydra"})
        for run_dir in run_dirs:
            config_path = run_dir / "config.yaml"
            if not config_path.exists():
                config_path = run_dir / ".hydra" / "config.yaml"
            config = yaml.safe_load(config_path.read_text()) or {} if config_path.exists() else {}
            metrics = read_metrics(run_dir) if (run_dir / "metrics.csv").exists() else []
            records.append(RunRecord(run_dir, config, jobs.read_result(run_dir), metrics))
    return sorted(records, key=lambda r: str(r.path))


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command that ran this script, as results files quote it (from the repository root):
    ``.venv/bin/python scripts/<name>.py <args>``, or ``rlsuite-report <args>`` for the console
    script; arguments shell-quoted."""
    import shlex
    import sys

    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0])
    if script.name == "rlsuite-report":
        return " ".join(["rlsuite-report", *(shlex.quote(a) for a in argv[1:])])
    shown = f"scripts/{script.name}" if script.parent.name == "scripts" else str(script)
    return " ".join([".venv/bin/python", shown, *(shlex.quote(a) for a in argv[1:])])


# -- statistics ---------------------------------------------------------------------------------------


BOOTSTRAP_REPS = 10_000
"""Resamples behind every reported interval (vectorized: ~0.1 s for a cell of 10 runs)."""
BOOTSTRAP_SEED = 0
"""Seed of the ``numpy.random.default_rng`` that draws the resamples (reports are reproducible)."""
CONFIDENCE = 0.95


def iqm(scores: Sequence[float] | np.ndarray, axis: int | None = None) -> Any:
    """Interquartile mean: the mean of the sorted scores with ``floor(n / 4)`` cut from each end.

    Equal to ``scipy.stats.trim_mean(x, 0.25)``, the IQM of rliable; with fewer than 4 scores
    nothing is cut and it is the mean. ``axis=None`` pools every score into one float; an axis
    gives the IQM of each slice along it (how the bootstrap scores all its resamples at once).
    """
    x = np.asarray(scores, dtype=np.float64)
    if axis is None:
        x, axis = x.ravel(), -1
    if x.shape[axis] == 0:
        raise ValueError("iqm of no scores")
    x = np.sort(x, axis=axis)
    n = x.shape[axis]
    cut = int(0.25 * n)
    middle = np.take(x, np.arange(cut, n - cut), axis=axis).mean(axis=axis)
    return float(middle) if middle.ndim == 0 else middle


def stratified_bootstrap_ci(
    tasks: Mapping[str, Sequence[float]],
    statistic: Callable[..., Any] = iqm,
    reps: int = BOOTSTRAP_REPS,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """``(point, low, high)`` of ``statistic`` over all tasks' scores pooled, with a percentile
    interval from resampling each task's runs with replacement independently (stratified).

    ``statistic(x, axis=-1)`` must reduce the last axis (``iqm``, ``np.mean``, ``np.median``).
    The ``low``/``high`` are the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles
    (numpy's linear interpolation) of the ``reps`` resampled statistics. With a single task this is
    the ordinary percentile bootstrap over runs.
    """
    if not tasks or any(len(v) == 0 for v in tasks.values()):
        raise ValueError(f"every task needs at least one score, got sizes "
                         f"{ {k: len(v) for k, v in tasks.items()} }")
    if reps < 1:
        raise ValueError(f"reps must be a positive integer, got {reps}")
    groups = [np.asarray(v, dtype=np.float64).ravel() for v in tasks.values()]
    point = float(statistic(np.concatenate(groups), axis=-1))
    rng = np.random.default_rng(seed)
    total = sum(g.size for g in groups)
    chunk = max(1, min(reps, 4_000_000 // total))  # bounds memory at ~32 MB of resampled scores
    draws = []
    for start in range(0, reps, chunk):
        rows = min(chunk, reps - start)
        sample = np.concatenate([g[rng.integers(0, g.size, (rows, g.size))] for g in groups], axis=1)
        draws.append(np.asarray(statistic(sample, axis=-1), dtype=np.float64))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(np.concatenate(draws), [tail, 1.0 - tail])
    return point, float(low), float(high)


def method_text(reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED,
                confidence: float = CONFIDENCE) -> str:
    """The sentence a report prints about its statistics (the settings of its intervals)."""
    return (f"Final score: interquartile mean over runs (scipy.stats.trim_mean(x, 0.25), as rliable) "
            f"with a {confidence:.0%} percentile interval from a stratified bootstrap (runs resampled "
            f"with replacement within each cell; {reps} resamples drawn by "
            f"numpy.random.default_rng({seed}); Agarwal et al. 2021).")


# -- tables and curves --------------------------------------------------------------------------------


@dataclass
class CellSummary:
    """One agent x env (x varied hyperparameters) cell of a report."""

    key: tuple[str, ...]
    runs: int
    completed: int
    scores: list[float]
    iqm: float
    ci_low: float
    ci_high: float
    mean: float


def group_runs(records: Sequence[RunRecord],
               by: Sequence[str] = ()) -> dict[tuple[str, ...], list[RunRecord]]:
    """Runs grouped by agent, env and the extra dotted config keys ``by``."""
    groups: dict[tuple[str, ...], list[RunRecord]] = {}
    for record in records:
        key = (record.agent, record.env, *(f"{k}={record.lookup(k)}" for k in by))
        groups.setdefault(key, []).append(record)
    return groups


# Seeds are replicates of one cell; the rest never change what a run computes (rlsuite.identity).
IGNORED_KEYS = ("seed", *identity.NON_IDENTITY_KEYS)


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, Mapping):
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(_flatten(value, f"{prefix}{key}." if isinstance(value, Mapping) else f"{prefix}{key}"))
    return flat


def varying_keys(records: Sequence[RunRecord], ignore: Sequence[str] = IGNORED_KEYS) -> list[str]:
    """Dotted config keys whose value differs between runs (seeds and bookkeeping excluded), other
    than ``agent.name``/``env.name``, which always split cells."""
    flats = [_flatten(r.config) for r in records if r.config]
    keys = sorted({k for f in flats for k in f})
    varying = []
    for key in keys:
        if key in ignore or key in ("agent.name", "env.name"):
            continue
        if len({repr(f.get(key)) for f in flats}) > 1:
            varying.append(key)
    return varying


def summarize(records: Sequence[RunRecord], by: Sequence[str] = (), reps: int = BOOTSTRAP_REPS,
              seed: int = BOOTSTRAP_SEED) -> list[CellSummary]:
    """Final-score statistics per cell (cells without a completed run get NaNs)."""
    cells = []
    for key, runs in sorted(group_runs(records, by).items()):
        scores = [r.score for r in runs if r.score is not None and math.isfinite(r.score)]
        if scores:
            point, low, high = stratified_bootstrap_ci({"cell": scores}, iqm, reps, seed=seed)
            mean = float(np.mean(scores))
        else:
            point = low = high = mean = math.nan
        cells.append(CellSummary(key, len(runs), len(scores), scores, point, low, high, mean))
    return cells


def markdown_table(cells: Sequence[CellSummary], by: Sequence[str] = ()) -> str:
    """The cells as a markdown table: IQM with its 95% CI, mean, completed / total runs."""
    head = ["agent", "env", *by, "IQM [95% CI]", "mean", "runs (completed/total)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in cells:
        extra = [part.split("=", 1)[1] for part in c.key[2:]]
        lines.append("| " + " | ".join([c.key[0], c.key[1], *extra,
                                        f"{c.iqm:.2f} [{c.ci_low:.2f}, {c.ci_high:.2f}]",
                                        f"{c.mean:.2f}", f"{c.completed}/{c.runs}"]) + " |")
    return "\n".join(lines) + "\n"


def learning_curves(runs: Sequence[RunRecord], metric: str = "rollout/ep_rew_mean",
                    points: int = 50) -> tuple[np.ndarray, np.ndarray] | None:
    """Each run's ``metric`` interpolated onto a shared step grid: ``(steps [P], values [runs, P])``.

    The grid spans the steps that every run reached, so no curve is extrapolated. None when no
    run logged the metric.
    """
    curves = []
    for run in runs:
        rows = [(row["step"], row[metric]) for row in run.metrics if metric in row and "step" in row]
        if len(rows) >= 2:
            curves.append(np.asarray(rows, dtype=np.float64))
    if not curves:
        return None
    start = max(c[0, 0] for c in curves)
    stop = min(c[-1, 0] for c in curves)
    steps = np.linspace(start, stop, points)
    return steps, np.stack([np.interp(steps, c[:, 0], c[:, 1]) for c in curves])


def plot_curves(groups: Mapping[tuple[str, ...], Sequence[RunRecord]], path: str | Path,
                metric: str = "rollout/ep_rew_mean", reps: int = BOOTSTRAP_REPS,
                seed: int = BOOTSTRAP_SEED) -> Path | None:
    """One PNG: per group the IQM curve over runs with a shaded 95% bootstrap interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = 0
    for key, runs in sorted(groups.items()):
        curves = learning_curves(runs, metric)
        if curves is None:
            continue
        steps, values = curves
        stats = np.array([stratified_bootstrap_ci({"c": values[:, j]}, iqm, reps, seed=seed)
                          for j in range(values.shape[1])])
        (line,) = ax.plot(steps, stats[:, 0], label=" / ".join(key) + f" ({values.shape[0]} runs)")
        ax.fill_between(steps, stats[:, 1], stats[:, 2], color=line.get_color(), alpha=0.25)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("environment steps")
    ax.set_ylabel(f"{metric} (IQM, 95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def failures(records: Sequence[RunRecord]) -> list[RunRecord]:
    """Runs that did not complete (failed, preempted, or without a record)."""
    return [r for r in records if r.status != jobs.COMPLETED]


def failure_lines(records: Sequence[RunRecord]) -> list[str]:
    """One line per run that did not complete: its directory, status and error."""
    lines = []
    for r in failures(records):
        result = r.result or {}
        why = result.get("error") or result.get("reason") or result.get("signal") or "no result.json"
        lines.append(f"{r.path}: {r.status}: {why}")
    return lines


# -- the rlsuite-report command -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, prog: str = "rlsuite-report") -> int:
    """``rlsuite-report DIR... --out REPORT.md``: aggregate sweeps into a report; returns the exit
    status.

    Reads every run directory under the given paths (``config.yaml``, ``metrics.csv``,
    ``result.json``), groups runs by agent x env x the config keys that vary between them (or
    ``--by``), and writes a markdown table (IQM, 95% stratified-bootstrap CI, mean,
    completed/total runs), the runs that did not complete and why, and one PNG of learning curves
    (IQM over runs with a shaded 95% interval) beside the markdown file. ``prog`` is the command
    quoted in the report's "Regenerate" line.
    """
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog=prog, description="Aggregate sweeps into a report: IQM "
                                     "final scores with stratified bootstrap CIs, learning curves.")
    parser.add_argument("dirs", nargs="+", help="sweep or run directories (searched recursively)")
    parser.add_argument("--out", required=True, help="markdown file to write (PNG goes beside it)")
    parser.add_argument("--by", nargs="*", default=None,
                        help="config keys that split cells (default: the keys that vary)")
    parser.add_argument("--metric", default="rollout/ep_rew_mean", help="metric of the curves")
    parser.add_argument("--title", default=None, help="report title (default: the file's stem)")
    parser.add_argument("--reps", type=int, default=BOOTSTRAP_REPS,
                        help=f"bootstrap resamples (default {BOOTSTRAP_REPS}, as the sweep summary)")
    args = parser.parse_args(None if argv is None else list(argv))

    records = find_runs(args.dirs)
    if not records:
        print(f"report: no run directories under {args.dirs}", file=sys.stderr)
        return 1
    by = varying_keys(records) if args.by is None else args.by
    cells = summarize(records, by, reps=args.reps)
    out = Path(args.out)
    png = plot_curves(group_runs(records, by), out.with_suffix(".png"), args.metric, reps=args.reps)
    command = command_line(None if argv is None else [prog, *argv])
    lines = [f"# {args.title or out.stem}", "",
             f"Regenerate: `{command}`", "",
             f"{len(records)} runs, {sum(c.completed for c in cells)} completed. "
             f"{method_text(args.reps)}", "",
             markdown_table(cells, by)]
    failed = failure_lines(records)
    if failed:
        lines += ["## Runs that did not complete", "", *[f"- {line}" for line in failed], ""]
    if png is not None:
        lines += [f"![learning curves]({png.name})", ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"report: {len(records)} runs ({len(failed)} did not complete) -> {out}")
    return 0
