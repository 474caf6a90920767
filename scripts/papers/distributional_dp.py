"""Distributional DP with stock augmentation and DηN (Avila Pires et al. 2025, arXiv 2501.13028):
the runs and tables of ``results/distributional_dp.md``.

Every learned number comes from a runner run's final metrics: DηN's ``final_metrics`` scores its
network under every RU deployment for the preset's ``report_levels`` / ``report_targets``
(:func:`rlsuite.agents.distributional_dp.analysis.deta_n_report`), the risk-neutral QR-DQN
baseline (``agent.name=risk_neutral_qrdqn`` on the same preset) its own policy. The exact optima
and the quantile-projected DP are deterministic analyses computed here (``solve``,
:func:`~rlsuite.agents.distributional_dp.analysis.quantile_dp_report`). The solver's speed
benchmark stays a script (``scripts/bench_distributional_dp.py``), quoted by the page.
"""

from __future__ import annotations

from pathlib import Path

from rlsuite.reproduce import Citations, Job, Record

TITLE = "Distributional DP with stock augmentation and DηN (Avila Pires et al. 2025)"
PAGE = "results/distributional_dp.md"

LEVELS = (0.1, 0.25, 0.5, 1.0)
"""The CVaR levels of the preset ``stockgrid_deta_n_cvar`` (``agent.report_levels``)."""
TARGETS = (2.0, 4.0, 5.0, 8.0)
"""The return targets of the preset ``stockgrid_deta_n`` (``agent.report_targets``)."""
ABLATION_LEVELS = (0.25, 0.5)
"""The levels of the preset ``stockgrid_deta_n_ablation``."""
SEEDS = (0, 1, 2)
BASELINE = ("agent.name=risk_neutral_qrdqn",)
"""The risk-neutral QR-DQN baseline on a DηN preset's settings."""
DETERMINISTIC = ("env.stochastic=false", "agent.objective=target")
"""The ablation's return-targeting runs (target 5 on the deterministic grid)."""
ABLATION: dict[str, tuple[str, tuple[str, ...]]] = {
    "before": ("before (scalar step count, utd 0.25, 128-128, 40k steps)", ()),
    "categorical": ("categorical head (49 integer atoms on [-16, 32]), one-hot step count, 40k",
                    ("agent.representation=categorical", "agent.n_atoms=49", "agent.atoms_low=-16.0",
                     "agent.atoms_high=32.0", "agent.time_one_hot=true")),
    "one_hot": ("one-hot step count, 40k", ("agent.time_one_hot=true",)),
    "one_hot_utd": ("one-hot step count, utd 0.5, 80k",
                    ("agent.time_one_hot=true", "agent.utd=0.5", "total_steps=80000")),
}
"""The ablation's variants: name -> (row label, overrides of ``stockgrid_deta_n_ablation``). The
last steps, a 256-256 network and 120k env steps, are the preset ``stockgrid_deta_n_cvar``."""
QUICK = ("total_steps=2048", "agent.learning_starts=1024", "agent.hidden_sizes=[32,32]",
         "agent.n_quantiles=16", "agent.rollout_episodes=400")
"""Tiny budgets for ``--quick`` (every table's code path, numbers meaningless)."""
QUICK_DEPLOY = ("agent.snapshot_interval=512", "agent.deploy_episodes=100")
QUICK_DDP = ("agent.rollout_episodes=400",)
QUANTILES = (50, 100, 200)
"""Quantile counts of the quantile-projected DP analysis (``--quick``: the first only)."""


