"""gymnasium's toy-text transition dicts to :class:`TabularMDP` tensors.

gymnasium's FrozenLake, CliffWalking and Taxi (``gymnasium/envs/toy_text/*.py``) keep their whole
dynamics in ``env.P[s][a]``, a list of ``(prob, next_state, reward, terminated)`` tuples sampled
by ``categorical_sample`` in ``step``. Outcome ``i`` of that list becomes slot ``k = i`` of the
``[S, A, K]`` tensors; shorter lists are padded with probability-0 slots (next state ``s``,
reward 0, not terminal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import torch

from rlsuite.envs.tabular.mdp import TabularMDP, initial_distribution

Outcome = tuple[float, int, float, bool]
ToyTextP = Mapping[int, Mapping[int, Sequence[Outcome]]] | Sequence[Sequence[Sequence[Outcome]]]
"""``P[s][a] = [(prob, next_state, reward, terminated), ...]``, as dicts or lists."""


def _keys(container: Any) -> list[int]:
    if isinstance(container, Mapping):
        return list(container.keys())
    return list(range(len(container)))


def from_toy_text(
    P: ToyTextP,  # noqa: N803
    initial: int | Sequence[float] | torch.Tensor,
    gamma: float = 1.0,
    horizon: int | None = None,
    num_actions: int | None = None,
) -> TabularMDP:
    """Build a :class:`TabularMDP` from a toy-text transition dict.

    Args:
        P: ``P[s][a]`` lists of ``(prob, next_state, reward, terminated)``; states must be
            ``0 .. S-1`` and every state must have every action ``0 .. A-1``.
        initial: a start state index or an ``[S]`` probability vector (gymnasium's
            ``initial_state_distrib``).
        gamma: discount factor.
        horizon: episode length limit (``None`` for none).
        num_actions: ``A``; by default one more than the largest action of any state.

    Raises:
        ValueError: naming the state, action (and outcome) of a missing action, a malformed
            outcome, or any invalid value found by :class:`TabularMDP`'s checks.
    """
    states = _keys(P)
    num_states = len(states)
    if num_states == 0:
        raise ValueError("P has no states")
    if sorted(states) != list(range(num_states)):
        missing = sorted(set(range(num_states)) - set(states))
        raise ValueError(
            f"P's states must be 0..{num_states - 1}; "
            + (f"state {missing[0]} is missing" if missing else f"got keys {sorted(states)[:10]}")
        )
    if num_actions is None:
        num_actions = 1 + max((max(_keys(P[s]), default=-1) for s in range(num_states)), default=-1)
    if num_actions < 1:
        raise ValueError("P has no actions")
    for s in range(num_states):
        actions = set(_keys(P[s]))
        for a in range(num_actions):
            if a not in actions:
                raise ValueError(
                    f"P[{s}] has no action {a} (every state needs actions 0..{num_actions - 1})"
                )
        extra = sorted(actions - set(range(num_actions)))
        if extra:
            raise ValueError(f"P[{s}] has action {extra[0]} outside 0..{num_actions - 1}")

    k = max(len(P[s][a]) for s in range(num_states) for a in range(num_actions))
    if k == 0:
        raise ValueError("P has no outcomes at all")
    shape = (num_states, num_actions, k)
    prob = torch.zeros(shape, dtype=torch.float64)
    reward = torch.zeros(shape, dtype=torch.float64)
    terminal = torch.zeros(shape, dtype=torch.bool)
    next_state = torch.arange(num_states).view(-1, 1, 1).repeat(1, num_actions, k)
    prob_l, reward_l = prob.tolist(), reward.tolist()
    term_l, next_l = terminal.tolist(), next_state.tolist()
    for s in range(num_states):
        for a in range(num_actions):
            outcomes = P[s][a]
            if len(outcomes) == 0:
                raise ValueError(
                    f"P[{s}][{a}] has no outcomes; its probabilities sum to 0, expected 1"
                )
            for i, outcome in enumerate(outcomes):
                if len(outcome) != 4:
                    raise ValueError(
                        f"P[{s}][{a}][{i}] = {outcome!r} must be "
                        "(prob, next_state, reward, terminated)"
                    )
                p, ns, r, t = outcome
                where = f"P[{s}][{a}][{i}] = {outcome!r}"
                if not isinstance(p, Real) or not isinstance(r, Real):
                    raise ValueError(f"{where}: prob and reward must be numbers")
                integral = isinstance(ns, Integral) or (
                    isinstance(ns, Real) and float(ns).is_integer()
                )
                if not integral:
                    raise ValueError(f"{where}: next_state must be an integer")
                prob_l[s][a][i], next_l[s][a][i] = float(p), int(ns)
                reward_l[s][a][i], term_l[s][a][i] = float(r), bool(t)
    return TabularMDP(
        next_state=torch.tensor(next_l, dtype=torch.int64),
        reward=torch.tensor(reward_l, dtype=torch.float64),
        prob=torch.tensor(prob_l, dtype=torch.float64),
        terminal=torch.tensor(term_l, dtype=torch.bool),
        initial=initial_distribution(_as_initial(initial), num_states),
        gamma=gamma,
        horizon=horizon,
    )


def _as_initial(initial: Any) -> int | Sequence[float] | torch.Tensor:
    """numpy integers count as a state index; anything else is a probability vector."""
    if isinstance(initial, Integral) and not isinstance(initial, bool):
        return int(initial)
    return initial
