"""Exact and reference analyses of DηN on finite-horizon tabular MDPs (the stock gridworld of
``results/distributional_dp.md``).

* :func:`policy_scores`: a learned greedy policy deployed at a stock, scored exactly (its return
  distribution by forward propagation, :func:`~.deta_n.tabular_policy_returns`) and empirically
  (greedy episodes, with 95% confidence intervals).
* :func:`deta_n_report`: what ``DetaN.final_metrics`` adds when ``report_levels`` /
  ``report_targets`` are set: every requested CVaR level deployed three ways (the RU search on
  the network's reading, re-scored by episodes for the final network, and over the kept
  snapshots), each with its evaluation budget, plus the best integer candidate stock.
* :func:`quantile_dp` and :func:`quantile_dp_report`: the exact fixed point of what an
  ``N``-quantile DηN regresses, on a table over integer stocks, and the RU search on its own
  predictions (what a perfectly trained quantile network would deploy).

Metric names are ``report/<objective>/<deployment>/<field>``, e.g.
``report/cvar_0.25/network/exact`` (flat floats, as the runner records final metrics).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from rlsuite import risk
from rlsuite.agents.distributional_dp import objectives as obj_lib
from rlsuite.envs.tabular import TabularEnv, TabularMDP

DEPLOYMENTS = ("network", "rollout", "snapshot")
"""The RU deployments :func:`deta_n_report` scores: the network's reading alone
(``deploy_episodes = 0``), the final network's shortlist re-scored by episodes
(``deploy_snapshots = 1``), and the (snapshot, stock) pairs of the kept snapshots."""


def tabular_mdp(env: Any) -> TabularMDP:
    """The finite-horizon MDP of a :class:`TabularEnv` (horizon = its time limit), on the CPU."""
    if not isinstance(env, TabularEnv) or not env.max_episode_steps:
        raise ValueError("exact scoring needs a TabularEnv with a time limit (e.g. env=stockgrid), "
                         f"got {type(env).__name__} with max_episode_steps = "
                         f"{getattr(env, 'max_episode_steps', None)}")
    return dataclasses.replace(env.mdp.to("cpu"), horizon=env.max_episode_steps)


def mean_ci(returns: torch.Tensor) -> tuple[float, float]:
    """95% normal confidence interval of the mean of ``returns``."""
    g = returns.double()
    half = 1.96 * float(g.std()) / math.sqrt(g.shape[0])
    return float(g.mean()) - half, float(g.mean()) + half


def policy_scores(agent: Any, mdp: TabularMDP, stock: float, objective: obj_lib.Objective,
                  episodes: int, generator: torch.Generator) -> dict[str, float]:
    """``agent``'s greedy policy deployed at ``stock``: the objective and the mean, exact
    (``exact``, ``exact_mean``) and over ``episodes`` greedy episodes (``empirical`` with its
    95% CI ``ci_low`` / ``ci_high``, ``mean`` with ``mean_ci_low`` / ``mean_ci_high``)."""
    from rlsuite.agents.distributional_dp.deta_n import (
        greedy_returns,
        tabular_policy_returns,
    )

    r, p = tabular_policy_returns(agent, mdp, stock)
    g = greedy_returns(agent.env, agent.act, episodes, stock, agent.config.gamma, generator)
    return {"stock": float(stock), "exact": objective.evaluate(r, p), "exact_mean": float((r * p).sum()),
            **returns_scores(objective, g, generator)}


def returns_scores(objective: obj_lib.Objective, returns: torch.Tensor,
                   generator: torch.Generator) -> dict[str, float]:
    """Empirical objective (with its 95% CI: normal for expected utilities, bootstrap for CVaR)
    and mean (with its normal 95% CI) of sampled ``returns`` (deployed at stock ``c0 = 0``)."""
    from rlsuite.agents.distributional_dp.deta_n import objective_ci

    lo, hi = objective_ci(objective, returns, 0.0, generator)
    m_lo, m_hi = mean_ci(returns)
    return {"empirical": objective.evaluate(returns), "ci_low": lo, "ci_high": hi,
            "mean": float(returns.double().mean()), "mean_ci_low": m_lo, "mean_ci_high": m_hi}


def _prefixed(prefix: str, scores: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}/{k}": float(v) for k, v in scores.items()}


def selection_episodes(agent: Any, deployment: str) -> int:
    """Greedy episodes that ``deployment`` spends choosing the (network, stock) pair for one
    objective: shortlisted candidates x ``deploy_episodes`` (x kept snapshots)."""
    from rlsuite.agents.distributional_dp.deta_n import stock_candidates

    cfg = agent.config
    if deployment == "network":
        return 0
    candidates = stock_candidates(cfg).shape[0]
    shortlist = cfg.deploy_shortlist if 0 < cfg.deploy_shortlist < candidates else candidates
    networks = 1 if deployment == "rollout" else max(1, min(len(agent.snapshots), cfg.deploy_snapshots))
    return networks * shortlist * cfg.deploy_episodes


def deta_n_report(agent: Any, generator: torch.Generator) -> dict[str, float]:
    """The report of a trained DηN (see the module docstring) over ``config.rollout_episodes``
    greedy episodes per scored policy. ``objective = target``: each of ``report_targets``
    deployed at stock ``c0 - target``. ``objective = cvar``: each of ``report_levels`` deployed by
    :data:`DEPLOYMENTS` (the episode-based ones only with ``deploy_episodes > 0``, the snapshot
    one only with kept snapshots), and the best of every candidate stock for the final network
    (``best_stock``: what a perfect choice of the stock would get). Restores the deployment
    settings it changes."""
    from rlsuite.agents.distributional_dp.deta_n import stock_candidates, tabular_policy_returns

    cfg = agent.config
    mdp = tabular_mdp(agent.base_env)
    episodes = cfg.rollout_episodes
    out: dict[str, float] = {}
    if cfg.objective == "target":
        for target in cfg.report_targets:
            objective = obj_lib.ReturnTargeting(float(target))
            scores = policy_scores(agent, mdp, cfg.initial_stock - float(target), objective,
                                   episodes, generator)
            out.update(_prefixed(f"report/target_{float(target):g}/deployed", scores))
        return out
    if cfg.objective != "cvar" or not cfg.report_levels:
        return out
    saved = (cfg.deploy_episodes, cfg.deploy_snapshots)
    deployments = [("network", 0, 0)]
    if cfg.deploy_episodes > 0:
        deployments.append(("rollout", cfg.deploy_episodes, 1))
        if cfg.deploy_snapshots > 0 and agent.snapshots:
            deployments.append(("snapshot", cfg.deploy_episodes, cfg.deploy_snapshots))
    agent.deployed_net = agent.deployed_step = None  # the final network
    laws = {float(x): tabular_policy_returns(agent, mdp, float(x)) for x in stock_candidates(cfg)}
    try:
        for level in cfg.report_levels:
            objective = obj_lib.CVaR(float(level))
            key = f"report/cvar_{float(level):g}"
            per_stock = {x: objective.evaluate(r, p) for x, (r, p) in laws.items()}
            best = max(per_stock, key=per_stock.__getitem__)
            r, p = laws[best]
            out.update(_prefixed(f"{key}/best_stock", {"stock": best, "exact": per_stock[best],
                                                       "exact_mean": float((r * p).sum())}))
            for name, deploy_episodes, snapshots in deployments:
                cfg.deploy_episodes, cfg.deploy_snapshots = deploy_episodes, snapshots
                stock = agent.choose_stock(generator, objective=objective)
                scores = policy_scores(agent, mdp, stock, objective, episodes, generator)
                scores["network_step"] = float(agent.global_step if agent.deployed_step is None
                                               else agent.deployed_step)
                scores["selection_episodes"] = float(selection_episodes(agent, name))
                out.update(_prefixed(f"{key}/{name}", scores))
    finally:
        cfg.deploy_episodes, cfg.deploy_snapshots = saved
        agent.deployed_net = agent.deployed_step = agent.deploy_stock = None
    return out


def baseline_report(agent: Any, mdp: TabularMDP, levels: list[float], targets: list[float],
                    episodes: int, generator: torch.Generator) -> dict[str, float]:
    """Scores of a risk-neutral baseline's greedy policy (stock 0, on ``mdp``, its own
    time-unrolled MDP) for every CVaR level and return target, exact and over one shared set of
    ``episodes`` greedy episodes (the policy does not depend on the objective)."""
    from rlsuite.agents.distributional_dp.deta_n import greedy_returns, tabular_policy_returns

    r, p = tabular_policy_returns(agent, mdp, 0.0)
    g = greedy_returns(agent.env, agent.act, episodes, 0.0, agent.config.gamma, generator)
    out: dict[str, float] = {}
    objectives = [(f"cvar_{float(lv):g}", obj_lib.CVaR(float(lv))) for lv in levels]
    objectives += [(f"target_{float(t):g}", obj_lib.ReturnTargeting(float(t))) for t in targets]
    for name, objective in objectives:
        scores = {"exact": objective.evaluate(r, p), "exact_mean": float((r * p).sum()),
                  **returns_scores(objective, g, generator)}
        out.update(_prefixed(f"report/{name}/baseline", scores))
    return out


# -- the quantile-projected stock DP ----------------------------------------------------------------


def greedy_by_quantiles(theta: torch.Tensor, stock: torch.Tensor) -> torch.Tensor:
    """``argmax_a mean_i min(c + theta_i, 0)`` over ``theta [..., A, N]`` at stocks ``c [...]``,
    ties (1e-9) broken by the higher mean (DηN's greedy rule for ``f = min(x, 0)``)."""
    score = (stock[..., None, None] + theta).clamp(max=0).mean(-1)
    tied = score >= score.max(-1, keepdim=True).values - 1e-9
    return torch.where(tied, theta.mean(-1), -torch.inf).argmax(-1)


def quantile_dp(mdp: TabularMDP, n: int, low: int = -40, high: int = 60) -> tuple[torch.Tensor, int]:
    """The exact fixed point of the quantile-projected stock DP that an ``n``-quantile DηN
    regresses (``f = min(x, 0)``, integer rewards, ``gamma = 1``): ``theta [H + 1, S, C, A, n]``
    on the integer stocks ``low .. high`` (clipped there), and the index offset of stock 0.

    At every ``(t, s, c, a)`` the target mixture ``r + theta(s', c + r, a')``, ``a'`` greedy by
    :func:`greedy_by_quantiles`, is projected onto ``n`` quantiles exactly (the W1 projection,
    the minimizer of the quantile loss: the mixture's quantiles at ``(2i + 1) / 2n``)."""
    h, s_count, a_count, k_count = mdp.horizon, mdp.num_states, mdp.num_actions, mdp.num_outcomes
    if h is None:
        raise ValueError("quantile_dp needs a finite-horizon MDP (mdp.horizon)")
    stocks = torch.arange(low, high + 1, dtype=torch.float64)
    nc = stocks.numel()
    tau = (2 * torch.arange(n, dtype=torch.float64) + 1) / (2 * n)
    theta = torch.zeros(h + 1, s_count, nc, a_count, n, dtype=torch.float64)
    for t in range(h - 1, -1, -1):
        atoms = torch.zeros(s_count, nc, a_count, k_count, n, dtype=torch.float64)
        weights = torch.zeros_like(atoms)
        for k in range(k_count):
            nxt, r = mdp.next_state[:, :, k], mdp.reward[:, :, k]
            ci = (torch.arange(nc).view(1, nc, 1) + r.view(s_count, 1, a_count).long()).clamp(0, nc - 1)
            following = theta[t + 1][nxt.view(s_count, 1, a_count).expand(-1, nc, -1), ci]
            a_next = greedy_by_quantiles(following, stocks[ci])
            z = following.gather(-2, a_next[..., None, None].expand(*a_next.shape, 1, n)).squeeze(-2)
            end = (mdp.terminal[:, :, k] | (t == h - 1)).view(s_count, 1, a_count, 1)
            atoms[:, :, :, k] = r.view(s_count, 1, a_count, 1) + torch.where(end, 0.0, z)
            weights[:, :, :, k] = (mdp.prob[:, :, k] / n).view(s_count, 1, a_count, 1).expand_as(z)
        atoms, weights = atoms.flatten(-2), weights.flatten(-2)
        order = atoms.argsort(-1)
        cdf = weights.gather(-1, order).cumsum(-1)
        idx = torch.searchsorted(cdf.contiguous(), tau.expand(*cdf.shape[:-1], n).contiguous())
        theta[t] = atoms.gather(-1, order).gather(-1, idx.clamp(max=atoms.shape[-1] - 1))
    return theta, -low


def table_policy_returns(mdp: TabularMDP, theta: torch.Tensor, offset: int, x: int
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact return distribution ``(returns, probs)`` of the table's greedy policy deployed at
    integer stock ``x`` (forward propagation over ``(state, stock)``)."""
    start = int(torch.nonzero(mdp.initial > 0)[0])
    dist, out = {(start, x): 1.0}, {}
    for t in range(mdp.horizon):
        new: dict = {}
        for (s, c), pr in dist.items():
            a = int(greedy_by_quantiles(theta[t, s, c + offset], torch.tensor(float(c), dtype=torch.float64)))
            for k in range(mdp.num_outcomes):
                p = float(mdp.prob[s, a, k])
                if p == 0:
                    continue
                c2 = c + int(mdp.reward[s, a, k])
                if bool(mdp.terminal[s, a, k]) or t == mdp.horizon - 1:
                    out[c2 - x] = out.get(c2 - x, 0.0) + pr * p
                else:
                    key = (int(mdp.next_state[s, a, k]), c2)
                    new[key] = new.get(key, 0.0) + pr * p
        dist = new
    return (torch.tensor(list(out), dtype=torch.float64),
            torch.tensor(list(out.values()), dtype=torch.float64))


def quantile_dp_report(mdp: TabularMDP, n: int, stocks: range, levels: tuple[float, ...]
                       ) -> dict[float, dict[str, float]]:
    """Per CVaR level, what the ``n``-quantile fixed point (:func:`quantile_dp`) deploys:
    ``ru_stock`` and its exact ``ru_cvar`` (the RU search ``max_x -x + mean_i min(x +
    theta_i(s0, x, a*), 0) / level`` on the table's own predictions), the table's predicted CVaR
    at that stock (``predicted_cvar``), and the best integer stock by the exact CVaR of the
    table's policy (``best_stock``, ``best_cvar``, with the prediction there)."""
    theta, offset = quantile_dp(mdp, n)
    start = int(torch.nonzero(mdp.initial > 0)[0])
    rows = []
    for x in stocks:
        r, p = table_policy_returns(mdp, theta, offset, x)
        th = theta[0, start, x + offset]
        z = th[int(greedy_by_quantiles(th, torch.tensor(float(x), dtype=torch.float64)))]
        rows.append({"stock": x,
                     **{f"cvar_{lv:g}": obj_lib.CVaR(lv).evaluate(r, p) for lv in levels},
                     **{f"predicted_{lv:g}": float(risk.cvar(z, None, lv)) for lv in levels},
                     **{f"ru_{lv:g}": -x + float((x + z).clamp(max=0).mean()) / lv for lv in levels}})
    out = {}
    for lv in levels:
        chosen = max(rows, key=lambda row, lv=lv: row[f"ru_{lv:g}"])
        best = max(rows, key=lambda row, lv=lv: row[f"cvar_{lv:g}"])
        out[lv] = {"ru_stock": chosen["stock"], "ru_cvar": chosen[f"cvar_{lv:g}"],
                   "predicted_cvar": chosen[f"predicted_{lv:g}"], "best_stock": best["stock"],
                   "best_cvar": best[f"cvar_{lv:g}"], "best_predicted_cvar": best[f"predicted_{lv:g}"]}
    return out
