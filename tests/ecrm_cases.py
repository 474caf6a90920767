"""Small MDPs with hand-derived ECRM answers, shared by the ECRM test files."""

from __future__ import annotations

import torch

from rlsuite.envs.tabular import TabularMDP

F64 = torch.float64


def safe_risky_mdp() -> TabularMDP:
    """Stage 1 at s0: action 0 (safe) -> s1, action 1 (risky) -> s2, reward 0. Stage 2: s1 pays
    1; s2 pays 3 w.p. 0.8 and -4 w.p. 0.2 (mean 1.6). Risky is better iff
    (1 - lam) 1.6 + lam CVaR_alpha > 1: at alpha = 0.1 iff lam < 3/28."""
    nxt = torch.zeros(3, 2, 2, dtype=torch.long)
    rew = torch.zeros(3, 2, 2, dtype=F64)
    prob = torch.zeros(3, 2, 2, dtype=F64)
    term = torch.zeros(3, 2, 2, dtype=torch.bool)
    nxt[0, 0, 0], nxt[0, 1, 0] = 1, 2
    prob[0, :, 0] = 1.0
    rew[1, :, 0], prob[1, :, 0], term[1, :, 0] = 1.0, 1.0, True
    rew[2, :, 0], prob[2, :, 0], term[2, :, :] = 3.0, 0.8, True
    rew[2, :, 1], prob[2, :, 1] = -4.0, 0.2
    return TabularMDP(nxt, rew, prob, term, torch.tensor([1.0, 0, 0]), gamma=1.0, horizon=2)
