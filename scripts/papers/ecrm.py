"""Yu and Ying 2023, risk-averse policy gradient with ECRMs: the runs behind ``results/ecrm.md``.

Three tables, every run from a uniform policy through the runner:

1. the lambda x alpha sweep on stochastic CliffWalking (NPG, preset ``cliffwalking_ecrm``), with
   two model-based references per setting computed here (not runs): the NPG with exact Q
   (:func:`rlsuite.agents.ecrm.analysis.exact_q_npg`) and the exact optimum over previous-pair
   policies (:func:`rlsuite.agents.ecrm.optimal_conditioned_ecrm`);
2. REINFORCE / actor-critic / natural actor-critic / NPG at (lambda, alpha) = (1, 0.1) and (0, 1)
   (presets ``cliffwalking_ecrm_<variant>``; the NPG rows are the sweep's seed-0 runs), with the
   exact ECRM logged during training as the learning curve;
3. the neural variant on GustyLedge, softmax and Gaussian actors (presets ``gusty_ledge_ecrm``,
   ``gusty_ledge_ecrm_gaussian``).
"""

from __future__ import annotations

from pathlib import Path

from rlsuite.reproduce import Citations, Job, Record, fmt

TITLE = "Yu and Ying 2023, risk-averse policy gradient with ECRMs"
PAGE = "results/ecrm.md"

FULL_SEEDS = (0, 1)
SWEEP = [(0.0, 1.0)] + [(lam, a) for lam in (0.25, 0.5, 1.0) for a in (0.05, 0.1, 0.25)]
QUICK_SWEEP = [(0.0, 1.0), (0.5, 0.1), (1.0, 0.1)]
CURVE_SETTINGS = [(1.0, 0.1), (0.0, 1.0)]
VARIANTS = {"reinforce": "cliffwalking_ecrm_reinforce", "actor_critic": "cliffwalking_ecrm_actor_critic",
            "natural_ac": "cliffwalking_ecrm_natural_ac", "npg": "cliffwalking_ecrm"}
NEURAL = [(kind, lam, a) for kind in ("softmax", "gaussian")
          for lam, a in ((0.0, 1.0), (0.5, 0.1), (1.0, 0.1))]
NEURAL_PRESETS = {"softmax": "gusty_ledge_ecrm", "gaussian": "gusty_ledge_ecrm_gaussian"}
REF_ITERS = {False: 300, True: 10}
"""Iterations of the exact-Q NPG reference (full, quick)."""
QUICK_CLIFF = ("num_envs=32", "total_steps=150000", "eval_episodes=512")
QUICK_EXPLORE = ("agent.explore_starts=32",)
"""Quick plan: the exploring starts of the presets that have them (NPG, natural actor-critic)."""
QUICK_GUSTY = ("num_envs=64", "total_steps=20000", "eval_episodes=512")
"""The quick plan's budgets: the same code paths at a tiny fraction of the presets' steps."""


def _risk(lam: float, alpha: float) -> tuple[str, ...]:
    return (f"agent.risk_weight={lam}", f"agent.alpha={alpha}")


def _tag(kind: str, lam: float, alpha: float, seed: int) -> str:
    return f"{kind}_l{lam}_a{alpha}_s{seed}"


def plan(quick: bool) -> list[Job]:
    """Sweep, variant curves and neural runs (one seed and tiny budgets with ``quick``)."""
    seeds = (0,) if quick else FULL_SEEDS
    gusty = QUICK_GUSTY if quick else ()

    def cliff(variant: str) -> tuple[str, ...]:
        if not quick:
            return ()
        return QUICK_CLIFF + (QUICK_EXPLORE if variant in ("npg", "natural_ac") else ())

    jobs = [Job(_tag("npg", lam, a, s), VARIANTS["npg"], (f"seed={s}", *_risk(lam, a), *cliff("npg")))
            for lam, a in (QUICK_SWEEP if quick else SWEEP) for s in seeds]
    for lam, a in CURVE_SETTINGS:
        for variant, preset in VARIANTS.items():
            if variant != "npg":  # the NPG curves are the sweep's seed-0 runs
                jobs.append(Job(_tag(variant, lam, a, 0), preset,
                                ("seed=0", *_risk(lam, a), *cliff(variant))))
    jobs += [Job(_tag(kind, lam, a, s), NEURAL_PRESETS[kind], (f"seed={s}", *_risk(lam, a), *gusty))
             for kind, lam, a in NEURAL for s in seeds]
    return jobs


