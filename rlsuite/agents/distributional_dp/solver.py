"""``solve(mdp, objective, initial_stock)``: the optimal stock-augmented policy, its value and its
return distribution (Avila Pires et al., arXiv 2501.13028, section 4).

* Finite horizon (``mdp.horizon`` set): exact, by :mod:`.finite` (enumerated stocks, exact
  clipping, forward propagation of the exact finite-support return distribution).
* Discounted, no horizon (``gamma < 1``): categorical representation with Cramer projection on a
  stock grid, by :mod:`.categorical`.

Outer-search objectives (CVaR, mean-CVaR) run one DP over every candidate initial stock at once:
the stocks ``c0 - b`` for every ``b`` in the set of returns any policy can reach (the RU optimum
``b*`` is a quantile of the optimal return, so it is one of them), and keep the best.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from rlsuite.agents.distributional_dp import categorical, finite
from rlsuite.agents.distributional_dp.config import METHODS
from rlsuite.agents.distributional_dp.objectives import Objective
from rlsuite.agents.distributional_dp.stocks import Quantizer, StockSet, sumset
from rlsuite.envs.tabular.mdp import TabularMDP


@dataclass
class StockPolicy:
    """The greedy stock-augmented policy: ``policy(states, stocks, time) -> actions``.

    ``stocks`` are the paper's stocks ``c_t`` (``c_0 = Solution.start_stock``,
    ``c_{t+1} = (c_t + r_{t+1}) / gamma``), ``[B]`` or ``[B, d]``; ``time`` the steps taken in the
    episode (finite-horizon policies depend on the steps left; ignored for discounted ones).
    Stocks the solver never reached take the action of the nearest stored stock.
    """

    gamma: float
    finite: finite.FiniteTables | None = None
    grid: categorical.CategoricalTables | None = None

    def __call__(self, states: torch.Tensor, stocks: torch.Tensor,
                 time: torch.Tensor | int = 0) -> torch.Tensor:
        states = torch.as_tensor(states, dtype=torch.int64).reshape(-1)
        c = torch.as_tensor(stocks, dtype=torch.float64)
        c = c.reshape(states.shape[0], -1)
        if self.grid is not None:
            return categorical.lookup_actions(self.grid, states, c[:, 0]).to(states.device)
        assert self.finite is not None
        tables = self.finite
        t = torch.as_tensor(time, dtype=torch.int64).expand(states.shape[0]).clamp(
            0, tables.horizon - 1)
        out = torch.empty_like(states)
        for step in torch.unique(t).tolist():  # a loop over time steps present, not states
            rows = t == step
            u = c[rows] * (self.gamma**step)
            out[rows] = finite.lookup_actions(tables, step, states[rows], u)
        return out


@dataclass
class Solution:
    """What :func:`solve` returns."""

    value: float
    """The optimal objective ``F(law(c0 + G))`` from the MDP's initial distribution."""
    policy: StockPolicy
    """The greedy stock-augmented policy (see :class:`StockPolicy`)."""
    returns: torch.Tensor
    """Support of the return ``G`` of that policy (``[n]``, or ``[n, d]`` for vector rewards)."""
    probs: torch.Tensor
    """``[n]`` probabilities of ``returns``."""
    start_stock: torch.Tensor
    """``[d]`` the stock ``c_0`` to deploy the policy with (``c0 - b*`` for CVaR, ``c0 - target``
    for return targeting, ...)."""
    iterations: int
    """Backward sweeps (finite horizon: ``H`` for value iteration) or Bellman iterations."""
    method: str
    objective: Objective
    initial_stock: float
    outer: dict[str, torch.Tensor] = field(default_factory=dict)
    """Outer-search objectives: ``stocks`` (candidates) and ``scores``."""

    @property
    def mean(self) -> float:
        """``E G`` of the policy (scalar rewards)."""
        return float((self.probs * self.returns).sum())


def _check(mdp: TabularMDP, objective: Objective, method: str, vector_reward: Any) -> None:
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"solve: mdp must be a TabularMDP, got {type(mdp).__name__}")
    if not isinstance(objective, Objective):
        raise TypeError(f"solve: objective must be an Objective, got {type(objective).__name__}")
    if method not in METHODS:
        raise ValueError(f"solve: method = {method!r} must be one of {METHODS}")
    if objective.vector and vector_reward is None:
        raise ValueError(f"solve: objective {objective.name} needs vector_reward [S, A, K, d]")
    if vector_reward is not None and not objective.vector:
        raise ValueError(f"solve: vector_reward given but objective {objective.name} is scalar")
    objective.check_gamma(mdp.gamma)


