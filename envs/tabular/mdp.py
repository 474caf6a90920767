"""A finite MDP as tensors, in the form exact solvers and the batched env both read.

Representation (``S`` states, ``A`` actions, ``K`` outcome slots per state-action)::

    next_state [S, A, K] int64    state reached by outcome k of (s, a)
    reward     [S, A, K] float64  reward of that outcome
    prob       [S, A, K] float64  its probability; unused slots hold 0 ("0-padded")
    terminal   [S, A, K] bool     the outcome ends the episode (toy-text ``terminated``)
    initial    [S]       float64  initial-state distribution
    gamma      float              discount in [0, 1]
    horizon    int | None         episode length limit (the env truncates there)

Outcomes, not a dense ``P[s, a, s']``, are the primary form: two outcomes may reach the same next
state with different rewards or termination (gymnasium's toy-text ``P[s][a]`` lists are exactly
this), which reward distributions (distributional DP) need. The dense views :attr:`TabularMDP.P`,
:attr:`TabularMDP.R` and :attr:`TabularMDP.P_continue` are derived from the outcomes.

Termination follows gymnasium's toy-text envs: a terminal outcome ends the episode *after* paying
its reward; the next state's value is not bootstrapped. So the Bellman backup is
``Q[s, a] = R[s, a] + gamma * sum_s' P_continue[s, a, s'] V[s']`` (:meth:`TabularMDP.backup`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import torch

from rlsuite.envs.tabular import alias as alias_lib

if TYPE_CHECKING:
    from rlsuite.envs.tabular.env import TabularParams

PROB_TOLERANCE = 1e-6
"""How far from 1 a probability row (or the initial distribution) may sum."""


@dataclass(frozen=True, eq=False)
class TabularMDP:
    """A finite MDP as outcome lists (see the module docstring for the layout).

    Construction converts array-likes to tensors (``next_state`` int64; ``reward``, ``prob``,
    ``initial`` float64; ``terminal`` bool) and validates everything; a bad value raises a
    ValueError naming the field, the state-action (and slot) and the value. The dense views and
    the alias tables are computed once, on first use, and cached: treat all tensors as read-only.
    """

    next_state: torch.Tensor
    """``[S, A, K]`` int64 next state of each outcome (padding slots: any valid state)."""
    reward: torch.Tensor
    """``[S, A, K]`` float64 reward of each outcome."""
    prob: torch.Tensor
    """``[S, A, K]`` float64 probability of each outcome; rows sum to 1, padding slots are 0."""
    terminal: torch.Tensor
    """``[S, A, K]`` bool, the outcome terminates the episode."""
    initial: torch.Tensor
    """``[S]`` float64 initial-state distribution."""
    gamma: float = 1.0
    """Discount factor in ``[0, 1]``."""
    horizon: int | None = None
    """Episode length limit (steps); ``None`` for none. The env reports ``truncated`` there."""

    def __post_init__(self) -> None:
        _coerce_and_validate(self)

    # -- sizes --------------------------------------------------------------------------------
    @property
    def num_states(self) -> int:
        """``S``."""
        return self.next_state.shape[0]

    @property
    def num_actions(self) -> int:
        """``A``."""
        return self.next_state.shape[1]

    @property
    def num_outcomes(self) -> int:
        """``K``, the outcome slots per state-action."""
        return self.next_state.shape[2]

    @property
    def device(self) -> torch.device:
        """Where the tensors live."""
        return self.next_state.device

    # -- solver views -------------------------------------------------------------------------
    @cached_property
    def P(self) -> torch.Tensor:  # noqa: N802 (the standard name)
        """``[S, A, S]`` float64 dense transition probabilities ``P[s, a, s']``."""
        return self._dense(self.prob)

    @cached_property
    def P_continue(self) -> torch.Tensor:  # noqa: N802
        """``[S, A, S]`` float64: ``P`` over non-terminal outcomes only (the part to bootstrap)."""
        return self._dense(torch.where(self.terminal, 0.0, self.prob))

    @cached_property
    def R(self) -> torch.Tensor:  # noqa: N802
        """``[S, A]`` float64 expected reward ``sum_k prob * reward``."""
        return (self.prob * self.reward).sum(-1)

    @cached_property
    def terminal_prob(self) -> torch.Tensor:
        """``[S, A]`` float64 probability that the step from ``(s, a)`` terminates."""
        return torch.where(self.terminal, self.prob, 0.0).sum(-1)

    def backup(self, values: torch.Tensor) -> torch.Tensor:
        """One Bellman backup: ``Q = R + gamma * P_continue @ V``.

        Args:
            values: ``[..., S]`` state values (leading dims are batch dims).

        Returns:
            ``[..., S, A]`` action values.
        """
        s, a = self.num_states, self.num_actions
        v = values.to(torch.float64)
        nxt = torch.matmul(v, self.P_continue.reshape(s * a, s).T)  # [..., S * A]
        return self.R + self.gamma * nxt.reshape(*v.shape[:-1], s, a)

    def _dense(self, weight: torch.Tensor) -> torch.Tensor:
        s, a, _ = self.next_state.shape
        out = torch.zeros(s, a, s, dtype=torch.float64, device=self.device)
        return out.scatter_add_(2, self.next_state, weight)

    # -- alias tables (for the env) -------------------------------------------------------------
    @cached_property
    def outcome_alias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Alias tables over the ``K`` outcomes of each ``(s, a)``: threshold float64 and alias
        slot int64, both ``[S, A, K]`` on the CPU (see :mod:`rlsuite.envs.tabular.alias`)."""
        return alias_lib.build(self.prob)

    @cached_property
    def initial_alias(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Alias tables ``([S] float64, [S] int64)`` of the initial distribution, on the CPU."""
        return alias_lib.build(self.initial)

    # -- conversions --------------------------------------------------------------------------
    def params(
        self,
        batch_size: int = 1,
        device: torch.device | str | None = None,
        horizon: int | None = None,
    ) -> TabularParams:
        """Env params for ``batch_size`` copies of this MDP, expanded (stride 0 over ``B``).

        ``horizon`` overrides :attr:`horizon` (``None`` keeps it).
        """
        from rlsuite.envs.tabular.env import params_from_mdps

        base = params_from_mdps([self], device=device or self.device, horizon=horizon)
        return dataclasses.replace(
            base,
            **{
                f.name: getattr(base, f.name).expand(batch_size, *getattr(base, f.name).shape[1:])
                for f in dataclasses.fields(base)
            },
        )

    def to(self, device: torch.device | str) -> TabularMDP:
        """A copy with every tensor on ``device``."""
        return dataclasses.replace(
            self,
            next_state=self.next_state.to(device),
            reward=self.reward.to(device),
            prob=self.prob.to(device),
            terminal=self.terminal.to(device),
            initial=self.initial.to(device),
        )

    def to_toy_text(self) -> dict[int, dict[int, list[tuple[float, int, float, bool]]]]:
        """gymnasium's toy-text form ``P[s][a] = [(prob, next_state, reward, terminated), ...]``.

        Outcomes of probability 0 are left out (padding and explicit zeros look the same here).
        """
        prob, nxt = self.prob.tolist(), self.next_state.tolist()
        rew, term = self.reward.tolist(), self.terminal.tolist()
        return {
            s: {
                a: [
                    (prob[s][a][k], nxt[s][a][k], rew[s][a][k], term[s][a][k])
                    for k in range(self.num_outcomes)
                    if prob[s][a][k] > 0
                ]
                for a in range(self.num_actions)
            }
            for s in range(self.num_states)
        }

    def __repr__(self) -> str:
        return (
            f"TabularMDP(S={self.num_states}, A={self.num_actions}, K={self.num_outcomes}, "
            f"gamma={self.gamma}, horizon={self.horizon}, device={self.device})"
        )

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def from_dense(
        cls,
        P: torch.Tensor,  # noqa: N803
        R: torch.Tensor,  # noqa: N803
        initial: int | Sequence[float] | torch.Tensor,
        gamma: float = 1.0,
        horizon: int | None = None,
        terminal: torch.Tensor | None = None,
    ) -> TabularMDP:
        """Build from dense tensors.

        Args:
            P: ``[S, A, S]`` transition probabilities.
            R: ``[S, A]`` expected rewards, or ``[S, A, S]`` reward of each transition.
            initial: a start state index or an ``[S]`` distribution.
            terminal: optional bool, ``[S]`` (entering ``s'`` ends the episode) or ``[S, A, S]``
                (the transition ``s, a -> s'`` ends it). Default: nothing terminates.

        The outcomes of ``(s, a)`` are its next states of positive probability, in increasing
        order; ``K`` is the largest number of them over all ``(s, a)``.
        """
        p = torch.as_tensor(P, dtype=torch.float64)
        if p.dim() != 3 or p.shape[0] != p.shape[2]:
            raise ValueError(f"from_dense: P must have shape [S, A, S]; got {tuple(p.shape)}")
        s, a, _ = p.shape
        r = torch.as_tensor(R, dtype=torch.float64, device=p.device)
        if r.shape == (s, a):
            r = r.unsqueeze(-1).expand(s, a, s)
        elif r.shape != (s, a, s):
            raise ValueError(
                f"from_dense: R must have shape [S, A] = {(s, a)} or [S, A, S] = {(s, a, s)}; "
                f"got {tuple(r.shape)}"
            )
        if terminal is None:
            term = torch.zeros(s, a, s, dtype=torch.bool, device=p.device)
        else:
            term = torch.as_tensor(terminal, device=p.device).to(torch.bool)
            if term.shape == (s,):
                term = term.expand(s, a, s)
            elif term.shape != (s, a, s):
                raise ValueError(
                    f"from_dense: terminal must have shape [S] = {(s,)} or [S, A, S]; "
                    f"got {tuple(term.shape)}"
                )
        support = p != 0
        k = max(int(support.sum(-1).max()), 1)
        # Stable sort puts the support first, in increasing s'; the tail are 0-prob padding slots.
        order = torch.argsort((~support).to(torch.int8), dim=-1, stable=True)[..., :k]
        return cls(
            next_state=order,
            reward=r.gather(-1, order),
            prob=p.gather(-1, order),
            terminal=term.gather(-1, order),
            initial=initial_distribution(initial, s),
            gamma=gamma,
            horizon=horizon,
        )

    @classmethod
    def from_toy_text(
        cls,
        P: Mapping[int, Mapping[int, Sequence[tuple[float, int, float, bool]]]]  # noqa: N803
        | Sequence[Sequence[Sequence[tuple[float, int, float, bool]]]],
        initial: int | Sequence[float] | torch.Tensor,
        gamma: float = 1.0,
        horizon: int | None = None,
        num_actions: int | None = None,
    ) -> TabularMDP:
        """Build from gymnasium's toy-text ``P[s][a] = [(prob, next_state, reward, terminated)]``.

        See :func:`rlsuite.envs.tabular.toy_text.from_toy_text`.
        """
        from rlsuite.envs.tabular.toy_text import from_toy_text

        return from_toy_text(P, initial, gamma=gamma, horizon=horizon, num_actions=num_actions)

    @classmethod
    def from_gymnasium(cls, env: Any, **kwargs: Any) -> TabularMDP:
        """Build from a gymnasium toy-text env or its id (``"FrozenLake-v1"``).

        See :func:`rlsuite.envs.tabular.catalog.from_gymnasium`.
        """
        from rlsuite.envs.tabular.catalog import from_gymnasium

        return from_gymnasium(env, **kwargs)


def initial_distribution(
    initial: int | Sequence[float] | torch.Tensor, num_states: int
) -> torch.Tensor:
    """``[S]`` float64 distribution from a start state index or a probability vector."""
    index_tensor = (
        isinstance(initial, torch.Tensor) and initial.dim() == 0 and not initial.is_floating_point()
    )
    if isinstance(initial, int) or index_tensor:
        index = int(initial)
        if not 0 <= index < num_states:
            raise ValueError(f"initial state {index} is out of range [0, {num_states})")
        out = torch.zeros(num_states, dtype=torch.float64)
        out[index] = 1.0
        return out
    return torch.as_tensor(initial, dtype=torch.float64)


def _first(mask: torch.Tensor) -> tuple[tuple[int, ...], int]:
    """Index of the first True entry of ``mask`` and the number of True entries."""
    where = mask.nonzero()
    return tuple(where[0].tolist()), where.shape[0]


def _more(count: int) -> str:
    return f" (and {count - 1} more)" if count > 1 else ""


def _coerce_and_validate(mdp: TabularMDP) -> None:
    """Convert the fields to their dtypes in place (frozen dataclass) and check every invariant."""

    def put(name: str, value: Any) -> None:
        object.__setattr__(mdp, name, value)

    nxt = torch.as_tensor(mdp.next_state)
    if nxt.is_floating_point() or nxt.is_complex() or nxt.dtype == torch.bool:
        raise ValueError(f"TabularMDP.next_state must hold integers; got dtype {nxt.dtype}")
    if nxt.dim() != 3 or min(nxt.shape) < 1:
        raise ValueError(
            f"TabularMDP.next_state must have shape [S, A, K] with S, A, K >= 1; "
            f"got {tuple(nxt.shape)}"
        )
    device = nxt.device
    shape = tuple(nxt.shape)
    s_count = shape[0]
    put("next_state", nxt.to(torch.int64))
    for name, dtype in (("reward", torch.float64), ("prob", torch.float64), ("terminal", None)):
        value = torch.as_tensor(getattr(mdp, name), device=device)
        if tuple(value.shape) != shape:
            raise ValueError(
                f"TabularMDP.{name} has shape {tuple(value.shape)}; expected [S, A, K] = {shape} "
                "(the shape of next_state)"
            )
        if name == "terminal" and value.dtype != torch.bool:
            if value.is_floating_point() or not bool(((value == 0) | (value == 1)).all()):
                raise ValueError(
                    f"TabularMDP.terminal must be bool (or 0/1); got dtype {value.dtype}"
                )
        put(name, value.to(dtype or torch.bool))
    initial = torch.as_tensor(mdp.initial, device=device).to(torch.float64)
    if tuple(initial.shape) != (s_count,):
        raise ValueError(
            f"TabularMDP.initial has shape {tuple(initial.shape)}; expected [S] = ({s_count},)"
        )
    put("initial", initial)

    prob, reward, nxt = mdp.prob, mdp.reward, mdp.next_state
    bad = ~torch.isfinite(prob)
    if bool(bad.any()):
        (s, a, k), n = _first(bad)
        raise ValueError(
            f"TabularMDP.prob[s={s}, a={a}, k={k}] = {prob[s, a, k].item()} is not finite"
            f"{_more(n)}"
        )
    bad = prob < 0
    if bool(bad.any()):
        (s, a, k), n = _first(bad)
        raise ValueError(
            f"TabularMDP.prob[s={s}, a={a}, k={k}] = {prob[s, a, k].item()} is negative{_more(n)}"
        )
    sums = prob.sum(-1)
    bad = (sums - 1.0).abs() > PROB_TOLERANCE
    if bool(bad.any()):
        (s, a), n = _first(bad)
        raise ValueError(
            f"TabularMDP.prob[s={s}, a={a}] sums to {sums[s, a].item():.10g}; expected 1 "
            f"(tolerance {PROB_TOLERANCE}){_more(n)}"
        )
    bad = (nxt < 0) | (nxt >= s_count)
    if bool(bad.any()):
        (s, a, k), n = _first(bad)
        raise ValueError(
            f"TabularMDP.next_state[s={s}, a={a}, k={k}] = {nxt[s, a, k].item()} is out of range "
            f"[0, {s_count}){_more(n)}"
        )
    bad = ~torch.isfinite(reward)
    if bool(bad.any()):
        (s, a, k), n = _first(bad)
        raise ValueError(
            f"TabularMDP.reward[s={s}, a={a}, k={k}] = {reward[s, a, k].item()} is not finite"
            f"{_more(n)}"
        )

    bad = ~torch.isfinite(initial) | (initial < 0)
    if bool(bad.any()):
        (s,), n = _first(bad)
        raise ValueError(
            f"TabularMDP.initial[{s}] = {initial[s].item()} must be finite and nonnegative"
            f"{_more(n)}"
        )
    total = initial.sum().item()
    if abs(total - 1.0) > PROB_TOLERANCE:
        raise ValueError(
            f"TabularMDP.initial sums to {total:.10g}; expected 1 (tolerance {PROB_TOLERANCE})"
        )

    gamma = mdp.gamma
    if isinstance(gamma, torch.Tensor):
        gamma = gamma.item()
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0.0 <= gamma <= 1.0:
        raise ValueError(f"TabularMDP.gamma = {mdp.gamma!r} must be a number in [0, 1]")
    put("gamma", float(gamma))
    horizon = mdp.horizon
    if horizon is not None:
        if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
            raise ValueError(f"TabularMDP.horizon = {horizon!r} must be a positive int or None")
        put("horizon", int(horizon))