def _mean(records: list[Record], key: str) -> float:
    done = [r.final[key] for r in records if r.completed and key in r.final]
    return sum(done) / len(done) if done else float("nan")


def _cells(records: list[Record], *columns: tuple[str, int]) -> str:
    """Table cells: the mean over the completed runs of each ``eval/<key>`` final metric, to the
    given significant digits."""
    return " | ".join(fmt(_mean(records, f"eval/{key}"), digits) for key, digits in columns)


def _status(records: list[Record]) -> str:
    done = sum(r.completed for r in records)
    return "" if done == len(records) else f" ({done} of {len(records)} runs completed)"


def _references(settings: list[tuple[float, float]], quick: bool
                ) -> dict[tuple[float, float], tuple[float, float]]:
    """(NPG with exact Q, optimum over previous-pair policies) per (lambda, alpha), on the MDP
    of the ``cliffwalking_stochastic`` env config."""
    import torch

    from rlsuite.agents.ecrm import exact_ecrm, optimal_conditioned_ecrm
    from rlsuite.agents.ecrm.analysis import exact_q_npg

    mdp = _cliff_mdp()
    out = {}
    for lam, alpha in settings:
        with torch.no_grad():
            policy, first = exact_q_npg(mdp, alpha, lam, iters=REF_ITERS[quick])
            npg = float(exact_ecrm(mdp, policy, alpha, lam, first_policy=first))
            optimum = float(optimal_conditioned_ecrm(mdp, alpha, lam)[0])
        out[(lam, alpha)] = (npg, optimum)
    return out


def _cliff_mdp():
    from rlsuite.runner import build_env, compose

    cfg = compose([f"experiment={VARIANTS['npg']}"])
    return build_env(cfg.env, "cpu").mdp


