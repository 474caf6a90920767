"""Dynamics-ensemble fitting (docs/vgdf.md): a known linear system is fitted to the noise floor, early
stopping triggers, the predicted variance is the noise's, disagreement grows off-distribution, and
the patience follows VGDF's schedule."""

from __future__ import annotations

import pytest
import torch

from rlsuite.learners.dynamics_fit import FitConfig, fit_ensemble, holdout_mse, patience_at
from rlsuite.learners.ensemble import GaussianEnsemble

SIGMA = 0.01


def _linear_data(n: int, gen: torch.Generator, action_scale: float = 1.0):
    a_mat = torch.tensor([[0.9, 0.2], [-0.1, 0.8]])
    b_mat = torch.tensor([[0.5], [1.0]])
    s = torch.rand((n, 2), generator=gen) * 2 - 1
    a = (torch.rand((n, 1), generator=gen) * 2 - 1) * action_scale
    s_next = s @ a_mat.T + a @ b_mat.T + SIGMA * torch.randn((n, 2), generator=gen)
    return torch.cat([s, a], -1), s_next - s


@pytest.fixture(scope="module")
def fitted():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x, y = _linear_data(2000, gen)
    model = GaussianEnsemble(5, 3, 2, (64, 64), generator=torch.Generator().manual_seed(1),
                             weight_decay=(2.5e-5, 5e-5, 1e-4), num_elites=3)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)  # VGDF: 1e-3
    result = fit_ensemble(model, opt, x, y, gen, patience=5, config=FitConfig(max_epochs=400))
    return model, result, gen


def test_fits_a_known_linear_system_to_the_noise_floor(fitted) -> None:
    model, result, gen = fitted
    assert result.stopped_early and result.epochs < 400
    x, y = _linear_data(1000, gen)
    mse = holdout_mse(model, x, y)
    assert float(mse.max()) < 1e-3, mse
    # Predicted variance ~ sigma^2 = 1e-4 on fresh data (log-variance within a factor ~3).
    with torch.no_grad():
        var = float(model(x)[1].exp().mean())
    assert SIGMA**2 / 3 < var < SIGMA**2 * 3, var
    assert sorted(result.elites.tolist()) == sorted(torch.argsort(result.holdout_mse)[:3].tolist())


def test_disagrees_more_off_distribution(fitted) -> None:
    model, _, gen = fitted
    x_in, _ = _linear_data(500, gen)
    x_out, _ = _linear_data(500, gen, action_scale=3.0)
    x_out = x_out[x_out[:, 2].abs() > 1.0]  # actions outside the training range only
    with torch.no_grad():
        spread_in = model(x_in)[0].std(dim=0).mean()
        spread_out = model(x_out)[0].std(dim=0).mean()
    assert float(spread_out) > 3 * float(spread_in), (spread_in, spread_out)


def test_patience_schedule_and_max_epochs() -> None:
    assert [patience_at(t) for t in (0, 149_999, 150_000, 450_000, 10**7)] == [5, 5, 4, 2, 0]
    gen = torch.Generator().manual_seed(3)
    x, y = _linear_data(300, gen)
    model = GaussianEnsemble(2, 3, 2, (16,), generator=torch.Generator().manual_seed(2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    result = fit_ensemble(model, opt, x, y, gen, patience=100, config=FitConfig(max_epochs=3))
    assert result.epochs == 3 and not result.stopped_early
    with pytest.raises(ValueError, match="holdout_ratio"):
        fit_ensemble(model, opt, x, y, gen, config=FitConfig(holdout_ratio=1.0))