def plan(quick: bool) -> list[Job]:
    """The exact agent on FrozenLake; return targeting (DηN and QR-DQN, seed 0); CVaR (DηN and
    QR-DQN per seed); the ablation (per variant: CVaR per seed, target 5 on seed 0)."""
    seeds = SEEDS[:1] if quick else SEEDS
    small = QUICK if quick else ()
    jobs = [Job("ddp_frozenlake", "frozenlake_cvar_ddp", QUICK_DDP if quick else ()),
            Job("target_deta_n_s0", "stockgrid_deta_n", ("seed=0", *small)),
            Job("target_qrdqn_s0", "stockgrid_deta_n", ("seed=0", *BASELINE, *small))]
    for s in seeds:
        deploy = (*small, *QUICK_DEPLOY) if quick else ()
        jobs += [Job(f"cvar_deta_n_s{s}", "stockgrid_deta_n_cvar", (f"seed={s}", *deploy)),
                 Job(f"cvar_qrdqn_s{s}", "stockgrid_deta_n_cvar", (f"seed={s}", *BASELINE, *small))]
    for name, (_, overrides) in ABLATION.items():
        # A variant's own budget (total_steps) gives way to the quick one.
        variant = tuple(o for o in overrides if not (quick and o.startswith("total_steps")))
        for s in seeds:
            jobs.append(Job(f"ablation_{name}_s{s}", "stockgrid_deta_n_ablation",
                            (f"seed={s}", *variant, *small)))
        jobs.append(Job(f"ablation_{name}_target", "stockgrid_deta_n_ablation",
                        ("seed=0", *DETERMINISTIC, *variant, *small)))
    return jobs


# -- helpers ----------------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals (``-`` when missing)."""
    return "-" if value is None or value != value else f"{value:.{digits}f}"


def _ci(final: dict[str, float], prefix: str, key: str = "empirical", low: str = "ci_low",
        high: str = "ci_high") -> str:
    """``v [lo, hi]`` of a report entry."""
    if f"{prefix}/{key}" not in final:
        return "-"
    return (f"{_f(final[f'{prefix}/{key}'])} [{_f(final[f'{prefix}/{low}'])}, "
            f"{_f(final[f'{prefix}/{high}'])}]")


def gap_text(optimum: float, value: float | None) -> str:
    """How far ``value`` falls below ``optimum``: in % of it, absolute when it is 0."""
    if value is None or value != value:
        return "-"
    if optimum == 0:
        return f"{optimum - value:.3f} (abs.)"
    return f"{100 * (optimum - value) / abs(optimum):.1f}%"


def within(optimum: float, value: float | None, tolerance: float = 0.05) -> bool:
    """``value`` is at most ``tolerance`` (relative; absolute 1e-9 at a zero optimum) below."""
    return value is not None and value == value and value >= optimum - tolerance * abs(optimum) - 1e-9


def _done(record: Record | None) -> bool:
    return record is not None and record.completed


def _missing(record: Record | None) -> str:
    """The text a row shows for a run that did not complete."""
    status = "not run" if record is None else record.result.get("status", "missing")
    if status == "preempted":
        return "stopped with a checkpoint (not yet complete)"
    return "not yet run" if status in ("missing", "not run") else status


def _optima() -> tuple[dict[float, tuple[float, float]], dict[float, float]]:
    """Exact CVaR optima (value, mean) on the stochastic grid and return-targeting optima on the
    deterministic one, from the exact solver."""
    from rlsuite.agents.distributional_dp import CVaR, ReturnTargeting, solve
    from rlsuite.envs.tabular.stock_grid import stock_grid

    sto, det = stock_grid(stochastic=True), stock_grid(stochastic=False)
    cvar = {}
    for level in (*LEVELS, *ABLATION_LEVELS):
        sol = solve(sto, CVaR(level))
        cvar[level] = (sol.value, sol.mean)
    return cvar, {t: solve(det, ReturnTargeting(t)).value for t in (*TARGETS, 5.0)}


# -- sections ----------------------------------------------------------------------------------------


