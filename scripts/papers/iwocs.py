"""IWOCS (Zouitine et al. 2024): tabular analyses and the scaled-down Pendulum comparison.

Runs (every one ``rlsuite experiment=<preset> seed=<s>`` through the runner): per seed, IWOCS*
(``pendulum_iwocs``: grid search on the evaluation grid), IWOCS with the CMA-ES search
(``pendulum_iwocs_cmaes``), and the nominal and domain-randomized SAC baselines
(``pendulum_iwocs_nominal_sac``, ``pendulum_iwocs_dr_sac``: IWOCS's SAC for its whole budget).
Each run records the grid evaluation in its final metrics (every grid point's mean return, the
worst case, the mean; IWOCS also its last phase's composite and its components alone), and the
per-phase search trace in ``metrics.csv``. The quick plan runs the same four on
``pendulum_iwocs_smoke`` (a seconds-long budget).

The full plan also runs the paper's protocol on MuJoCo (``mujoco`` extra): per seed 0-2, IWOCS*
on the HalfCheetah 3-parameter set (``halfcheetah_iwocs``) and its nominal and DR SAC baselines at
the same env steps (``halfcheetah_iwocs_nominal_sac``, ``halfcheetah_iwocs_dr_sac``), 1-1.5
CPU-hours each; :func:`mujoco_section` renders their worst cases and the paper's normalized score
(:mod:`rlsuite.agents.iwocs.paper_scores`). ``--only 'halfcheetah_*'`` runs just those. The quick
plan has no MuJoCo run (the quick check runs without the extra).

The tabular tables are exact analyses (no training), computed here by
:mod:`rlsuite.agents.iwocs.analysis`: stall statistics on random sa-rectangular sets and the gap
to brute force on random non-rectangular sets (fewer sets in the quick version).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from rlsuite.reproduce import Citations, Job, Record, fmt

TITLE = "Zouitine et al. 2024, robust MDPs by IWOCS"
PAGE = "results/iwocs.md"

SEEDS = {False: (0, 1, 2), True: (0,)}
METHODS: list[tuple[str, str, str, tuple[str, ...]]] = [
    # (tag prefix, row label, full preset, quick overrides on pendulum_iwocs_smoke)
    ("iwocs_grid", "IWOCS* (grid search)", "pendulum_iwocs", ()),
    ("iwocs_cmaes", "IWOCS (CMA-ES search)", "pendulum_iwocs_cmaes", ("agent.search=cmaes",)),
    ("dr_sac", "DR SAC", "pendulum_iwocs_dr_sac", ("agent.method=dr_sac",)),
    ("nominal_sac", "nominal SAC", "pendulum_iwocs_nominal_sac", ("agent.method=nominal_sac",)),
]
QUICK_PRESET = "pendulum_iwocs_smoke"
# The MuJoCo comparison (full plan only: each run takes 1-2 CPU-hours and needs the mujoco extra):
# (tag prefix, row label, preset, metric prefix). Tags must not start with "iwocs" (the Pendulum
# trace and components sections read every such run).
MUJOCO_SET = "halfcheetah_3"
MUJOCO_METHODS: list[tuple[str, str, str, str]] = [
    ("halfcheetah_iwocs", "IWOCS* (kept phase chosen on the grid)", "halfcheetah_iwocs", "eval"),
    ("halfcheetah_iwocs", "IWOCS (last phase, no choice)", "halfcheetah_iwocs", "eval/last"),
    ("halfcheetah_dr_sac", "DR SAC", "halfcheetah_iwocs_dr_sac", "eval"),
    ("halfcheetah_nominal_sac", "nominal SAC", "halfcheetah_iwocs_nominal_sac", "eval"),
]
PAPER_ROW = {"IWOCS* (kept phase chosen on the grid)": "IWOCS*", "DR SAC": "DR (TD3)",
             "nominal SAC": "TD3"}
"""The row of the paper's Table 1 each row compares with (its baselines are TD3-based: a TD3 on
the reference model, 0 by construction, and a domain-randomized TD3)."""
# The tabular analyses' sizes (S, A, choices per uncertain pair, uncertain pairs), sets per size,
# and the non-rectangular sets (full, quick).
STALL_SIZES = [(4, 2, 2, 5), (6, 3, 2, 6), (8, 2, 3, 5)]
STALL_TRIALS = {False: 300, True: 10}
NONRECT = {"states": 3, "actions": 2, "models": 4, "gamma": 0.9, "sparsity": 2, "seed": 0}
NONRECT_INSTANCES = {False: 200, True: 30}
T95 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}
"""Student-t 97.5 % quantiles by sample size (n - 1 degrees of freedom)."""



def _per_seed_text(values: dict[int, float], missing: Sequence[str]) -> str:
    """``seed 0: v0, seed 1: v1`` plus the runs not yet recorded."""
    text = ", ".join(f"seed {s}: {fmt(v, 4)}" for s, v in values.items())
    return text + (f"; not yet run: {', '.join(missing)}" if missing else "")


def _not_run_note(only: str, how: str) -> list[str]:
    """The line under a table with *not yet run* rows: the command that runs them."""
    return ["", "Rows marked *not yet run* have runs that did not complete: "
            f"`.venv/bin/python scripts/reproduce.py iwocs{only}` runs them ({how})."]

def plan(quick: bool) -> list[Job]:
    """Every method for every seed (quick: seed 0 on the smoke preset)."""
    jobs = []
    for seed in SEEDS[quick]:
        for tag, _, preset, quick_overrides in METHODS:
            if quick:
                jobs.append(Job(f"{tag}_s{seed}", QUICK_PRESET, (f"seed={seed}", *quick_overrides)))
            else:
                jobs.append(Job(f"{tag}_s{seed}", preset, (f"seed={seed}",)))
    if not quick:
        for seed in SEEDS[False]:
            for tag, preset in dict((t, p) for t, _, p, _ in MUJOCO_METHODS).items():
                jobs.append(Job(f"{tag}_s{seed}", preset, (f"seed={seed}",)))
    return jobs


# -- statistics -----------------------------------------------------------------------------------


def t_ci95(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of a Student-t 95 % interval over ``values`` (NaN for one)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, T95.get(len(values), 1.96) * statistics.stdev(values) / math.sqrt(len(values))


def _grid(record: Record, prefix: str = "eval") -> list[list[float]]:
    """The run's recorded grid of mean returns (``[m index][l index]``)."""
    from rlsuite.agents.iwocs.evaluation import read_grid

    points = int(record.config["agent"]["eval_points"])
    return read_grid(record.final, prefix, 2, points).tolist()


