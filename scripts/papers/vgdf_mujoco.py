"""VGDF (Xu et al. 2023) on the paper's MuJoCo tasks (issue 20, item 4): HalfCheetah with a broken
back thigh (kinematic) and without thighs (morphology), VGDF vs Mix vs DARC vs zero-shot vs
target-only at equal budgets, every run ``rlsuite experiment=vgdf_halfcheetah ...``
(``conf/experiment/vgdf_halfcheetah.yaml``: 100 k source / 10 k target steps, 10 % of the paper's);
on the no-thighs task also ``vgdf_random`` (``agent.filter_ranking=random``), the control that
keeps a random quarter of each source batch.

Needs the ``mujoco`` extra and hours of CPU per run, so the quick check has no runs (the runner path
is tested by ``tests/test_vgdf_mujoco.py``); the full plan is resumable (``--time-limit``).
"""

from __future__ import annotations

import math
from pathlib import Path

from rlsuite.agents.vgdf.analysis import mean_ci_text
from rlsuite.reproduce import Citations, Job, Record, fmt, load_paper

TITLE = "VGDF (Xu et al. 2023) on the paper's MuJoCo tasks"
PAGE = "results/vgdf_mujoco.md"

TASKS = {
    "halfcheetah_broken_thigh": ("HalfCheetah, broken back thigh (kinematic)", "4834 ± 250"),
    "halfcheetah_no_thighs": ("HalfCheetah, no thighs (morphology)", "3910 ± 160"),
}
"""Task -> (row label, the paper's VGDF+BC score in Table 1: offline source, 1 M D4RL + 100 k
target steps; the online setting has learning curves only)."""
DIAGNOSTICS = ("vgdf/accept_ratio", "vgdf/value_kept", "vgdf/value_rejected", "vgdf/model_fresh_mse")
DARC_CORRECTION = "darc/reward_correction"
"""DARC's classifier reward correction per source step (mean over an iteration's batch)."""
RECORD_METRICS = (*DIAGNOSTICS, DARC_CORRECTION)
"""The only curves the page reads: a completed run's committed record keeps just these (about
170 kB packed against 1.4 MB for all 28 columns of a 100 k-step run)."""
FILTER_PLOT_EVERY = 50
"""Every how many logged rows the filter plot keeps (a 100 k-step run logs about 10 k)."""
SEEDS = {"vgdf": (0, 1, 2), "mix": (0, 1, 2), "darc": (0,), "zero_shot": (0,), "target_only": (0,),
         "vgdf_random": (0, 1, 2)}
"""Issue 20's plan: VGDF and Mix with 3 seeds, the other methods with 1; and the random-ranking
control with 3."""
OVERRIDES = {"vgdf_random": ("agent.variant=vgdf", "agent.filter_ranking=random")}
"""Methods that are not a ``variant``: ``vgdf_random`` is VGDF keeping a uniformly random quarter of
each source batch (is it the FVP ranking or the subsampling that helps?)."""
ONLY_ON = {"vgdf_random": ("halfcheetah_no_thighs",)}
"""Methods run on some tasks only: the control where VGDF was ahead of Mix."""
FILTERING = ("vgdf", "vgdf_random")
"""Methods that log the filter's diagnostics."""


def methods(task: str) -> list[str]:
    """The methods run on ``task``, in the table's order."""
    return [m for m in SEEDS if task in ONLY_ON.get(m, (task,))]


def _overrides(method: str) -> tuple[str, ...]:
    return OVERRIDES.get(method, (f"agent.variant={method}",))


def plan(quick: bool) -> list[Job]:
    """Every task x method x seed (none when ``quick``: see the module doc)."""
    if quick:
        return []
    return [Job(f"{task}_{method}_s{seed}", "vgdf_halfcheetah",
                (f"agent.mujoco_task={task}", *_overrides(method), f"seed={seed}"))
            for seed in range(3) for task in TASKS for method in methods(task)
            if seed in SEEDS[method]]