def exact_solver(records: dict[str, Record], quick: bool) -> str:
    """The exact agent through the runner on FrozenLake, and the grid's exact optima."""
    cites = Citations(quick)
    rec = records.get("ddp_frozenlake")
    rows = ["| run | exact CVaR_0.3 (the score) | empirical CVaR_0.3 | empirical mean return (± s.e.) "
            "| episodes | CPU s | runs |", "|---|---|---|---|---|---|---|"]
    if _done(rec):
        f = rec.final
        cpu = "-" if quick else f"{rec.cpu_s:.1f}"
        rows.append(f"| FrozenLake 4x4, slippery, 100 steps | {_f(f['distributional_dp/objective'], 4)} | "
                    f"{_f(f['eval/empirical_objective'], 4)} | {_f(f['eval/mean_return'])} ± "
                    f"{_f(f['eval/mean_return_se'])} | {f['eval/episodes']:.0f} | {cpu} | "
                    f"{cites.cite([rec])} |")
    else:
        rows.append(f"| FrozenLake 4x4 | {_missing(rec)} | | | | | {cites.cite([rec] if rec else [])} |")
    cvar, targets = _optima()
    opt = ["| stochastic grid, CVaR level | exact optimum | mean return of the optimal policy |",
           "|---|---|---|"]
    opt += [f"| {level:g} | {_f(cvar[level][0])} | {_f(cvar[level][1])} |" for level in LEVELS]
    tgt = ["| deterministic grid, target | exact optimum of E -\\|G - target\\| |", "|---|---|"]
    tgt += [f"| {t:g} | {_f(targets[t])} |" for t in TARGETS]
    return "\n".join(rows) + "\n\n" + cites.markdown() + "\n\nExact optima of the grid (`solve`, " \
        "computed when the page is regenerated):\n\n" + "\n".join(opt) + "\n\n" + "\n".join(tgt)


def targeting(records: dict[str, Record], quick: bool) -> str:
    """Return targeting: one DηN network for every target, against QR-DQN."""
    deta, base = records.get("target_deta_n_s0"), records.get("target_qrdqn_s0")
    note = _none_completed([deta, base], quick)
    if note:
        return note
    cites = Citations(quick)
    _, optima = _optima()
    rows = ["| target | exact optimum | DηN exact | DηN empirical (95% CI) | DηN mean return | "
            "QR-DQN exact | QR-DQN empirical (95% CI) | QR-DQN mean return | runs |", "|---" * 9 + "|"]
    for t in TARGETS:
        cells = [f"{t:g}", _f(optima[t])]
        for rec, prefix in ((deta, f"report/target_{t:g}/deployed"), (base, f"report/target_{t:g}/baseline")):
            if _done(rec):
                f = rec.final
                cells += [_f(f[f"{prefix}/exact"]), _ci(f, prefix), _f(f[f"{prefix}/mean"])]
            else:
                cells += [_missing(rec), "", ""]
        cells.append(cites.cite([r for r in (deta, base) if r is not None]))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n\n" + cites.markdown()


def _cvar_records(records: dict[str, Record], quick: bool) -> list[tuple[int, Record | None, Record | None]]:
    seeds = SEEDS[:1] if quick else SEEDS
    return [(s, records.get(f"cvar_deta_n_s{s}"), records.get(f"cvar_qrdqn_s{s}")) for s in seeds]


def _none_completed(runs: list[Record | None], quick: bool) -> str | None:
    """A short note instead of a table of empty rows when none of ``runs`` has completed."""
    if any(_done(r) for r in runs):
        return None
    cites = Citations(quick)
    mark = cites.cite([r for r in runs if r is not None])
    return (f"No run of this table has completed yet {mark}: `.venv/bin/python scripts/reproduce.py "
            f"distributional_dp` runs (or continues) them.\n\n" + cites.markdown())


