"""HNPG (Zhou et al. 2023) on the continuous combination lock: plan and tables of results/hnpg.md."""

from __future__ import annotations

import statistics
from pathlib import Path

from rlsuite.reproduce import Citations, Job, Record, fmt

TITLE = "Zhou et al. 2023, hybrid NPG on the continuous combination lock"
PAGE = "results/hnpg.md"

PRESETS = {"hnpg": "comblock_hnpg", "trpo": "comblock_trpo", "rlpd": "comblock_rlpd"}
"""Agent (as the page names it) -> its conf/experiment preset."""
BUDGET = {5: 200_000, 10: 1_000_000, 15: 3_000_000, 30: 6_000_000, 50: 40_000_000}
"""Online samples per run at each horizon, the same for every agent (the run stops earlier at
success)."""
SEEDS = {
    "hnpg": {5: 5, 10: 3, 15: 3, 30: 3, 50: 2},
    "trpo": {5: 5, 10: 3, 30: 1},
    "rlpd": {5: 2, 10: 2, 15: 1, 30: 2},
}
"""Seeds 0 .. n-1 per agent and horizon (a missing horizon is not run for that agent)."""

UNTIMED_UNTIL = {"hnpg_H50_s0": (9_400_000, "5db4c555c7")}
"""Runs whose timing file misses the process segments before a step: HNPG H=50 seed 0 ran its
first 9,400,000 samples in segments that were killed before the timing file was rewritten while a
run goes (the file was then written only when a process ended normally), so its CPU seconds are
those of its last segment, which continued from the checkpoint at 9,400,000 (the segment's
TensorBoard file starts at step 9,400,001). Its CPU per 1k samples divides by the samples of that
segment only. The commit is that of the segment's timing entry: a run of the tag made again (with
a timing of its own) is not corrected."""

QUICK_HORIZONS = (2, 3)
QUICK_SEEDS = {"hnpg": 2, "trpo": 2, "rlpd": 1}
QUICK = {
    "hnpg": ("total_steps=10000", "agent.batch_steps=100", "agent.offline_episodes=1000",
             "agent.moving_average=10", "eval_episodes=200"),
    "trpo": ("total_steps=10000", "agent.batch_steps=100", "agent.moving_average=10",
             "eval_episodes=200"),
    "rlpd": ("total_steps=1000", "agent.offline_episodes=500", "agent.success_window=100",
             "eval_episodes=200"),
}
"""The quick plan's reductions: tiny horizons and budgets, 100 env steps per HNPG iteration and a
10-iteration success window (so that HNPG solves within the budget), less offline data. RLPD costs
about ten times HNPG's CPU per online sample, so it gets 1,000 samples: too few to solve, its row
shows the budget and the greedy policy's success."""


def tag(agent: str, horizon: int, seed: int) -> str:
    """Run directory name of one run."""
    return f"{agent}_H{horizon}_s{seed}"


def plan(quick: bool) -> list[Job]:
    """Every run of the page (``quick``: H = 2, 3 at tiny budgets)."""
    jobs = []
    for agent, per_h in SEEDS.items():
        if quick:
            for h in QUICK_HORIZONS:
                for s in range(QUICK_SEEDS[agent]):
                    jobs.append(Job(tag(agent, h, s), PRESETS[agent],
                                    (f"env.horizon={h}", f"seed={s}", *QUICK[agent])))
            continue
        for h, n in per_h.items():
            for s in range(n):
                jobs.append(Job(tag(agent, h, s), PRESETS[agent],
                                (f"env.horizon={h}", f"total_steps={BUDGET[h]}", f"seed={s}")))
    return jobs


PAPER = {
    "hnpg": {5: "solves (< 1e6, not readable)", 10: "solves (< 1e6, not readable)",
             15: "solves (< 1e6, not readable)", 30: "~5e6", 50: "~3e7"},
    "trpo": {h: "fails (> 1e8)" if h == 5 else "fails" for h in BUDGET},
    "rlpd": {5: "solves (< HNPG)", 10: "solves (< HNPG)", 15: "solves (< HNPG)", 30: "fails",
             50: "fails"},
}
"""The paper's Figure 2 (continuous lock), read off the digitised figure: samples to success."""
PAPER_SAMPLES = {30: 5e6, 50: 3e7}
"""HNPG's samples to success in the paper where the figure's axis makes them readable."""


