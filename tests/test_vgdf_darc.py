"""DARC baseline: the reward correction is the (s, a, s') head's logit gap, and after training it
penalises source transitions the target dynamics would not produce."""

from __future__ import annotations

import torch

from rlsuite.agents.vgdf.darc import DomainClassifiers, classifier_loss, reward_correction
from rlsuite.learners.buffers import Transitions


def _batch(n: int, gain: float, gen: torch.Generator) -> Transitions:
    obs = torch.randn(n, 1, generator=gen)
    act = torch.rand(n, 1, generator=gen) * 2 - 1
    nxt = obs + gain * act
    z = torch.zeros(n, dtype=torch.bool)
    return Transitions(obs, act, torch.zeros(n), nxt, z, z)


def test_correction_is_the_next_state_heads_logit_gap() -> None:
    torch.manual_seed(0)
    clf = DomainClassifiers(1, 1, [8])
    b = _batch(5, 1.0, torch.Generator().manual_seed(0))
    head = clf.sas(torch.cat([b.obs, b.action, b.next_obs], -1))
    torch.testing.assert_close(reward_correction(clf, b.obs, b.action, b.next_obs), head[:, 1] - head[:, 0])


def test_trained_classifiers_penalise_source_only_transitions() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    clf = DomainClassifiers(1, 1, [32, 32])
    opt = torch.optim.Adam(clf.parameters(), lr=3e-3)
    for _ in range(300):  # source: s' = s + a; target: a weak motor, s' = s + 0.2 a
        loss = classifier_loss(clf, _batch(128, 1.0, gen), _batch(128, 0.2, gen), 0.05, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    src, tar = _batch(500, 1.0, gen), _batch(500, 0.2, gen)
    far = src.action.abs()[:, 0] > 0.5  # source transitions far from any target outcome
    dr_src = reward_correction(clf, src.obs, src.action, src.next_obs)
    dr_tar = reward_correction(clf, tar.obs, tar.action, tar.next_obs)
    assert float(dr_src[far].mean()) < -1.0 < float(dr_tar.mean())