def cvar_network(records: dict[str, Record], quick: bool) -> str:
    """CVaR, primary reading: the RU search on the final network's reading (no episodes)."""
    note = _none_completed([r for _, d, b in _cvar_records(records, quick) for r in (d, b)], quick)
    if note:
        return note
    cites = Citations(quick)
    optima, _ = _optima()
    rows = ["| level | exact CVaR (mean) | seed | DηN stock | DηN CVaR exact | DηN CVaR empirical (95% CI) "
            "| DηN mean exact | DηN mean empirical (95% CI) | gap to optimum | QR-DQN CVaR exact | "
            "QR-DQN CVaR empirical (95% CI) | QR-DQN mean empirical (95% CI) | runs |", "|---" * 13 + "|"]
    for level in LEVELS:
        opt, opt_mean = optima[level]
        for s, deta, base in _cvar_records(records, quick):
            cells = [f"{level:g}", f"{_f(opt)} ({_f(opt_mean)})", str(s)]
            if _done(deta):
                f, p = deta.final, f"report/cvar_{level:g}/network"
                cells += [f"{f[p + '/stock']:g}", _f(f[p + "/exact"]), _ci(f, p), _f(f[p + "/exact_mean"]),
                          _ci(f, p, "mean", "mean_ci_low", "mean_ci_high"), gap_text(opt, f[p + "/exact"])]
            else:
                cells += [_missing(deta)] + [""] * 5
            if _done(base):
                f, p = base.final, f"report/cvar_{level:g}/baseline"
                cells += [_f(f[p + "/exact"]), _ci(f, p), _ci(f, p, "mean", "mean_ci_low", "mean_ci_high")]
            else:
                cells += [_missing(base), "", ""]
            cells.append(cites.cite([r for r in (deta, base) if r is not None]))
            rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n\n" + cites.markdown()


def cvar_deployed(records: dict[str, Record], quick: bool) -> str:
    """CVaR, secondary: the deployments chosen by greedy episodes on the training env, with the
    evaluation budget each spent."""
    note = _none_completed([d for _, d, _ in _cvar_records(records, quick)], quick)
    if note:
        return note
    cites = Citations(quick)
    optima, _ = _optima()
    rows = ["| level | exact CVaR | seed | deployment | evaluation episodes spent choosing | stock, "
            "network step | its CVaR exact | its CVaR empirical (95% CI) | its mean exact | gap to "
            "optimum (exact) | runs |", "|---" * 11 + "|"]
    for level in LEVELS:
        opt = optima[level][0]
        for s, deta, _ in _cvar_records(records, quick):
            for name in ("rollout", "snapshot"):
                p = f"report/cvar_{level:g}/{name}"
                if not _done(deta) or f"{p}/exact" not in deta.final:
                    rows.append(f"| {level:g} | {_f(opt)} | {s} | {name} | {_missing(deta)} | | | | | | "
                                f"{cites.cite([deta] if deta else [])} |")
                    continue
                f = deta.final
                rows.append(f"| {level:g} | {_f(opt)} | {s} | {name} | {f[p + '/selection_episodes']:,.0f} | "
                            f"{f[p + '/stock']:g}, {f[p + '/network_step']:.0f} | {_f(f[p + '/exact'])} | "
                            f"{_ci(f, p)} | {_f(f[p + '/exact_mean'])} | {gap_text(opt, f[p + '/exact'])} | "
                            f"{cites.cite([deta])} |")
    return "\n".join(rows) + "\n\n" + cites.markdown()


