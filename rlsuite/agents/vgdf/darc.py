"""DARC (Eysenbach et al. 2021, "Off-Dynamics RL: Training for Transfer with Domain Classifiers",
arXiv 2006.13916), VGDF's main baseline: two domain classifiers and a reward correction.

``q(target | s, a, s')`` and ``q(target | s, a)`` are trained by cross-entropy on source (label 0)
and target (label 1) transitions, with Gaussian noise on their inputs (the paper's regulariser).
The ``(s, a, s')`` classifier's logits are the ``(s, a)`` classifier's plus its own head, as in
the DARC code, so the difference isolates what ``s'`` adds. Source rewards are corrected by
``dr = log q(tar|s,a,s') - log q(src|s,a,s') - log q(tar|s,a) + log q(src|s,a)`` (paper eq. 5),
which estimates ``log p_tar(s'|s,a) - log p_src(s'|s,a)``: a dynamics-gap penalty.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from rlsuite.learners.buffers import Transitions
from rlsuite.learners.sac import mlp


class DomainClassifiers(nn.Module):
    """``(s, a)`` and ``(s, a, s')`` domain classifiers, two logits each (source, target)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.sa = mlp(obs_dim + act_dim, 2, hidden)
        self.sas = mlp(2 * obs_dim + act_dim, 2, hidden)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, next_obs: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sa_logits, sas_logits)``, each ``[N, 2]``."""
        sa_in = torch.cat([obs.reshape(len(obs), -1).float(), action.reshape(len(action), -1)], -1)
        sa_logits = self.sa(sa_in)
        sas_logits = sa_logits + self.sas(torch.cat([sa_in, next_obs.reshape(len(obs), -1).float()], -1))
        return sa_logits, sas_logits


def _noisy(x: torch.Tensor, std: float, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=torch.float32)
    return x.float() + std * noise


def classifier_loss(clf: DomainClassifiers, src: Transitions, tar: Transitions, noise: float,
                    generator: torch.Generator) -> torch.Tensor:
    """Cross-entropy of both classifiers on a source and a target batch (inputs noised)."""
    obs = _noisy(torch.cat([src.obs, tar.obs]), noise, generator)
    act = _noisy(torch.cat([src.action, tar.action]), noise, generator)
    nxt = _noisy(torch.cat([src.next_obs, tar.next_obs]), noise, generator)
    labels = torch.cat([torch.zeros(len(src), dtype=torch.long), torch.ones(len(tar), dtype=torch.long)])
    labels = labels.to(obs.device)
    sa_logits, sas_logits = clf(obs, act, nxt)
    return F.cross_entropy(sa_logits, labels) + F.cross_entropy(sas_logits, labels)


@torch.no_grad()
def reward_correction(clf: DomainClassifiers, obs: torch.Tensor, action: torch.Tensor,
                      next_obs: torch.Tensor) -> torch.Tensor:
    """``[N]`` DARC's ``dr`` (paper eq. 5), added to source rewards."""
    sa_logits, sas_logits = clf(obs, action, next_obs)
    sa, sas = F.log_softmax(sa_logits, -1), F.log_softmax(sas_logits, -1)
    return (sas[:, 1] - sas[:, 0]) - (sa[:, 1] - sa[:, 0])
