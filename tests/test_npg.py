"""The natural-gradient / TRPO step: CG, Fisher-vector products against the explicit Fisher,
the trust-region guarantees of the line search, and exact restoration on rejection."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.distributions import Categorical, Independent, Normal
from torch.func import functional_call
from torch.nn.utils import parameters_to_vector

from rlsuite.learners.npg import (
    NPGConfig,
    conjugate_gradient,
    detached_kl,
    fisher_vector_product,
    natural_gradient,
    param_list,
    set_flat_params,
    trpo_step,
)


class TinyPolicy(nn.Module):
    """obs -> categorical logits, or Gaussian mean with a state-independent log-std."""

    def __init__(self, obs_dim: int, out_dim: int, gaussian: bool):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, 5), nn.Tanh(), nn.Linear(5, out_dim))
        self.gaussian = gaussian
        if gaussian:
            self.log_std = nn.Parameter(0.3 * torch.randn(out_dim))

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        out = self.net(obs)
        if self.gaussian:
            return Independent(Normal(out, self.log_std.exp().expand_as(out)), 1)
        return Categorical(logits=out)


def _unflatten(module: nn.Module, theta: torch.Tensor) -> dict[str, torch.Tensor]:
    out, offset = {}, 0
    for name, p in module.named_parameters():
        out[name] = theta[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    return out


def explicit_fisher(policy: TinyPolicy, obs: torch.Tensor) -> torch.Tensor:
    """E_s[J_s^T G_s J_s]: J_s the Jacobian of the distribution's natural outputs w.r.t. the flat
    parameters, G_s the Fisher of the output distribution in those coordinates (closed form):
    categorical logits: diag(p) - p p^T; Gaussian (mean, log-std): diag(1/sigma^2) and 2."""
    theta = parameters_to_vector(policy.parameters()).detach()

    def outputs(t: torch.Tensor) -> torch.Tensor:
        params = _unflatten(policy, t)
        head = functional_call(policy.net, {k[4:]: v for k, v in params.items()
                                            if k.startswith("net.")}, (obs,))
        if policy.gaussian:
            return torch.cat([head, params["log_std"].expand_as(head)], dim=-1)
        return head

    jac = torch.autograd.functional.jacobian(outputs, theta)  # [S, K, P]
    out = outputs(theta)
    fisher = torch.zeros(theta.numel(), theta.numel(), dtype=theta.dtype)
    for s in range(obs.shape[0]):
        if policy.gaussian:
            d = out.shape[-1] // 2
            sigma2 = torch.exp(2 * out[s, d:])
            g = torch.diag(torch.cat([1 / sigma2, torch.full((d,), 2.0, dtype=theta.dtype)]))
        else:
            p = torch.softmax(out[s], -1)
            g = torch.diag(p) - torch.outer(p, p)
        fisher += jac[s].T @ g @ jac[s]
    return fisher / obs.shape[0]


def test_cg_solves_a_random_spd_system() -> None:
    gen = torch.Generator().manual_seed(0)
    n = 30
    q = torch.randn(n, n, generator=gen, dtype=torch.float64)
    a = q @ q.T / n + 0.5 * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=gen, dtype=torch.float64)
    x, residual = conjugate_gradient(lambda v: a @ v, b, iters=n, residual_tol=1e-24)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-9, atol=1e-9)
    assert residual < 1e-9
    assert residual == torch.linalg.vector_norm(b - a @ x)  # the reported residual is the true one


def test_cg_converges_in_as_many_steps_as_distinct_eigenvalues() -> None:
    # Exact-arithmetic CG terminates after k steps when A has k distinct eigenvalues.
    gen = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=gen, dtype=torch.float64))
    eig = torch.tensor([1.0] * 4 + [3.0] * 4 + [10.0] * 4, dtype=torch.float64)
    a = q @ torch.diag(eig) @ q.T
    b = torch.randn(12, generator=gen, dtype=torch.float64)
    _, res3 = conjugate_gradient(lambda v: a @ v, b, iters=3, residual_tol=0.0)
    _, res2 = conjugate_gradient(lambda v: a @ v, b, iters=2, residual_tol=0.0)
    assert res3 < 1e-10 < res2


@pytest.mark.parametrize("gaussian", [False, True])
def test_fisher_vector_product_equals_explicit_fisher(gaussian: bool) -> None:
    torch.manual_seed(2)
    policy = TinyPolicy(3, 4 if not gaussian else 2, gaussian).double()
    obs = torch.randn(7, 3, dtype=torch.float64)
    fisher = explicit_fisher(policy, obs)
    kl = detached_kl(lambda: policy.distribution(obs))
    for damping in (0.0, 0.3):
        fvp = fisher_vector_product(kl, policy, damping)
        for _ in range(3):
            v = torch.randn(fisher.shape[0], dtype=torch.float64)
            torch.testing.assert_close(fvp(v), fisher @ v + damping * v, rtol=1e-10, atol=1e-12)


def test_detached_kl_is_zero_with_zero_gradient_at_the_start() -> None:
    torch.manual_seed(3)
    policy = TinyPolicy(3, 2, gaussian=True).double()
    obs = torch.randn(5, 3, dtype=torch.float64)
    kl = detached_kl(lambda: policy.distribution(obs))
    value = kl()
    grads = torch.autograd.grad(value, list(policy.parameters()))
    assert value.item() == 0.0
    assert all(float(g.abs().max()) < 1e-12 for g in grads)


def _problem(seed: int, gaussian: bool, n: int = 64):
    """A random small policy, states, actions from it, random advantages, and the closures."""
    torch.manual_seed(seed)
    policy = TinyPolicy(4, 2 if gaussian else 3, gaussian).double()
    obs = torch.randn(n, 4, dtype=torch.float64)
    with torch.no_grad():
        old_dist = policy.distribution(obs)
        action = old_dist.sample()
        old_log_prob = old_dist.log_prob(action)
    advantage = torch.randn(n, dtype=torch.float64)

    def surrogate() -> torch.Tensor:
        ratio = torch.exp(policy.distribution(obs).log_prob(action) - old_log_prob)
        return (ratio * advantage).mean()

    def true_kl() -> torch.Tensor:  # independent of the closure the step used
        return torch.distributions.kl_divergence(old_dist, policy.distribution(obs)).mean()

    return policy, surrogate, detached_kl(lambda: policy.distribution(obs)), true_kl


def test_step_respects_the_kl_bound_and_never_lowers_the_surrogate() -> None:
    # Radii from TRPO's 0.01 up to 2.0, where the quadratic KL model is poor and the line search
    # has to backtrack on some seeds.
    accepted, backtracked = 0, 0
    seeds = range(60)
    for seed in seeds:
        cfg = NPGConfig(max_kl=(0.01, 0.1, 0.5, 2.0)[seed % 4])
        policy, surrogate, kl, true_kl = _problem(seed, gaussian=seed % 2 == 1)
        with torch.no_grad():
            before_value = surrogate().item()
        before = parameters_to_vector(policy.parameters()).clone()
        result = trpo_step(policy, surrogate, kl, cfg)
        with torch.no_grad():
            after_value, measured_kl = surrogate().item(), true_kl().item()
        after = parameters_to_vector(policy.parameters())
        assert measured_kl <= cfg.max_kl, seed
        assert after_value >= before_value, seed
        if result.accepted:
            accepted += 1
            backtracked += result.backtracks > 0
            assert after_value > before_value
            assert result.kl == pytest.approx(measured_kl, rel=1e-9, abs=1e-15)
            assert result.improvement == pytest.approx(after_value - before_value, rel=1e-9)
            assert result.improvement / result.expected_improvement > cfg.accept_ratio
            assert result.step_fraction == cfg.backtrack_coef**result.backtracks
            assert not torch.equal(after, before)
        else:
            assert torch.equal(after, before)
    assert accepted >= 0.9 * len(seeds)  # the property is not vacuous: steps are taken
    assert backtracked >= 3  # ... and some of them only after backtracking


def test_full_step_sits_on_the_quadratic_kl_boundary() -> None:
    policy, surrogate, kl, _ = _problem(5, gaussian=False)
    cfg = NPGConfig(max_kl=0.02, cg_iters=50, cg_residual_tol=1e-30)
    ng = natural_gradient(surrogate, kl, policy, cfg)
    step = ng.max_step(cfg.max_kl)
    fvp = fisher_vector_product(kl, policy, cfg.damping)
    assert 0.5 * float(step @ fvp(step)) == pytest.approx(cfg.max_kl, rel=1e-9)
    assert float(ng.cg_residual) < 1e-8
    torch.testing.assert_close(fvp(ng.direction), ng.gradient, rtol=1e-7, atol=1e-10)


def test_rejected_step_leaves_parameters_bit_for_bit() -> None:
    policy, surrogate, kl, _ = _problem(7, gaussian=True)
    start = [p.detach().clone() for p in policy.parameters()]
    theta0 = parameters_to_vector(policy.parameters()).detach().clone()

    def steep() -> torch.Tensor:
        # The gradient at the start is the surrogate's, but any move of the size the line search
        # tries costs far more through the penalty: every fraction must be rejected.
        theta = parameters_to_vector(policy.parameters())
        return surrogate() - 1e9 * (theta - theta0).pow(2).sum()

    result = trpo_step(policy, steep, kl, NPGConfig())
    assert not result.accepted
    assert result.backtracks == NPGConfig().backtrack_iters
    assert (result.step_fraction, result.kl, result.improvement) == (0.0, 0.0, 0.0)
    for p, p0 in zip(policy.parameters(), start, strict=True):
        assert torch.equal(p, p0)


def test_zero_advantages_are_a_rejected_no_op() -> None:
    policy, _, kl, _ = _problem(8, gaussian=False)
    start = parameters_to_vector(policy.parameters()).clone()
    zero = lambda: 0.0 * parameters_to_vector(policy.parameters()).sum()  # noqa: E731
    result = trpo_step(policy, zero, kl)
    assert not result.accepted
    assert torch.equal(parameters_to_vector(policy.parameters()), start)


def test_parameters_keep_their_storage_and_unused_ones_get_zero_gradient() -> None:
    policy, surrogate, kl, _ = _problem(9, gaussian=False)
    unused = nn.Parameter(torch.ones(3, dtype=torch.float64))
    plist = [*policy.parameters(), unused]
    pointers = [p.data_ptr() for p in plist]
    result = trpo_step(plist, surrogate, kl)
    assert result.accepted
    assert [p.data_ptr() for p in plist] == pointers
    assert torch.equal(unused, torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="vector has 2 entries"):
        set_flat_params(torch.zeros(2), param_list(policy))


def test_config_rejects_bad_values_by_name() -> None:
    with pytest.raises(ValueError, match="max_kl"):
        NPGConfig(max_kl=0.0)
    with pytest.raises(ValueError, match="backtrack_coef"):
        NPGConfig(backtrack_coef=1.0)
    with pytest.raises(ValueError, match="cg_iters"):
        NPGConfig(cg_iters=0)


@pytest.mark.parametrize("gaussian", [False, True])
def test_gauss_newton_products_equal_double_backprop(gaussian: bool) -> None:
    # The fast path's J^T H J v against the Hessian-vector product of the KL (float64).
    torch.manual_seed(4)
    policy = TinyPolicy(3, 2 if gaussian else 4, gaussian).double()
    obs = torch.randn(9, 3, dtype=torch.float64)
    kl = detached_kl(lambda: policy.distribution(obs))
    fast = fisher_vector_product(kl, policy, 0.2, gauss_newton=True)
    slow = fisher_vector_product(kl, policy, 0.2, gauss_newton=False)
    fisher = explicit_fisher(policy, obs)
    for _ in range(3):
        v = torch.randn(fisher.shape[0], dtype=torch.float64)
        torch.testing.assert_close(fast(v), slow(v), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(fast(v), fisher @ v + 0.2 * v, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("gaussian", [False, True])
def test_trpo_step_fast_path_equals_double_backprop(gaussian: bool) -> None:
    results = {}
    for fast_path in (True, False):
        policy, surrogate, kl, _ = _problem(11, gaussian)
        result = trpo_step(policy, surrogate, kl, NPGConfig(max_kl=0.05, fast_path=fast_path))
        results[fast_path] = (result, parameters_to_vector(policy.parameters()).detach())
    (fast, theta_fast), (slow, theta_slow) = results[True], results[False]
    assert fast.accepted and slow.accepted and fast.backtracks == slow.backtracks
    torch.testing.assert_close(theta_fast, theta_slow, rtol=1e-10, atol=1e-12)
    assert fast.kl == pytest.approx(slow.kl, rel=1e-9)


def test_other_kl_closures_and_distributions_fall_back_to_double_backprop() -> None:
    torch.manual_seed(5)
    policy = TinyPolicy(3, 2, gaussian=True).double()
    obs = torch.randn(6, 3, dtype=torch.float64)

    def beta() -> torch.distributions.Distribution:  # a kind the Gauss-Newton route does not know
        out = policy.net(obs)
        return Independent(torch.distributions.Beta(out.exp(), policy.log_std.exp().expand_as(out)), 1)

    fisher = explicit_fisher(policy, obs)
    plain = detached_kl(lambda: policy.distribution(obs))
    v = torch.randn(fisher.shape[0], dtype=torch.float64)
    # A bare closure (no DetachedKL) and an unsupported distribution both take double backprop.
    torch.testing.assert_close(fisher_vector_product(lambda: plain(), policy)(v), fisher @ v,
                               rtol=1e-10, atol=1e-12)
    kl_beta = detached_kl(beta)
    torch.testing.assert_close(fisher_vector_product(kl_beta, policy, gauss_newton=True)(v),
                               fisher_vector_product(kl_beta, policy, gauss_newton=False)(v),
                               rtol=0, atol=0)


def test_npg_fast_path_flag_is_validated() -> None:
    from rlsuite import validation as rules

    with pytest.raises(rules.ConfigError, match="fast_path"):
        NPGConfig(fast_path=1)