def _worst_mean(record: Record, prefix: str = "eval") -> tuple[float, float]:
    """Worst case (min over grid points) and mean over the grid, from the per-point returns."""
    values = [v for row in _grid(record, prefix) for v in row]
    return min(values), statistics.fmean(values)


def _pm(values: list[float]) -> str:
    mean, half = t_ci95(values)
    return fmt(mean, 4) + ("" if half != half else f" +- {fmt(half, 2)}")


# -- sections -------------------------------------------------------------------------------------


def _tabular(quick: bool) -> str:
    from rlsuite.agents.iwocs.analysis import route_choice_runs, stall_statistics

    sizes = stall_statistics(STALL_SIZES, STALL_TRIALS[quick])
    lines = [f"{STALL_TRIALS[quick]} random sets per size (generator seed 2024).", "",
             "| S | A | choices | uncertain pairs | models | tie-break | converged | stalled | "
             "robust value | false conv. | mean iterations |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for sz in sizes:
        n = sz["trials"]
        for rule, d in sz["counts"].items():
            lines.append(f"| {sz['S']} | {sz['A']} | {sz['choices']} | {sz['uncertain_pairs']} | "
                         f"{sz['models']} | {rule} | {d['converged']}/{n} | {d['stalled']}/{n} | "
                         f"{d['robust_value']}/{n} | {d['false_convergence']} | "
                         f"{d['iterations'] / n:.2f} |")
    rc = route_choice_runs()
    lines += ["", f"Route-choice set (`route_choice_set()`, robust value {rc['robust_value']:.2f}):",
              "", "| tie-break | stop | worst case | models found per iteration | robust-Q estimates |",
              "|---|---|---|---|---|"]
    for rule, r in rc["runs"].items():
        lines.append(f"| {rule} | {r['stop_reason']} | {r['worst_case_value']:.2f} | "
                     f"{r['worst_case_models']} | {[round(e, 3) for e in r['estimates']]} |")
    return "\n".join(lines)


def _nonrectangular(quick: bool) -> str:
    from rlsuite.agents.iwocs.analysis import nonrectangular_gaps

    data = nonrectangular_gaps(NONRECT_INSTANCES[quick], **NONRECT)
    st, sm = data["settings"], data["summary"]
    stops = sm["by_stop_reason"]
    conv, stall = stops.get("converged", {}), stops.get("stalled", {})
    return "\n".join([
        f"{st['instances']} random finite sets (`random_finite_set`, seed {st['seed']}), each of "
        f"{st['models']} random MDPs with {st['states']} states, {st['actions']} actions, "
        f"{st['sparsity']} next states per row, gamma {st['gamma']}.", "",
        "| instances | median gap | mean gap | max gap | gap > 1% | converged (gap > 1%) | "
        "stalled (gap > 1%) | robust VI on the sa-rectangular hull (a lower bound), median gap |",
        "|---|---|---|---|---|---|---|---|",
        f"| {st['instances']} | {sm['median_gap']:.1%} | {sm['mean_gap']:.1%} | {sm['max_gap']:.1%} | "
        f"{sm['fraction_above_threshold']:.0%} | {conv.get('count', 0)} "
        f"({conv.get('above_threshold', 0)}) | {stall.get('count', 0)} "
        f"({stall.get('above_threshold', 0)}) | {sm['rectangular_hull_median_gap']:.1%} |"])


def _setup(records: dict[str, Record]) -> str:
    """The settings line, read from a completed IWOCS* run's config."""
    done = [r for tag, r in records.items() if tag.startswith("iwocs_grid") and r.completed]
    if not done:
        return "No IWOCS* run has completed yet."
    cfg, a = done[0].config, done[0].config["agent"]
    sac = a["sac"]
    return (f"Box `{a['box']}`, {cfg['num_envs']} env copies, 200-step episodes, undiscounted "
            f"return. Budget per run (env steps, summed over copies): IWOCS = DR fallback "
            f"{a['dr_steps']} + up to {a['num_iterations']} experts x {a['model_steps']} (the first "
            f"on the {a['initial_model']} model) = {cfg['total_steps']}; each baseline "
            f"{cfg['total_steps']}. SAC {sac['hidden_sizes']}, lr {sac['learning_rate']}, utd "
            f"{sac['utd']}, {sac['learning_starts']} warm-up steps, batch {sac['batch_size']}. "
            f"Search: IWOCS* the {a['search_points']} x {a['search_points']} grid, IWOCS CMA-ES "
            f"({a['cmaes_generations']} generations x {a['cmaes_population']}), "
            f"{a['search_episodes']} episodes per model; thresholds {a['thresholds']}. "
            f"Evaluation: {a['eval_points']} x {a['eval_points']} linspace grid, "
            f"{a['eval_episodes']} episodes per point, the same initial states for every method of "
            f"a seed; worst case = min over grid points of the mean return, mean = mean over the "
            f"grid. +- is a Student-t 95 % interval over seeds.")


def _rows(records: dict[str, Record], seeds: tuple[int, ...]) -> list[tuple[str, str, list[Record], str]]:
    """(label, tag prefix, records, metric prefix) of each row of the main table."""
    rows = []
    for tag, label, _, _ in METHODS:
        rows.append((label, tag, [records[f"{tag}_s{s}"] for s in seeds], "eval"))
        if tag == "iwocs_grid":
            rows.append(("IWOCS* last phase (no choice of the kept phase)", tag,
                         [records[f"{tag}_s{s}"] for s in seeds], "eval/last"))
    return rows


def _pendulum(records: dict[str, Record], quick: bool, cites: Citations) -> str:
    seeds = SEEDS[quick]
    lines = [_setup(records), "", "| method | worst case | mean over grid | worst case per seed | "
             "runs |", "|---|---|---|---|---|"]
    worst: dict[str, dict[int, float]] = {}  # label -> seed -> worst case
    missing_any = False
    for label, _, recs, prefix in _rows(records, seeds):
        done = {s: r for s, r in zip(seeds, recs, strict=True) if r.completed}
        missing = [r.job.tag for r in recs if not r.completed]
        missing_any = missing_any or bool(missing)
        if not done:
            lines.append(f"| {label} | not yet run ({', '.join(missing)}) | | | {cites.cite(recs)} |")
            continue
        wm = {s: _worst_mean(r, prefix) for s, r in done.items()}
        worst[label] = {s: w for s, (w, _) in wm.items()}
        per_seed = _per_seed_text({s: w for s, (w, _) in wm.items()}, missing)
        lines.append(f"| {label} | {_pm([w for w, _ in wm.values()])} | "
                     f"{_pm([m for _, m in wm.values()])} | {per_seed} | {cites.cite(recs)} |")
    if missing_any:
        lines += _not_run_note("", "recorded runs are read back, interrupted ones continue from "
                               "their checkpoints")
    nom, dr = worst.get("nominal SAC", {}), worst.get("DR SAC", {})
    if nom and dr:
        lines += ["", "Normalized worst case, (v - v_nominal) / |v_DR - v_nominal| (DR stands in for "
                  "the paper's M2TD3: DR = 1, nominal = 0 by construction; pooled = from the means "
                  "over the seeds where all three runs completed, per seed = each seed's own "
                  "nominal and DR):", "", "| method | pooled | per seed |", "|---|---|---|"]
        for label, values in worst.items():
            common = [s for s in seeds if s in values and s in nom and s in dr]
            if not common:
                continue
            mv, mn, md = (statistics.fmean(x[s] for s in common) for x in (values, nom, dr))
            pooled = (mv - mn) / abs(md - mn) if md != mn else float("nan")
            per = ", ".join(f"seed {s}: {(values[s] - nom[s]) / abs(dr[s] - nom[s]):.2f}"
                            if dr[s] != nom[s] else f"seed {s}: -" for s in common)
            lines.append(f"| {label} | {pooled:.2f} | {per} |")
    return "\n".join(lines)


def _trace(records: dict[str, Record], quick: bool) -> str:
    """The per-phase search trace of each IWOCS run, from its metrics.csv."""
    lines = ["| run | phase | trained on (m, l) | rho | worst (m, l) | worst return (search) | "
             "Q estimate (discounted) | experts kept |", "|---|---|---|---|---|---|---|---|"]
    for tag, r in records.items():
        if not tag.startswith("iwocs") or not r.completed:
            continue
        phases = [row for row in r.metrics if _has(row, "iwocs/worst_case_return")]
        for phase, row in enumerate(phases):
            on = (f"({fmt(row['iwocs/trained_m'])}, {fmt(row['iwocs/trained_l'])})"
                  if _has(row, "iwocs/trained_m") else "-")
            lines.append(
                f"| {tag} | {phase} | {on} | {fmt(row.get('iwocs/rho'), 2)} | "
                f"({fmt(row['iwocs/worst_m'])}, {fmt(row['iwocs/worst_l'])}) | "
                f"{fmt(row['iwocs/worst_case_return'], 4)} | {fmt(row.get('iwocs/q_estimate'), 4)} | "
                f"{int(row['iwocs/kept_experts'])} |")
        stalled = any(_has(row, "iwocs/stalled") for row in r.metrics)
        lines.append(f"| {tag} | stop: {'stalled' if stalled else 'max_iterations'} | | | | | | |")
    return "\n".join(lines)


def _has(row: dict[str, float], key: str) -> bool:
    value = row.get(key)
    return value is not None and value == value


def _components(records: dict[str, Record]) -> str:
    """Every policy of each IWOCS run evaluated alone (worst case / mean over the grid)."""
    names = [("eval", "kept composite"), ("eval/last", "last composite"),
             ("eval/fallback", "fallback (DR) alone")]
    lines = []
    for tag, r in records.items():
        if not tag.startswith("iwocs") or not r.completed:
            continue
        experts = sorted({k.split("/")[1] for k in r.final if k.startswith("eval/expert_")})
        cells = [f"{n}: {fmt(r.final[f'{p}/worst_case_return'], 4)} / {fmt(r.final[f'{p}/mean_return'], 4)}"
                 for p, n in names + [(f"eval/{e}", f"{e.replace('_', ' ')} alone") for e in experts]]
        lines.append(f"- {tag}: " + "; ".join(cells) + f"; the fallback acted on "
                     f"{100 * r.final['eval/fallback_fraction']:.1f} % of the kept composite's steps.")
    return "\n".join(lines) if lines else "No IWOCS run has completed yet."


def _figure(records: dict[str, Record], out: Path) -> str:
    """Heat maps of seed 0's recorded grids (IWOCS*, DR SAC, nominal SAC)."""
    runs = [(label, records[f"{tag}_s0"]) for tag, label, _, _ in METHODS
            if tag != "iwocs_cmaes" and records[f"{tag}_s0"].completed]
    if not runs:
        return ""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ""
    from rlsuite.agents.iwocs.boxes import get_box

    box = get_box(runs[0][1].config["agent"]["box"])
    grids = [_grid(r) for _, r in runs]
    lo, hi = min(min(map(min, g)) for g in grids), max(max(map(max, g)) for g in grids)
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.6), squeeze=False)
    for ax, (label, _), g in zip(axes[0], runs, grids, strict=True):
        # grid[m][l]: transpose so that m runs along x
        im = ax.imshow([list(col) for col in zip(*g, strict=True)], origin="lower", aspect="auto",
                       extent=(box.low[0], box.high[0], box.low[1], box.high[1]), vmin=lo, vmax=hi,
                       cmap="viridis")
        ax.set_title(f"{label} (worst {min(map(min, g)):.0f})")
        ax.set_xlabel("mass m")
        ax.set_ylabel("length l")
    fig.colorbar(im, ax=list(axes[0]), label="mean return")
    name = "iwocs_pendulum_grid.png"
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return f"![mean return over the grid, seed 0]({name})"