def solve(mdp: TabularMDP, objective: Objective, initial_stock: float | Any = 0.0,
          method: str = "value_iteration", *, vector_reward: torch.Tensor | None = None,
          stock_resolution: float | None = None, max_stocks: int = 20_000_000,
          max_iterations: int = 1000, num_stocks: int = 201, num_atoms: int = 101,
          tolerance: float = 1e-8) -> Solution:
    """Optimize ``objective`` of the return distribution over stock-augmented policies.

    Args:
        mdp: the MDP (on the CPU; float64). Finite horizon if ``mdp.horizon`` is set.
        objective: e.g. ``Mean()``, ``CVaR(0.1)``, ``ReturnTargeting(2.0)``.
        initial_stock: the user's ``c0`` (a float, or a ``[d]`` vector for vector rewards).
        method: ``"value_iteration"`` or ``"policy_iteration"``.
        vector_reward: ``[S, A, K, d]`` vector rewards (for :class:`Homeostatic`).
        stock_resolution: snap stocks to this lattice (finite horizon; approximate) when the
            exact reachable stocks are too many.
        max_stocks: cap on the candidate stocks formed in one time step (exact enumeration).
        max_iterations: policy-iteration sweeps / discounted Bellman iterations at most.
        num_stocks, num_atoms: stock grid and return atoms of the discounted (categorical) solver.
        tolerance: sup-norm change that stops the discounted iterations.
    """
    _check(mdp, objective, method, vector_reward)
    mdp = mdp.to("cpu")
    reward = finite._reward_rows(mdp, vector_reward)
    d = reward.shape[-1]
    c0 = torch.as_tensor(initial_stock, dtype=torch.float64).reshape(-1)
    if c0.numel() != d:
        raise ValueError(f"solve: initial_stock has {c0.numel()} entries; the rewards have {d}")
    dp_stock = objective.dp_stock(c0)
    if mdp.horizon is None:
        if mdp.gamma >= 1.0:
            raise ValueError("solve: an MDP without a horizon needs gamma < 1 (set mdp.horizon "
                             "for episodic gamma = 1 problems)")
        if d != 1:
            raise ValueError("solve: vector rewards need a finite horizon")
        return categorical.solve_discounted(mdp, objective, float(c0[0]), float(dp_stock[0]),
                                            method, num_stocks, num_atoms, tolerance,
                                            max_iterations, Solution, StockPolicy)
    horizon = mdp.horizon
    scale = max(1.0, float(c0.abs().max()), float(reward.abs().max()) * horizon)
    if stock_resolution is not None:
        if stock_resolution <= 0:
            raise ValueError(f"solve: stock_resolution = {stock_resolution} must be > 0")
        quant = Quantizer(float(stock_resolution), snap=True)
    else:
        quant = Quantizer(scale * 2.0**-36)
    if objective.outer_search:
        # RU's b* is an atom of c0 + G, so the stock x = c0 - b* is minus an atom of G: the
        # candidates are -g for every return g some policy can reach, whatever c0.
        candidates = -_reachable_returns(mdp, reward, horizon, quant, max_stocks).values
    else:
        candidates = dp_stock.view(1, d)
    tables = finite.solve_finite(mdp, objective, candidates, horizon, method, reward, quant,
                                 max_stocks, max_iterations)
    u0 = tables.stocks[0]
    expected = (mdp.initial.unsqueeze(1) * tables.values[0]).sum(0)  # [N_0]
    outer: dict[str, torch.Tensor] = {}
    if objective.outer_search:
        scores = objective.outer_value(float(c0[0]), u0.values[:, 0], expected)
        best = int(scores.argmax())  # the smallest candidate stock among the maximizers
        value, start = float(scores[best]), u0.values[best]
        outer = {"stocks": u0.values[:, 0].clone(), "scores": scores}
    else:
        idx = int(u0.find(quant.keys(quant.canonical(dp_stock.view(1, d))))[0])
        value, start = float(expected[idx]), u0.values[idx]
    final, probs = finite.forward_distribution(mdp, tables, reward, start)
    returns = final - start.view(1, d)
    returns = returns[:, 0] if d == 1 else returns
    return Solution(value=value, policy=StockPolicy(mdp.gamma, finite=tables), returns=returns,
                    probs=probs, start_stock=start.clone(), iterations=tables.iterations,
                    method=method, objective=objective, initial_stock=float(c0[0]), outer=outer)


def _reachable_returns(mdp: TabularMDP, reward: torch.Tensor, horizon: int, quant: Quantizer,
                       limit: int) -> StockSet:
    """Every partial discounted sum of rewards along outcome paths of length ``1 .. H`` (a
    superset of the returns any policy can reach), as a stock set."""
    d = reward.shape[-1]
    rset = torch.unique(reward[mdp.prob > 0].reshape(-1, d), dim=0)
    level = StockSet.build(torch.zeros(1, d, dtype=torch.float64), quant)
    seen = []
    for t in range(horizon):
        level = sumset(level, (mdp.gamma**t) * rset, quant, limit)
        seen.append(level.values)
    return StockSet.build(torch.cat(seen), quant)
