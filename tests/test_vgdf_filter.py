"""VGDF's filter on a hand-built batch (docs/vgdf.md): a known critic and an exactly known dynamics
ensemble, scores / quantile threshold / kept set computed by hand here, the value-not-dynamics
property, the warm-up gate, both loss normalisations and the official code's switches."""

from __future__ import annotations

import math

import pytest
import torch

from rlsuite.agents.vgdf.filter import (
    fictitious_targets,
    fvp_scores,
    select,
    source_loss_weights,
    source_targets,
)

GAMMA = 0.5
OFFSETS = (-0.1, 0.0, 0.1)
"""Member i of the 'target' ensemble predicts x' = x + a + OFFSETS[i], z' = z."""


def predict(obs: torch.Tensor, action: torch.Tensor, logvar_value: float = -60.0):
    n = obs.shape[0]
    mean = torch.zeros(len(OFFSETS), n, 3)  # (reward, dx, dz)
    for i, off in enumerate(OFFSETS):
        mean[i, :, 0] = 7.0  # a model reward, used only by reward_mode="model"
        mean[i, :, 1] = action[:, 0] + off
    return mean, torch.full_like(mean, logvar_value)


def value(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Known critic: the value depends on x only (not on z, not on the action)."""
    return 2.0 * obs[:, 0]


def policy(obs: torch.Tensor, generator: torch.Generator, deterministic: bool) -> torch.Tensor:
    return torch.zeros(obs.shape[0], 1)


# Source transitions: x' - (x + a) = DEV[j] (the source dynamics' deviation), z' = z + DZ[j].
X = torch.tensor([0.0, 1.0, -1.0, 0.5, 2.0, -0.5, 0.3, 1.5])
A = torch.tensor([0.2, -0.3, 0.1, 0.0, 0.4, -0.2, 0.1, 0.3])
DEV = [0.0, 0.02, 0.1, 0.5, -0.3, 0.05, -0.01, 0.2]
DZ = [5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # sample 0: very different next state, same value
R = torch.tensor([1.0, -1.0, 0.5, 0.0, 2.0, 0.3, -0.2, 0.1])


def _batch():
    obs = torch.stack([X, torch.zeros(8)], -1)
    action = A.unsqueeze(-1)
    next_obs = torch.stack([X + A + torch.tensor(DEV), torch.tensor(DZ)], -1)
    return obs, action, next_obs


def _by_hand():
    """Expected scores from the closed form: y_i = r + gamma * 2 (x + a + off_i); the FVE's mean is
    r + 2 gamma (x + a), its unbiased std 2 gamma * 0.1; y_src = r + 2 gamma (x + a + dev)."""
    sd = 2 * GAMMA * 0.1 + 1e-8
    scores = []
    for dev in DEV:
        z = (2 * GAMMA * dev) / sd
        scores.append(math.exp(-0.5 * z * z) / (sd * math.sqrt(2 * math.pi)))
    # torch.quantile at q = 0.75 over 8 values: position 0.75 * 7 = 5.25 of the sorted scores.
    s = sorted(scores)
    threshold = s[5] + 0.25 * (s[6] - s[5])
    return scores, threshold, [sc > threshold for sc in scores]


def test_scores_threshold_and_kept_set_match_the_hand_computation() -> None:
    obs, action, next_obs = _batch()
    gen = torch.Generator().manual_seed(0)
    fict = fictitious_targets(predict, value, policy, obs, action, R, GAMMA, gen, next_state="mean")
    expected_fict = torch.stack([R + GAMMA * 2 * (X + A + off) for off in OFFSETS])
    torch.testing.assert_close(fict, expected_fict)
    y_src = source_targets(value, policy, R, next_obs, torch.zeros(8, dtype=torch.bool), GAMMA, gen)
    torch.testing.assert_close(y_src, R + GAMMA * 2 * next_obs[:, 0])
    scores = fvp_scores(fict, y_src)
    exp_scores, exp_threshold, exp_kept = _by_hand()
    torch.testing.assert_close(scores, torch.tensor(exp_scores), rtol=1e-4, atol=1e-6)
    sel = select(scores, 0.25, active=True)
    assert float(sel.threshold) == pytest.approx(exp_threshold, rel=1e-4)
    assert sel.mask.tolist() == exp_kept
    assert exp_kept == [True, False, False, False, False, False, True, False]  # top 2 of 8


def test_different_dynamics_with_the_same_value_is_kept() -> None:
    # Sample 0's next state is 5 away in z (a dynamics-gap filter such as DARC rejects it), but
    # the value ignores z, so its value target is the target model's: VGDF keeps it, top score.
    obs, action, next_obs = _batch()
    gen = torch.Generator().manual_seed(0)
    fict = fictitious_targets(predict, value, policy, obs, action, R, GAMMA, gen, next_state="mean")
    y_src = source_targets(value, policy, R, next_obs, torch.zeros(8, dtype=torch.bool), GAMMA, gen)
    scores = fvp_scores(fict, y_src)
    assert int(scores.argmax()) == 0 and bool(select(scores, 0.25, True).mask[0])


def test_nothing_is_filtered_before_the_warm_up_and_mix_keeps_all() -> None:
    scores = torch.tensor([0.1, 5.0, 0.2, 3.0])
    assert select(scores, 0.25, active=False).mask.all()
    assert select(scores, 1.0, active=True).mask.all()
    assert select(scores, 0.25, active=True).mask.tolist() == [False, True, False, False]
    with pytest.raises(ValueError, match="keep_fraction"):
        select(scores, 0.0, True)


def test_loss_normalisation_per_kept_sample_or_per_batch() -> None:
    mask = torch.tensor([True, False, True, False, False, False, False, False])
    err = torch.tensor([1.0, 9.0, 3.0, 9.0, 9.0, 9.0, 9.0, 9.0])
    # Paper: mean over kept samples = (1 + 3) / 2; code: sum over kept / batch size = 4 / 8.
    assert float((source_loss_weights(mask, "kept") * err).mean()) == pytest.approx(2.0)
    assert float((source_loss_weights(mask, "batch") * err).mean()) == pytest.approx(0.5)
    none = torch.zeros(8, dtype=torch.bool)
    assert float(source_loss_weights(none, "kept").sum()) == 0.0
    with pytest.raises(ValueError, match="src_loss_normalisation"):
        source_loss_weights(mask, "per_member")


def test_invariant_to_a_constant_added_to_q_not_to_a_scale() -> None:
    obs, action, next_obs = _batch()
    term = torch.zeros(8, dtype=torch.bool)

    def scores_for(v_fn):
        gen = torch.Generator().manual_seed(0)
        fict = fictitious_targets(predict, v_fn, policy, obs, action, R, GAMMA, gen, next_state="mean")
        return fvp_scores(fict, source_targets(v_fn, policy, R, next_obs, term, GAMMA, gen))

    base = scores_for(value)
    shifted = scores_for(lambda o, a: value(o, a) + 100.0)
    torch.testing.assert_close(shifted, base, rtol=1e-3, atol=1e-5)
    scaled = scores_for(lambda o, a: 3.0 * value(o, a))
    assert not torch.allclose(scaled, base, rtol=0.1)
    torch.testing.assert_close(scaled, base / 3.0, rtol=1e-3, atol=1e-5)  # the density's 1/scale


def test_official_code_switches() -> None:
    obs, action, _ = _batch()
    gen = torch.Generator().manual_seed(0)
    var = 0.01
    # mean_plus_var: every predicted component gets + var, so x' moves by var, the model reward
    # becomes 7 + var.
    fict = fictitious_targets(lambda o, a: predict(o, a, math.log(var)), value, policy, obs, action,
                              R, GAMMA, gen, next_state="mean_plus_var", reward_mode="model")
    expected = torch.stack([7.0 + var + GAMMA * 2 * (X + A + off + var) for off in OFFSETS])
    torch.testing.assert_close(fict, expected)
    # sample: with sd 1e-13 the draw equals the mean.
    fict_s = fictitious_targets(predict, value, policy, obs, action, R, GAMMA, gen)
    torch.testing.assert_close(fict_s, torch.stack([R + GAMMA * 2 * (X + A + off) for off in OFFSETS]))
    # terminal predicate: a fictitious state with x' > 1 is terminal, no bootstrap there.
    fict_t = fictitious_targets(predict, value, policy, obs, action, R, GAMMA, gen, next_state="mean",
                                terminal=lambda s: s[..., 0] > 1.0)
    xn = torch.stack([X + A + off for off in OFFSETS])
    torch.testing.assert_close(fict_t, R + GAMMA * 2 * xn * (xn <= 1.0))
    with pytest.raises(ValueError, match="next_state must be one of"):
        fictitious_targets(predict, value, policy, obs, action, R, GAMMA, gen, next_state="bogus")
