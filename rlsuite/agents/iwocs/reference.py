"""Reference solvers for a finite uncertainty set: robust value iteration and brute force.

* :func:`robust_value_iteration` solves the sa-rectangular robust MDP whose set at each
  ``(s, a)`` is the set of that state-action's rows among the given models (the sa-rectangular
  hull of the set, Wiesemann et al. 2013):
  ``V(s) = max_a min_m [R_m(s, a) + gamma sum_s' P_m(s, a, s') V(s')]``. When the given set *is*
  sa-rectangular (a product of per-``(s, a)`` choices), its value equals the static robust value
  ``max_pi min_T V^pi_T`` (IWOCS paper, App. B: Iyengar 2005 Lemma 3.3 + no duality gap).
* :func:`brute_force` enumerates every deterministic stationary policy and evaluates it exactly
  under every model: ``max_pi min_m V^pi_m(initial)``, with no rectangularity assumption.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rlsuite.agents.iwocs.exact import ModelStack, evaluate_policies, greedy, start_value
from rlsuite.envs.tabular.mdp import TabularMDP


@dataclass(frozen=True)
class RobustSolution:
    """Result of a reference solver."""

    policy: torch.Tensor
    """``[S]`` int64 robust (greedy / best) deterministic policy."""
    value: float
    """Its worst-case value from the initial distribution."""
    values: torch.Tensor
    """``[S]`` robust state values (robust VI) or the policy's worst-case state values."""


def _stack(models: Sequence[TabularMDP] | ModelStack) -> ModelStack:
    return models if isinstance(models, ModelStack) else ModelStack.from_models(models)


def robust_value_iteration(
    models: Sequence[TabularMDP] | ModelStack, tol: float = 1e-13, max_iterations: int = 100_000
) -> RobustSolution:
    """sa-rectangular robust value iteration over the models' rows (see the module docstring).

    Iterates the robust Bellman operator (a gamma-contraction) until the sup-norm change is below
    ``tol``; the reported value is then within ``tol * gamma / (1 - gamma)`` of the fixed point.

    Raises:
        RuntimeError: when ``max_iterations`` sweeps do not reach ``tol``.
    """
    stack = _stack(models)
    values = torch.zeros(stack.num_states, dtype=torch.float64, device=stack.R.device)
    for _ in range(max_iterations):
        q = (stack.R + stack.gamma * torch.einsum("msat,t->msa", stack.P, values)).min(0).values
        new = q.max(-1).values
        delta = float((new - values).abs().max())
        values = new
        if delta < tol:
            policy = greedy(q)
            return RobustSolution(policy, float(start_value(stack, values)), values)
    raise RuntimeError(f"robust_value_iteration: no convergence to {tol} in {max_iterations} sweeps")


def brute_force(
    models: Sequence[TabularMDP] | ModelStack, chunk: int = 4096, max_policies: int = 1_000_000
) -> RobustSolution:
    """Best deterministic stationary policy for the static worst case, by enumeration.

    Evaluates ``A^S`` policies (in chunks of ``chunk`` policies, each chunk one batched solve over
    all models). Ties in the worst-case value go to the first policy in ``itertools.product``
    order.

    Raises:
        ValueError: when ``A^S`` exceeds ``max_policies``.
    """
    stack = _stack(models)
    s, a = stack.num_states, stack.num_actions
    total = a**s
    if total > max_policies:
        raise ValueError(f"brute_force: A^S = {a}^{s} = {total} policies exceeds "
                         f"max_policies={max_policies}")
    best_value, best_policy, best_values = -float("inf"), None, None
    it = itertools.product(range(a), repeat=s)
    while True:
        block = list(itertools.islice(it, chunk))
        if not block:
            break
        pols = torch.tensor(block, dtype=torch.int64, device=stack.R.device)
        vals = evaluate_policies(stack, pols)  # [N, M, S]
        worst = start_value(stack, vals).min(1)  # over models
        i = int(worst.values.argmax())
        if float(worst.values[i]) > best_value:
            best_value = float(worst.values[i])
            best_policy = pols[i]
            best_values = vals[i, int(worst.indices[i])]
    assert best_policy is not None and best_values is not None
    return RobustSolution(best_policy, best_value, best_values)
