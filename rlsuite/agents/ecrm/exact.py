"""Exact expected conditional risk measures (ECRMs) of tabular policies, and their gradients.

Definitions (Yu and Ying, arXiv 2301.10932, after Homem-de-Mello and Pagnoncelli 2016; the
details are reconstructed in ``docs/ecrm.md``), in the suite's *reward* convention
(rewards maximized, risk of a reward from its lower tail; the ECRM of costs ``c`` is minus the
ECRM of rewards ``-c``)::

    rho(Z | F)  = (1 - lam) E[Z | F] + lam CVaR_alpha[Z | F]         (lower tail, mass alpha)
    ECRM(pi)    = E[R_1] + sum_{t >= 2} gamma^(t-1) E[ rho(R_t | s_{t-1}, a_{t-1}) ]

``R_t`` is the reward of step ``t`` (drawn from the outcome of ``(s_t, a_t)``); the first step
acts with ``first_policy``, every later step with ``policy`` (the paper's separate first-step
policy). Stage ``t``'s risk is conditional on the previous state *and action* (the conditioning
chosen in ``docs/ecrm.md``). Episodes that terminate continue in a zero-reward absorbing state,
so ``R_t | (s_{t-1}, a_{t-1})`` has an atom at 0 of the termination probability; the stage after
the time limit ``H`` does not exist.

With the Rockafellar-Uryasev (RU) threshold ``eta(s, a)``, decided together with ``a`` at ``s``,
the per-stage objective becomes an expectation (the threshold is chosen one stage ahead)::

    g_eta(s, a) = (1 - lam) E[R'] + lam (eta(s, a) + E[min(R' - eta(s, a), 0)] / alpha)
    J(pi, eta)  = E[R_1] + sum_{t >= 2} gamma^(t-1) E[ g_eta(s_{t-1}, a_{t-1}) ]
    ECRM(pi)    = max_eta J(pi, eta),  attained at eta*(s, a) = VaR_alpha(R' | s, a) (lower)

(``R'`` is the next step's reward given ``(s, a)``: next state, next action from ``policy``,
next outcome.) In the cost convention the same is a minimum over ``eta``. Because ``policy`` is
stationary and the MDP time-homogeneous, ``R' | (s, a)`` does not depend on the stage, so one
threshold table is exact for every stage, and the sum over stages is a DP over remaining stages
(finite horizon) or a linear solve (no horizon, ``gamma < 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlsuite.envs.tabular.mdp import TabularMDP
from rlsuite.risk import mean_cvar, rockafellar_uryasev, value_at_risk


def _check_policy(
    mdp: TabularMDP, policy: torch.Tensor, name: str, conditioned: bool = False
) -> torch.Tensor:
    shape = (mdp.num_states, mdp.num_actions)
    if conditioned:
        shape = shape + shape
    if tuple(policy.shape) != shape:
        want = "[S, A, S, A]" if conditioned else "[S, A]"
        raise ValueError(f"{name} has shape {tuple(policy.shape)}; expected {want} = {shape}")
    pi = policy.to(torch.float64)
    if bool((pi.detach() < -1e-12).any()):
        raise ValueError(f"{name} has a negative probability: min {pi.detach().min().item():.3g}")
    sums = pi.detach().sum(-1)
    if bool(((sums - 1.0).abs() > 1e-6).any()):
        bad = tuple(int(i) for i in ((sums - 1.0).abs() > 1e-6).nonzero()[0])
        where = bad[0] if len(bad) == 1 else list(bad)
        raise ValueError(f"{name}[{where}] sums to {sums[bad].item():.10g}; expected 1")
    return pi


def _check_risk(alpha: float, lam: float) -> None:
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha = {alpha!r} must be a tail mass in (0, 1]")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam = {lam!r} must lie in [0, 1]")


def _horizon(mdp: TabularMDP, horizon: int | None) -> int | None:
    h = mdp.horizon if horizon is None else horizon
    if h is not None and (isinstance(h, bool) or int(h) != h or h < 1):
        raise ValueError(f"horizon = {h!r} must be a positive int")
    if h is None and mdp.gamma >= 1.0:
        raise ValueError(
            "exact ECRM without a horizon needs gamma < 1 (got gamma = 1 and horizon None); "
            "pass horizon=H"
        )
    return None if h is None else int(h)


def next_reward_distribution(
    mdp: TabularMDP, policy: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The law of the next step's reward ``R'`` given ``(s, a)``, under ``policy`` (``[S, A]``, or
    ``[S, A, S, A]`` conditioned on the previous pair: ``policy[s, a, s']`` is the action law at
    ``s'`` after ``(s, a)``).

    Returns ``(values, probs)``, both ``[S, A, N]`` float64 with ``N = K * A * K + 1``: atom
    ``(k, a', k')`` is outcome ``k`` of ``(s, a)`` continuing to ``s'``, action ``a'`` there and its
    outcome ``k'``; the last atom is the value 0 with the probability that ``(s, a)`` terminates
    (the zero-reward absorbing stage). Differentiable in ``policy``.
    """
    conditioned = policy.dim() == 4
    pi = _check_policy(mdp, policy, "policy", conditioned)
    s, a, k = mdp.num_states, mdp.num_actions, mdp.num_outcomes
    nxt = mdp.next_state  # [S, A, K]
    p_cont = torch.where(mdp.terminal, 0.0, mdp.prob)  # [S, A, K]
    values = mdp.reward[nxt]  # [S, A, K, A, K]: reward of outcome k' of (s', a')
    if conditioned:  # pi[s, a, s', a']: the action at s' after the pair (s, a)
        rows = torch.arange(s).view(s, 1, 1), torch.arange(a).view(1, a, 1)
        pi_next = pi[rows[0], rows[1], nxt]  # [S, A, K, A]
    else:
        pi_next = pi[nxt]
    probs = p_cont[..., None, None] * pi_next[..., None] * mdp.prob[nxt]
    values = torch.cat([values.reshape(s, a, -1), torch.zeros(s, a, 1, dtype=torch.float64)], -1)
    probs = torch.cat([probs.reshape(s, a, -1), mdp.terminal_prob.unsqueeze(-1)], -1)
    assert values.shape[-1] == k * a * k + 1
    return values, probs