def cvar_summary(records: dict[str, Record], quick: bool) -> str:
    """Gaps below the optimum per seed: the network reading first, then the episode-chosen
    deployments with their budgets."""
    optima, _ = _optima()
    runs = _cvar_records(records, quick)
    if not any(_done(r) for _, r, _ in runs):
        return "No CVaR run of DηN has completed yet (see the tables above)."
    budget = {}
    for name in ("rollout", "snapshot"):
        spent = {r.final.get(f"report/cvar_0.25/{name}/selection_episodes") for _, r, _ in runs if _done(r)}
        budget[name] = ", ".join(f"{x:,.0f}" for x in sorted(v for v in spent if v is not None)) or "-"
    rows = ["| level | **network reading** (primary; 0 evaluation episodes) | within 5% (network) | "
            f"rollout deployment ({budget['rollout']} episodes per level) | snapshot deployment "
            f"({budget['snapshot']} episodes per level) | within 5% (snapshot) |", "|---" * 6 + "|"]

    def cells(level: float, name: str) -> tuple[str, str]:
        opt = optima[level][0]
        values = [r.final.get(f"report/cvar_{level:g}/{name}/exact") if _done(r) else None
                  for _, r, _ in runs]
        text = " / ".join(gap_text(opt, v) if v is not None else "not run" for v in values)
        hits = [s for (s, _, _), v in zip(runs, values, strict=True) if within(opt, v)]
        ran = [v for v in values if v is not None]
        if not ran:
            verdict = "-"
        elif len(hits) == len(values):
            verdict = "every seed"
        else:
            verdict = ("seeds " + ", ".join(map(str, hits))) if hits else "no seed"
        return text, verdict

    for level in LEVELS:
        net, net_ok = cells(level, "network")
        roll, _ = cells(level, "rollout")
        snap, snap_ok = cells(level, "snapshot")
        rows.append(f"| {level:g} | {net} | {net_ok} | {roll} | {snap} | {snap_ok} |")
    figure = "" if quick else ("\n\n![trade-off](distributional_dp_tradeoff.png)\n\n(Exact CVaR at each "
                               "level against the exact mean of every deployed policy, from the run "
                               "records.)")
    return "\n".join(rows) + figure


def cpu_times(records: dict[str, Record], quick: bool) -> str:
    """CPU seconds of every run, from its record (training and the final evaluation)."""
    if quick:
        return "CPU times are not part of the quick page (they differ from one run to the next)."
    cites = Citations(quick)
    rows = ["| run | CPU s (training and final evaluation) | env steps | runs |", "|---|---|---|---|"]
    for tag, rec in records.items():
        cpu = f"{rec.cpu_s:.0f}" if rec.completed and rec.timing else _missing(rec)
        steps = rec.result.get("global_step", "-")
        rows.append(f"| {tag} | {cpu} | {steps} | {cites.cite([rec])} |")
    return "\n".join(rows) + "\n\n" + cites.markdown()


def ablation(records: dict[str, Record], quick: bool) -> str:
    """What narrowed the gap: per variant, exact CVaR gaps of the network's RU choice and of
    the best integer stock, and target 5."""
    cites = Citations(quick)
    optima, _ = _optima()
    seeds = SEEDS[:1] if quick else SEEDS
    rows = ["| variant | CVaR_0.25 gap: network / best stock, per seed | CVaR_0.5 gap: network / best "
            "stock, per seed | target 5: E -\\|G - 5\\| (optimum 0) | CPU s per run | runs |",
            "|---" * 6 + "|"]
    for name, (label, _) in ABLATION.items():
        cvar_runs = [records.get(f"ablation_{name}_s{s}") for s in seeds]
        target = records.get(f"ablation_{name}_target")
        cells = [label]
        for level in ABLATION_LEVELS:
            opt = optima[level][0]
            parts = []
            for rec in cvar_runs:
                if not _done(rec):
                    parts.append(_missing(rec))
                    continue
                f = rec.final
                parts.append(f"{gap_text(opt, f[f'report/cvar_{level:g}/network/exact'])} / "
                             f"{gap_text(opt, f[f'report/cvar_{level:g}/best_stock/exact'])}")
            cells.append(", ".join(parts))
        cells.append(_f(target.final["report/target_5/deployed/exact"], 2) if _done(target)
                     else _missing(target))
        done = [r for r in cvar_runs if _done(r) and r.timing]
        cells.append("-" if quick or not done else f"{sum(r.cpu_s for r in done) / len(done):.0f}")
        cells.append(cites.cite([r for r in (*cvar_runs, target) if r is not None]))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n\n" + cites.markdown()


