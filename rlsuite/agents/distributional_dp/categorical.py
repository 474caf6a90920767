"""Stock-augmented distributional DP for discounted MDPs without a horizon: categorical return
distributions (Bellemare et al. 2017's Cramer projection) on a stock grid.

``eta[s, m, a, :]`` is a categorical distribution over ``J`` return atoms ``z_j`` evenly spaced on
``[G_min, G_max] = [min(0, r_min), max(0, r_max)] / (1 - gamma)``, at ``M`` stocks ``c_m`` evenly
spaced on ``[-G_max, -G_min]``. One distributional Bellman step (``docs/distributional_dp.md``)::

    (T eta)(s, c, a) = law(R + gamma Z'),  c' = (c + R) / gamma,  Z' ~ eta(S', c', a*(S', c'))

with ``a*(s, c) = argmax_a E f(c + Z)``, ``Z ~ eta(s, c, a)`` (tie-breaking as in :mod:`.finite`).
``c'`` is clipped to the grid and ``eta(S', c')`` interpolated linearly between the two
neighbouring grid stocks (a mixture of their distributions); ``R + gamma z_j`` is projected back
onto the atoms. Clipping is exact for piecewise-affine ``f`` (``Objective.tails``): beyond
``-G_max`` every ``c + Z <= 0``, the greedy policy is the risk-neutral one whatever ``c``, so
``eta(s, c') = eta(s, -G_max)``; likewise beyond ``-G_min`` (``docs/distributional_dp.md``). The stock
grid and the projection are the approximations; both vanish as ``M, J`` grow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from rlsuite.agents.distributional_dp.finite import _greedy
from rlsuite.agents.distributional_dp.objectives import Objective
from rlsuite.envs.tabular.mdp import TabularMDP


@dataclass
class CategoricalTables:
    """The solved grid: stocks ``[M]``, atoms ``[J]``, greedy actions ``[S, M]``, their return
    distributions ``[S, M, J]``."""

    stocks: torch.Tensor
    atoms: torch.Tensor
    actions: torch.Tensor
    dists: torch.Tensor


def _interp(grid: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower neighbour index and upper weight of ``x`` (clipped) on an even ``grid``."""
    m = grid.shape[0]
    if m == 1:
        return torch.zeros_like(x, dtype=torch.int64), torch.zeros_like(x)
    step = (grid[-1] - grid[0]) / (m - 1)
    pos = ((x - grid[0]) / step).clamp(0, m - 1)
    lo = pos.floor().to(torch.int64).clamp(max=m - 2)
    return lo, pos - lo


