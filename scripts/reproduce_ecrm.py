"""Risk-averse policy gradient with ECRMs (Yu and Ying, arXiv 2301.10932): the results of
results/ecrm.md.

1. lambda x alpha sweep on stochastic CliffWalking (slip 0.02, cliff cost 10, back to the start,
   cap 100), learned from a uniform policy by the closed-form tabular NPG (entropy-regularized,
   Monte-Carlo Q tables, exploring starts): mean return, CVaR_0.1 of the return, fall rate and
   the exact ECRM of the learned policy, plus path heatmaps (state visits) from 8192 evaluation
   episodes; the exact references: model-based NPG with exact Q from a uniform policy, and the
   exact optimum over policies of the previous pair (``optimal_conditioned_ecrm``).
2. Learning curves from a uniform policy: REINFORCE vs actor-critic (sampled step) vs natural
   actor-critic vs NPG (exact ECRM of the current policy against env steps), lam = 1, alpha = 0.1
   and lam = 0.
3. The neural variant on GustyLedge (continuous state, rare catastrophic gusts): softmax actors
   on its 3 discrete actions and Gaussian actors on its continuous version.

    .venv/bin/python scripts/reproduce_ecrm.py [--seeds 0 1] [--quick]

Writes results/ecrm.json, results/ecrm_*.png and the tables of results/ecrm.md (between the
markers; the prose around them is kept).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

RESULTS = Path(__file__).resolve().parent.parent / "results"
EVAL_EPISODES = 8192
CVAR_LEVEL = 0.1
FROM_SCRATCH = {"explore_starts": 256, "eta_decay_by": "visits", "ent_coef": 0.05,
                "npg": {"max_kl": 0.05}}
"""The from-scratch setting of the tabular NPG and natural actor-critic (npg_step_size 1.0 and the
rest: ECRMConfig defaults)."""
VARIANTS = {
    "reinforce": {"variant": "reinforce", "eta_decay_by": "visits"},
    "actor_critic": {"variant": "actor_critic", "eta_decay_by": "visits"},
    "natural_ac": {"variant": "actor_critic", "ac_natural": True, **FROM_SCRATCH},
    "npg": {"variant": "npg", **FROM_SCRATCH},
}


def _cliff_agent(lam: float, alpha: float, seed: int, variant: str = "npg"):
    import rlsuite.envs as envs
    from rlsuite.agents.ecrm.agent import ECRM
    from rlsuite.agents.ecrm.config import ECRMConfig

    env = envs.make("cliffwalking_stochastic")
    cfg = ECRMConfig(risk_weight=lam, alpha=alpha, exact_every=5, **VARIANTS[variant])
    return ECRM(cfg, env, env.default_params(256), seed=seed), env


def _evaluate(agent, env, seed: int) -> tuple[dict[str, float], torch.Tensor]:
    from rlsuite.agents.ecrm.episodes import collect_first_episodes
    from rlsuite.risk import cvar

    params = env.default_params(EVAL_EPISODES)
    ep = collect_first_episodes(env, params, agent.stage_policy(), env.make_generator(10_000 + seed),
                                agent.config.chunk_steps, agent.config.max_episode_steps)
    returns = ep.returns().double()
    out = {
        "mean_return": float(returns.mean()),
        "return_cvar_0.1": float(cvar(returns, None, CVAR_LEVEL)),
        "failure_rate": float((ep.valid & (ep.reward <= agent.failure_reward)).any(0).float().mean()),
        "mean_length": float(ep.valid.float().sum(0).mean()),
    }
    visits = None
    if ep.obs.dim() == 3:  # GustyLedge: the mean height (y) along the walked path
        out["mean_height"] = float(ep.obs[..., 1][ep.valid].mean())
    if ep.obs.dim() == 2:  # tabular: visit frequencies per state
        seen = ep.obs[ep.valid]
        visits = torch.zeros(env.num_states).index_add_(0, seen, torch.ones(seen.shape[0]))
        visits /= EVAL_EPISODES
    return out, visits


REF_ITERS = 300
"""Iterations of the exact-Q NPG reference (--quick: 10)."""


def sweep(seeds: list[int], steps: int) -> dict:
    """lambda x alpha on CliffWalking, NPG from a uniform policy."""
    grid = [(0.0, 1.0)] + [(lam, a) for lam in (0.25, 0.5, 1.0) for a in (0.05, 0.1, 0.25)]
    rows, heat = [], {}
    for lam, alpha in tqdm(grid, desc="lambda x alpha sweep"):
        per_seed = []
        for seed in seeds:
            agent, env = _cliff_agent(lam, alpha, seed)
            tic = time.perf_counter()
            agent.learn(steps)
            metrics, visits = _evaluate(agent, env, seed)
            metrics["exact_ecrm"] = agent.exact_value()
            metrics["train_s"] = time.perf_counter() - tic
            per_seed.append(metrics)
            if seed == seeds[0]:
                heat[f"{lam},{alpha}"] = visits.tolist()
        mean = {k: sum(m[k] for m in per_seed) / len(per_seed) for k in per_seed[0]}
        ref = exact_references(lam, alpha) if lam > 0 else exact_references(0.0, 1.0)
        rows.append({"lam": lam, "alpha": alpha, "seeds": per_seed, "mean": mean, "exact": ref})
    return {"steps": steps, "rows": rows, "heatmaps": heat}


_REF_CACHE: dict[tuple[float, float], dict[str, float]] = {}


def exact_references(lam: float, alpha: float) -> dict[str, float]:
    """Model-based references on the CliffWalking MDP: ``npg_exact``, the ECRM reached by the
    NPG step with exact Q (``exact_gradients`` divided by the later stages' visits) from a
    uniform policy (300 iterations, step 0.05, no entropy); ``conditioned_optimum``, the exact
    optimum over policies of the previous pair (an upper bound for every stationary policy)."""
    from rlsuite.agents.ecrm import exact_ecrm, exact_gradients, optimal_conditioned_ecrm, optimal_thresholds
    from rlsuite.envs.tabular.cliff import stochastic_cliff_walking

    if (lam, alpha) in _REF_CACHE:
        return _REF_CACHE[(lam, alpha)]
    mdp = stochastic_cliff_walking()
    th = torch.zeros(mdp.num_states, mdp.num_actions, dtype=torch.float64)
    th1 = torch.zeros_like(th)
    for _ in range(REF_ITERS):
        pi, pi1 = th.softmax(-1), th1.softmax(-1)
        g = exact_gradients(mdp, pi, optimal_thresholds(mdp, pi, alpha), alpha, lam, first_policy=pi1)
        d, visits = mdp.initial.unsqueeze(-1) * pi1, torch.zeros(mdp.num_states, dtype=torch.float64)
        for _t in range(2, mdp.horizon + 1):
            nxt = torch.einsum("sa,sap->p", d, mdp.P_continue)
            visits += nxt
            d = nxt.unsqueeze(-1) * pi
        for table, grad, dens in ((th, g.policy, visits), (th1, g.first_policy, mdp.initial)):
            q = grad / dens.clamp_min(1e-300).unsqueeze(-1)
            table += 0.05 * torch.where(dens.unsqueeze(-1) > 1e-12, q - q.mean(-1, keepdim=True), 0.0)
    value = float(exact_ecrm(mdp, th.softmax(-1), alpha, lam, first_policy=th1.softmax(-1)))
    optimum = float(optimal_conditioned_ecrm(mdp, alpha, lam)[0])
    _REF_CACHE[(lam, alpha)] = {"npg_exact": value, "conditioned_optimum": optimum}
    return _REF_CACHE[(lam, alpha)]


def curves(seed: int, steps: int) -> dict:
    """Exact ECRM against env steps from a uniform start, per variant."""
    from rlsuite.training import TrainingHooks

    out = {}
    for lam, alpha in ((1.0, 0.1), (0.0, 1.0)):
        for variant in tqdm(VARIANTS, desc=f"curves lam={lam}"):
            agent, env = _cliff_agent(lam, alpha, seed, variant=variant)
            points: list[tuple[int, float]] = []

            class Hook(TrainingHooks):
                def on_iteration(self, a, step, metrics, points=points):
                    if "ecrm/exact_ecrm" in metrics:
                        points.append((step, metrics["ecrm/exact_ecrm"]))

            tic = time.perf_counter()
            agent.learn(steps, Hook())
            metrics, _ = _evaluate(agent, env, seed)
            out[f"{variant},{lam},{alpha}"] = {"points": points, "final": metrics,
                                                "exact_ecrm": agent.exact_value(),
                                                "train_s": time.perf_counter() - tic}
    return out


def neural(seeds: list[int], steps: int) -> dict:
    """The neural REINFORCE variant on GustyLedge: softmax actors (3 actions) and Gaussian actors
    (the continuous version, dy = climb * action)."""
    import rlsuite.envs as envs
    from rlsuite.agents.ecrm.agent import ECRM
    from rlsuite.agents.ecrm.config import ECRMConfig
    from rlsuite.training import TrainingHooks

    out = {}
    settings = [(kind, lam, alpha) for kind in ("softmax", "gaussian")
                for lam, alpha in ((0.0, 1.0), (0.5, 0.1), (1.0, 0.1))]
    for kind, lam, alpha in tqdm(settings, desc="neural on gusty_ledge"):
        per_seed = []
        for seed in seeds:
            env = envs.make("gusty_ledge", continuous=kind == "gaussian")
            cfg = ECRMConfig(parameterization="neural", risk_weight=lam, alpha=alpha, policy_lr=3e-3,
                             eta_lr=1e-2, baseline_lr=1e-2)
            agent = ECRM(cfg, env, env.default_params(256), seed=seed)
            points: list[tuple[int, float, float]] = []

            class Hook(TrainingHooks):
                def on_iteration(self, a, step, metrics, points=points):
                    points.append((step, metrics["rollout/ep_rew_mean"], metrics["ecrm/failure_rate"]))

            tic = time.perf_counter()
            agent.learn(steps, Hook())
            metrics, _ = _evaluate(agent, env, seed)
            metrics["train_s"] = time.perf_counter() - tic
            per_seed.append({"metrics": metrics, "curve": points})
        out[f"{kind},{lam},{alpha}"] = per_seed
    return out


def _plots(data: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heat = data["sweep"]["heatmaps"]
    keys = ["0.0,1.0", "0.5,0.1", "1.0,0.1", "1.0,0.05"]
    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 1.9 * len(keys)))
    for ax, key in zip(axes, keys, strict=True):
        grid = torch.tensor(heat[key]).reshape(4, 12)
        ax.imshow(grid.clamp(max=1.0), cmap="viridis", vmin=0, vmax=1)
        ax.add_patch(matplotlib.patches.Rectangle((0.5, 2.5), 10, 1, fill=False, color="red", lw=2))
        lam, alpha = key.split(",")
        ax.set_title(f"visits per episode, lambda={lam} alpha={alpha} (red: cliff)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(RESULTS / "ecrm_cliff_heatmaps.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, (lam, alpha) in zip(axes, ((1.0, 0.1), (0.0, 1.0)), strict=True):
        for variant in VARIANTS:
            pts = data["curves"][f"{variant},{lam},{alpha}"]["points"]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=variant)
        ref = exact_references(lam, alpha)["npg_exact"]
        ax.axhline(ref, color="k", ls="--", lw=0.8, label=f"NPG with exact Q ({REF_ITERS} it.)")
        ax.set_title(f"exact ECRM of the policy, lambda={lam}, alpha={alpha}")
        ax.set_xlabel("env steps")
        ax.set_ylim(bottom=-40)
        ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "ecrm_curves.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for key, runs in data["neural"].items():
        pts = runs[0]["curve"]
        style = "-" if key.startswith("softmax") else "--"
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], style, label=key)
        axes[1].plot([p[0] for p in pts], [p[2] for p in pts], style, label=key)
    axes[0].set_title("GustyLedge: mean episode return (training batch)")
    axes[1].set_title("GustyLedge: fall rate (training batch)")
    for ax in axes:
        ax.set_xlabel("env steps")
        ax.legend(title="actor, lambda, alpha", fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "ecrm_gusty_ledge.png", dpi=110)
    plt.close(fig)


def _tables(data: dict) -> str:
    lines = ["### lambda x alpha sweep (stochastic CliffWalking, NPG from a uniform policy)", "",
             f"{data['sweep']['steps']} env steps per run (exploring starts included); means over seeds "
             f"{data['seeds']}; {EVAL_EPISODES} evaluation episodes of the stochastic policy. Exact "
             "references: NPG with exact Q from a uniform policy, and the exact optimum over policies "
             "of the previous pair (an upper bound for every policy of the state alone).", "",
             "| lambda | alpha | mean return | CVaR_0.1 of return | fall rate | exact ECRM(lambda, alpha) "
             "| NPG, exact Q | optimum, previous-pair policies | mean length | train s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in data["sweep"]["rows"]:
        m, ref = row["mean"], row["exact"]
        lines.append(f"| {row['lam']} | {row['alpha']} | {m['mean_return']:.2f} | "
                     f"{m['return_cvar_0.1']:.2f} | {m['failure_rate']:.4f} | {m['exact_ecrm']:.2f} | "
                     f"{ref['npg_exact']:.2f} | {ref['conditioned_optimum']:.2f} | "
                     f"{m['mean_length']:.2f} | {m['train_s']:.0f} |")
    lines += ["", f"### Learning curves from a uniform policy (seed {data['seeds'][0]}, "
              f"{data['curve_steps']} env steps)", "",
              "| variant | lambda | alpha | final exact ECRM | mean return | CVaR_0.1 | fall rate "
              "| train s |",
              "|---|---|---|---|---|---|---|---|"]
    for key, run in data["curves"].items():
        variant, lam, alpha = key.split(",")
        f = run["final"]
        lines.append(f"| {variant} | {lam} | {alpha} | {run['exact_ecrm']:.2f} | "
                     f"{f['mean_return']:.2f} | {f['return_cvar_0.1']:.2f} | {f['failure_rate']:.4f} | "
                     f"{run['train_s']:.0f} |")
    lines += ["", f"### Neural REINFORCE on GustyLedge ({data['neural_steps']} env steps, means over "
              f"seeds {data['seeds']})", "",
              "| actor | lambda | alpha | mean return | CVaR_0.1 of return | fall rate | mean height "
              "| train s |",
              "|---|---|---|---|---|---|---|---|"]
    for key, runs in data["neural"].items():
        kind, lam, alpha = key.split(",")
        ms = [r["metrics"] for r in runs]
        avg = {k: sum(m[k] for m in ms) / len(ms) for k in ms[0]}
        lines.append(f"| {kind} | {lam} | {alpha} | {avg['mean_return']:.2f} | "
                     f"{avg['return_cvar_0.1']:.2f} | "
                     f"{avg['failure_rate']:.4f} | {avg['mean_height']:.3f} | {avg['train_s']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--quick", action="store_true", help="tiny budgets (smoke test)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    scale = 0.05 if args.quick else 1.0
    global REF_ITERS
    REF_ITERS = 10 if args.quick else REF_ITERS
    data = {"seeds": args.seeds, "command": "scripts/reproduce_ecrm.py " + " ".join(
        ["--seeds", *map(str, args.seeds)] + (["--quick"] if args.quick else []))}
    tic = time.perf_counter()
    data["sweep"] = sweep(args.seeds, int(3_000_000 * scale))
    data["curve_steps"] = int(3_000_000 * scale)
    data["curves"] = curves(args.seeds[0], data["curve_steps"])
    data["neural_steps"] = int(400_000 * scale)
    data["neural"] = neural(args.seeds, data["neural_steps"])
    data["total_s"] = time.perf_counter() - tic
    out = RESULTS / ("ecrm_quick.json" if args.quick else "ecrm.json")
    out.write_text(json.dumps(data, indent=1))
    if args.quick:
        print(_tables(data))
        return
    _plots(data)
    md = RESULTS / "ecrm.md"
    begin, end = "<!-- tables: begin -->", "<!-- tables: end -->"
    text = md.read_text() if md.exists() else f"# ECRM\n\n{begin}\n{end}\n"
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    md.write_text(f"{head}{begin}\n{_tables(data)}\n{end}{tail}")
    print(_tables(data))


if __name__ == "__main__":
    main()