def _sweep(records: dict[str, Record], quick: bool, cites: Citations) -> str:
    seeds = (0,) if quick else FULL_SEEDS
    settings = QUICK_SWEEP if quick else SWEEP
    refs = _references(settings, quick)
    steps = next(iter(records.values())).config.get("total_steps", "?")
    lines = [f"{steps} env steps per run (exploring starts included); means over seeds "
             f"{list(seeds)}; evaluation episodes of the stochastic policy from the real start. "
             f"References (model-based, not runs): the NPG with exact Q from a uniform policy "
             f"({REF_ITERS[quick]} iterations, step 0.05) and the exact optimum over policies of "
             "the previous pair (an upper bound for every policy of the state alone).", "",
             "| lambda | alpha | mean return | CVaR_0.1 of return | fall rate | exact ECRM(lambda, alpha) "
             "| NPG, exact Q | optimum, previous-pair policies | mean length | runs |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for lam, alpha in settings:
        rs = [records[_tag("npg", lam, alpha, s)] for s in seeds]
        npg, optimum = refs[(lam, alpha)]
        cells = [_cells(rs, ("mean_return", 4), ("return_cvar_0.1", 4), ("failure_rate", 3),
                        ("ecrm_exact", 4)), fmt(npg, 4), fmt(optimum, 4), _cells(rs, ("mean_length", 4))]
        lines.append(f"| {lam} | {alpha} | {' | '.join(cells)} | {cites.cite(rs)}{_status(rs)} |")
    return "\n".join(lines)


def _curves(records: dict[str, Record], cites: Citations) -> str:
    lines = ["Seed 0; the final exact ECRM of the learned policy and its evaluation episodes.", "",
             "| variant | lambda | alpha | final exact ECRM | mean return | CVaR_0.1 | fall rate | runs |",
             "|---|---|---|---|---|---|---|---|"]
    for lam, alpha in CURVE_SETTINGS:
        for variant in VARIANTS:
            rs = [records[_tag(variant, lam, alpha, 0)]]
            cells = _cells(rs, ("ecrm_exact", 4), ("mean_return", 4), ("return_cvar_0.1", 4),
                           ("failure_rate", 3))
            lines.append(f"| {variant} | {lam} | {alpha} | {cells} | {cites.cite(rs)}{_status(rs)} |")
    return "\n".join(lines)


def _neural(records: dict[str, Record], quick: bool, cites: Citations) -> str:
    seeds = (0,) if quick else FULL_SEEDS
    first = records[_tag(*NEURAL[0], 0)]
    lines = [f"{first.config.get('total_steps', '?')} env steps per run, means over seeds {list(seeds)}.",
             "",
             "| actor | lambda | alpha | mean return | CVaR_0.1 of return | fall rate | mean height | runs |",
             "|---|---|---|---|---|---|---|---|"]
    for kind, lam, alpha in NEURAL:
        rs = [records[_tag(kind, lam, alpha, s)] for s in seeds]
        cells = _cells(rs, ("mean_return", 4), ("return_cvar_0.1", 4), ("failure_rate", 3),
                       ("mean_height", 3))
        lines.append(f"| {kind} | {lam} | {alpha} | {cells} | {cites.cite(rs)}{_status(rs)} |")
    return "\n".join(lines)


def render(records: dict[str, Record], quick: bool, out: Path) -> dict[str, str]:
    """The three tables (and, for the full page, the three figures)."""
    cites = Citations(quick)
    sections = {"ecrm_sweep": _sweep(records, quick, cites), "ecrm_curves": _curves(records, cites),
                "ecrm_neural": _neural(records, quick, cites)}
    sections["ecrm_runs"] = cites.markdown()
    if not quick:
        _figures(records, out)
    return sections


# -- figures (full page only) ----------------------------------------------------------------------

HEATMAPS = [(0.0, 1.0), (0.5, 0.1), (1.0, 0.1), (1.0, 0.05)]


def keeps_checkpoint(tag: str) -> bool:
    """The heatmaps read these runs' final checkpoints (32 kB each), so their records keep them."""
    return tag in {_tag("npg", lam, alpha, 0) for lam, alpha in HEATMAPS}


def _learned_visits(record: Record):
    """Exact expected visits per episode of each state under the run's learned tabular policy
    (read from its final checkpoint)."""
    import torch
    from omegaconf import OmegaConf

    from rlsuite import agents, checkpoint
    from rlsuite.agents.ecrm.analysis import state_visits
    from rlsuite.runner import build_env, build_params

    cfg = OmegaConf.create(record.config)
    env = build_env(cfg.env, torch.device("cpu"))
    spec = agents.get(cfg.agent.name)
    agent = spec.build(spec.config_cls(**OmegaConf.to_container(cfg.agent, resolve=True)), env,
                       build_params(env, cfg.env, int(cfg.num_envs)), int(cfg.seed))
    agent.load_state_dict(checkpoint.load(record.run_dir)["agent"])
    with torch.no_grad():
        later, first = agent.model.table_policies()
    return state_visits(env.mdp, later.cpu(), first.cpu())


def _figures(records: dict[str, Record], out: Path) -> None:
    """ecrm_cliff_heatmaps.png (seed-0 paths of the sweep), ecrm_curves.png (exact ECRM during
    training per variant), ecrm_gusty_ledge.png (GustyLedge training curves, seed 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [(lam, a) for lam, a in HEATMAPS if records[_tag("npg", lam, a, 0)].completed]
    if shown:
        fig, axes = plt.subplots(len(shown), 1, figsize=(7, 1.9 * len(shown)), squeeze=False)
        for ax, (lam, alpha) in zip(axes[:, 0], shown, strict=True):
            grid = _learned_visits(records[_tag("npg", lam, alpha, 0)]).reshape(4, 12)
            ax.imshow(grid.clamp(max=1.0).numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.add_patch(matplotlib.patches.Rectangle((0.5, 2.5), 10, 1, fill=False, color="red", lw=2))
            ax.set_title(f"expected visits per episode, lambda={lam} alpha={alpha} (red: cliff)",
                         fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        fig.savefig(out / "ecrm_cliff_heatmaps.png", dpi=110)
        plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, (lam, alpha) in zip(axes, CURVE_SETTINGS, strict=True):
        for variant in VARIANTS:
            pts = records[_tag(variant, lam, alpha, 0)].curve("ecrm/exact_ecrm")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=variant)
        ax.set_title(f"exact ECRM of the policy, lambda={lam}, alpha={alpha}")
        ax.set_xlabel("env steps")
        ax.set_ylim(bottom=-40)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "ecrm_curves.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for kind, lam, alpha in NEURAL:
        record = records[_tag(kind, lam, alpha, 0)]
        style = "-" if kind == "softmax" else "--"
        for ax, key in zip(axes, ("rollout/ep_rew_mean", "ecrm/failure_rate"), strict=True):
            pts = record.curve(key)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, label=f"{kind}, {lam}, {alpha}")
    axes[0].set_title("GustyLedge: mean episode return (training batch)")
    axes[1].set_title("GustyLedge: fall rate (training batch)")
    for ax in axes:
        ax.set_xlabel("env steps")
        ax.legend(title="actor, lambda, alpha", fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "ecrm_gusty_ledge.png", dpi=110)
    plt.close(fig)
