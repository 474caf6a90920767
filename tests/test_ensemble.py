"""Ensembles: bit-exact parity with the members evaluated one by one, independent gradients,
one optimizer equal to E separate ones, and the Gaussian head's bounds and loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from rlsuite.learners.ensemble import (
    Ensemble,
    GaussianEnsemble,
    bootstrap_indices,
    gaussian_nll,
    soft_clamp_logvar,
)

E, IN, OUT, N = 5, 6, 3, 17


def _members(seed: int = 0, sizes: tuple[int, ...] = (IN, 16, 16, OUT), e: int = E
             ) -> list[nn.Sequential]:
    torch.manual_seed(seed)
    members = []
    for _ in range(e):
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), nn.SiLU()]
        members.append(nn.Sequential(*layers[:-1]))
    return members


def test_outputs_equal_each_member_evaluated_alone_bit_for_bit() -> None:
    # MBPO's dynamics-model shape: 7 members, 4 x 200 SiLU, a batch of 256.
    members = _members(0, (20, 200, 200, 200, 200, 34), e=7)
    ens = Ensemble.from_members(members)
    x_per = torch.randn(7, 256, 20)
    x_shared = torch.randn(256, 20)
    with torch.no_grad():
        out_per, out_shared = ens(x_per), ens(x_shared)
        assert out_per.shape == out_shared.shape == (7, 256, 34)
        for i, m in enumerate(members):
            assert torch.equal(out_per[i], m(x_per[i])), i
            assert torch.equal(out_shared[i], m(x_shared)), i
            assert torch.equal(ens.member(i)(x_shared), m(x_shared)), i  # the round trip


def test_outputs_match_members_at_small_shapes() -> None:
    # Tiny matrices and 1-unit outputs may take another CPU kernel than nn.Linear: a few ulp.
    for sizes in ((IN, 16, 16, OUT), (IN, 8, 1)):
        members = _members(1, sizes)
        ens = Ensemble.from_members(members)
        x = torch.randn(E, N, IN)
        with torch.no_grad():
            for i, m in enumerate(members):
                torch.testing.assert_close(ens(x)[i], m(x[i]), rtol=1e-6, atol=1e-7)


def test_gradients_reach_only_the_member_whose_output_is_used() -> None:
    members = _members(1)
    ens = Ensemble.from_members(members)
    x = torch.randn(E, N, IN)
    k = 2
    ens(x)[k].square().sum().backward()
    members[k](x[k]).square().sum().backward()
    linears = [layer for layer in members[k] if isinstance(layer, nn.Linear)]
    for w, b, lin in zip(ens.weights, ens.biases, linears, strict=True):
        others = [i for i in range(E) if i != k]
        assert torch.count_nonzero(w.grad[others]) == 0
        assert torch.count_nonzero(b.grad[others]) == 0
        torch.testing.assert_close(w.grad[k], lin.weight.grad, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(b.grad[k, 0], lin.bias.grad, rtol=1e-6, atol=1e-7)


def test_one_optimizer_trains_the_members_as_if_separately() -> None:
    members = _members(2)
    ens = Ensemble.from_members(members)
    x, y = torch.randn(E, N, IN), torch.randn(E, N, OUT)
    opt = torch.optim.Adam(ens.parameters(), lr=1e-2)
    opts = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in members]
    for _ in range(5):
        opt.zero_grad()
        (ens(x) - y).pow(2).mean(dim=(1, 2)).sum().backward()  # sum of per-member losses
        opt.step()
        for i, (m, o) in enumerate(zip(members, opts, strict=True)):
            o.zero_grad()
            (m(x[i]) - y[i]).pow(2).mean().backward()
            o.step()
    with torch.no_grad():
        for i, m in enumerate(members):
            torch.testing.assert_close(ens(x)[i], m(x[i]), rtol=1e-5, atol=1e-6)


def test_bad_inputs_name_the_expected_shapes() -> None:
    ens = Ensemble(E, IN, OUT, (8,))
    with pytest.raises(ValueError, match=r"expected \[N, 6\] or \[5, N, 6\]"):
        ens(torch.zeros(4, E, IN))
    with pytest.raises(ValueError, match="hidden\\[1\\] must be >= 1"):
        Ensemble(E, IN, OUT, (8, 0))
    with pytest.raises(ValueError, match="member 1 has layer shapes"):
        Ensemble.from_members([nn.Sequential(nn.Linear(2, 3)), nn.Sequential(nn.Linear(2, 4))])


def test_init_is_truncated_normal_with_pets_scale() -> None:
    gen = torch.Generator().manual_seed(0)
    ens = Ensemble(7, 200, 200, (200,), generator=gen)
    w = ens.weights[0]
    std = 1 / (2 * 200**0.5)
    assert float(w.detach().abs().max()) <= 2 * std
    # A normal truncated at +-2 sd has sd 0.8796 of the untruncated one.
    assert float(w.detach().std()) == pytest.approx(0.8796 * std, rel=0.01)
    assert torch.count_nonzero(ens.biases[0]) == 0
    same = Ensemble(7, 200, 200, (200,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(same.weights[1], ens.weights[1])


def test_soft_clamp_keeps_logvar_inside_the_bounds_with_gradient() -> None:
    lo, hi = torch.tensor([-10.0]), torch.tensor([0.5])
    raw = torch.tensor([-1e4, -50.0, -3.0, 0.0, 50.0, 1e4], requires_grad=True)
    out = soft_clamp_logvar(raw, lo, hi)
    # The outer softplus lifts the upper bound by log(1 + exp(lo - hi)) = 2.75e-5: soft bounds
    # (plus float32 rounding of lo + softplus(hi - lo)).
    assert bool((out >= lo).all() and (out <= hi + F.softplus(lo - hi) + 1e-6).all())
    assert bool((out[1:] >= out[:-1]).all())  # monotone
    # Between the bounds it is close to the identity: -3 -> 0.5 - softplus(3.5) = -3.03.
    torch.testing.assert_close(out[2], torch.tensor(-3.0), atol=0.05, rtol=0)
    expected = lo + F.softplus(hi - F.softplus(hi - raw) - lo)
    assert torch.equal(out, expected)
    out.sum().backward()
    assert bool((raw.grad[1:5] > 0).all())


def test_gaussian_nll_is_twice_torchs_and_per_member() -> None:
    mean, target = torch.randn(E, N, OUT), torch.randn(E, N, OUT)
    logvar = torch.randn(E, N, OUT)
    nll = gaussian_nll(mean, logvar, target)
    assert nll.shape == (E,)
    for i in range(E):
        ref = 2 * F.gaussian_nll_loss(mean[i], target[i], logvar[i].exp(), eps=0.0)
        torch.testing.assert_close(nll[i], ref, rtol=1e-6, atol=1e-6)


def test_gaussian_ensemble_standardizes_inputs_and_penalizes_bounds() -> None:
    torch.manual_seed(3)
    model = GaussianEnsemble(E, IN, OUT, (16, 16))
    data = 5.0 + 3.0 * torch.randn(200, IN)
    data[:, 0] = 7.0  # a constant feature is left unscaled
    model.set_input_stats(data)
    assert torch.equal(model.input_std[0], torch.tensor(1.0))
    x = data[:N]
    mean, logvar = model(x)
    with torch.no_grad():
        std = data.std(0, unbiased=False)
        ref = model.net((x - data.mean(0)) / torch.where(std < 1e-12, torch.ones(IN), std))
    torch.testing.assert_close(mean, ref[..., :OUT], rtol=1e-5, atol=1e-6)
    assert bool((logvar <= 0.5 + 1e-4).all() and (logvar >= -10).all())
    target = torch.randn(N, OUT)
    loss, nll = model.loss(x, target)
    torch.testing.assert_close(loss, nll.sum() + 0.01 * (0.5 * OUT + 10.0 * OUT))
    loss.backward()
    assert model.max_logvar.grad is not None and model.min_logvar.grad is not None
    assert {k for k in model.state_dict() if "input" in k} == {"input_mean", "input_std"}


def test_bootstrap_and_sampling_follow_the_generator() -> None:
    idx = bootstrap_indices(E, 50, torch.Generator().manual_seed(4))
    assert idx.shape == (E, 50) and int(idx.min()) >= 0 and int(idx.max()) < 50
    assert torch.equal(idx, bootstrap_indices(E, 50, torch.Generator().manual_seed(4)))
    model = GaussianEnsemble(E, IN, OUT, (8,))
    x = torch.randn(N, IN)
    a = model.sample(x, torch.Generator().manual_seed(5))
    b = model.sample(x, torch.Generator().manual_seed(5))
    assert a.shape == (E, N, OUT) and torch.equal(a, b)


def test_decay_loss_is_half_the_weighted_squared_weights_per_layer() -> None:
    ens = Ensemble(E, IN, OUT, (8, 4), generator=torch.Generator().manual_seed(0))
    coefs = (1e-3, 2e-3, 0.0)
    expected = sum(0.5 * c * float(w.detach().pow(2).sum()) for c, w in zip(coefs, ens.weights, strict=True))
    assert float(ens.decay_loss(coefs).detach()) == pytest.approx(expected, rel=1e-6)
    ens.decay_loss(coefs).backward()
    # d/dW (c/2 |W|^2) = c W; the last layer has coefficient 0 and gets no gradient.
    torch.testing.assert_close(ens.weights[1].grad, 2e-3 * ens.weights[1].detach())
    assert ens.weights[2].grad is None
    with pytest.raises(ValueError, match="got 2 coefficients for 3 layers"):
        ens.decay_loss((1.0, 1.0))


def test_gaussian_ensemble_loss_adds_the_layer_decay() -> None:
    wd = (2.5e-5, 5e-5, 1e-4)
    model = GaussianEnsemble(E, IN, OUT, (8, 8), generator=torch.Generator().manual_seed(1),
                             weight_decay=wd)
    x, y = torch.randn(N, IN), torch.randn(N, OUT)
    loss, nll = model.loss(x, y)
    torch.testing.assert_close(loss, nll.sum() + model.logvar_bound_penalty() + model.net.decay_loss(wd))
    with pytest.raises(ValueError, match="needs 3 coefficients"):
        GaussianEnsemble(E, IN, OUT, (8, 8), weight_decay=(1e-4,))


def test_elites_are_the_members_with_lowest_holdout_loss() -> None:
    model = GaussianEnsemble(5, IN, OUT, (8,), generator=torch.Generator().manual_seed(2), num_elites=3)
    assert model.elites.tolist() == [0, 1, 2]  # before any ranking: the first members
    kept = model.set_elites(torch.tensor([0.5, 0.1, 0.9, 0.05, 0.3]))
    assert kept.tolist() == [3, 1, 4]
    x = torch.randn(N, IN)
    mean, logvar = model(x)
    e_mean, e_logvar = model.elite_forward(x)
    assert torch.equal(e_mean, mean[[3, 1, 4]]) and torch.equal(e_logvar, logvar[[3, 1, 4]])
    assert torch.equal(model.state_dict()["elites"], torch.tensor([3, 1, 4]))
    with pytest.raises(ValueError, match="num_elites must be in"):
        GaussianEnsemble(5, IN, OUT, (8,), num_elites=6)
