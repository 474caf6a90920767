"""Model-based references for the ECRM results: exact state visits of a tabular policy, and the
natural policy gradient with exact Q (the exact-evaluation counterpart of the sampled NPG agent).

Both need the MDP itself (a :class:`~rlsuite.envs.tabular.mdp.TabularMDP` with a finite horizon);
``results/ecrm.md`` uses them as reference rows and path heatmaps next to the learned policies.
"""

from __future__ import annotations

import torch

from rlsuite.agents.ecrm.exact import _check_policy, _horizon, exact_gradients, optimal_thresholds
from rlsuite.envs.tabular.mdp import TabularMDP


def later_stage_visits(mdp: TabularMDP, policy: torch.Tensor, first_policy: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """``[S]`` expected number of visits per episode of each state at stages ``2 .. H`` (the
    stages that act with ``policy``; stage 1 acts with ``first_policy``, default ``policy``).

    Terminated episodes stop counting (``P_continue``), so the total is the expected episode
    length minus one."""
    h = _horizon(mdp, None)
    if h is None:
        raise ValueError("later_stage_visits needs a finite horizon (mdp.horizon)")
    pi = _check_policy(mdp, policy, "policy")
    pi1 = pi if first_policy is None else _check_policy(mdp, first_policy, "first_policy")
    d = mdp.initial.unsqueeze(-1) * pi1  # d_1(s, a)
    visits = torch.zeros(mdp.num_states, dtype=torch.float64)
    for _ in range(2, h + 1):
        nxt = torch.einsum("sa,sap->p", d, mdp.P_continue)
        visits += nxt
        d = nxt.unsqueeze(-1) * pi
    return visits


def state_visits(mdp: TabularMDP, policy: torch.Tensor, first_policy: torch.Tensor | None = None
                 ) -> torch.Tensor:
    """``[S]`` expected visits per episode of each state (every stage; sums to the expected
    episode length)."""
    return mdp.initial.to(torch.float64) + later_stage_visits(mdp, policy, first_policy)


def exact_q_npg(mdp: TabularMDP, alpha: float, lam: float, iters: int = 300, step: float = 0.05
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The softmax NPG with exact Q from a uniform policy: ``(policy, first_policy)``, ``[S, A]``.

    Each iteration takes the exact gradients at the optimal thresholds
    (:func:`~rlsuite.agents.ecrm.exact.exact_gradients`), divides them by the visits of the
    stages each policy acts in (the natural gradient of a softmax table is its Q: the visit
    frequency cancels), centres them per state and moves the logits by ``step`` times that
    advantage (states never visited stay put). No entropy bonus.
    """
    if iters < 0 or step <= 0:
        raise ValueError(f"exact_q_npg: iters={iters!r} must be >= 0 and step={step!r} > 0")
    th = torch.zeros(mdp.num_states, mdp.num_actions, dtype=torch.float64)
    th1 = torch.zeros_like(th)
    for _ in range(iters):
        pi, pi1 = th.softmax(-1), th1.softmax(-1)
        g = exact_gradients(mdp, pi, optimal_thresholds(mdp, pi, alpha), alpha, lam, first_policy=pi1)
        visits = later_stage_visits(mdp, pi, pi1)
        for table, grad, dens in ((th, g.policy, visits), (th1, g.first_policy, mdp.initial)):
            q = grad / dens.clamp_min(1e-300).unsqueeze(-1)
            table += step * torch.where(dens.unsqueeze(-1) > 1e-12, q - q.mean(-1, keepdim=True), 0.0)
    return th.softmax(-1), th1.softmax(-1)
