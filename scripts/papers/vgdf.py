"""VGDF (Xu et al. 2023) on the engine's batched Pendulum: the one-sided motor with both filter
settings beside Mix, DARC, zero-shot and target-only, and a harmful-shift sweep (issue 20, items
2 and 3), every run ``rlsuite experiment=<preset> ...`` on ``conf/experiment/vgdf_pendulum*.yaml``.

Tables: greedy target return at the end of training (the runner's final metric, 20 episodes), mean
over seeds with a 95 % Student-t interval; the filter's diagnostics (:mod:`rlsuite.agents.vgdf.
diagnostics`) averaged over the logged iterations after the warm-up, then over seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from rlsuite.agents.vgdf.analysis import mean_after, mean_ci, mean_ci_text
from rlsuite.reproduce import Citations, Job, Record, fmt

TITLE = "VGDF (Xu et al. 2023), cross-domain RL by value-guided data filtering"
PAGE = "results/vgdf.md"

METHODS: dict[str, tuple[str, str, str]] = {
    # tag -> (preset, agent.variant, row label)
    "vgdf": ("vgdf_pendulum", "vgdf", "VGDF, paper-text filter (`vgdf_pendulum`)"),
    "vgdf_official": ("vgdf_pendulum_official", "vgdf",
                      "VGDF, official-code filter (`vgdf_pendulum_official`)"),
    "mix": ("vgdf_pendulum", "mix", "Mix (all source data)"),
    "darc": ("vgdf_pendulum", "darc", "DARC"),
    "zero_shot": ("vgdf_pendulum", "zero_shot", "Zero-shot (source only)"),
    "target_only": ("vgdf_pendulum", "target_only", "Target-only SAC"),
}
SEEDS = (0, 1, 2, 3, 4)
SWEEP_GAINS = (0.5, -0.5, -1.0)
"""Harmful-shift family: the target's actuator gain (``action_gain``; 1 is the source's, negative
reverses the motor), so the shift's size is ``1 - gain``."""
SWEEP_METHODS = ("vgdf", "mix", "target_only")
SWEEP_SEEDS = (0, 1, 2, 3, 4)
QUICK = ("total_steps=1000", "agent.sac.batch_size=32", "agent.model_batch_size=32",
         "agent.random_steps=200", "agent.warmup_steps=500", "agent.darc_warmup=500",
         "agent.model_max_epochs=3", "agent.eval_every=500", "agent.eval_episodes=2",
         "eval_episodes=4", "tensorboard=false")
"""Quick budget: 1 k source / 100 target steps, small batches so that updates, model fits and the
filter all start within it."""
def _gain_tag(gain: float) -> str:
    return f"gain{gain:+g}"


def _job(tag: str, method: str, seed: int, extra: Sequence[str], quick: bool) -> Job:
    preset, variant, _ = METHODS[method]
    return Job(tag, preset, (f"agent.variant={variant}", f"seed={seed}", *extra, *(QUICK if quick else ())))


def plan(quick: bool) -> list[Job]:
    """One-sided motor: every method x seed; sweep: every gain x sweep method x sweep seed.

    In run order, most informative first, so that an interrupted reproduction has every table
    started: the motor's seed 0 but zero-shot, the reversed motor (gain -1) at seed 0, zero-shot's
    seed 0, the reversed motor at seed 1, motor seeds 1 and 2, the other gains (seeds 0 and 1),
    motor seeds 3 and 4, then the sweep's seeds 2-4.
    """
    if quick:
        return motor(0, quick) + sweep(SWEEP_GAINS[-1], 0, quick)
    strongest, others = SWEEP_GAINS[-1], SWEEP_GAINS[:-1]
    first = motor(0)
    late = [j for j in first if "zero_shot" in j.tag]
    jobs = [j for j in first if j not in late] + sweep(strongest, 0) + late
    jobs += sweep(strongest, 1) + motor(1) + motor(2)
    jobs += [j for s in SWEEP_SEEDS[:2] for g in others for j in sweep(g, s)]
    jobs += motor(3) + motor(4)
    return jobs + [j for s in SWEEP_SEEDS[2:] for g in SWEEP_GAINS for j in sweep(g, s)]


def motor(seed: int, quick: bool = False) -> list[Job]:
    """The one-sided motor's runs of one seed, every method."""
    return [_job(f"motor_{m}_s{seed}", m, seed, (), quick) for m in METHODS]


def sweep(gain: float, seed: int, quick: bool = False) -> list[Job]:
    """The sweep's runs of one gain and seed, every sweep method."""
    return [_job(f"{_gain_tag(gain)}_{m}_s{seed}", m, seed, (f'agent.target_shift="action_gain={gain:g}"',),
                 quick) for m in SWEEP_METHODS]


# -- rendering ------------------------------------------------------------------------------------


def done_runs(records: Sequence[Record]) -> tuple[list[Record], str]:
    """The completed records and a note on how many did not complete (empty when all did)."""
    done = [r for r in records if r.completed]
    note = "" if len(done) == len(records) else f" ({len(records) - len(done)} of {len(records)} not run)"
    return done, note


DIAGNOSTICS = ("vgdf/accept_ratio", "vgdf/fvp_iqr", "vgdf/value_kept", "vgdf/value_rejected",
               "vgdf/dyn_diff_kept", "vgdf/dyn_diff_rejected", "vgdf/model_fresh_mse")
RECORD_METRICS = DIAGNOSTICS
"""The only curves the page reads (:func:`diagnostic`): completed runs' committed records keep
just these."""


