"""Read a sweep's run directories and aggregate them: IQM, stratified bootstrap CIs, curves.

The statistics follow Agarwal et al. (2021), "Deep RL at the Edge of the Statistical Precipice"
(the method of the ``rliable`` package, written here with numpy): the interquartile mean (the
mean of the middle 50% of scores, ``scipy.stats.trim_mean(x, 0.25)`` as rliable computes it) and
percentile confidence intervals from a *stratified* bootstrap, which resamples runs with
replacement within each task (agent x env cell) separately, so every task keeps its number of runs
in every resample.

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
    ``.venv/bin/python scripts/<name>.py <args>``, arguments shell-quoted."""
    import shlex
    import sys

    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0])
    shown = f"scripts/{script.name}" if script.parent.name == "scripts" else str(script)
    return " ".join([".venv/bin/python", shown, *(shlex.quote(a) for a in argv[1:])])


# -- statistics ---------------------------------------------------------------------------------------


def iqm(scores: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean of the sorted scores with ``floor(n / 4)`` cut from each end.

    Exactly rliable's ``aggregate_iqm`` (``scipy.stats.trim_mean(x, 0.25)``); with fewer than 4
    scores nothing is cut and it is the mean.
    """
    x = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    if x.size == 0:
        raise ValueError("iqm of no scores")
    cut = int(0.25 * x.size)
    return float(x[cut:x.size - cut].mean())


def stratified_bootstrap_ci(
    tasks: Mapping[str, Sequence[float]],
    statistic: Callable[[np.ndarray], float] = iqm,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(point, low, high)`` of ``statistic`` over all tasks' scores pooled, with a percentile
    interval from resampling each task's runs with replacement independently (stratified).

    With a single task this is the ordinary percentile bootstrap over runs.
    """
    if not tasks or any(len(v) == 0 for v in tasks.values()):
        raise ValueError(f"every task needs at least one score, got sizes "
                         f"{ {k: len(v) for k, v in tasks.items()} }")
    groups = [np.asarray(v, dtype=np.float64) for v in tasks.values()]
    point = statistic(np.concatenate(groups))
    rng = np.random.default_rng(seed)
    draws = np.empty(reps)
    for i in range(reps):
        draws[i] = statistic(np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups]))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(draws, [tail, 1.0 - tail])
    return point, float(low), float(high)


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


def summarize(records: Sequence[RunRecord], by: Sequence[str] = (), reps: int = 2000,
              seed: int = 0) -> list[CellSummary]:
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
                metric: str = "rollout/ep_rew_mean", reps: int = 500, seed: int = 0) -> Path | None:
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
        why = (r.result or {}).get("error") or (r.result or {}).get("signal") or "no result.json"
        lines.append(f"{r.path}: {r.status}: {why}")
    return lines