def render(records: dict[str, Record], quick: bool, out: Path) -> dict[str, str]:
    """Section ``mujoco``: target and source return, the filter's diagnostics and the runs."""
    if quick:
        return {"mujoco": "No quick runs: a MuJoCo run needs the `mujoco` extra and hours of CPU; "
                          "`tests/test_vgdf_mujoco.py` trains VGDF through the runner on the "
                          "`vgdf_halfcheetah` preset at a tiny budget."}
    pendulum = load_paper("vgdf").module  # the shared row helpers of the Pendulum page
    cites = Citations(quick)
    rows = ["| target | method | seeds | target return (mean ± 95% CI) | source return | "
            "accept ratio | V(s') kept / rejected | model error on fresh target data | "
            "paper (VGDF+BC, Table 1) | runs |", "|---" * 10 + "|"]
    for task, (label, paper) in TASKS.items():
        for method in methods(task):
            group = [records[f"{task}_{method}_s{s}"] for s in SEEDS[method]]
            recs, note = pendulum.done_runs(group)
            target = [r.score for r in recs]
            source = [r.final.get("eval/source_return", math.nan) for r in recs]
            diag = {k: pendulum.diag_mean(recs, k) for k in DIAGNOSTICS}
            value = (f"{diag['vgdf/value_kept']} / {diag['vgdf/value_rejected']}"
                     if method in FILTERING else "-")
            ours = method in FILTERING
            rows.append(f"| {label} | {method}{note} | {len(SEEDS[method])} | {mean_ci_text(target)} | "
                        f"{mean_ci_text(source)} | {diag['vgdf/accept_ratio'] if ours else '-'} | "
                        f"{value} | {diag['vgdf/model_fresh_mse'] if ours else '-'} | "
                        f"{paper if method == 'vgdf' else '-'} | {cites.cite(group)} |")
    done = sum(r.completed for r in records.values())
    summary = f"{done} of {len(records)} runs completed; CPU seconds per run: " + (
        ", ".join(fmt(r.cpu_s, 3) for r in records.values() if r.completed) or "-")
    summary += _darc_corrections(records)
    figures = _plot_returns(records, out / "vgdf_mujoco_returns.png")
    figures += _plot_filter(records, out / "vgdf_mujoco_filter.png")
    return {"mujoco": "\n".join(rows) + "\n\n" + summary + figures + "\n\n" + cites.markdown()}


def _darc_corrections(records: dict[str, Record]) -> str:
    """DARC's reward correction per completed DARC run: the first logged value once the
    correction applies (after ``darc_warmup`` source steps) and the last."""
    lines = []
    for task, (label, _) in TASKS.items():
        for r in (records[f"{task}_darc_s{s}"] for s in SEEDS["darc"]):
            warmup = int(r.config.get("agent", {}).get("darc_warmup", 0)) if r.completed else 0
            curve = [(step, v) for step, v in r.curve(DARC_CORRECTION) if step > warmup]
            if curve:
                lines.append(f"{label}, seed {r.config.get('seed', 0)}: {fmt(curve[0][1], 2)} at "
                             f"{curve[0][0]} source steps, {fmt(curve[-1][1], 2)} at {curve[-1][0]}")
    return ("\n\nDARC's classifier reward correction per step (added to the source reward): "
            + "; ".join(lines) + ".") if lines else ""


def _plot_returns(records: dict[str, Record], path: Path) -> str:
    """One panel per task: every completed run's greedy target return (a dot per seed, a bar at
    the mean) per method; the markdown that shows it ('' when no run completed)."""
    if not any(r.completed for r in records.values()):
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TASKS), figsize=(5.2 * len(TASKS), 3.6), sharey=True,
                             squeeze=False)
    for ax, (task, (label, _)) in zip(axes[0], TASKS.items(), strict=True):
        for x, method in enumerate(SEEDS):
            tags = [f"{task}_{method}_s{s}" for s in SEEDS[method]]  # absent off ONLY_ON tasks
            scores = [records[t].score for t in tags if t in records and records[t].completed]
            ax.scatter([x] * len(scores), scores, s=22, color=f"C{x}", zorder=3)
            if scores:
                ax.hlines(sum(scores) / len(scores), x - 0.3, x + 0.3, color=f"C{x}", linewidth=2)
        ax.set_xticks(range(len(SEEDS)), [m.replace("_", "-") for m in SEEDS], fontsize=8)
        ax.set_title(label, fontsize=9)
        ax.axhline(0.0, color="0.8", linewidth=0.8, zorder=0)
    axes[0][0].set_ylabel("greedy target return (dots: seeds, bar: mean)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return f"\n\n![target return per method and seed]({path.name})"


def _plot_filter(records: dict[str, Record], path: Path) -> str:
    """VGDF's filter over training per task (every completed VGDF seed): V(s') under the target
    critic of the kept (solid) and rejected (dashed) source transitions; '' when none completed."""
    runs = {task: [r for r in (records[f"{task}_vgdf_s{s}"] for s in SEEDS["vgdf"]) if r.completed]
            for task in TASKS}
    if not any(runs.values()):
        return ""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(TASKS), figsize=(5.2 * len(TASKS), 3.4), squeeze=False)
    for ax, (task, recs) in zip(axes[0], runs.items(), strict=True):
        for r in recs:
            seed = int(r.config.get("seed", 0))
            for key, style in (("vgdf/value_kept", "-"), ("vgdf/value_rejected", "--")):
                pts = r.curve(key)[::FILTER_PLOT_EVERY]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=f"C{seed}",
                        linewidth=1, label=f"seed {seed}, {key.split('_')[-1]}")
        ax.set_title(TASKS[task][0], fontsize=9)
        ax.set_xlabel("source env steps")
        ax.set_ylabel("V(s') under the target critic")
        if recs:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return (f"\n\n![VGDF's filter: value of kept (solid) and rejected (dashed) next states]"
            f"({path.name})")