def optimal_thresholds(mdp: TabularMDP, policy: torch.Tensor, alpha: float) -> torch.Tensor:
    """``eta*(s, a)``: the lower ``alpha``-quantile (VaR) of ``R' | (s, a)``, ``[S, A]``; it
    maximizes :func:`ru_objective` over ``eta`` (checked in ``docs/ecrm.md``, "Verification cases")."""
    values, probs = next_reward_distribution(mdp, policy)
    return value_at_risk(values, probs.detach(), alpha, tail="lower")


def stage_risk(mdp: TabularMDP, policy: torch.Tensor, alpha: float, lam: float) -> torch.Tensor:
    """``rho(R' | s, a)``, the mean-CVaR of the next reward given ``(s, a)``: ``[S, A]``."""
    _check_risk(alpha, lam)
    values, probs = next_reward_distribution(mdp, policy)
    return mean_cvar(values, probs, alpha, lam, tail="lower")


def _stage_sum(
    mdp: TabularMDP,
    policy: torch.Tensor,
    first_policy: torch.Tensor,
    per_pair: torch.Tensor,
    horizon: int | None,
) -> torch.Tensor:
    """``E[R_1] + sum_{t>=2} gamma^(t-1) E[per_pair(s_{t-1}, a_{t-1})]`` over stages ``2..H``."""
    gamma = mdp.gamma
    p_cont = mdp.P_continue  # [S, A, S]
    s, a = mdp.num_states, mdp.num_actions
    # pi_c[s, a, s', a']: the action law at s' after the pair (s, a) (a stationary policy ignores (s, a)).
    pi_c = policy if policy.dim() == 4 else policy.expand(s, a, s, a)
    if horizon is None:
        # W = per_pair + gamma M W with M[(s, a), (s', a')] = P_cont(s, a, s') pi(a' | s').
        m = (p_cont.unsqueeze(-1) * pi_c).reshape(s * a, s * a)
        eye = torch.eye(s * a, dtype=torch.float64)
        w = torch.linalg.solve(eye - gamma * m, per_pair.reshape(s * a)).reshape(s, a)
    else:
        # W_h: the value of the stages after (s, a) when h stages remain; W_0 = 0.
        w = torch.zeros(s, a, dtype=torch.float64)
        for _ in range(horizon - 1):
            w = per_pair + gamma * torch.einsum("sap,sapb,pb->sa", p_cont, pi_c, w)
    first = mdp.R + gamma * w
    return (mdp.initial.unsqueeze(-1) * first_policy * first).sum()