def _samples_key(agent: str) -> str:
    return "rlpd/samples_to_success" if agent == "rlpd" else "hnpg/samples_to_success"


RECORD_METRICS = ("hnpg/success_rate_ma", "rlpd/success_rate_ma")
"""The only curves the page reads (:func:`_ma_key`): a completed run's committed record keeps just
these (an H = 50 run logs some 30,000 rows of 18 columns)."""


def _ma_key(agent: str) -> str:
    return "rlpd/success_rate_ma" if agent == "rlpd" else "hnpg/success_rate_ma"


def greedy_success(record: Record, agent: str) -> float:
    """The final greedy policy's success rate over ``eval_episodes`` episodes (RLPD's score is
    already greedy; HNPG's and TRPO's score is the stochastic policy's)."""
    return record.final["eval/success_rate" if agent == "rlpd" else "eval/greedy_success_rate"]


def outcome(record: Record | None, agent: str) -> tuple[str, float | None]:
    """``(text, samples to success or None)`` of one run: solved, unsolved within its budget, not
    complete (how far it got, from its logged rows), or not run."""
    if record is None:
        return "not run", None
    if record.completed:
        solved = record.final.get(_samples_key(agent), -1.0)
        if solved >= 0:
            return f"{solved:,.0f}", solved
        return f"> {int(record.result['global_step']):,} (budget)", None
    curve = record.curve(_ma_key(agent))
    if not curve:
        return "not run", None
    step, _ = curve[-1]
    best = max(v for _, v in curve)
    return f"not complete: {step:,} so far (best success MA {best:.2f})", None


def cpu_per_1k(record: Record) -> float:
    """CPU seconds per 1,000 online samples over the samples the run's timing covers."""
    return record.cpu_s / (record.result["global_step"] - _untimed(record)) * 1000


def _untimed(record: Record) -> int:
    """The samples before the run's first timed segment (0 unless listed in UNTIMED_UNTIL)."""
    step, commit = UNTIMED_UNTIL.get(record.job.tag, (0, ""))
    timed_at = record.timing[0].get("commit") or "" if record.timing else ""
    return step if commit and timed_at.startswith(commit) else 0


def _untimed_note(cites: Citations) -> str:
    """A line per cited run whose CPU seconds cover only its last samples (:data:`UNTIMED_UNTIL`)."""
    notes = []
    for n, record in enumerate(cites.entries, 1):
        start = _untimed(record)
        if start:
            notes.append(f"[{n}]'s CPU seconds cover only its samples after {start:,} (the segments "
                         f"before ran before the timing file was kept current and were killed); "
                         f"the CPU column divides by those {record.result['global_step'] - start:,}.")
    return "\n\n" + "\n".join(notes) if notes else ""


def _table(records: dict[str, Record], quick: bool, cites: Citations) -> tuple[list[str], dict]:
    horizons = QUICK_HORIZONS if quick else tuple(BUDGET)
    head = ("| agent | H | seeds solved | samples to success (mean +- std over solved seeds) | per seed "
            "| final greedy success |")
    rule = "|---|---|---|---|---|---|"
    if not quick:
        head += " budget | CPU s per 1k samples | paper (Fig. 2) |"
        rule += "---|---|---|"
    lines, summary = [head + " runs |", rule + "---|"], {}
    for agent, per_h in SEEDS.items():
        for h in horizons:
            n = QUICK_SEEDS[agent] if quick else per_h.get(h, 0)
            if not n:
                continue
            # a seed without a record (not in this plan's records) reads as not run
            runs = {s: records.get(tag(agent, h, s)) for s in range(n)}
            results = {s: outcome(r, agent) for s, r in runs.items()}
            solved = [v for _, v in results.values() if v is not None]
            recorded = [r for r in runs.values() if r is not None]
            done = [r for r in recorded if r.completed]
            summary[(agent, h)] = (recorded, solved)
            stat = f"{statistics.mean(solved):,.0f} +- {statistics.pstdev(solved):,.0f}" if solved else "-"
            per = ", ".join(f"s{s}: {text}" for s, (text, _) in results.items())
            greedy = [greedy_success(r, agent) for r in done]
            states = [text for text, _ in results.values()]
            started = sum(text.startswith("not complete") for text in states)
            missing = sum(text == "not run" for text in states)
            unfinished = ", ".join(([f"{started} not complete"] if started else [])
                                   + ([f"{missing} not run"] if missing else []))
            unfinished = f" ({unfinished})" if unfinished else ""
            row = (f"| {agent} | {h} | {len(solved)}/{n}{unfinished} | {stat} | {per} | "
                   f"{fmt(statistics.mean(greedy)) if greedy else '-'} |")
            if not quick:
                cpu = [cpu_per_1k(r) for r in done if r.timing and r.result.get("global_step")]
                row += (f" {BUDGET[h]:,} | {fmt(statistics.median(cpu), 2) if cpu else '-'} | "
                        f"{PAPER[agent].get(h, '')} |")
            lines.append(row + f" {cites.cite(recorded)} |")
    return lines, summary


