"""Finite sa-rectangular uncertainty sets of tabular models, as products of per-``(s, a)`` choices.

An sa-rectangular set is a product over state-actions of independent sets of rows. With ``C``
candidate rows per uncertain ``(s, a)`` and ``U`` uncertain pairs the product has ``C^U`` models;
:func:`rectangular_product` lists them all, in ``itertools.product`` order (the first uncertain
pair, in row-major ``(s, a)`` order, varies slowest; choice 0 comes first), which is the order in
which the paper's brute-force worst-case search enumerates them (App. E: strict ``<``, so the
first minimizer wins). Used by the tests and :mod:`rlsuite.agents.iwocs.analysis`.

:func:`random_finite_set` draws the opposite case, a finite set that is not rectangular (used by
:func:`rlsuite.agents.iwocs.analysis.nonrectangular_gaps`).
"""

from __future__ import annotations

import itertools

import torch

from rlsuite.envs.tabular.mdp import TabularMDP


def rectangular_product(
    P: torch.Tensor,  # noqa: N803
    R: torch.Tensor,  # noqa: N803
    uncertain: torch.Tensor,
    initial: int | torch.Tensor,
    gamma: float,
    terminal: torch.Tensor | None = None,
    max_models: int = 100_000,
) -> list[TabularMDP]:
    """Every model of the product set.

    Args:
        P: ``[C, S, A, S]`` candidate transition rows (choice ``c`` of pair ``(s, a)`` is
            ``P[c, s, a]``).
        R: ``[C, S, A]`` or ``[C, S, A, S]`` rewards of each candidate.
        uncertain: ``[S, A]`` bool; a certain pair always uses choice 0.
        initial: start state or ``[S]`` distribution.
        gamma: discount.
        terminal: optional ``[C, S, A, S]`` bool (which transitions end the episode).

    Raises:
        ValueError: on inconsistent shapes or when ``C^U`` exceeds ``max_models``.
    """
    p = torch.as_tensor(P, dtype=torch.float64)
    if p.dim() != 4 or p.shape[1] != p.shape[3]:
        raise ValueError(f"rectangular_product: P must be [C, S, A, S]; got {tuple(p.shape)}")
    c, s, a, _ = p.shape
    r = torch.as_tensor(R, dtype=torch.float64)
    if tuple(r.shape[:3]) != (c, s, a):
        raise ValueError(f"rectangular_product: R must be [C, S, A(, S)] = {(c, s, a)}; "
                         f"got {tuple(r.shape)}")
    unc = torch.as_tensor(uncertain, dtype=torch.bool)
    if tuple(unc.shape) != (s, a):
        raise ValueError(f"rectangular_product: uncertain must be [S, A] = {(s, a)}; "
                         f"got {tuple(unc.shape)}")
    pairs = unc.nonzero().tolist()
    count = c ** len(pairs)
    if count > max_models:
        raise ValueError(f"rectangular_product: {c}^{len(pairs)} = {count} models exceeds "
                         f"max_models={max_models}")
    models = []
    for combo in itertools.product(range(c), repeat=len(pairs)):
        choice = torch.zeros(s, a, dtype=torch.int64)
        for (si, ai), ci in zip(pairs, combo, strict=True):
            choice[si, ai] = ci
        pick = choice[None, :, :, None]
        p_m = p.gather(0, pick.expand(1, s, a, s))[0]
        r_m = (r.gather(0, pick.expand(1, s, a, s))[0] if r.dim() == 4
               else r.gather(0, choice[None])[0])
        t_m = None if terminal is None else torch.as_tensor(terminal).gather(
            0, pick.expand(1, s, a, s))[0]
        models.append(TabularMDP.from_dense(p_m, r_m, initial, gamma=gamma, terminal=t_m))
    return models


