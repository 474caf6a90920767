"""A 4x4 gridworld for return targeting and CVaR, after Avila Pires et al. (arXiv 2501.13028)
section 7.1 as the third-party Stoix fork replicates it (``docs/distributional_dp.md``; whether it
matches the paper's grid is unverified).

Cells ``(row, col)``, start ``(0, 0)``, 5 actions (0 up, 1 down, 2 left, 3 right, 4 stay; moves
into a wall stay put), an episode cap of 16 steps, ``gamma = 1``. The reward is paid on each step
*into* a cell (entering or staying): ``(3, 0)`` pays -1, ``(0, 3)`` pays +2, ``(3, 3)`` ends the
episode with 0. Returning exactly ``k`` needs a plan that depends on what was collected so far.

``stochastic=True`` (our variant, not the paper's) makes ``(0, 3)`` a gamble, +2 or -1 with
probability 1/2 each (mean +0.5 per step), and adds a terminal cell ``(2, 2)`` paying 3 or 0 with
probability 1/2: the mean prefers to gamble at ``(0, 3)`` for most of the episode, a CVaR
objective stops gambling once enough has been collected.
"""

from __future__ import annotations

import torch

from rlsuite.envs.tabular.env import TabularEnv
from rlsuite.envs.tabular.mdp import TabularMDP

MOVES = ((-1, 0), (1, 0), (0, -1), (0, 1), (0, 0))


def stock_grid(stochastic: bool = False, horizon: int | None = 16, gamma: float = 1.0
               ) -> TabularMDP:
    """The gridworld as a :class:`TabularMDP` (``S = 16``, ``A = 5``, ``K = 2``)."""
    size = 4
    s_count, a_count, k_count = size * size, len(MOVES), 2
    nxt = torch.zeros(s_count, a_count, k_count, dtype=torch.int64)
    reward = torch.zeros(s_count, a_count, k_count, dtype=torch.float64)
    prob = torch.zeros(s_count, a_count, k_count, dtype=torch.float64)
    terminal = torch.zeros(s_count, a_count, k_count, dtype=torch.bool)
    for s in range(s_count):
        r, c = divmod(s, size)
        for a, (dr, dc) in enumerate(MOVES):
            r2, c2 = min(max(r + dr, 0), size - 1), min(max(c + dc, 0), size - 1)
            s2 = r2 * size + c2
            nxt[s, a] = s2
            cell = (r2, c2)
            if cell == (0, 3) and stochastic:
                reward[s, a] = torch.tensor([2.0, -1.0])
                prob[s, a] = torch.tensor([0.5, 0.5])
            elif cell == (2, 2) and stochastic:
                reward[s, a] = torch.tensor([3.0, 0.0])
                prob[s, a] = torch.tensor([0.5, 0.5])
                terminal[s, a] = True
            else:
                prob[s, a, 0] = 1.0
                reward[s, a, 0] = {(3, 0): -1.0, (0, 3): 2.0}.get(cell, 0.0)
                terminal[s, a, 0] = cell == (3, 3)
    initial = torch.zeros(s_count, dtype=torch.float64)
    initial[0] = 1.0
    return TabularMDP(nxt, reward, prob, terminal, initial, gamma=gamma, horizon=horizon)


def unroll_time(mdp: TabularMDP) -> TabularMDP:
    """The finite-horizon ``mdp`` with the step count in the state: state ``t * S + s`` for
    ``t < H``, and the horizon's time limit turned into termination (every outcome of step
    ``H - 1`` is terminal). For learners that bootstrap through truncation (QR-DQN, as gymnasium's
    TimeLimit semantics require): on this MDP their target is exact for the ``H``-step return,
    and the optimal policy may depend on the steps left, as on the original MDP."""
    if mdp.horizon is None:
        raise ValueError("unroll_time: the MDP needs a finite horizon")
    h, s_count = mdp.horizon, mdp.num_states
    t = torch.arange(h).view(h, 1, 1, 1)
    nxt = (t + 1).clamp(max=h - 1) * s_count + mdp.next_state.unsqueeze(0)  # [H, S, A, K]
    terminal = mdp.terminal.unsqueeze(0) | (t == h - 1)
    expand = lambda x: x.unsqueeze(0).expand(h, *x.shape).reshape(h * s_count, *x.shape[1:])  # noqa: E731
    initial = torch.zeros(h * s_count, dtype=mdp.initial.dtype)
    initial[:s_count] = mdp.initial
    return TabularMDP(nxt.reshape(h * s_count, *nxt.shape[2:]), expand(mdp.reward), expand(mdp.prob),
                      terminal.reshape(h * s_count, *nxt.shape[2:]), initial, gamma=mdp.gamma,
                      horizon=h)


def stock_grid_env(device: torch.device | str = "cpu", max_episode_steps: int | None = 16,
                   stochastic: bool = False, gamma: float = 1.0) -> TabularEnv:
    """``TabularEnv`` of :func:`stock_grid` (``rlsuite.envs.make("stockgrid")``)."""
    env = TabularEnv(stock_grid(stochastic, max_episode_steps, gamma), device=device)
    env.name = "stockgrid"
    return env
stock_grid_env.gymnasium_name = "StockGrid"  # type: ignore[attr-defined]  # -> rlsuite/StockGrid-v0