def exact_ecrm(
    mdp: TabularMDP,
    policy: torch.Tensor,
    alpha: float,
    lam: float,
    first_policy: torch.Tensor | None = None,
    horizon: int | None = None,
) -> torch.Tensor:
    """The exact ECRM of ``policy`` (rewards convention), a 0-d float64 tensor.

    Args:
        mdp: an episodic MDP; its ``horizon`` (or ``horizon``) is the number of stages. Without
            one, ``gamma < 1`` is required and the infinite sum is solved linearly.
        policy: ``[S, A]`` action probabilities of every step after the first, or ``[S, A, S, A]``
            conditioned on the previous pair (``policy[s, a, s']``: the law at ``s'`` after
            ``(s, a)``; the class that holds the exact optimum, ``docs/ecrm.md``, "Objective").
        alpha: CVaR tail mass in ``(0, 1]``; ``1`` gives the mean.
        lam: risk weight in ``[0, 1]``; ``0`` gives the expected return.
        first_policy: ``[S, A]`` first-step policy (default: ``policy``; required for a
            conditioned one).
        horizon: overrides ``mdp.horizon``.
    """
    _check_risk(alpha, lam)
    h = _horizon(mdp, horizon)
    conditioned = policy.dim() == 4
    pi = _check_policy(mdp, policy, "policy", conditioned)
    if conditioned and first_policy is None:
        raise ValueError("exact_ecrm: a conditioned policy [S, A, S, A] needs first_policy [S, A]")
    pi1 = pi if first_policy is None else _check_policy(mdp, first_policy, "first_policy")
    return _stage_sum(mdp, pi, pi1, stage_risk(mdp, pi, alpha, lam), h)


