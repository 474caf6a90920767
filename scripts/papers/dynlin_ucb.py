"""Mussi et al. 2023, dynamical linear bandits: the runs behind ``results/dynlin_ucb.md``.

The paper's four regret figures (official marcomussi/DLB configs: the synthetic system with noise
sigma 0.01, 0.001 and 0.1, and the real-data advertising system, sigma 0.01) with every learner of
the official ``scripts/main.py``. One run = one learner on one config; its trials are the run's env
copies (``num_envs``), so the run's final metrics are the trial mean and standard error of the
cumulative steady-state pseudo-regret at T and at 1e3 / 1e4 / 1e5 rounds. The official code's
own numbers quoted beside ours are reference constants (``OFFICIAL_*``), not runs.
"""

from __future__ import annotations

from pathlib import Path

from rlsuite.reproduce import Citations, Job, Record

TITLE = "Mussi et al. 2023, dynamical linear bandits"
PAGE = "results/dynlin_ucb.md"

CONFIGS = {  # name -> (preset, sigma)
    "synthetic_sigma0.01": ("dynlin_synthetic", 0.01),
    "synthetic_sigma0.001": ("dynlin_synthetic", 0.001),
    "synthetic_sigma0.1": ("dynlin_synthetic", 0.1),
    "realdata_sigma0.01": ("dynlin_adv", 0.01),
}
LEARNERS = {  # key -> (label, agent overrides); the order of the official alg_list
    "dynlin_log": ("DynLin-UCB, lambda = ln T", ("agent=dynlin_ucb",)),
    "dynlin_one": ("DynLin-UCB, lambda = 1", ("agent=dynlin_ucb", "agent.lam=1.0")),
    "linucb_log": ("Lin-UCB, lambda = ln T", ("agent=lin_ucb", "agent.variant=linucb_log")),
    "linucb_one": ("Lin-UCB, lambda = 1", ("agent=lin_ucb", "agent.variant=linucb_one")),
    "dlinucb_log": ("D-Lin-UCB, lambda = ln T", ("agent=lin_ucb", "agent.variant=dlinucb_log")),
    "dlinucb_one": ("D-Lin-UCB, lambda = 1", ("agent=lin_ucb", "agent.variant=dlinucb_one")),
    "ar2": ("AR2", ("agent=ar2",)),
    "exp3": ("Exp3", ("agent=exp3",)),
    "batch_exp3": ("Batch-Exp3", ("agent=batch_exp3",)),
    "expert": ("Expert (real data only)", ("agent=expert", "env.extra_arms=[expert]")),
    "myopic": ("myopic arm argmax <theta, u> (reference, not in the paper)", ("agent=myopic",)),
}
UCB = ("dynlin_log", "dynlin_one", "linucb_log", "linucb_one", "dlinucb_log", "dlinucb_one")
CHEAP = ("dynlin_log", "dynlin_one", "batch_exp3", "expert", "myopic")
"""Learners whose loop is per epoch / batch / closed form (the others loop over every round)."""
HORIZON = {False: 1_000_000, True: 2_000}
TRIALS = {False: 10, True: 3}
"""Rounds per trial and trials per run (full, quick); the presets hold the full values."""
E4 = ("synthetic_sigma0.1", 10_000, 10)
"""The official-code comparison at T = 1e4 (config, rounds, trials): cheap, so quick runs it too."""

OFFICIAL_SIGMA001 = {  # learner -> (trials, R(1e3), R(1e4), R(1e5), R(1e6), s.e. of R(1e6))
    "dynlin_log": (3, 129.5, 648, 2336, 9799, 12),
    "dynlin_one": (3, 181.1, 1354, 6939, 24975, 4),
    "linucb_log": (4, 168, 1025, 3774, 24971, 5961),
    "linucb_one": (3, 229, 1000, 4986, 33976, 49),
    "exp3": (1, 224, 2188, 19543, 225981, None),
}
"""Reference numbers, not runs: the official DLB code (git 7fb103e) on the synthetic sigma = 0.01
config, as run by an earlier check of this project (its numpy noise, seed 1)."""
OFFICIAL_SIGMA01_E4 = {  # learner -> (mean, s.e.) of R(1e4) over 10 trials
    "dynlin_log": (778.5, 7.3), "dynlin_one": (1388.6, 6.6), "linucb_log": (366.4, 25.8),
    "linucb_one": (614.5, 32.1), "dlinucb_log": (361.8, 15.0), "dlinucb_one": (237.0, 38.3),
}
"""Reference numbers, not runs: the official DLB code (git 7fb103e) on the synthetic sigma = 0.1
config, T = 1e4, 10 trials, measured on 2026-12-06 (``results/dynlin_ucb.md`` says how)."""


