"""The shared risk measures against values worked out by hand and against brute-force definitions."""

import pytest
import torch

from rlsuite.risk import cvar, mean_cvar, rockafellar_uryasev, value_at_risk

VALUES = torch.tensor([3.0, -1.0, 2.0, 0.0], dtype=torch.float64)
PROBS = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)


def test_cvar_by_hand_with_a_straddling_atom():
    # Sorted: -1 (0.2), 0 (0.4), 2 (0.3), 3 (0.1). Lowest 0.3 = all of -1 and 0.1 of 0.
    assert cvar(VALUES, PROBS, 0.3).item() == pytest.approx((0.2 * -1.0 + 0.1 * 0.0) / 0.3)
    # Highest 0.25 = all of 3 and 0.15 of 2.
    assert cvar(VALUES, PROBS, 0.25, tail="upper").item() == pytest.approx((0.1 * 3 + 0.15 * 2) / 0.25)


def test_level_one_is_the_mean_and_small_level_the_extreme():
    mean = (VALUES * PROBS).sum()
    assert cvar(VALUES, PROBS, 1.0).item() == pytest.approx(mean.item())
    assert cvar(VALUES, PROBS, 1.0, tail="upper").item() == pytest.approx(mean.item())
    assert cvar(VALUES, PROBS, 1e-9).item() == pytest.approx(-1.0)
    assert cvar(VALUES, PROBS, 1e-9, tail="upper").item() == pytest.approx(3.0)


def test_uniform_atoms_and_batch_dims():
    values = torch.tensor([[4.0, 1.0, 3.0, 2.0], [0.0, 0.0, 8.0, 4.0]], dtype=torch.float64)
    out = cvar(values, None, 0.5)
    assert out.tolist() == pytest.approx([1.5, 0.0])
    assert cvar(values, None, 0.375).tolist() == pytest.approx([(1 + 0.5 * 2) / 1.5, 0.0])


def test_cost_and_reward_conventions_mirror():
    gen = torch.Generator().manual_seed(0)
    values = torch.randn(5, 7, generator=gen, dtype=torch.float64)
    probs = torch.rand(5, 7, generator=gen, dtype=torch.float64)
    probs = probs / probs.sum(-1, keepdim=True)
    for level in (0.05, 0.3, 0.77, 1.0):
        torch.testing.assert_close(cvar(values, probs, level, tail="upper"),
                                   -cvar(-values, probs, level, tail="lower"))


@pytest.mark.parametrize("tail", ["lower", "upper"])
def test_rockafellar_uryasev_optimum_is_cvar_at_var(tail):
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        values = torch.randn(6, generator=gen, dtype=torch.float64)
        probs = torch.rand(6, generator=gen, dtype=torch.float64)
        probs = probs / probs.sum()
        level = float(torch.rand((), generator=gen)) * 0.9 + 0.05
        # The RU function is piecewise linear with kinks at the atoms: its optimum is at an atom.
        scores = torch.stack([rockafellar_uryasev(values, probs, level, v, tail) for v in values])
        best = scores.max() if tail == "lower" else scores.min()
        assert best.item() == pytest.approx(cvar(values, probs, level, tail).item(), abs=1e-12)
        var = value_at_risk(values, probs, level, tail)
        assert rockafellar_uryasev(values, probs, level, var, tail).item() == pytest.approx(best.item())


def test_rockafellar_uryasev_batched_threshold():
    values = VALUES.expand(3, 4)
    eta = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    out = rockafellar_uryasev(values, PROBS.expand(3, 4), 0.5, eta)
    expected = [rockafellar_uryasev(VALUES, PROBS, 0.5, float(e)).item() for e in eta]
    assert out.tolist() == pytest.approx(expected)


def test_value_at_risk_by_hand():
    # CDF over sorted values -1, 0, 2, 3: 0.2, 0.6, 0.9, 1.0.
    assert value_at_risk(VALUES, PROBS, 0.2).item() == -1.0
    assert value_at_risk(VALUES, PROBS, 0.21).item() == 0.0
    assert value_at_risk(VALUES, PROBS, 0.95).item() == 3.0
    assert value_at_risk(VALUES, PROBS, 0.1, tail="upper").item() == 3.0


def test_mean_cvar_mixes_and_validates():
    mean = (VALUES * PROBS).sum().item()
    tail = cvar(VALUES, PROBS, 0.3).item()
    assert mean_cvar(VALUES, PROBS, 0.3, 0.25).item() == pytest.approx(0.75 * mean + 0.25 * tail)
    assert mean_cvar(VALUES, PROBS, 0.3, 0.0).item() == pytest.approx(mean)
    with pytest.raises(ValueError, match="risk_weight"):
        mean_cvar(VALUES, PROBS, 0.3, 1.5)
    with pytest.raises(ValueError, match="level"):
        cvar(VALUES, PROBS, 0.0)
    with pytest.raises(ValueError, match="tail"):
        cvar(VALUES, PROBS, 0.5, tail="left")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="shape"):
        cvar(VALUES, PROBS[:3], 0.5)
