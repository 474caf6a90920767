"""SAC's gradient step on the fast path (:mod:`rlsuite.learners.sac_fast`) against the eager
autograd step it replaces, and the written-out MLP passes it is built from."""

from __future__ import annotations

import gc
import warnings
import weakref

import pytest
import torch
from torch import nn

from rlsuite import validation as rules
from rlsuite.core import compiled, spaces
from rlsuite.engine import fastpath
from rlsuite.learners import sac_fast
from rlsuite.learners.buffers import Transitions
from rlsuite.learners.mlp_grad import mlp_apply, mlp_gradients, mlp_input_gradient
from rlsuite.learners.sac import SACConfig, SACNetworks, SACOptimizers, sac_update

OBS, ACT, HIDDEN, N = 3, 1, [16, 16], sac_fast.COMPILE_MIN_ROWS  # Pendulum's sizes (kernels shared)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_written_out_mlp_passes_equal_autograd(activation: str) -> None:
    torch.manual_seed(0)
    act = nn.ReLU if activation == "relu" else nn.Tanh
    net = nn.Sequential(nn.Linear(5, 8), act(), nn.Linear(8, 7), act(), nn.Linear(7, 3)).double()
    x = torch.randn(40, 5, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(40, 3, dtype=torch.float64)
    out = net(x)
    out.backward(grad_out)
    layers = [m for m in net if isinstance(m, nn.Linear)]
    weights, biases = [m.weight.detach() for m in layers], [m.bias.detach() for m in layers]
    acts = mlp_apply(weights, biases, x.detach(), activation)
    torch.testing.assert_close(acts[-1], out.detach(), rtol=1e-12, atol=1e-12)
    dw, db = mlp_gradients(weights, acts, grad_out, activation)
    for m, gw, gb in zip(layers, dw, db, strict=True):
        torch.testing.assert_close(gw, m.weight.grad, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(gb, m.bias.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(mlp_input_gradient(weights, acts, grad_out, activation), x.grad,
                               rtol=1e-12, atol=1e-12)


def _agent(fast: bool, alpha: float | None = None) -> tuple[SACNetworks, SACOptimizers]:
    torch.manual_seed(0)
    config = SACConfig(hidden_sizes=HIDDEN, fast_path=fast, alpha=alpha, init_alpha=0.5)
    obs_space = spaces.Box(low=-5 * torch.ones(OBS), high=5 * torch.ones(OBS))
    act_space = spaces.Box(low=torch.tensor([-1.0]), high=torch.tensor([3.0]))  # scale 2, bias 1
    nets = SACNetworks(obs_space, act_space, config)
    return nets, SACOptimizers.make(nets, 1e-3)


def _batch(n: int = N) -> tuple[Transitions, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    batch = Transitions(torch.randn(n, OBS, generator=g), torch.rand(n, ACT, generator=g) * 4 - 1,
                        torch.randn(n, generator=g), torch.randn(n, OBS, generator=g),
                        torch.rand(n, generator=g) < 0.3, torch.zeros(n, dtype=torch.bool))
    return batch, torch.rand(n, generator=g) * 2


def _run(fast: bool, weighted: bool, alpha: float | None, steps: int = 3, n: int = N):
    nets, opt = _agent(fast, alpha)
    batch, weight = _batch(n)
    gen = torch.Generator().manual_seed(3)
    stats = [sac_update(nets, opt, batch, 0.99, 0.05, gen, weight if weighted else None)
             for _ in range(steps)]
    return nets, opt, stats, torch.randn(8, generator=gen)


def _assert_same_step(eager, fast, tol: float = 2e-5) -> None:
    (ne, oe, se, re), (nf, of, sf, rf) = eager, fast
    assert torch.equal(re, rf)  # the random stream was consumed identically
    for a, b in zip(se, sf, strict=True):
        assert list(a) == list(b)  # the same statistics, in the same order
        for key in a:
            assert b[key].shape == a[key].shape and not b[key].requires_grad
            torch.testing.assert_close(b[key], a[key], rtol=tol, atol=tol, msg=key)
    for (name, p), q in zip(ne.named_parameters(), nf.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=tol, atol=tol, msg=name)  # parameters and targets
        if p.grad is not None:  # the last step's gradients (critic, actor, log_alpha)
            torch.testing.assert_close(q.grad, p.grad, rtol=tol, atol=tol, msg=f"grad {name}")
    for name, p in ne.critic_target.named_parameters():
        torch.testing.assert_close(nf.critic_target.get_parameter(name), p, rtol=tol, atol=tol)
    for part in ("actor", "critic", "alpha"):
        if getattr(oe, part) is not None:
            for key, state in getattr(oe, part).state_dict()["state"].items():
                other = getattr(of, part).state_dict()["state"][key]
                for field in ("step", "exp_avg", "exp_avg_sq"):
                    torch.testing.assert_close(other[field], state[field], rtol=tol, atol=1e-8)


@pytest.mark.parametrize(("weighted", "alpha"), [(False, None), (True, None), (False, 0.2)])
def test_fast_step_equals_eager_step(weighted: bool, alpha: float | None) -> None:
    torch.set_num_threads(1)
    fast = _run(True, weighted, alpha)
    assert fast[0] in sac_fast._STEPS and sac_fast._STEPS[fast[0]][1] is not None  # it ran
    assert ("ent_coef_loss" in fast[2][0]) == (alpha is None)
    _assert_same_step(_run(False, weighted, alpha), fast)


def test_freed_networks_free_their_fast_step() -> None:
    nets = _run(True, False, None, steps=1)[0]
    assert nets in sac_fast._STEPS
    ref = weakref.ref(nets)
    del nets
    gc.collect()
    assert ref() is None  # the cached step does not keep the networks alive


def test_small_batches_take_the_eager_step() -> None:
    small = _run(True, True, None, n=N - 1)
    assert small[0] not in sac_fast._STEPS
    eager = _run(False, True, None, n=N - 1)
    for a, b in zip(small[0].parameters(), eager[0].parameters(), strict=True):
        assert torch.equal(a, b)  # bit for bit: the same (eager) step
    assert torch.equal(small[3], eager[3])


def test_agent_on_the_fast_path_resumes_exactly() -> None:
    """A SAC agent whose steps take the fast path continues from its state dict bit for bit."""
    from rlsuite import envs
    from rlsuite.learners.sac import SAC

    torch.set_num_threads(1)
    env = envs.make("pendulum")
    cfg = SACConfig(hidden_sizes=HIDDEN, batch_size=N, learning_starts=N, num_steps=4)

    def agent(seed: int) -> SAC:
        return SAC(cfg, env, env.default_params(2), seed)

    first = agent(0).learn(N + 16)
    assert first.nets in sac_fast._STEPS and first.num_updates > 0  # it took fast steps
    restored = agent(7)
    restored.load_state_dict(first.state_dict())
    for a in (first, restored):
        a.learn(N + 48)
    for p, q in zip(first.nets.parameters(), restored.nets.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(first.nets.critic_target.parameters(), restored.nets.critic_target.parameters(),
                    strict=True):
        assert torch.equal(p, q)


def test_fast_path_off_compiles_nothing() -> None:
    before = fastpath.compile_seconds()
    nets, _, stats, _ = _run(False, False, None, steps=1)
    assert nets not in sac_fast._STEPS
    assert fastpath.compile_seconds() == before
    assert set(stats[0]) == {"critic_loss", "q_mean", "actor_loss", "ent_coef", "entropy",
                             "ent_coef_loss"}


def test_other_networks_take_the_eager_step() -> None:
    nets, opt = _agent(True)
    nets.actor.net[1] = nn.Tanh()  # not the ReLU layout the written-out passes compute
    assert sac_fast.fast_step(nets, opt, N) is None
    nets, opt = _agent(True)
    assert sac_fast.fast_step(nets, opt, N) is not None
    nets.double()  # parameters no longer float32 (the eager networks cast inputs to float32)
    assert sac_fast.fast_step(nets, opt, N) is None


def test_compile_failure_runs_the_same_maths_eagerly_with_one_warning(monkeypatch) -> None:
    def fail(self, args):  # noqa: ARG001 - the compiler's signature
        raise RuntimeError("no compiler")

    monkeypatch.setattr(compiled.CompiledKernel, "_build", fail)
    monkeypatch.setattr(sac_fast, "_KERNELS", {})
    monkeypatch.setattr(fastpath, "_WARNED", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast = _run(True, True, None)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len([m for m in messages if "sac critic gradient" in m]) == 1
    assert len([m for m in messages if "sac actor gradient" in m]) == 1
    _assert_same_step(_run(False, True, None), fast)


def test_fast_path_flag_is_validated() -> None:
    with pytest.raises(rules.ConfigError, match="fast_path"):
        SACConfig(fast_path=1)  # type: ignore[arg-type]