def _steps(n: float) -> str:
    return f"{n / 1e6:g} M" if n >= 1e6 else f"{n / 1e3:g} k"


def mujoco_section(records: dict[str, Record]) -> str:
    """IWOCS and its baselines on the paper's HalfCheetah 3-D set: worst case over the grid and
    the paper's normalized score, per method, beside the paper's Table 1 numbers."""
    from rlsuite.agents.iwocs.paper_scores import REFERENCES, normalized_score

    ref = REFERENCES[MUJOCO_SET]
    seeds = SEEDS[False]
    cites = Citations(False)
    done = [r for tag, r in records.items() if tag.startswith("halfcheetah_iwocs_s") and r.completed]
    if done:  # the settings a run was made with; before any run, the preset's
        cfg = done[0].config
    else:
        from omegaconf import OmegaConf

        from rlsuite.runner import compose

        cfg = OmegaConf.to_container(  # run_dir: its default needs a Hydra run
            compose(["experiment=halfcheetah_iwocs", "run_dir=unused"]), resolve=True)
    a = cfg["agent"]
    steps = int(cfg["total_steps"])
    budget = (f"IWOCS = DR fallback {_steps(a['dr_steps'])} + up to {a['num_iterations']} "
              f"experts x {_steps(a['model_steps'])} = {_steps(steps)} env steps; each baseline "
              f"{_steps(steps)}; SAC {a['sac']['hidden_sizes']}, {cfg['num_envs']} copies; search "
              f"and evaluation on the {a['eval_points']}^3 linspace grid, "
              f"{a['eval_episodes']} episode(s) per point, episodes of "
              f"{a['episode_steps'] or 1000} steps, {len(a['thresholds'])} thresholds")
    lines = [
        f"Set `{MUJOCO_SET}` on gymnasium `HalfCheetah-v5`: world friction [0.1, 4] x torso mass "
        f"[0.1, 7] x back-thigh mass [0.1, 3]. This budget: {budget}. The paper's: "
        f"{_steps(ref.budget_steps)} per run ({ref.budget}), 10 seeds. Normalized worst case = "
        f"(v - v_TD3) / |v_M2TD3 - v_TD3| with the paper's references v_TD3 = {ref.td3:g} and "
        f"v_M2TD3 = {ref.m2td3:g} (Gym v2 models, `docs/iwocs.md`); +- is a Student-t 95 % "
        f"interval over seeds.", "",
        "| method | seeds | worst case | normalized worst case | per seed (worst case) | "
        "paper, normalized (Table 1) | env steps (this / paper) | runs |",
        "|---|---|---|---|---|---|---|---|"]
    missing_any = False
    for tag, label, _, prefix in MUJOCO_METHODS:
        recs = [records[f"{tag}_s{s}"] for s in seeds if f"{tag}_s{s}" in records]
        ok = {s: r for s, r in zip(seeds, recs, strict=True) if r.completed}
        missing = [r.job.tag for r in recs if not r.completed]
        missing_any = missing_any or bool(missing)
        paper = (f"{PAPER_ROW[label]}: {ref.scores[PAPER_ROW[label]]:.2f}" if label in PAPER_ROW
                 else "-")
        budget_cell = f"{_steps(steps)} / {_steps(ref.budget_steps)}"
        if not ok:
            lines.append(f"| {label} | 0/{len(seeds)} | not yet run ({', '.join(missing)}) | | | "
                         f"{paper} | {budget_cell} | {cites.cite(recs)} |")
            continue
        worst = [r.final[f"{prefix}/worst_case_return"] for r in ok.values()]
        norm = [normalized_score(w, ref.td3, ref.m2td3) for w in worst]
        per = _per_seed_text(dict(zip(ok, worst, strict=True)), missing)
        lines.append(f"| {label} | {len(ok)}/{len(seeds)} | {_pm(worst)} | {_pm(norm)} | {per} | "
                     f"{paper} | {budget_cell} | {cites.cite(recs)} |")
    if missing_any:
        lines += _not_run_note(" --only 'halfcheetah_*'", "the `mujoco` extra is needed; "
                               "interrupted runs continue from their checkpoints")
    return "\n".join(lines) + "\n\n" + cites.markdown()


def render(records: dict[str, Record], quick: bool, out: Path) -> dict[str, str]:
    """The tabular sections (exact analyses) and the Pendulum sections (from the run records)."""
    cites = Citations(quick)
    pendulum = _pendulum(records, quick, cites)
    sections = {
        "tabular": _tabular(quick),
        "nonrectangular": _nonrectangular(quick),
        "pendulum": pendulum + "\n\n" + cites.markdown(),
        "pendulum_trace": _trace(records, quick),
        "pendulum_components": _components(records),
    }
    if not quick:
        sections["pendulum_figure"] = _figure(records, out)
        sections["mujoco"] = mujoco_section(records)  # full plan only: the quick check has no MuJoCo
    return sections
