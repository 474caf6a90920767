"""Model-based ECRM references (rlsuite.agents.ecrm.analysis): exact state visits and the
exact-Q NPG, on the safe/risky MDP whose answers are derived by hand in ecrm_cases."""

from __future__ import annotations

import pytest
import torch
from ecrm_cases import safe_risky_mdp

from rlsuite.agents.ecrm import exact_ecrm
from rlsuite.agents.ecrm.analysis import exact_q_npg, later_stage_visits, state_visits


def test_state_visits_follow_the_first_step_policy() -> None:
    mdp = safe_risky_mdp()
    uniform = torch.full((3, 2), 0.5, dtype=torch.float64)
    first = torch.tensor([[0.25, 0.75], [0.5, 0.5], [0.5, 0.5]], dtype=torch.float64)
    # stage 1 at s0; stage 2 at s1 (safe) or s2 (risky) with the first-step probabilities
    assert state_visits(mdp, uniform, first).tolist() == [1.0, 0.25, 0.75]
    assert later_stage_visits(mdp, uniform).tolist() == [0.0, 0.5, 0.5]
    assert float(state_visits(mdp, uniform).sum()) == 2.0  # the episode length (horizon 2)


@pytest.mark.parametrize(("lam", "first_action", "value"), [(0.0, 1, 1.6), (1.0, 0, 1.0)])
def test_exact_q_npg_finds_the_hand_derived_optimum(lam: float, first_action: int, value: float) -> None:
    # risky (mean 1.6) is optimal at lam = 0; at lam = 1, alpha = 0.1 its CVaR -4 loses to safe (1)
    mdp = safe_risky_mdp()
    policy, first = exact_q_npg(mdp, 0.1, lam, iters=200, step=1.0)
    assert float(first[0, first_action]) > 0.99
    assert float(exact_ecrm(mdp, policy, 0.1, lam, first_policy=first)) == pytest.approx(value, abs=0.02)


def test_exact_q_npg_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="step=0"):
        exact_q_npg(safe_risky_mdp(), 0.1, 1.0, iters=1, step=0)
