"""GAE and Monte-Carlo returns against reference loops and closed forms."""

from __future__ import annotations

import pytest
import torch

from rlsuite.learners.returns import discounted_returns, gae


def _reference_gae(r, v, nv, term, trunc, gamma, lam):
    t_len, b = r.shape
    adv = torch.zeros(t_len, b, dtype=torch.float64)
    for j in range(b):
        running = 0.0
        for t in reversed(range(t_len)):
            boot = 0.0 if term[t, j] else nv[t, j].item()
            delta = r[t, j].item() + gamma * boot - v[t, j].item()
            cut = term[t, j] or trunc[t, j]
            running = delta + (0.0 if cut else gamma * lam * running)
            adv[t, j] = running
    return adv


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.95, 1.0])
def test_gae_matches_reference_loop(lam: float) -> None:
    g = torch.Generator().manual_seed(0)
    t_len, b = 17, 6
    r = torch.randn(t_len, b, generator=g, dtype=torch.float64)
    v = torch.randn(t_len, b, generator=g, dtype=torch.float64)
    nv = torch.randn(t_len, b, generator=g, dtype=torch.float64)
    term = torch.rand(t_len, b, generator=g) < 0.15
    trunc = (torch.rand(t_len, b, generator=g) < 0.15) & ~term
    adv, ret = gae(r, v, nv, term, trunc, 0.97, lam)
    ref = _reference_gae(r, v, nv, term, trunc, 0.97, lam)
    torch.testing.assert_close(adv, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(ret, ref + v, rtol=0, atol=1e-12)


def test_truncation_bootstraps_and_termination_does_not() -> None:
    # One step, reward 1, next value 10: truncated -> 1 + 0.9 * 10; terminated -> 1.
    r = torch.ones(1, 2)
    v = torch.zeros(1, 2)
    nv = torch.full((1, 2), 10.0)
    term = torch.tensor([[True, False]])
    trunc = torch.tensor([[False, True]])
    adv, _ = gae(r, v, nv, term, trunc, 0.9, 0.95)
    assert adv.tolist() == [[1.0, 1.0 + 0.9 * 10.0]]


def test_constant_reward_chain_closed_form() -> None:
    # Reward 1 forever, V = 0, episode cut by truncation at T with V(s_T) = 1/(1-gamma):
    # the lambda=1 return is exactly 1/(1-gamma) at every step.
    gamma, t_len = 0.9, 30
    r = torch.ones(t_len, 1, dtype=torch.float64)
    nv = torch.full((t_len, 1), 1 / (1 - gamma), dtype=torch.float64)
    term = torch.zeros(t_len, 1, dtype=torch.bool)
    trunc = torch.zeros(t_len, 1, dtype=torch.bool)
    trunc[-1] = True
    ret = discounted_returns(r, nv, term, trunc, gamma)
    torch.testing.assert_close(ret, torch.full_like(ret, 1 / (1 - gamma)))
    # With consistent values (V = 1/(1-gamma) everywhere) every TD error is 0 and GAE's
    # return equals the same value for any lambda.
    adv, gae_ret = gae(r, nv.clone(), nv, term, trunc, gamma, 0.7)
    torch.testing.assert_close(adv, torch.zeros_like(adv))
    torch.testing.assert_close(gae_ret, ret)


def test_discounted_returns_with_termination() -> None:
    # rewards 1,2,3 then terminal: G = [1 + .5*2 + .25*3, 2 + .5*3, 3]
    r = torch.tensor([[1.0], [2.0], [3.0]])
    nv = torch.full((3, 1), 100.0)
    term = torch.tensor([[False], [False], [True]])
    trunc = torch.zeros(3, 1, dtype=torch.bool)
    ret = discounted_returns(r, nv, term, trunc, 0.5)
    assert ret.squeeze(1).tolist() == [2.75, 3.5, 3.0]


def _reference_n_step(r, nv, term, trunc, gamma, n):
    t_len, b = r.shape
    out = torch.zeros(t_len, b, dtype=torch.float64)
    for j in range(b):
        for t in range(t_len):
            g, disc = 0.0, 1.0
            for k in range(n):
                s = t + k
                g += disc * r[s, j].item()
                last = k == n - 1 or term[s, j] or trunc[s, j] or s == t_len - 1
                if last:
                    if not term[s, j]:
                        g += disc * gamma * nv[s, j].item()
                    break
                disc *= gamma
            out[t, j] = g
    return out


@pytest.mark.parametrize("n", [1, 3, 7, 40])
def test_n_step_returns_match_reference_loop(n: int) -> None:
    from rlsuite.learners.returns import n_step_returns

    g = torch.Generator().manual_seed(1)
    r = torch.randn(20, 5, generator=g, dtype=torch.float64)
    nv = torch.randn(20, 5, generator=g, dtype=torch.float64)
    term = torch.rand(20, 5, generator=g) < 0.1
    trunc = (torch.rand(20, 5, generator=g) < 0.1) & ~term
    ours = n_step_returns(r, nv, term, trunc, 0.9, n)
    torch.testing.assert_close(ours, _reference_n_step(r, nv, term, trunc, 0.9, n), rtol=0, atol=1e-12)


def test_n_step_closed_forms() -> None:
    from rlsuite.learners.returns import n_step_returns

    g = torch.Generator().manual_seed(2)
    r = torch.randn(12, 3, generator=g, dtype=torch.float64)
    nv = torch.randn(12, 3, generator=g, dtype=torch.float64)
    term = torch.rand(12, 3, generator=g) < 0.2
    trunc = torch.zeros(12, 3, dtype=torch.bool)
    # n = 1 is the one-step TD target; n >= T is the Monte-Carlo return within the rollout.
    td = r + 0.8 * (~term).double() * nv
    torch.testing.assert_close(n_step_returns(r, nv, term, trunc, 0.8, 1), td, rtol=0, atol=1e-12)
    torch.testing.assert_close(n_step_returns(r, nv, term, trunc, 0.8, 12),
                               discounted_returns(r, nv, term, trunc, 0.8), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="n must be >= 1"):
        n_step_returns(r, nv, term, trunc, 0.8, 0)


def test_gae_equals_the_plain_row_loop_bit_for_bit() -> None:
    # gae writes the recursion into row views with out= (faster); the float32 result must be the
    # plain loop's, op for op.
    g = torch.Generator().manual_seed(3)
    t_len, b, gamma, lam = 40, 9, 0.99, 0.95
    r, v, nv = (torch.randn(t_len, b, generator=g) for _ in range(3))
    term = torch.rand(t_len, b, generator=g) < 0.1
    trunc = (torch.rand(t_len, b, generator=g) < 0.1) & ~term
    not_terminal, continues = (~term).float(), (~(term | trunc)).float()
    delta = r + gamma * not_terminal * nv - v
    plain = torch.empty_like(v)
    running = torch.zeros_like(v[0])
    for t in range(t_len - 1, -1, -1):
        running = delta[t] + gamma * lam * continues[t] * running
        plain[t] = running
    adv, ret = gae(r, v, nv, term, trunc, gamma, lam)
    assert torch.equal(adv, plain)
    assert torch.equal(ret, plain + v)