def _learners(config: str) -> list[str]:
    return [k for k in LEARNERS if k != "expert" or config.startswith("realdata")]


def _job(tag: str, config: str, learner: str, horizon: int, trials: int) -> Job:
    preset, sigma = CONFIGS[config]
    return Job(tag, preset, (*LEARNERS[learner][1], f"env.sigma={sigma}", f"num_envs={trials}",
                             f"total_steps={horizon * trials}"))


def plan(quick: bool) -> list[Job]:
    """The six UCB learners at the official T = 1e4 comparison, then every learner on every config
    (T = 1e6, 10 trials; quick: T = 2000, 3 trials), the learners with cheap loops first (a
    reproduction stopped midway has them all)."""
    config, horizon, trials = E4
    jobs = [_job(f"e4_{config}_{k}", config, k, horizon, trials) for k in UCB]
    return jobs + [_job(f"{c}_{k}", c, k, HORIZON[quick], TRIALS[quick])
                   for k in sorted(LEARNERS, key=lambda k: k not in CHEAP) for c in CONFIGS
                   if k in _learners(c)]


# -- reading the records --------------------------------------------------------------------------


def _get(record: Record, suffix: str) -> float | None:
    """The final metric ``<agent prefix>/<suffix>`` (None when absent or the run did not complete)."""
    if not record.completed:
        return None
    hits = [v for k, v in record.final.items() if k.endswith("/" + suffix)]
    return hits[0] if hits else None


def pm(mean: float | None, se: float | None = None) -> str:
    """``mean +- se`` the way the official plots' tables read (no decimals from 100 on)."""
    if mean is None:
        return "not completed"
    digits = 0 if abs(mean) >= 100 else 1
    text = f"{mean:,.{digits}f}"
    return text if se is None else f"{text} +- {se:,.{digits}f}"


def _ref(mean: float, se: float | None = None) -> str:
    """A reference number as it was recorded (every digit it has)."""
    return f"{mean:,}" + ("" if se is None else f" +- {se:,}")


def _at(record: Record, mark: int | None) -> str:
    """R(mark) (``None``: R(T)) of a run, mean +- s.e. over its trials."""
    if mark is None:
        return pm(_get(record, "cumulative_regret"), _get(record, "cumulative_regret_stderr"))
    if record.completed and _get(record, f"regret_at_{mark}") is None:
        return "-"  # past the run's horizon
    return pm(_get(record, f"regret_at_{mark}"), _get(record, f"regret_at_{mark}_stderr"))


def _rounds(records: dict[str, Record]) -> int:
    done = [r for tag, r in records.items() if r.completed and not tag.startswith("e4_")]
    return int(_get(done[0], "rounds")) if done else 0


# -- sections -------------------------------------------------------------------------------------


def _final(records: dict[str, Record], quick: bool, cites: Citations) -> str:
    lines = [f"R(T) at T = {HORIZON[quick]:,} rounds, {TRIALS[quick]} trials per run (mean +- s.e.).", "",
             "| learner | " + " | ".join(CONFIGS) + " | runs |", "| --- |" + " --- |" * (len(CONFIGS) + 1)]
    for key, (label, _) in LEARNERS.items():
        rs = [records[f"{c}_{key}"] for c in CONFIGS if f"{c}_{key}" in records]
        cells = [_at(records[f"{c}_{key}"], None) if f"{c}_{key}" in records else "not in the paper"
                 for c in CONFIGS]
        lines.append(f"| {label} | {' | '.join(cells)} | {cites.cite(rs)} |")
    return "\n".join(lines)