def quantile_dp(quick: bool) -> str:
    """The exact fixed point of the N-quantile DP and what the RU search on it deploys."""
    from rlsuite.agents.distributional_dp import CVaR, solve
    from rlsuite.agents.distributional_dp.analysis import quantile_dp_report
    from rlsuite.envs.tabular.stock_grid import stock_grid

    mdp = stock_grid(stochastic=True)
    rows = ["| N | level | exact optimum | RU stock on the table | its exact CVaR | the table's "
            "predicted CVaR there | best integer stock | its exact CVaR | predicted there |",
            "|---" * 9 + "|"]
    for n in QUANTILES[:1] if quick else QUANTILES:
        report = quantile_dp_report(mdp, n, range(-14, 5), LEVELS)
        for level, r in report.items():
            rows.append(f"| {n} | {level:g} | {_f(solve(mdp, CVaR(level)).value)} | {r['ru_stock']} | "
                        f"{_f(r['ru_cvar'])} | {_f(r['predicted_cvar'])} | {r['best_stock']} | "
                        f"{_f(r['best_cvar'])} | {_f(r['best_predicted_cvar'])} |")
    return "\n".join(rows)


def plot_tradeoff(records: dict[str, Record], path: Path) -> None:
    """CVaR at each level against the mean, exact scores of every deployed policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    optima, _ = _optima()
    fig, ax = plt.subplots(figsize=(5.8, 4.4))
    styles = {"network": ("s", "tab:blue", "full"), "rollout": ("s", "tab:green", "none"),
              "snapshot": ("D", "tab:purple", "none")}
    for level in LEVELS:
        opt, opt_mean = optima[level]
        ax.plot(opt_mean, opt, "ko")
        ax.annotate(f"{level:g}", (opt_mean, opt), fontsize=7, xytext=(4, 3), textcoords="offset points")
        for _, deta, base in _cvar_records(records, quick=False):
            if _done(deta):
                for name, (marker, color, fill) in styles.items():
                    p = f"report/cvar_{level:g}/{name}"
                    if f"{p}/exact" in deta.final:
                        ax.plot(deta.final[p + "/exact_mean"], deta.final[p + "/exact"], marker,
                                color=color, mfc=None if fill == "full" else "none", ms=5)
            if _done(base):
                p = f"report/cvar_{level:g}/baseline"
                ax.plot(base.final[p + "/exact_mean"], base.final[p + "/exact"], "x", color="tab:red")
    ax.plot([], [], "ko", label="exact CVaR-optimal policy of the level")
    ax.plot([], [], "s", color="tab:blue", label="DηN, RU on the network's reading")
    ax.plot([], [], "s", mfc="none", color="tab:green", label="DηN, RU re-scored by episodes")
    ax.plot([], [], "D", mfc="none", color="tab:purple", label="DηN, best (snapshot, stock) by episodes")
    ax.plot([], [], "x", color="tab:red", label="risk-neutral QR-DQN")
    ax.set_xlabel("mean return")
    ax.set_ylabel("CVaR at the level of the point")
    ax.set_title("Stochastic 4x4 stock grid: exact scores of each deployed policy", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render(records: dict[str, Record], quick: bool, out: Path) -> dict[str, str]:
    """Every generated section of the page (and, in full mode, the trade-off figure)."""
    if not quick and any(_done(r) for _, r, _ in _cvar_records(records, quick)):
        plot_tradeoff(records, out / "distributional_dp_tradeoff.png")
    return {
        "exact_solver": exact_solver(records, quick),
        "targeting": targeting(records, quick),
        "cvar_network": cvar_network(records, quick),
        "cvar_deployed": cvar_deployed(records, quick),
        "cvar_summary": cvar_summary(records, quick),
        "ablation": ablation(records, quick),
        "quantile_dp": quantile_dp(quick),
        "cpu_times": cpu_times(records, quick),
    }
