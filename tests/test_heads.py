"""The plain-tensor action heads against torch.distributions."""

import math

import pytest
import torch

from rlsuite.learners import heads

TOL = dict(rtol=1e-6, atol=1e-6)


def test_categorical_log_prob_and_entropy_match_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(256, 5, generator=g, dtype=torch.float64) * 3
    logits[0, 2] = -math.inf  # an impossible action: 0 log 0 counts as 0 in the entropy
    dist = torch.distributions.Categorical(logits=logits)
    action = dist.sample()
    torch.testing.assert_close(heads.categorical_log_prob(logits, action), dist.log_prob(action), **TOL)
    torch.testing.assert_close(heads.categorical_entropy(logits), dist.entropy(), **TOL)
    lp, ent = heads.categorical_log_prob_entropy(logits, action)
    torch.testing.assert_close(lp, dist.log_prob(action), **TOL)
    torch.testing.assert_close(ent, dist.entropy(), **TOL)


def test_gumbel_max_sample_has_the_categorical_frequencies() -> None:
    g = torch.Generator().manual_seed(1)
    logits = torch.tensor([[0.0, 1.0, -1.0, 2.0]]).expand(200_000, 4)
    action = heads.categorical_sample(logits, torch.rand(logits.shape, generator=g))
    freq = torch.bincount(action, minlength=4).double() / action.numel()
    torch.testing.assert_close(freq, torch.softmax(logits[0].double(), 0), rtol=0, atol=4e-3)
    # u = 0 (possible from a generator) still gives a finite key and a valid action.
    assert heads.categorical_sample(logits[:1], torch.zeros(1, 4)).tolist() == [3]


def test_normal_heads_match_torch_distributions() -> None:
    g = torch.Generator().manual_seed(2)
    mean = torch.randn(64, 3, generator=g, dtype=torch.float64)
    log_std = torch.randn(64, 3, generator=g, dtype=torch.float64) * 0.5
    noise = torch.randn(64, 3, generator=g, dtype=torch.float64)
    dist = torch.distributions.Normal(mean, log_std.exp())
    x = heads.normal_sample(mean, log_std, noise)
    torch.testing.assert_close(x, mean + log_std.exp() * noise, **TOL)
    torch.testing.assert_close(heads.normal_log_prob(x, mean, log_std), dist.log_prob(x).sum(-1), **TOL)
    torch.testing.assert_close(heads.normal_entropy(log_std), dist.entropy().sum(-1), **TOL)


@pytest.mark.parametrize("scale", [1.0, 8.0])
def test_squashed_gaussian_matches_transformed_distribution(scale: float) -> None:
    g = torch.Generator().manual_seed(3)
    mean = torch.randn(128, 2, generator=g, dtype=torch.float64) * scale
    log_std = torch.randn(128, 2, generator=g, dtype=torch.float64) * 0.3
    noise = torch.randn(128, 2, generator=g, dtype=torch.float64)
    action, log_prob = heads.squashed_sample(mean, log_std, noise)
    base = torch.distributions.Normal(mean, log_std.exp())
    squashed = torch.distributions.TransformedDistribution(
        base, [torch.distributions.TanhTransform(cache_size=1)]
    )
    u = mean + log_std.exp() * noise
    torch.testing.assert_close(action, torch.tanh(u), **TOL)
    # Reference through u (tanh saturates for large |u|; the log-det formula does not).
    ref = base.log_prob(u).sum(-1) - torch.distributions.TanhTransform().log_abs_det_jacobian(
        u, torch.tanh(u)).sum(-1)
    torch.testing.assert_close(log_prob, ref, **TOL)
    if scale == 1.0:
        torch.testing.assert_close(log_prob, squashed.log_prob(torch.tanh(u)).sum(-1), rtol=1e-5, atol=1e-5)