def _growth(records: dict[str, Record], quick: bool, cites: Citations) -> str:
    horizon = HORIZON[quick]
    out = []
    for config in CONFIGS:
        lines = [f"#### {config}", "", "| learner | R(1e3) | R(1e4) | R(1e5) | R(T) | realized R(T) | runs |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
        for key in _learners(config):
            r = records[f"{config}_{key}"]
            cells = [_at(r, 1000), _at(r, 10_000), _at(r, 100_000), _at(r, None),
                     pm(_get(r, "realized_regret"), _get(r, "realized_regret_stderr"))]
            lines.append(f"| {LEARNERS[key][0]} | {' | '.join(cells)} | {cites.cite([r])} |")
        best = records[f"{config}_dynlin_log"]
        marks = [_get(best, f"regret_at_{m}") for m in (1000, 10_000, 100_000)] + \
            [_get(best, "cumulative_regret")]
        if all(v is not None for v in marks) and horizon == 10 * 100_000:
            ratios = ", ".join(f"{b / a:.1f}" for a, b in zip(marks, marks[1:], strict=False))
            slope = (marks[3] - marks[2]) / (horizon - 100_000)
            lines += ["", f"DynLin-UCB (lambda = ln T): R(10t)/R(t) = {ratios} for t = 1e3, 1e4, 1e5 (a "
                      f"linear learner gives 10); regret per round over the last 9e5 rounds {slope:.4f}."]
        out.append("\n".join(lines))
    return "\n\n".join(out)


def _official(records: dict[str, Record], quick: bool, cites: Citations) -> str:
    lines = ["Synthetic, sigma = 0.01. Official: reference numbers from the official DLB code (not "
             "runs of this project; its numpy noise, seed 1). Ours: the runs of the tables above "
             f"({TRIALS[quick]} trials, T = {HORIZON[quick]:,}, torch noise).", "",
             "| learner | source | trials | R(1e3) | R(1e4) | R(1e5) | R(1e6) | runs |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, (trials, *at, se) in OFFICIAL_SIGMA001.items():
        label = LEARNERS[key][0]
        lines.append(f"| {label} | official (reference) | {trials} | "
                     + " | ".join(_ref(v) for v in at[:3]) + f" | {_ref(at[3], se)} | - |")
        r = records[f"synthetic_sigma0.01_{key}"]
        final = _at(r, None) if HORIZON[quick] == 1_000_000 else "-"
        lines.append(f"| {label} | ours | {TRIALS[quick]} | {_at(r, 1000)} | {_at(r, 10_000)} | "
                     f"{_at(r, 100_000)} | {final} | {cites.cite([r])} |")
    config, horizon, trials = E4
    lines += ["", f"Synthetic, sigma = 0.1, T = {horizon:,}, {trials} trials: R(T), mean +- s.e.", "",
              "| learner | official (reference) | ours | runs |", "| --- | --- | --- | --- |"]
    for key in UCB:
        r = records[f"e4_{config}_{key}"]
        lines.append(f"| {LEARNERS[key][0]} | {_ref(*OFFICIAL_SIGMA01_E4[key])} | {_at(r, None)} | "
                     f"{cites.cite([r])} |")
    return "\n".join(lines)


def _timing(records: dict[str, Record]) -> str:
    """CPU seconds per run (full page only: quick pages hold no timings)."""
    lines = ["CPU seconds of each run (the runner's process time: setup, learning loop and final "
             "metrics; one thread).", "", "| learner | " + " | ".join(CONFIGS) + " |",
             "| --- |" + " --- |" * len(CONFIGS)]
    total = 0.0
    for key, (label, _) in LEARNERS.items():
        cells = []
        for config in CONFIGS:
            r = records.get(f"{config}_{key}")
            cpu = r.cpu_s if r is not None and r.completed else float("nan")
            total += cpu if cpu == cpu else 0.0
            cells.append("-" if r is None else ("not completed" if cpu != cpu else f"{cpu:.1f}"))
        lines.append(f"| {label} | {' | '.join(cells)} |")
    lines += ["", f"Total over the completed runs of the four figures: {total:.0f} CPU s."]
    return "\n".join(lines)


def render(records: dict[str, Record], quick: bool, out: Path) -> dict[str, str]:
    """Final-regret table, regret growth per config, the official-code comparison, (full:) the
    timings and the four figures."""
    cites = Citations(quick)
    sections = {"dynlin_final": _final(records, quick, cites),
                "dynlin_growth": _growth(records, quick, cites),
                "dynlin_official": _official(records, quick, cites)}
    if not quick:
        sections["dynlin_timing"] = _timing(records)
        _figures(records, out)
    sections["dynlin_runs"] = cites.markdown()
    return sections


def _figures(records: dict[str, Record], out: Path) -> None:
    """``dynlin_ucb_<config>.png``: the mean regret curve of each learner (logged every
    ``agent.log_every`` rounds), y-limit 3x the final regret of DynLin-UCB (lambda = ln T) as the
    official plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"dynlin": "-", "linucb": "--", "dlinucb": ":"}
    for config in CONFIGS:
        fig, ax = plt.subplots(figsize=(9, 6))
        for key in _learners(config):
            r = records[f"{config}_{key}"]
            if key == "myopic" or not r.completed:
                continue
            pts = r.curve(next(k for k in r.final if k.endswith("/cumulative_regret")))
            trials = int(r.config.get("num_envs", 1))
            ax.plot([s / trials for s, _ in pts], [v for _, v in pts], label=LEARNERS[key][0],
                    linestyle=styles.get(key.split("_")[0], "-."))
        top = _get(records[f"{config}_dynlin_log"], "cumulative_regret")
        if top:
            ax.set_ylim(0, 3 * top)
        ax.set_xlim(0, HORIZON[False])
        ax.set_xlabel("rounds")
        ax.set_ylabel("cumulative pseudo-regret (mean over trials)")
        ax.set_title(f"{config}: {TRIALS[False]} trials")
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"dynlin_ucb_{config}.png", dpi=110)
        plt.close(fig)