def optimal_conditioned_ecrm(
    mdp: TabularMDP, alpha: float, lam: float, horizon: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """The exact optimum of the ECRM over policies that see the previous pair (finite horizon).

    Returns ``(value, first_policy [S, A], rules)``: ``rules[h - 1]`` is the deterministic
    ``[S, A, S, A]`` decision rule used when ``h`` stages remain after the pair's own (the
    optimum is time-dependent in general; with ``horizon = 2`` there is one rule).

    DP over remaining stages (the optimum is Markov in ``(s_{t-1}, a_{t-1}, s_t)``).
    With ``W_0 = 0`` and ``R'`` the next reward after ``(s, a)`` (0 w.p. the termination
    probability), the RU form makes the choice at each pair an inner linear problem::

        W_h(s, a) = max_eta [ lam eta + (lam / alpha) p_term(s, a) min(-eta, 0)
                              + sum_s' P_cont(s, a, s') max_a' score_eta(s', a') ]
        score_eta(s', a') = (1 - lam) R(s', a') + (lam / alpha) E_k min(r(s', a', k) - eta, 0)
                            + gamma W_{h-1}(s', a')

    For a fixed ``eta`` the best rule is deterministic (the objective is linear in it), and the
    RU function of any rule is concave piecewise linear in ``eta`` with kinks at the reward
    atoms, so the max over ``eta`` is attained on the atoms (every reward value and 0). The first
    stage is risk neutral: ``first(s) = argmax_a R(s, a) + gamma W_{H-1}(s, a)``.
    """
    _check_risk(alpha, lam)
    h = _horizon(mdp, horizon)
    if h is None:
        raise ValueError("optimal_conditioned_ecrm needs a finite horizon (mdp.horizon or horizon=H)")
    s, a = mdp.num_states, mdp.num_actions
    gamma, p_cont = mdp.gamma, mdp.P_continue
    atoms = torch.unique(torch.cat([mdp.reward.reshape(-1), torch.zeros(1, dtype=torch.float64)]))
    # shortfall[e, s', a'] = E_k min(r(s', a', k) - eta_e, 0)
    below = (mdp.reward.unsqueeze(0) - atoms.view(-1, 1, 1, 1)).clamp(max=0.0)
    shortfall = (mdp.prob.unsqueeze(0) * below).sum(-1)
    w = torch.zeros(s, a, dtype=torch.float64)
    rules: list[torch.Tensor] = []
    for _ in range(h - 1):
        score = (1.0 - lam) * mdp.R + (lam / alpha) * shortfall + gamma * w  # [E, S', A']
        best, best_a = score.max(-1)  # [E, S']
        own = lam * atoms.view(-1, 1, 1) + (lam / alpha) * mdp.terminal_prob.unsqueeze(0) * (
            -atoms.view(-1, 1, 1)).clamp(max=0.0)  # [E, S, A]
        per_eta = own + torch.einsum("sap,ep->esa", p_cont, best)  # [E, S, A]
        w, e_star = per_eta.max(0)  # [S, A]
        choice = best_a[e_star]  # [S, A, S']: the action at s' after (s, a)
        rules.insert(0, torch.nn.functional.one_hot(choice, a).to(torch.float64))
    first = mdp.R + gamma * w
    first_policy = torch.nn.functional.one_hot(first.argmax(-1), a).to(torch.float64)
    value = (mdp.initial * first.max(-1).values).sum()
    return value, first_policy, rules


def ru_objective(
    mdp: TabularMDP,
    policy: torch.Tensor,
    eta: torch.Tensor,
    alpha: float,
    lam: float,
    first_policy: torch.Tensor | None = None,
    horizon: int | None = None,
) -> torch.Tensor:
    """``J(pi, eta)``: the ECRM with every CVaR replaced by its RU function at ``eta [S, A]``.

    A lower bound on :func:`exact_ecrm` for every ``eta`` (rewards convention), equal to it at
    :func:`optimal_thresholds`. Differentiable in ``policy``, ``first_policy`` and ``eta``.
    """
    _check_risk(alpha, lam)
    h = _horizon(mdp, horizon)
    pi = _check_policy(mdp, policy, "policy")
    pi1 = pi if first_policy is None else _check_policy(mdp, first_policy, "first_policy")
    if tuple(eta.shape) != tuple(pi.shape):
        raise ValueError(f"eta has shape {tuple(eta.shape)}; expected [S, A] = {tuple(pi.shape)}")
    values, probs = next_reward_distribution(mdp, pi)
    mean = (values * probs).sum(-1)
    per_pair = (1.0 - lam) * mean + lam * rockafellar_uryasev(values, probs, alpha, eta, tail="lower")
    return _stage_sum(mdp, pi, pi1, per_pair, h)


@dataclass(frozen=True)
class ECRMGradients:
    """Analytic gradients of :func:`ru_objective`, all ``[S, A]`` float64."""

    first_policy: torch.Tensor
    """``dJ / d first_policy(a | s)`` (direct parameterization)."""
    policy: torch.Tensor
    """``dJ / d policy(a | s)`` (direct parameterization)."""
    eta: torch.Tensor
    """``dJ / d eta(s, a)``."""


def exact_gradients(
    mdp: TabularMDP,
    policy: torch.Tensor,
    eta: torch.Tensor,
    alpha: float,
    lam: float,
    first_policy: torch.Tensor | None = None,
    horizon: int | None = None,
) -> ECRMGradients:
    """Gradients of ``J(pi, eta)`` from the policy-gradient and quantile formulas (``docs/ecrm.md``).

    With ``d_t(s, a)`` the probability that step ``t`` is taken at ``(s, a)``::

        dJ/dpi1(a|s)  = mu(s) [R(s, a) + gamma W_{H-1}(s, a)]
        dJ/dpi(a'|s') = sum_{t=2..H} gamma^(t-1) sum_{s,a} d_{t-1}(s, a) P_cont(s, a, s')
                          [ h(s, a, s', a') + gamma W_{H-t}(s', a') ]
        h(s, a, s', a') = (1 - lam) R(s', a') + (lam / alpha) E_k min(r(s', a', k) - eta(s, a), 0)
        dJ/deta(s, a) = sum_{t=1..H-1} gamma^t d_t(s, a) lam [1 - P(R' < eta(s, a)) / alpha]

    ``h`` is stage ``t``'s own signal, which depends on the previous pair through its threshold
    (the causality rule of ``docs/ecrm.md``); ``W_h`` is the value of the ``h`` stages after a pair.
    Softmax gradients follow by :func:`softmax_gradient`. Needs a finite horizon.
    """
    _check_risk(alpha, lam)
    h = _horizon(mdp, horizon)
    if h is None:
        raise ValueError("exact_gradients needs a finite horizon (mdp.horizon or horizon=H)")
    pi = _check_policy(mdp, policy, "policy").detach()
    pi1 = pi if first_policy is None else _check_policy(mdp, first_policy, "first_policy").detach()
    eta = eta.detach().to(torch.float64)
    gamma, p_cont = mdp.gamma, mdp.P_continue
    values, probs = next_reward_distribution(mdp, pi)
    mean = (values * probs).sum(-1)
    per_pair = (1.0 - lam) * mean + lam * rockafellar_uryasev(values, probs, alpha, eta, tail="lower")
    # W[h] for h = 0 .. H-1.
    ws = [torch.zeros_like(pi)]
    for _ in range(h - 1):
        ws.append(per_pair + gamma * torch.einsum("sap,p->sa", p_cont, (pi * ws[-1]).sum(-1)))
    # h(s, a, s', a'): [S, A, S, A].
    shortfall = (mdp.reward.unsqueeze(0).unsqueeze(0) - eta[:, :, None, None, None]).clamp(max=0.0)
    signal = (1.0 - lam) * mdp.R + (lam / alpha) * (mdp.prob * shortfall).sum(-1)
    d = mdp.initial.unsqueeze(-1) * pi1  # d_1
    grad_first = mdp.initial.unsqueeze(-1) * (mdp.R + gamma * ws[h - 1])
    grad_pi = torch.zeros_like(pi)
    below = torch.where(values < eta.unsqueeze(-1), probs, 0.0).sum(-1)
    grad_eta = torch.zeros_like(pi)
    for t in range(2, h + 1):
        disc = gamma ** (t - 1)
        grad_eta = grad_eta + disc * d * lam * (1.0 - below / alpha)
        reach = torch.einsum("sa,sap->sap", d, p_cont)  # d_{t-1}(s, a) P_cont(s, a, s')
        grad_pi = grad_pi + disc * (
            torch.einsum("sap,sapb->pb", reach, signal)
            + gamma * reach.sum((0, 1)).unsqueeze(-1) * ws[h - t]
        )
        d = reach.sum((0, 1)).unsqueeze(-1) * pi  # d_t
    return ECRMGradients(grad_first, grad_pi, grad_eta)


def softmax_gradient(probs: torch.Tensor, grad_probs: torch.Tensor) -> torch.Tensor:
    """Chain rule through a row-wise softmax: ``dJ/dtheta(s, a) = pi(a|s) (G(s, a) - sum_b
    pi(b|s) G(s, b))`` for ``G = dJ/dpi``, both ``[S, A]``."""
    return probs * (grad_probs - (probs * grad_probs).sum(-1, keepdim=True))
