"""Stochastic CliffWalking: gymnasium's 4x12 cliff grid with slips, a step cost, a cliff cost and
an episode cap, as a :class:`TabularMDP` (the "stochastic Cliffwalk" of Yu and Ying, arXiv
2301.10932; the paper's exact specification is unknown, ``docs/ecrm.md``, "Experiments", so this one is
ours: "Cliffwalk-like").

Geometry (gymnasium ``toy_text/cliffwalking.py``): rows 0..3, columns 0..11, state ``row * 12 +
col``; start (3, 0), goal (3, 11), cliff (3, 1..10); actions 0 up, 1 right, 2 down, 3 left; a move
into the outer wall stays in place. With probability ``slip`` the intended move is replaced by a
uniformly random one of the four (which may be the intended one), so the intended move happens
with probability ``1 - 3 slip / 4``. Every step pays ``-step_cost``; entering the cliff pays
``-cliff_cost`` instead and either sends the agent back to the start as in gymnasium (the
default) or ends the episode (``cliff_terminates``). Reaching the goal pays ``-step_cost`` and ends
the episode. ``horizon`` caps the episode (truncation).

Defaults (slip 0.02, cliff cost 10, back to the start, cap 100) are chosen so that the risk-neutral
optimum hugs the cliff (row 2 all the way; value iteration: -14.16 from the start) while a
risk-averse ECRM prefers the row above it: exact ECRMs (``exact_ecrm``) of the fixed paths along
rows 0 / 1 / 2 are -17.47 / -15.48 / -14.19 at lam = 0 and row 1 / row 2 -15.65 / -18.58 at
lam = 1, alpha = 0.1 (-15.56 / -16.38 at lam = 0.5, alpha = 0.1). With a terminating cliff, a cliff
cost below the ~13 steps to the goal makes jumping in optimal (the suicide policy); with
back-to-start falls it never is.
"""

from __future__ import annotations

from typing import Any

import torch

from rlsuite.envs.tabular.env import TabularEnv
from rlsuite.envs.tabular.mdp import TabularMDP
from rlsuite.envs.tabular.toy_text import from_toy_text

ROWS, COLS = 4, 12
START, GOAL = (3, 0), (3, 11)
MOVES = ((-1, 0), (0, 1), (1, 0), (0, -1))  # up, right, down, left (gymnasium's order)
CLIFF_COST = 10.0
"""Default cliff cost (paid as reward ``-CLIFF_COST``)."""


def is_cliff(row: int, col: int) -> bool:
    """True on the cliff cells (3, 1..10)."""
    return row == 3 and 1 <= col <= COLS - 2


def stochastic_cliff_walking(
    slip: float = 0.02,
    step_cost: float = 1.0,
    cliff_cost: float = CLIFF_COST,
    cliff_terminates: bool = False,
    exploring_starts: bool = False,
    gamma: float = 1.0,
    horizon: int | None = 100,
) -> TabularMDP:
    """The stochastic CliffWalking MDP (module docstring): ``S = 48``, ``A = 4``, ``K <= 4``.

    Cliff cells are never occupied (entering one ends the episode or returns to the start); their
    rows are kept so that states are gymnasium's indices. ``exploring_starts`` draws the start
    uniformly from the 37 cells that are neither cliff nor goal (Sutton and Barto's exploring
    starts): an on-policy learner then visits the cells next to the cliff, which from the single
    start it learns to avoid long before it could learn that hugging them is optimal.
    """
    if not 0.0 <= slip <= 1.0:
        raise ValueError(f"stochastic_cliff_walking: slip = {slip} must lie in [0, 1]")
    if step_cost < 0 or cliff_cost < 0:
        raise ValueError(
            f"stochastic_cliff_walking: step_cost = {step_cost} and cliff_cost = {cliff_cost} "
            "must be >= 0 (they are paid as negative rewards)"
        )
    a_count = len(MOVES)
    start = START[0] * COLS + START[1]
    goal = GOAL[0] * COLS + GOAL[1]
    table: list[list[list[tuple[float, int, float, bool]]]] = []
    for row in range(ROWS):
        for col in range(COLS):
            per_action = []
            for a in range(a_count):
                # Outcomes keyed by (next, reward, terminal): moves that land alike merge (a wall
                # bump and a stay), a cliff return to the start and a step onto it do not.
                outcomes: dict[tuple[int, float, bool], float] = {}
                for move in range(a_count):
                    weight = slip / a_count + (1.0 - slip if move == a else 0.0)
                    if weight == 0.0:
                        continue
                    nr = min(max(row + MOVES[move][0], 0), ROWS - 1)
                    nc = min(max(col + MOVES[move][1], 0), COLS - 1)
                    nxt = nr * COLS + nc
                    reward, done = -step_cost, nxt == goal
                    if is_cliff(nr, nc):
                        reward, done = -cliff_cost, cliff_terminates
                        if not cliff_terminates:
                            nxt = start
                    key = (nxt, float(reward), bool(done))
                    outcomes[key] = outcomes.get(key, 0.0) + weight
                per_action.append([(w, n, rew, d) for (n, rew, d), w in outcomes.items()])
            table.append(per_action)
    initial: int | torch.Tensor = start
    if exploring_starts:
        cells = torch.tensor([0.0 if is_cliff(r, c) or (r, c) == GOAL else 1.0
                              for r in range(ROWS) for c in range(COLS)], dtype=torch.float64)
        initial = cells / cells.sum()
    return from_toy_text(table, initial, gamma=gamma, horizon=horizon, num_actions=a_count)


def cliffwalking_stochastic_env(
    device: torch.device | str = "cpu",
    max_episode_steps: int | None = 100,
    cliff_cost: float = CLIFF_COST,
    **kwargs: Any,
) -> TabularEnv:
    """``TabularEnv`` of :func:`stochastic_cliff_walking` (other keyword arguments go to it);
    ``max_episode_steps`` is the episode cap (default 100)."""
    if "horizon" in kwargs:
        raise TypeError("cliffwalking_stochastic: give the cap as max_episode_steps, not horizon")
    mdp = stochastic_cliff_walking(horizon=max_episode_steps, cliff_cost=cliff_cost, **kwargs)
    env = TabularEnv(mdp, device=device)
    env.name = "cliffwalking_stochastic"
    # A step paying the cliff cost is a fall (read by the ECRM agent's failure rate).
    env.failure_reward = -float(cliff_cost)  # type: ignore[attr-defined]
    return env


cliffwalking_stochastic_env.gymnasium_name = "CliffWalkingStochastic"  # type: ignore[attr-defined]