def render(records: dict[str, Record], quick: bool, out: Path) -> dict[str, str]:
    """The samples-to-success table (and, in full mode, its figures) from the run records."""
    cites = Citations(quick)
    lines, summary = _table(records, quick, cites)
    text = "\n".join(lines) + "\n\n" + cites.markdown()
    if not quick:
        text += _untimed_note(cites)
        _figures(summary, out)
    return {"samples": text}


def _figures(summary: dict, out: Path) -> None:
    """``hnpg_samples.png`` (samples to success per agent and H, the paper's HNPG points) and
    ``hnpg_curves.png`` (moving-average success against online samples)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # only what has run: a group none of whose runs logged a row stays out of the figures
    summary = {k: (runs, solved) for k, (runs, solved) in summary.items()
               if any(r.curve(_ma_key(k[0])) for r in runs)}
    if not summary:
        return
    horizons = sorted({h for _, h in summary})
    agents = [a for a in SEEDS if any(k[0] == a for k in summary)]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(1, len(agents))
    for i, agent in enumerate(agents):
        for j, h in enumerate(horizons):
            if (agent, h) not in summary:
                continue
            runs, solved = summary[(agent, h)]
            runs = [r for r in runs if r.curve(_ma_key(agent))]  # seeds not run stay out
            x = j + (i - (len(agents) - 1) / 2) * width
            if solved and len(solved) == len(runs):
                ax.bar(x, statistics.mean(solved), width, yerr=statistics.pstdev(solved),
                       color=f"C{i}", label=agent if j == 0 else None)
            else:  # unsolved or unfinished seeds: a hatched bar at the most samples any spent
                spent = max((r.curve(_ma_key(agent)) or [(0, 0.0)])[-1][0] for r in runs)
                if spent:
                    ax.bar(x, spent, width, color="none", edgecolor=f"C{i}", hatch="//",
                           label=f"{agent} (unsolved or unfinished: samples so far)")
                for value in solved:
                    ax.plot(x, value, "o", color=f"C{i}")
        if agent == "hnpg":
            for j, h in enumerate(horizons):
                if h in PAPER_SAMPLES:
                    ax.plot(j, PAPER_SAMPLES[h], "k*", markersize=10,
                            label="paper HNPG (Fig. 2)" if h == min(PAPER_SAMPLES) else None)
    ax.set_xticks(range(len(horizons)), [f"H={h}" for h in horizons])
    ax.set_yscale("log")
    ax.set_ylabel("online samples to success > 0.5")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.set_title("Continuous combination lock (mean +- std over seeds)")
    fig.tight_layout()
    fig.savefig(out / "hnpg_samples.png", dpi=120)
    plt.close(fig)
    fig, axes = plt.subplots(1, len(horizons), figsize=(3.6 * len(horizons), 3.2), squeeze=False)
    for j, h in enumerate(horizons):
        ax = axes[0, j]
        for i, agent in enumerate(agents):
            for k, record in enumerate(summary.get((agent, h), ([], []))[0]):
                curve = record.curve(_ma_key(agent))
                curve = curve[:: max(1, len(curve) // 1000)]  # RLPD logs every 8 samples
                if curve:
                    xs, ys = zip(*curve, strict=True)
                    ax.plot(xs, ys, color=f"C{i}", alpha=0.7, lw=1, label=agent if k == 0 else None)
        ax.axhline(0.5, color="k", lw=0.6, ls=":")
        ax.set_title(f"H={h}")
        ax.set_xlabel("online samples")
        ax.set_ylabel("moving-average success")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "hnpg_curves.png", dpi=120)
    plt.close(fig)
