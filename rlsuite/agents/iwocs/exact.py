"""Exact, batched dynamic programming over a finite set of tabular models.

A finite uncertainty set is a sequence of :class:`~rlsuite.envs.tabular.TabularMDP` sharing states,
actions, initial distribution and discount. :class:`ModelStack` stacks their dense views once
(``R [M, S, A]``, ``P_continue [M, S, A, S]``) so that every solver here is one batched tensor
program over the ``M`` models: exact policy evaluation is one batched ``torch.linalg.solve``,
optimal values come from batched policy iteration (exact, finite), so IWOCS's stopping test can be
checked with a tolerance near machine precision instead of the paper's VI tolerance (1e-3, App. E).

Discounting must be strict (``gamma < 1``): the exact evaluation solves ``(I - gamma P_pi) V = R_pi``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rlsuite.envs.tabular.mdp import TabularMDP

ACTION_TIE_TOL = 1e-12
"""Greedy improvement keeps the current action unless another is better by more than this
(policy iteration then cannot cycle between equally good actions)."""


@dataclass(frozen=True)
class ModelStack:
    """Dense views of ``M`` models over the same ``S`` states and ``A`` actions (float64)."""

    R: torch.Tensor  # noqa: N815
    """``[M, S, A]`` expected reward of each model."""
    P: torch.Tensor  # noqa: N815
    """``[M, S, A, S]`` non-terminal transition mass (``TabularMDP.P_continue``)."""
    initial: torch.Tensor
    """``[S]`` initial-state distribution (shared)."""
    gamma: float
    """Discount (shared, < 1)."""

    @property
    def num_models(self) -> int:
        """``M``."""
        return self.R.shape[0]

    @property
    def num_states(self) -> int:
        """``S``."""
        return self.R.shape[1]

    @property
    def num_actions(self) -> int:
        """``A``."""
        return self.R.shape[2]

    @staticmethod
    def from_models(models: Sequence[TabularMDP]) -> ModelStack:
        """Stack ``models``; a mismatch in shape, initial distribution or discount is an error
        naming the first offending model and field."""
        if len(models) == 0:
            raise ValueError("models: the uncertainty set is empty")
        ref = models[0]
        for i, m in enumerate(models):
            if not isinstance(m, TabularMDP):
                raise TypeError(f"models[{i}] is {type(m).__name__}, expected TabularMDP")
            if (m.num_states, m.num_actions) != (ref.num_states, ref.num_actions):
                raise ValueError(
                    f"models[{i}] has (S, A) = {(m.num_states, m.num_actions)}; models[0] has "
                    f"{(ref.num_states, ref.num_actions)} (all models must share states and actions)"
                )
            if m.gamma != ref.gamma:
                raise ValueError(f"models[{i}].gamma = {m.gamma}; models[0].gamma = {ref.gamma}")
            if not torch.allclose(m.initial.cpu(), ref.initial.cpu(), atol=1e-12, rtol=0):
                raise ValueError(f"models[{i}].initial differs from models[0].initial "
                                 "(the initial distribution must be shared)")
        if not ref.gamma < 1.0:
            raise ValueError(f"models[0].gamma = {ref.gamma}: exact evaluation needs gamma < 1")
        device = ref.device
        return ModelStack(
            R=torch.stack([m.R.to(device) for m in models]),
            P=torch.stack([m.P_continue.to(device) for m in models]),
            initial=ref.initial,
            gamma=ref.gamma,
        )

    def subset(self, index: Sequence[int] | torch.Tensor) -> ModelStack:
        """The models at ``index`` (in that order)."""
        idx = torch.as_tensor(index, dtype=torch.int64, device=self.R.device)
        return ModelStack(self.R[idx], self.P[idx], self.initial, self.gamma)


def evaluate_policies(stack: ModelStack, policies: torch.Tensor) -> torch.Tensor:
    """Exact values of deterministic policies under every model.

    Args:
        stack: ``M`` models.
        policies: ``[N, S]`` int64 actions (or ``[S]`` for one policy).

    Returns:
        ``[N, M, S]`` float64 ``V^pi_T(s)`` (``[M, S]`` for one policy): one batched solve of
        ``(I - gamma P_pi) V = R_pi`` over all ``N * M`` pairs.
    """
    single = policies.dim() == 1
    pol = policies.reshape(-1, stack.num_states).to(stack.R.device)
    n, (m, s, a) = pol.shape[0], stack.R.shape
    # Gather each policy's rows: P_pi[n, m, s, :] = P[m, s, pi_n(s), :].
    idx_p = pol[:, None, :, None, None].expand(n, m, s, 1, s)
    p_pi = stack.P[None].expand(n, m, s, a, s).gather(3, idx_p).squeeze(3)
    r_pi = stack.R[None].expand(n, m, s, a).gather(3, pol[:, None, :, None].expand(n, m, s, 1))
    eye = torch.eye(s, dtype=torch.float64, device=stack.R.device)
    values = torch.linalg.solve(eye - stack.gamma * p_pi, r_pi).squeeze(-1)
    return values[0] if single else values


def q_from_values(stack: ModelStack, values: torch.Tensor) -> torch.Tensor:
    """``Q[..., m, s, a] = R[m, s, a] + gamma * sum_s' P[m, s, a, s'] V[..., m, s']``."""
    return stack.R + stack.gamma * torch.einsum("msat,...mt->...msa", stack.P, values)


def greedy(q: torch.Tensor, current: torch.Tensor | None = None) -> torch.Tensor:
    """``argmax_a q[..., a]``, lowest action on exact ties; with ``current``, keep the current
    action unless another beats it by more than :data:`ACTION_TIE_TOL`."""
    best = q.argmax(-1)
    if current is None:
        return best
    q_cur = q.gather(-1, current.unsqueeze(-1)).squeeze(-1)
    improves = q.max(-1).values > q_cur + ACTION_TIE_TOL
    return torch.where(improves, best, current)


@dataclass(frozen=True)
class OptimalSolution:
    """Optimal values of each model, ``[M, ...]``."""

    q: torch.Tensor
    """``[M, S, A]`` ``Q*_T``."""
    values: torch.Tensor
    """``[M, S]`` ``V*_T``."""
    policy: torch.Tensor
    """``[M, S]`` an optimal deterministic policy per model."""


def solve_models(stack: ModelStack, max_iterations: int = 1000) -> OptimalSolution:
    """Optimal ``Q*`` of every model by batched policy iteration (exact: it ends when no policy
    changes, after finitely many steps).

    Raises:
        RuntimeError: if some policy still changes after ``max_iterations`` improvements.
    """
    m, s, _ = stack.R.shape
    policy = stack.R.argmax(-1)  # [M, S]: greedy in the immediate reward
    eye = torch.eye(s, dtype=torch.float64, device=stack.R.device)
    rows = torch.arange(m, device=stack.R.device)[:, None]
    states = torch.arange(s, device=stack.R.device)[None, :]
    for _ in range(max_iterations):
        p_pi = stack.P[rows, states, policy]  # [M, S, S]
        r_pi = stack.R[rows, states, policy]  # [M, S]
        values = torch.linalg.solve(eye - stack.gamma * p_pi, r_pi.unsqueeze(-1)).squeeze(-1)
        q = stack.R + stack.gamma * torch.einsum("msat,mt->msa", stack.P, values)
        new = greedy(q, policy)
        if bool((new == policy).all()):
            return OptimalSolution(q, values, policy)
        policy = new
    raise RuntimeError(f"solve_models: policy iteration did not settle in {max_iterations} steps")


def start_value(stack: ModelStack, values: torch.Tensor) -> torch.Tensor:
    """``sum_s initial(s) V[..., s]``: the value from the initial distribution."""
    return values @ stack.initial