def _random_rows(
    count: int, num_states: int, num_actions: int, sparsity: int, generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random candidates ``(P [count, S, A, S], R [count, S, A])``, float64: each row puts
    Dirichlet(1) mass on ``sparsity`` random next states; rewards are uniform in ``[0, 1]``."""
    c, s, a = count, num_states, num_actions
    if not 1 <= sparsity <= s:
        raise ValueError(f"sparsity = {sparsity} must be in [1, num_states = {s}]")
    support = torch.rand(c, s, a, s, generator=generator).argsort(-1)[..., :sparsity]
    weights = -torch.rand(c, s, a, sparsity, generator=generator, dtype=torch.float64).log()
    p = torch.zeros(c, s, a, s, dtype=torch.float64).scatter_(-1, support, weights)
    p = p / p.sum(-1, keepdim=True)
    r = torch.rand(c, s, a, generator=generator, dtype=torch.float64)
    return p, r


def random_rectangular_set(
    num_states: int, num_actions: int, num_choices: int, num_uncertain: int,
    gamma: float, generator: torch.Generator, sparsity: int = 2,
) -> list[TabularMDP]:
    """A random product set: ``num_uncertain`` random pairs each get ``num_choices`` random rows.

    Rows put mass on ``sparsity`` random next states (Dirichlet(1) weights); rewards are uniform in
    ``[0, 1]`` per candidate, so models differ in rewards as well as transitions. Start state 0.
    """
    s, a = num_states, num_actions
    p, r = _random_rows(num_choices, s, a, sparsity, generator)
    flat = torch.randperm(s * a, generator=generator)[:num_uncertain]
    unc = torch.zeros(s * a, dtype=torch.bool)
    unc[flat] = True
    return rectangular_product(p, r, unc.reshape(s, a), 0, gamma)


def random_finite_set(
    num_states: int, num_actions: int, num_models: int, gamma: float,
    generator: torch.Generator, sparsity: int = 2,
) -> list[TabularMDP]:
    """A random *non-rectangular* finite set: ``num_models`` independent random MDPs (rows and
    rewards drawn as in :func:`random_rectangular_set`), start state 0.

    Model ``m`` uses its own candidate ``m`` at every ``(s, a)`` at once: the set is the "diagonal"
    of the product set over the same candidates, so the adversary cannot mix one model's row at one
    state with another model's row elsewhere (the product, its sa-rectangular hull, could).
    """
    if num_models < 1:
        raise ValueError(f"random_finite_set: num_models = {num_models} must be >= 1")
    p, r = _random_rows(num_models, num_states, num_actions, sparsity, generator)
    return [TabularMDP.from_dense(p[m], r[m], 0, gamma=gamma) for m in range(num_models)]


def route_choice_set(p_high: float = 0.9, p_low: float = 0.3, safe_reward: float = 0.7,
                     gamma: float = 0.9) -> list[TabularMDP]:
    """The route-choice set on which first-minimizer tie-breaking stalls (4 models).

    States: 0 start, 1 short route, 2 long route. From 0, action 0 goes to 1 and action 1 to 2
    (reward 0). At 1 either action succeeds (reward 1, episode ends) with an uncertain probability
    in ``{p_high, p_low}`` (each action its own coordinate), else fails (reward 0, ends). At 2 both
    actions end the episode with the certain reward ``safe_reward``. Models, in product order:
    ``(high, high), (high, low), (low, high), (low, low)`` for ``(action 0, action 1)`` at state 1.

    With ``gamma * p_low < gamma * safe_reward < gamma * p_high`` the robust policy takes the long
    route (value ``gamma * safe_reward``), while the nominal model's policy takes the short one.
    Keeping the first of the equally bad models re-finds model 2 at the third iteration (see
    ``tests/test_iwocs_tabular.py``).
    """
    s, a = 3, 2
    p = torch.zeros(2, s, a, s, dtype=torch.float64)
    r = torch.zeros(2, s, a, s, dtype=torch.float64)
    term = torch.zeros(2, s, a, s, dtype=torch.bool)
    p[:, 0, 0, 1] = 1.0
    p[:, 0, 1, 2] = 1.0
    for c, prob in enumerate((p_high, p_low)):
        # Success and failure both end the episode; they need distinct next-state slots, so
        # success "goes" to state 0 and failure to state 1 (neither is bootstrapped).
        p[c, 1, :, 0] = prob
        p[c, 1, :, 1] = 1 - prob
        r[c, 1, :, 0] = 1.0
        term[c, 1, :, :] = True
    p[:, 2, :, 0] = 1.0
    r[:, 2, :, 0] = safe_reward
    term[:, 2, :, :] = True
    unc = torch.zeros(s, a, dtype=torch.bool)
    unc[1, :] = True
    return rectangular_product(p, r, unc, 0, gamma, terminal=term)
