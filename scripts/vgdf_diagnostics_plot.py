"""Plot VGDF's ``vgdf/`` diagnostics of one or more runs over source steps into one PNG.

    .venv/bin/python scripts/vgdf_diagnostics_plot.py runs/vgdf_a runs/vgdf_b --out vgdf_diag.png

Each run directory holds the ``metrics.csv`` the runner writes (``step`` column, one row per
logged iteration). One panel per diagnostic group (:mod:`rlsuite.agents.vgdf.diagnostics`), one
line per run (kept / rejected pairs as solid / dashed lines of the run's colour); a run that did
not log a quantity simply has no line in that panel. ``--every N`` keeps every N-th logged point
(long runs log one row per iteration).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402

from rlsuite.logging import STEP_COLUMN, read_metrics  # noqa: E402

PANELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("acceptance ratio", ("vgdf/accept_ratio",)),
    ("FVP score spread", ("vgdf/fvp_median", "vgdf/fvp_iqr", "vgdf/fvp_std", "vgdf/fvp_min",
                          "vgdf/fvp_max")),
    ("V(s') under the target critic", ("vgdf/value_kept", "vgdf/value_rejected")),
    ("dynamics model error", ("vgdf/model_fresh_mse",)),
    ("fraction with other dynamics than the target", ("vgdf/dyn_diff_kept", "vgdf/dyn_diff_rejected")),
    ("target return", ("eval/target_return",)),
)
"""(title, keys) per panel, in plotting order."""
STYLES = ("-", "--", ":", "-.", (0, (1, 3)))


def series(rows: list[dict[str, float]], key: str, every: int = 1) -> tuple[list[float], list[float]]:
    """``(steps, values)`` of ``key`` in ``rows`` (rows without it skipped), every ``every``-th
    point kept."""
    pts = [(r[STEP_COLUMN], r[key]) for r in rows if key in r and STEP_COLUMN in r]
    pts = pts[::every]
    return [p[0] for p in pts], [p[1] for p in pts]


def plot(run_dirs: list[Path], out: Path, every: int = 1) -> Path:
    """Write the diagnostics of ``run_dirs`` to the PNG ``out``; raise a ValueError naming a run
    directory without ``metrics.csv`` or when no run logged any diagnostic."""
    if every < 1:
        raise ValueError(f"--every must be at least 1, got {every}")
    runs = {}
    for d in run_dirs:
        if not (d / "metrics.csv").is_file():
            raise ValueError(f"run directory {d} has no metrics.csv")
        runs[d.name or str(d)] = read_metrics(d)
    panels = [(t, keys) for t, keys in PANELS if any(k in r for rows in runs.values()
                                                    for r in rows for k in keys)]
    if not panels:
        raise ValueError(f"no vgdf/ diagnostics in {[str(d) for d in run_dirs]}")
    cols = 2
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(6 * cols, 3.2 * nrows), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, keys) in zip(axes.flat, panels, strict=False):
        for i, (name, rows) in enumerate(runs.items()):
            for j, key in enumerate(keys):
                x, y = series(rows, key, every)
                if x:
                    ax.plot(x, y, linestyle=STYLES[j % len(STYLES)], color=colours[i % len(colours)],
                            label=f"{name}: {key.split('/', 1)[1]}", linewidth=1.2)
        if title.startswith("FVP"):  # densities span orders of magnitude and reach 0
            ax.set_yscale("symlog", linthresh=1e-3)
        ax.set_title(title)
        ax.set_xlabel("source steps")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(prog="scripts/vgdf_diagnostics_plot.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run directories (metrics.csv)")
    parser.add_argument("--out", type=Path, default=Path("vgdf_diagnostics.png"), help="PNG path")
    parser.add_argument("--every", type=int, default=1, help="keep every N-th logged point")
    args = parser.parse_args(argv)
    print(plot(args.run_dirs, args.out, args.every))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
