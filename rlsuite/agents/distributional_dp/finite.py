"""Exact stock-augmented distributional DP for finite-horizon MDPs (batched over states, stocks
and actions; the only Python loop is over time steps).

Setting (Avila Pires et al., arXiv 2501.13028, sections 3-4; ``docs/distributional_dp.md``): the
state is ``(s, c)`` with ``c' = (c + r) / gamma``, and the greedy step at ``(s, c)`` picks
``argmax_a F(law(c + Z(s, c, a)))``. Internally stocks are kept on the *absolute* scale
``u_t = gamma^t c_t = c_0 + sum_{i<t} gamma^i r_{i+1}``, so ``c_t + G_t = gamma^-t (u_t + gamma^t G_t)``
and nothing is ever multiplied by ``gamma^-t`` (no overflow, however long the horizon). For a
scale-consistent ``f`` (the only ones accepted when ``gamma < 1``) ranking actions by
``E f(u_t + gamma^t G_t)`` is ranking them by ``E f(c_t + G_t)``.

For an expected utility the greedy step sees ``eta(s, c, a)`` only through
``Q(s, u, a) = E f(u + gamma^t Z)``, and that functional obeys the Bellman equation on the
augmented state (for a homogeneous ``f``), so the backward pass carries ``Q`` (and the mean of
the greedy policy's return, the tie-breaker) rather than whole distributions; the return
distribution of the resulting policy is then propagated forward exactly (finite support).

Stocks: the reachable absolute stocks of each time step are enumerated exactly
(:mod:`.stocks`), ``U_{t+1} = U_t + gamma^t R``. With piecewise-affine ``f`` (``Objective.tails``)
they are clipped exactly: where ``u + gamma^t G_max(s) < 0`` every outcome has ``c + G < 0``, so
``E f = a_L + w_L (u + gamma^t E G)``, the greedy action is the mean-maximizing one (or the
mean-minimizing one for a negative slope) and the value is closed form; likewise above
``-gamma^t G_min(s)``. Both regions are absorbing (``docs/distributional_dp.md``), so only the stocks
between the bounds of some state are stored.

Tie-breaking (deterministic): among actions whose objective score is within
``1e-12 (1 + |best|)`` of the best, the one with the higher mean return of the policy that
follows; among those, the lowest action index. (Saturating ``f`` such as ``min(x, 0)`` tie
whole regions; this makes the solution one well-defined policy.)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from rlsuite.agents.distributional_dp.objectives import Objective
from rlsuite.agents.distributional_dp.stocks import Quantizer, StockSet, sumset
from rlsuite.envs.tabular.mdp import TabularMDP

TIE_TOLERANCE = 1e-12


@dataclass
class TailTables:
    """Closed-form values outside the stored stock range, per time step ``t = 0 .. H``."""

    hi: torch.Tensor
    """``[H + 1, S]`` ``gamma^t G_max(s)`` for the ``H - t`` steps left (absolute scale)."""
    lo: torch.Tensor
    """``[H + 1, S]`` ``gamma^t G_min(s)``."""
    mean_below: torch.Tensor
    """``[H + 1, S]`` mean return-to-go (relative) of the policy used below the range."""
    mean_above: torch.Tensor
    """``[H + 1, S]`` the same above the range."""
    act_below: torch.Tensor
    """``[H, S]`` the action taken below the range."""
    act_above: torch.Tensor
    """``[H, S]`` the action taken above it."""
    lo_intercept: float
    lo_slope: float
    hi_intercept: float
    hi_slope: float
    affine: bool
    gamma_t: list[float]
    """``gamma^t`` for ``t = 0 .. H``."""

    def regions(self, t: int, states: torch.Tensor, u: torch.Tensor, per_row: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(below, above)`` masks for absolute stocks ``u`` at ``states`` (same shape as ``u``;
        ``per_row``: ``states [n]`` index the rows of ``u [n, N]``)."""
        if self.affine:
            return torch.ones_like(u, dtype=torch.bool), torch.zeros_like(u, dtype=torch.bool)
        hi, lo = self.hi[t][states], self.lo[t][states]
        if per_row:
            hi, lo = hi.unsqueeze(1), lo.unsqueeze(1)
        return u + hi < 0, u + lo >= 0

    def value(self, t: int, states: torch.Tensor, u: torch.Tensor, below: torch.Tensor,
              per_row: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Closed-form ``E f(u + gamma^t G)`` and mean return-to-go in the tail regions
        (``below`` selects the lower piece, elsewhere the upper one)."""
        mb, ma = self.mean_below[t][states], self.mean_above[t][states]
        if per_row:
            mb, ma = mb.unsqueeze(1), ma.unsqueeze(1)
        gt = self.gamma_t[t]  # mean_* are relative: the absolute mean is gamma^t times them
        vb = self.lo_intercept + self.lo_slope * (u + gt * mb)
        va = self.hi_intercept + self.hi_slope * (u + gt * ma)
        return torch.where(below, vb, va), torch.where(below, mb, ma)


@dataclass
class FiniteTables:
    """What the backward pass leaves: stocks, values and actions per time step."""

    horizon: int
    gamma: float
    stocks: list[StockSet]
    """``U_t`` (absolute scale), ``t = 0 .. H - 1``."""
    values: list[torch.Tensor]
    """``[S, N_t]`` ``E f(u + gamma^t G_t)`` under the policy."""
    means: list[torch.Tensor]
    """``[S, N_t]`` mean return-to-go ``E G_t`` under the policy (the tie-breaker)."""
    actions: list[torch.Tensor]
    """``[S, N_t]`` int64 actions."""
    tails: TailTables | None
    quantizer: Quantizer
    iterations: int


def _reward_rows(mdp: TabularMDP, vector_reward: torch.Tensor | None) -> torch.Tensor:
    """``[S, A, K, d]`` float64 rewards (the MDP's scalar ones as ``d = 1``)."""
    if vector_reward is None:
        return mdp.reward.unsqueeze(-1).to(torch.float64)
    r = torch.as_tensor(vector_reward, dtype=torch.float64)
    s, a, k = mdp.next_state.shape
    if r.dim() != 4 or tuple(r.shape[:3]) != (s, a, k):
        raise ValueError(f"vector_reward must have shape [S, A, K, d] = [{s}, {a}, {k}, d]; "
                         f"got {tuple(r.shape)}")
    return r


def _risk_neutral(mdp: TabularMDP, reward: torch.Tensor, horizon: int, sign: float
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Max (``sign=1``) or min (``-1``) expected return-to-go ``[H + 1, S]`` (row ``t``: ``H - t``
    steps left) and the action achieving it ``[H, S]`` (lowest index on ties)."""
    s_count = mdp.num_states
    keep = (~mdp.terminal).to(torch.float64) * mdp.prob
    v = torch.zeros(horizon + 1, s_count, dtype=torch.float64)
    act = torch.zeros(horizon, s_count, dtype=torch.int64)
    for t in reversed(range(horizon)):
        q = (mdp.prob * reward).sum(-1) + mdp.gamma * (keep * v[t + 1][mdp.next_state]).sum(-1)
        best = (sign * q).argmax(-1)
        act[t] = best
        v[t] = q.gather(-1, best.unsqueeze(-1)).squeeze(-1)
    return v, act


def _bounds(mdp: TabularMDP, reward: torch.Tensor, horizon: int, sign: float) -> torch.Tensor:
    """Largest (``sign=1``) or smallest return-to-go over every outcome path, ``[H + 1, S]``."""
    live = mdp.prob > 0
    term = mdp.terminal
    g = torch.zeros(horizon + 1, mdp.num_states, dtype=torch.float64)
    fill = -torch.inf if sign > 0 else torch.inf
    for t in reversed(range(horizon)):
        nxt = torch.where(term, 0.0, g[t + 1][mdp.next_state])
        total = torch.where(live, reward + mdp.gamma * nxt, fill)
        g[t] = total.amax((-2, -1)) if sign > 0 else total.amin((-2, -1))
    return g


def tail_tables(mdp: TabularMDP, objective: Objective, horizon: int) -> TailTables | None:
    """The closed-form tail values of ``objective`` (``None`` if ``f`` has no affine tails)."""
    tails = objective.tails
    if tails is None:
        return None
    reward = mdp.reward
    gmax, gmin = _bounds(mdp, reward, horizon, 1.0), _bounds(mdp, reward, horizon, -1.0)
    vmax, amax = _risk_neutral(mdp, reward, horizon, 1.0)
    vmin, amin = _risk_neutral(mdp, reward, horizon, -1.0)
    gamma_t = torch.tensor([mdp.gamma**t for t in range(horizon + 1)], dtype=torch.float64)
    # Slope > 0: maximize the mean; < 0: minimize it; 0: all actions tie and the tie-breaker
    # (higher mean) picks the mean-maximizing one.

    def pick(slope: float) -> tuple[torch.Tensor, torch.Tensor]:
        return (vmin, amin) if slope < 0 else (vmax, amax)

    mean_b, act_b = pick(tails.lo_slope)
    mean_a, act_a = pick(tails.hi_slope)
    return TailTables(
        hi=gamma_t.unsqueeze(1) * gmax, lo=gamma_t.unsqueeze(1) * gmin,
        mean_below=mean_b, mean_above=mean_a, act_below=act_b, act_above=act_a,
        lo_intercept=tails.lo_intercept, lo_slope=tails.lo_slope,
        hi_intercept=tails.hi_intercept, hi_slope=tails.hi_slope, affine=tails.affine,
        gamma_t=gamma_t.tolist(),
    )


def enumerate_stocks(mdp: TabularMDP, reward: torch.Tensor, start: StockSet, horizon: int,
                     tails: TailTables | None, quantizer: Quantizer, limit: int) -> list[StockSet]:
    """``U_0 = start``, ``U_{t+1} = U_t + gamma^t R`` (``R``: the distinct rewards of live,
    non-terminal outcomes), each clipped to the hull of the states' stored ranges."""
    d = reward.shape[-1]
    cont = (mdp.prob > 0) & ~mdp.terminal
    rset = torch.unique(reward[cont].reshape(-1, d), dim=0)
    stocks = [start]
    for t in range(horizon - 1):
        keep = None
        if tails is not None:
            hi, lo = tails.hi[t + 1].max(), tails.lo[t + 1].min()
            if tails.affine:
                def keep(v: torch.Tensor) -> torch.Tensor:
                    return torch.zeros(v.shape[0], dtype=torch.bool)
            else:
                # Written as the region tests are (u + bound), so float rounding agrees with
                # them (float addition is monotone: u + hi(s) >= 0 implies u + max hi >= 0).
                def keep(v: torch.Tensor, hi: torch.Tensor = hi, lo: torch.Tensor = lo
                         ) -> torch.Tensor:
                    return (v[:, 0] + hi >= 0) & (v[:, 0] + lo < 0)
        nxt = sumset(stocks[-1], (mdp.gamma**t) * rset, quantizer, limit, keep)
        stocks.append(nxt)
    return stocks


def _greedy(score: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """``[S, A, N] -> [S, N]``: the documented tie-breaking (score, then mean, then index)."""
    # Reduce over a contiguous last axis (an argmax over the middle axis is ~5x slower on CPU).
    score, mean = score.transpose(1, 2).contiguous(), mean.transpose(1, 2).contiguous()
    best = score.max(-1, keepdim=True).values
    tied = score >= best - TIE_TOLERANCE * (1.0 + best.abs())
    return torch.where(tied, mean, -torch.inf).argmax(-1)


@dataclass
class OutcomeOperator:
    """The MDP's outcomes as sparse matrices over *columns* (the distributional Bellman step's
    ``(S', R)`` pairs): a continuing column is a (next state, distinct reward) pair some live
    outcome has, a final column a distinct reward. The backup of any table ``C [columns, N]`` of
    per-column values at every stock is then one sparse product, ``Q [S * A, N] = P @ C``: the
    heavy work is done once per column and stock, not once per state, action and outcome."""

    rewards: torch.Tensor
    """``[R, d]`` distinct reward rows."""
    col_state: torch.Tensor
    """``[n_cont]`` next state of each continuing column."""
    col_reward: torch.Tensor
    """``[n_cont]`` reward id of each continuing column."""
    mid: torch.Tensor
    """``[S * A, n_cont + R]`` sparse CSR: outcome probabilities; terminal outcomes in the
    final columns."""
    last: torch.Tensor
    """The same with every outcome final (the horizon's last step)."""
    mean_reward: torch.Tensor
    """``[S, A]`` expected scalarized reward (the tie-breaking mean)."""


def _csr(index: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A CSR matrix from COO ``index [2, nnz]`` (duplicates summed)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        coo = torch.sparse_coo_tensor(index, values, shape, check_invariants=False)
        return coo.coalesce().to_sparse_csr()


def outcome_operator(mdp: TabularMDP, reward: torch.Tensor) -> OutcomeOperator:
    """Build :class:`OutcomeOperator` (zero-probability slots are dropped)."""
    s_count, a_count, k_count = mdp.next_state.shape
    d = reward.shape[-1]
    rewards, rid = torch.unique(reward.reshape(-1, d), dim=0, return_inverse=True)
    rid = rid.view(s_count, a_count, k_count)
    r_count = rewards.shape[0]
    live = mdp.prob > 0
    cont = live & ~mdp.terminal
    pair = mdp.next_state * r_count + rid
    used, col_of = torch.unique(pair[cont], return_inverse=True)
    n_cont = used.shape[0]
    col = torch.full_like(pair, -1)
    col[cont] = col_of
    row = (torch.arange(s_count).view(-1, 1, 1) * a_count
           + torch.arange(a_count).view(1, -1, 1)).expand(s_count, a_count, k_count)
    final_col = n_cont + rid
    shape = (s_count * a_count, n_cont + r_count)

    def csr(cols: torch.Tensor) -> torch.Tensor:
        idx = torch.stack([row[live], cols[live]])
        return _csr(idx, mdp.prob[live], shape)

    return OutcomeOperator(
        rewards=rewards, col_state=used // r_count, col_reward=used % r_count,
        mid=csr(torch.where(cont, col, final_col)), last=csr(final_col),
        mean_reward=(mdp.prob * reward.sum(-1)).sum(-1),
    )


def backward_pass(mdp: TabularMDP, objective: Objective, op: OutcomeOperator,
                  stocks: list[StockSet], tails: TailTables | None, quantizer: Quantizer,
                  policy: list[torch.Tensor] | None = None
                  ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """One backward sweep over ``t = H-1 .. 0``.

    Without ``policy``: distributional value iteration (backward induction), greedy actions.
    With ``policy`` (``[S, N_t]`` actions per step): evaluates it and returns, besides its values
    and means, the improved actions (greedy w.r.t. its own values, keeping the current action
    unless another is strictly better), one policy-iteration step.

    Returns ``(values, means, actions)``, lists over ``t`` of ``[S, N_t]``.
    """
    horizon = len(stocks)
    s_count, a_count = mdp.num_states, mdp.num_actions
    n_cont = op.col_state.shape[0]
    values: list[torch.Tensor] = [torch.empty(0)] * horizon
    means: list[torch.Tensor] = [torch.empty(0)] * horizon
    actions: list[torch.Tensor] = [torch.empty(0)] * horizon
    for t in reversed(range(horizon)):
        u = stocks[t].values  # [N, d]
        n = u.shape[0]
        if n == 0:
            values[t] = torch.zeros(s_count, 0, dtype=torch.float64)
            means[t] = torch.zeros(s_count, 0, dtype=torch.float64)
            actions[t] = torch.zeros(s_count, 0, dtype=torch.int64)
            continue
        up = u.unsqueeze(0) + (mdp.gamma**t) * op.rewards.unsqueeze(1)  # [R, N, d]
        final_value = objective.utility(up)  # [R, N]: the episode ends with this reward
        if t < horizon - 1 and n_cont:
            cont_value, cont_mean = _continuation(t + 1, op, up, values[t + 1], means[t + 1],
                                                  stocks[t + 1], tails, quantizer)
            matrix = op.mid
        else:
            cont_value = cont_mean = torch.zeros(n_cont, n, dtype=torch.float64)
            matrix = op.last if t == horizon - 1 else op.mid
        table_v = torch.cat([cont_value, final_value])
        table_m = torch.cat([cont_mean, torch.zeros_like(final_value)])
        q = (matrix @ table_v).view(s_count, a_count, n)
        qm = op.mean_reward.unsqueeze(-1) + mdp.gamma * (matrix @ table_m).view(s_count, a_count, n)
        greedy = _greedy(q, qm)
        if policy is not None:
            current = policy[t]
            q_cur = q.gather(1, current.unsqueeze(1)).squeeze(1)
            q_best = q.gather(1, greedy.unsqueeze(1)).squeeze(1)
            better = q_best > q_cur + TIE_TOLERANCE * (1.0 + q_cur.abs())
            act = current  # evaluate the current policy ...
            actions[t] = torch.where(better, greedy, current)  # ... and improve it
        else:
            act = greedy
            actions[t] = greedy
        values[t] = q.gather(1, act.unsqueeze(1)).squeeze(1)
        means[t] = qm.gather(1, act.unsqueeze(1)).squeeze(1)
    return values, means, actions


def _continuation(t: int, op: OutcomeOperator, up: torch.Tensor, values: torch.Tensor,
                  means: torch.Tensor, stocks: StockSet, tails: TailTables | None,
                  quantizer: Quantizer) -> tuple[torch.Tensor, torch.Tensor]:
    """``E f`` and mean return-to-go at every continuing column's ``(s', u + gamma^(t-1) r)``,
    ``[n_cont, N]``, for ``up [R, N, d]`` (stocks after each distinct reward) at time ``t``."""
    r_count, n, d = up.shape
    up = quantizer.canonical(up)  # snapped stocks (approximate mode) live on the lattice
    idx_r = stocks.find(quantizer.keys(up).reshape(-1, d)).view(r_count, n)
    idx = idx_r[op.col_reward]  # [n_cont, N]
    states = op.col_state.unsqueeze(1)  # [n_cont, 1]
    if stocks.size:
        flat = states * stocks.size + idx.clamp(min=0)
        table_v = values.reshape(-1)[flat]
        table_m = means.reshape(-1)[flat]
    else:
        table_v = torch.zeros(idx.shape, dtype=torch.float64)
        table_m = torch.zeros_like(table_v)
    inside = torch.ones_like(idx, dtype=torch.bool)
    if tails is not None:
        x = up[..., 0][op.col_reward]  # [n_cont, N]
        below, above = tails.regions(t, op.col_state, x, per_row=True)
        tail_v, tail_m = tails.value(t, op.col_state, x, below, per_row=True)
        outside = below | above
        table_v = torch.where(outside, tail_v, table_v)
        table_m = torch.where(outside, tail_m, table_m)
        inside = ~outside
    if bool((inside & (idx < 0)).any()):
        raise RuntimeError("distributional DP: a reachable stock is missing from the enumerated "
                           "set (internal error; please report with the MDP)")
    return table_v, table_m


def solve_finite(mdp: TabularMDP, objective: Objective, start: torch.Tensor, horizon: int,
                 method: str, reward: torch.Tensor, quantizer: Quantizer, max_stocks: int,
                 max_iterations: int) -> FiniteTables:
    """Value iteration (one backward induction) or policy iteration from the mean-maximizing
    policy, over every stock in ``start [n, d]`` at once."""
    tails = tail_tables(mdp, objective, horizon) if reward.shape[-1] == 1 else None
    u0 = StockSet.build(start, quantizer)
    stocks = enumerate_stocks(mdp, reward, u0, horizon, tails, quantizer, max_stocks)
    op = outcome_operator(mdp, reward)
    if method == "value_iteration":
        values, means, actions = backward_pass(mdp, objective, op, stocks, tails, quantizer)
        iterations = horizon
    elif method == "policy_iteration":
        _, rn_act = _risk_neutral(mdp, reward.sum(-1), horizon, 1.0)
        policy = [rn_act[t].unsqueeze(1).expand(-1, st.size).clone()
                  for t, st in enumerate(stocks)]
        iterations = 0
        while True:
            values, means, improved = backward_pass(mdp, objective, op, stocks, tails,
                                                    quantizer, policy)
            iterations += 1
            stable = all(torch.equal(a, b) for a, b in zip(improved, policy, strict=True))
            if stable or iterations >= max_iterations:
                break
            policy = improved
        actions = policy
    else:
        raise ValueError(f"method = {method!r} must be 'value_iteration' or 'policy_iteration'")
    return FiniteTables(horizon, mdp.gamma, stocks, values, means, actions, tails, quantizer,
                        iterations)


def lookup_actions(tables: FiniteTables, t: int, states: torch.Tensor, u: torch.Tensor
                   ) -> torch.Tensor:
    """Actions ``[n]`` of the tabulated policy at time ``t`` for ``states [n]`` and absolute
    stocks ``u [n, d]``: the closed-form tail action outside the stored range, the stored action
    at a stored stock, else the action of the nearest stored stock."""
    stocks = tables.stocks[t]
    u = tables.quantizer.canonical(u)
    if stocks.size:
        idx = stocks.find(tables.quantizer.keys(u))
        idx = torch.where(idx >= 0, idx, stocks.nearest(u))
        act = tables.actions[t][states, idx]
    else:
        act = torch.zeros_like(states)
    if tables.tails is not None:
        below, above = tables.tails.regions(t, states, u[:, 0])
        act = torch.where(below, tables.tails.act_below[t][states],
                          torch.where(above, tables.tails.act_above[t][states], act))
    return act


def forward_distribution(mdp: TabularMDP, tables: FiniteTables, reward: torch.Tensor,
                         stock: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact law of ``u_T = stock + G_0`` (absolute final stock) under the tabulated policy from
    the initial distribution: ``(values [m, d], probs [m])``, merged by key, sorted."""
    s_count, _, k_count = mdp.next_state.shape
    d = reward.shape[-1]
    quant = tables.quantizer
    if d == 1:
        return _forward_dense(mdp, tables, reward, stock)
    # Vector stocks (small problems): sparse mass over (state, stock) pairs, as rows of
    # states [n], stocks [n, d], mass [n].
    live0 = mdp.initial > 0
    states = torch.nonzero(live0).squeeze(1)
    u = stock.view(1, d).expand(states.shape[0], d).clone()
    mass = mdp.initial[states]
    finals_v: list[torch.Tensor] = []
    finals_p: list[torch.Tensor] = []
    for t in range(tables.horizon):
        if states.numel() == 0:
            break
        act = lookup_actions(tables, t, states, u)
        p = mdp.prob[states, act] * mass.unsqueeze(1)  # [n, K]
        s2 = mdp.next_state[states, act]
        up = u.unsqueeze(1) + (mdp.gamma**t) * reward[states, act]  # [n, K, d]
        ends = mdp.terminal[states, act] | (t == tables.horizon - 1)
        done = ends & (p > 0)
        finals_v.append(up[done])
        finals_p.append(p[done])
        go = ~ends & (p > 0)
        s2, up, p = s2[go], quant.canonical(up[go]), p[go]
        rows = torch.cat([s2.unsqueeze(1), quant.keys(up)], 1)
        uniq, inverse = torch.unique(rows, dim=0, return_inverse=True)
        mass = torch.zeros(uniq.shape[0], dtype=torch.float64).index_add_(0, inverse, p)
        first = torch.full((uniq.shape[0],), up.shape[0], dtype=torch.int64)
        first.scatter_reduce_(0, inverse, torch.arange(up.shape[0]), reduce="amin")
        states, u = uniq[:, 0], up[first]
    values = torch.cat(finals_v) if finals_v else torch.zeros(0, d, dtype=torch.float64)
    probs = torch.cat(finals_p) if finals_p else torch.zeros(0, dtype=torch.float64)
    merged = StockSet.build(values, Quantizer(quant.quantum))
    idx = merged.find(Quantizer(quant.quantum).keys(values))
    total = torch.zeros(merged.size, dtype=torch.float64).index_add_(0, idx, probs)
    return merged.values, total


def _forward_dense(mdp: TabularMDP, tables: FiniteTables, reward: torch.Tensor,
                   stock: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`forward_distribution` for scalar stocks: mass ``[S, N_t]`` over the stocks
    reachable from ``stock`` (enumerated state-agnostically, like the backward pass). Each step
    moves the mass of the states taking action ``a`` through the transposed outcome matrix of
    ``a`` (sparse, ``[columns, S]``), then scatters columns to ``(s', stock index)``."""
    s_count, a_count = mdp.num_states, mdp.num_actions
    quant = tables.quantizer
    op = outcome_operator(mdp, reward)
    n_cont, r_count = op.col_state.shape[0], op.rewards.shape[0]
    mid_t, last_t = _per_action_transposed(op, s_count, a_count)
    rvals = op.rewards[:, 0]
    reach = StockSet.build(stock.view(1, 1), quant)
    mass = mdp.initial.view(s_count, 1).clone()
    final_values: list[torch.Tensor] = []
    final_mass: list[torch.Tensor] = []
    states = torch.arange(s_count)
    for t in range(tables.horizon):
        n = reach.size
        u = reach.values  # [N, 1]
        st = states.view(-1, 1).expand(s_count, n).reshape(-1)
        act = lookup_actions(tables, t, st, u.repeat(s_count, 1)).view(s_count, n)
        mats = last_t if t == tables.horizon - 1 else mid_t
        flow = sum(mats[a] @ torch.where(act == a, mass, 0.0) for a in range(a_count))
        up = u[:, 0].unsqueeze(0) + (mdp.gamma**t) * rvals.unsqueeze(1)  # [R, N]
        final_values.append(up.reshape(-1))
        final_mass.append(flow[n_cont:].reshape(-1))
        if t == tables.horizon - 1 or n_cont == 0:
            break
        nxt_set = StockSet.build(up.reshape(-1, 1), quant)
        idx = nxt_set.find(quant.keys(quant.canonical(up.reshape(-1, 1)))).view(r_count, n)
        target = op.col_state.unsqueeze(1) * nxt_set.size + idx[op.col_reward]  # [n_cont, N]
        new = torch.zeros(s_count * nxt_set.size, dtype=torch.float64)
        new.index_add_(0, target.reshape(-1), flow[:n_cont].reshape(-1))
        mass = new.view(s_count, nxt_set.size)
        keep = mass.sum(0) > 0  # drop stocks no mass reached
        reach, mass = nxt_set.select(keep), mass[:, keep]
    values = torch.cat(final_values).view(-1, 1)
    probs = torch.cat(final_mass)
    values, probs = values[probs > 0], probs[probs > 0]
    merged = StockSet.build(values, Quantizer(quant.quantum))
    idx = merged.find(Quantizer(quant.quantum).keys(values))
    total = torch.zeros(merged.size, dtype=torch.float64).index_add_(0, idx, probs)
    return merged.values, total


def _per_action_transposed(op: OutcomeOperator, s_count: int, a_count: int
                           ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``[columns, S]`` CSR matrices of each action's outcome probabilities (mid and last)."""
    def split(matrix: torch.Tensor) -> list[torch.Tensor]:
        dense_rows = matrix.to_sparse_coo().coalesce()
        row, col = dense_rows.indices()
        val = dense_rows.values()
        s, a = row // a_count, row % a_count
        out = []
        for action in range(a_count):
            sel = a == action
            idx = torch.stack([col[sel], s[sel]])
            shape = (matrix.shape[1], s_count)
            out.append(_csr(idx, val[sel], shape))
        return out

    return split(op.mid), split(op.last)