def cramer_projection(atoms: torch.Tensor, targets: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
    """Cramer projection (Bellemare et al. 2017, Rowland et al. 2018) of ``mass [..., J_in]`` at
    ``targets [..., J_in]`` onto the evenly spaced ``atoms [J]``: each mass splits between its two
    neighbouring atoms in proportion to its distance to each (a target beyond an end lands on
    that end). A target on an atom keeps its whole mass there, so with integer atoms and integer
    rewards at ``gamma = 1`` the projection is exact."""
    lo, w = _interp(atoms, targets)
    out = torch.zeros(*mass.shape[:-1], atoms.shape[0], dtype=mass.dtype, device=mass.device)
    out.scatter_add_(-1, lo, mass * (1 - w))
    hi = (lo + 1).clamp(max=atoms.shape[0] - 1)
    return out.scatter_add_(-1, hi, mass * w)


def lookup_actions(tables: CategoricalTables, states: torch.Tensor, stocks: torch.Tensor
                   ) -> torch.Tensor:
    """Action at the grid stock nearest to each (clipped) stock."""
    lo, w = _interp(tables.stocks, stocks)
    m = (lo + (w > 0.5).to(torch.int64)).clamp(max=tables.stocks.shape[0] - 1)
    return tables.actions[states, m]


def solve_discounted(mdp: TabularMDP, objective: Objective, c0: float, dp_stock: float,
                     method: str, num_stocks: int, num_atoms: int, tolerance: float,
                     max_iterations: int, solution_cls: Any, policy_cls: Any) -> Any:
    """Categorical distributional value / policy iteration (see the module docstring)."""
    if num_stocks < 1 or num_atoms < 2:
        raise ValueError(f"solve: need num_stocks >= 1 and num_atoms >= 2, got {num_stocks}, "
                         f"{num_atoms}")
    g = mdp.gamma
    s_count, a_count, k_count = mdp.next_state.shape
    live = mdp.prob > 0
    r_lo = min(0.0, float(mdp.reward[live].min()))
    r_hi = max(0.0, float(mdp.reward[live].max()))
    g_lo, g_hi = r_lo / (1 - g), r_hi / (1 - g)
    if g_hi == g_lo:
        g_hi = g_lo + 1.0
    atoms = torch.linspace(g_lo, g_hi, num_atoms, dtype=torch.float64)
    stocks = torch.linspace(-g_hi, -g_lo, num_stocks, dtype=torch.float64)
    m_count = num_stocks
    # f(c_m + z_j) and the atoms' values, fixed for the whole run.
    utility = objective.utility((stocks.view(-1, 1) + atoms.view(1, -1)).unsqueeze(-1))  # [M, J]
    # Where each outcome sends each stock, and where r + gamma z_j lands.
    r = mdp.reward.unsqueeze(-1)  # [S, A, K, 1]
    next_lo, next_w = _interp(stocks, (stocks.view(1, 1, 1, -1) + r) / g)  # [S, A, K, M]
    shifted = (r + g * atoms.view(1, 1, 1, -1)).unsqueeze(3)  # [S, A, K, 1, J]
    terminal_dist = cramer_projection(atoms, r, torch.ones_like(r))  # [S, A, K, J]: delta_r projected
    s_next = mdp.next_state.unsqueeze(-1).expand(-1, -1, -1, m_count)
    hi_idx = (next_lo + 1).clamp(max=m_count - 1)
    cont = (~mdp.terminal).unsqueeze(-1).unsqueeze(-1).to(torch.float64)
    p = mdp.prob.unsqueeze(-1).unsqueeze(-1)  # [S, A, K, 1, 1]

    def scores(eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.einsum("smaj,mj->sam", eta, utility), torch.einsum("smaj,j->sam", eta, atoms)

    def backup(eta: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        chosen = eta.gather(2, act.view(s_count, m_count, 1, 1).expand(-1, -1, 1, num_atoms))
        chosen = chosen.squeeze(2)  # [S, M, J]
        nd = (chosen[s_next, next_lo] * (1 - next_w).unsqueeze(-1)
              + chosen[s_next, hi_idx] * next_w.unsqueeze(-1))  # [S, A, K, M, J]
        proj = cramer_projection(atoms, shifted.expand_as(nd), nd)
        out = p * (cont * proj + (1 - cont) * terminal_dist.unsqueeze(3))
        return out.sum(2).permute(0, 2, 1, 3).contiguous()  # [S, M, A, J]

    def greedy(eta: torch.Tensor) -> torch.Tensor:
        sc, mn = scores(eta)
        return _greedy(sc, mn)  # [S, M]

    eta = torch.zeros(s_count, m_count, a_count, num_atoms, dtype=torch.float64)
    eta[..., int(torch.argmin(atoms.abs()))] = 1.0  # eta_0 = delta_0 (nearest atom)
    iterations = 0
    if method == "value_iteration":
        while iterations < max_iterations:
            new = backup(eta, greedy(eta))
            iterations += 1
            delta = float((new - eta).abs().max())
            eta = new
            if delta < tolerance:
                break
        act = greedy(eta)
    else:
        sc, mn = scores(eta)
        act = torch.einsum("smaj,j->sma", eta, atoms).argmax(-1)  # start: any fixed policy
        for _ in range(max_iterations):
            for _ in range(max_iterations):  # evaluate T^pi to convergence
                new = backup(eta, act)
                iterations += 1
                delta = float((new - eta).abs().max())
                eta = new
                if delta < tolerance:
                    break
            sc, mn = scores(eta)
            best = _greedy(sc, mn)
            cur = sc.gather(1, act.unsqueeze(1)).squeeze(1)
            top = sc.gather(1, best.unsqueeze(1)).squeeze(1)
            improved = torch.where(top > cur + 1e-9 * (1 + cur.abs()), best, act)
            if torch.equal(improved, act):
                break
            act = improved
    dists = eta.gather(2, act.view(s_count, m_count, 1, 1).expand(-1, -1, 1, num_atoms)).squeeze(2)
    tables = CategoricalTables(stocks, atoms, act, dists)

    def law_at(x: torch.Tensor) -> torch.Tensor:
        """``[n, J]`` return law from the initial distribution at stocks ``x [n]``."""
        lo, w = _interp(stocks, x)
        hi = (lo + 1).clamp(max=m_count - 1)
        per_state = dists[:, lo] * (1 - w).view(1, -1, 1) + dists[:, hi] * w.view(1, -1, 1)
        return (mdp.initial.view(-1, 1, 1) * per_state).sum(0)

    outer: dict[str, torch.Tensor] = {}
    if objective.outer_search:
        law = law_at(stocks)  # [M, J]
        eu = (law * utility).sum(-1)
        sc = objective.outer_value(c0, stocks, eu)  # the RU scores the DP maximizes
        # On the grid the law changes with the stock, so the deployed objective (e.g. the CVaR
        # of the law itself) can exceed the RU score; report and pick by the objective itself.
        true = objective.evaluate_many(atoms, law, c0)
        best = int(true.argmax())
        value, start, probs = float(true[best]), stocks[best], law[best]
        outer = {"stocks": stocks.clone(), "scores": sc, "objective": true}
    else:
        start = torch.tensor(dp_stock, dtype=torch.float64)
        probs = law_at(start.view(1))[0]
        value = float((probs * objective.utility((start + atoms).view(-1, 1))).sum())
    return solution_cls(value=value, policy=policy_cls(g, grid=tables), returns=atoms.clone(),
                        probs=probs, start_stock=start.view(1).clone(), iterations=iterations,
                        method=method, objective=objective, initial_stock=c0, outer=outer)