def diagnostic(record: Record, key: str) -> float:
    """``key``'s mean over the run's logged iterations after the filter's warm-up (NaN if none)."""
    return mean_after(record.curve(key), int(record.config.get("agent", {}).get("warmup_steps", 0)))


def diag_mean(records: Sequence[Record], key: str) -> str:
    """:func:`diagnostic` averaged over ``records`` (runs that never logged ``key`` left out),
    formatted; ``-`` when none did."""
    values = [v for v in (diagnostic(r, key) for r in records) if v == v]
    return fmt(statistics.fmean(values), 3) if values else "-"


def _diag_cells(records: Sequence[Record]) -> list[str]:
    return [diag_mean(records, key) for key in DIAGNOSTICS]


def _motor(records: dict[str, Record], quick: bool, cites: Citations) -> tuple[str, str]:
    seeds = (0,) if quick else SEEDS
    rows = ["| method | target return (mean ± 95% CI) | per seed | source return | runs |",
            "|---|---|---|---|---|"]
    diag = ["| method | accept ratio | FVP IQR | V(s') kept | V(s') rejected | dyn. differ, kept | "
            "dyn. differ, rejected | model error on fresh target data | runs |",
            "|---|---|---|---|---|---|---|---|---|"]
    for method, (_, _, label) in METHODS.items():
        recs, note = done_runs([records[f"motor_{method}_s{s}"] for s in seeds])
        target = [r.score for r in recs]
        source = [r.final.get("eval/source_return", math.nan) for r in recs]
        per_seed = ", ".join(fmt(x, 4) for x in target) or "-"
        mark = cites.cite([records[f"motor_{method}_s{s}"] for s in seeds])
        rows.append(f"| {label}{note} | {mean_ci_text(target)} | {per_seed} | {mean_ci_text(source)} "
                    f"| {mark} |")
        if method.startswith("vgdf"):
            diag.append(f"| {label}{note} | " + " | ".join(_diag_cells(recs)) + f" | {mark} |")
    return "\n".join(rows), "\n".join(diag)


def _sweep(records: dict[str, Record], quick: bool, cites: Citations, out: Path) -> str:
    seeds = (0,) if quick else SWEEP_SEEDS
    gains = SWEEP_GAINS[-1:] if quick else SWEEP_GAINS
    head = "| target `action_gain` (shift size 1 - gain) | " + " | ".join(
        METHODS[m][2] for m in SWEEP_METHODS) + " | VGDF: dyn. differ kept / rejected | runs |"
    rows = [head, "|---" * (len(SWEEP_METHODS) + 3) + "|"]
    means: dict[str, list[float]] = {m: [] for m in SWEEP_METHODS}
    for g in gains:
        cells, all_recs = [], []
        for m in SWEEP_METHODS:
            group = [records[f"{_gain_tag(g)}_{m}_s{s}"] for s in seeds]
            all_recs += group
            recs, note = done_runs(group)
            per_seed = "" if quick else " (" + ", ".join(fmt(r.score, 4) for r in recs) + ")"
            cells.append(mean_ci_text([r.score for r in recs]) + (per_seed if recs else "") + note)
            means[m].append(mean_ci([r.score for r in recs])[0] if recs else math.nan)
        vg, _ = done_runs([records[f"{_gain_tag(g)}_vgdf_s{s}"] for s in seeds])
        kept, rej = _diag_cells(vg)[4:6]
        rows.append(f"| {g:g} ({1 - g:g}) | " + " | ".join(cells) + f" | {kept} / {rej} | "
                    f"{cites.cite(all_recs)} |")
    text = "\n".join(rows)
    if not quick:
        _plot_sweep(gains, means, out / "vgdf_harmful_sweep.png")
        text += "\n\n![harmful-shift sweep](vgdf_harmful_sweep.png)"
    return text


def _plot_sweep(gains: Sequence[float], means: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for m, ys in means.items():
        ax.plot([1 - g for g in gains], ys, marker="o", label=METHODS[m][2].split(" (")[0])
    ax.set_xlabel("shift size 1 - action_gain (2: reversed motor)")
    ax.set_ylabel("greedy target return (mean over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


DIAGNOSTIC_RUNS = ("motor_vgdf_s0", "motor_vgdf_official_s0", "gain-1_vgdf_s0")
"""Runs whose diagnostics the full page plots over training (``vgdf_diagnostics.png``)."""


def _plot_diagnostics(records: dict[str, Record], path: Path) -> str:
    """The diagnostics of :data:`DIAGNOSTIC_RUNS` that completed, plotted by
    ``scripts/vgdf_diagnostics_plot.py``; the markdown that shows them ('' when none completed)."""
    import importlib.util

    dirs = [records[t].run_dir for t in DIAGNOSTIC_RUNS if t in records and records[t].completed]
    if not dirs:
        return ""
    script = Path(__file__).resolve().parents[1] / "vgdf_diagnostics_plot.py"
    spec = importlib.util.spec_from_file_location("vgdf_diagnostics_plot", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.plot(dirs, path)
    return f"\n\n![diagnostics over training: {', '.join(d.name for d in dirs)}]({path.name})"


def render(records: dict[str, Record], quick: bool, out: Path) -> dict[str, str]:
    """Sections ``motor`` (table), ``motor_diagnostics`` (table and, in full, a plot over
    training), ``sweep`` (table and, in full, a plot) and ``runs`` (the citations)."""
    cites = Citations(quick)
    table, diag = _motor(records, quick, cites)
    sweep = _sweep(records, quick, cites, out)
    if not quick:
        diag += _plot_diagnostics(records, out / "vgdf_diagnostics.png")
    return {"motor": table, "motor_diagnostics": diag, "sweep": sweep, "runs": cites.markdown()}
