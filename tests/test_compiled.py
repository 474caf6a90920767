"""``compile=True``: the fused step equals the eager one, and compiled code never goes stale.

Each new input signature compiles (~1-3 s with a warm inductor cache, more with a cold one), so
these tests keep to a few shapes.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import rlsuite.envs
from rlsuite.core import tree
from rlsuite.core.classic import SMALL_BATCH, _prefix_sum
from rlsuite.core.compiled import CompiledKernel


def _affine(x: torch.Tensor, scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    y = x * scale + 1.0
    return y, y > 2.0


def test_kernel_matches_eager_and_returns_bools_as_bools() -> None:
    kernel = CompiledKernel(_affine)
    x = torch.tensor([0.0, 0.5, 1.0, 2.0])
    y, big = kernel(x, torch.full((4,), 2.0))
    assert y.tolist() == [1.0, 2.0, 3.0, 5.0]
    assert big.dtype == torch.bool and big.tolist() == [False, False, True, True]


def test_kernel_reads_values_every_call_and_recompiles_per_signature() -> None:
    kernel = CompiledKernel(_affine)
    scale = torch.full((3,), 2.0)
    x = torch.ones(3)
    assert kernel(x, scale)[0].tolist() == [3.0, 3.0, 3.0]
    scale.fill_(5.0)  # same tensor, new values: no stale constant
    assert kernel(x, scale)[0].tolist() == [6.0, 6.0, 6.0]
    assert kernel.cache_size() == 1
    # A new dtype, a new shape and a non-contiguous input each get their own version.
    assert kernel(x.double(), scale.double())[0].dtype == torch.float64
    assert kernel(torch.ones(5), torch.full((5,), 3.0))[0].tolist() == [4.0] * 5
    strided = torch.arange(6.0)[::2]
    assert kernel(strided, scale)[0].tolist() == [1.0, 11.0, 21.0]
    assert kernel.cache_size() == 4


def test_kernel_runs_eagerly_where_autograd_needs_the_graph() -> None:
    kernel = CompiledKernel(_affine)
    scale = torch.full((2,), 3.0, requires_grad=True)
    with torch.no_grad():  # compiled: nothing to differentiate
        assert kernel(torch.ones(2), scale)[0].tolist() == [4.0, 4.0]
    y, _ = kernel(torch.ones(2), scale)  # same tensors, grad mode on: must not reuse that
    y.sum().backward()
    assert scale.grad is not None and scale.grad.tolist() == [1.0, 1.0]


def _rollout(env, params, seed: int, steps: int) -> list:
    gen = env.make_generator(seed)
    actions = torch.Generator().manual_seed(seed + 1)
    _, state = env.reset(params, gen)
    out = []
    for _ in range(steps):
        action = env.action_space.batched(tree.batch_size(params)).sample(actions)
        step = env.step(state, action.to(env.dtype) if action.is_floating_point() else action,
                        params, gen)
        out.append(step)
        state = step.state
    return out


# Acrobot's RK4 graph takes ~6 s to compile: slow tier.
@pytest.mark.parametrize(
    "name", ["cartpole", "pendulum", pytest.param("acrobot", marks=pytest.mark.slow)]
)
def test_fused_cpu_step_equals_eager_in_float64(name: str) -> None:
    """Which copies end, when, and with which pool columns they restart: all equal. The floats
    agree to rounding: inductor's vectorised cos/sin and ATen's differ in the last bit for a few
    arguments (in the vector tail, here B = 6), so bit equality is not promised."""
    kw = {"dtype": torch.float64, "max_episode_steps": 20}
    eager = rlsuite.envs.make(name, **kw)
    fused = rlsuite.envs.make(name, compile=True, **kw)
    params = eager.default_params(6)
    a, b = _rollout(eager, params, 0, 60), _rollout(fused, params, 0, 60)
    assert sum(int(s.done.sum()) for s in a) >= 12
    for sa, sb in zip(a, b, strict=True):
        flat_a, flat_b = tree.flatten(sa), tree.flatten(sb)
        assert flat_a.keys() == flat_b.keys()
        for key, va in flat_a.items():
            vb = flat_b[key]
            if not isinstance(va, torch.Tensor):
                assert va == vb, key
            elif va.is_floating_point() and key != "state.pool.values":
                assert va.dtype == vb.dtype and torch.allclose(va, vb, rtol=0, atol=1e-9), key
            else:
                assert va.dtype == vb.dtype and torch.equal(va, vb), key


@pytest.mark.parametrize("n", [1, 2, 3, 7, 16, 63, 64])
def test_prefix_sum_equals_cumsum_eagerly_and_fused(n: int) -> None:
    # The fused step's reset count (b <= SMALL_BATCH): exact, at any length, compiled or not.
    x = torch.randint(0, 2, (n,), generator=torch.Generator().manual_seed(n), dtype=torch.int32)
    expected = torch.cumsum(x, 0, dtype=torch.int32)
    assert torch.equal(_prefix_sum(x), expected)
    (fused,) = CompiledKernel(lambda v: (_prefix_sum(v),))(x)
    assert torch.equal(fused, expected)


def test_fused_cartpole_float32_agrees_to_rounding_above_small_batch() -> None:
    """B = 100 > SMALL_BATCH: the fused step counts resets with cumsum (C++ wrapper)."""
    assert 100 > SMALL_BATCH
    eager, fused = rlsuite.envs.make("cartpole"), rlsuite.envs.make("cartpole", compile=True)
    params = eager.default_params(100)
    a, b = _rollout(eager, params, 3, 50), _rollout(fused, params, 3, 50)
    assert sum(int(s.done.sum()) for s in a) >= 100
    for sa, sb in zip(a, b, strict=True):
        # Inductor's vectorised cos/sin may differ from ATen's in the last bit.
        assert torch.allclose(sa.obs, sb.obs, atol=1e-5) and sb.obs.shape == (100, 4)
        assert torch.allclose(sa.final_obs, sb.final_obs, atol=1e-5)
        assert torch.equal(sa.terminated, sb.terminated) and torch.equal(sa.truncated, sb.truncated)
        assert torch.equal(sa.state.time, sb.state.time)
        assert sa.state.pool.cursor == sb.state.pool.cursor


def test_compiled_env_uses_new_params_values_and_a_new_time_limit() -> None:
    env = rlsuite.envs.make("cartpole", dtype=torch.float64, compile=True)
    eager = rlsuite.envs.make("cartpole", dtype=torch.float64)
    params = env.default_params(2)
    _, state = env.reset(params, env.make_generator(0))
    action = torch.tensor([1, 0])

    def both(p, s):
        return (env.step(s, action, p, env.make_generator(1)),
                eager.step(s, action, p, eager.make_generator(1)))

    heavy = dataclasses.replace(params, gravity=params.gravity * 3)
    for p in (params, heavy):
        fused_step, eager_step = both(p, state)
        assert torch.equal(fused_step.state.theta_dot, eager_step.state.theta_dot)
    params.gravity.fill_(20.0)  # in place, same params object
    fused_step, eager_step = both(params, state)
    assert torch.equal(fused_step.state.theta_dot, eager_step.state.theta_dot)

    # The time limit is baked into the compiled step: changing it must not reuse that step.
    at_limit = dataclasses.replace(state, time=torch.full((2,), 2, dtype=torch.int32))
    env.max_episode_steps = eager.max_episode_steps = 3
    fused_step, eager_step = both(params, at_limit)
    assert fused_step.truncated.tolist() == [True, True] == eager_step.truncated.tolist()


def test_fused_physics_with_resets_outside_equals_eager() -> None:
    """The compile=True path used off the CPU (physics fused, resets outside), run on the CPU."""
    kw = {"dtype": torch.float64, "max_episode_steps": 20}
    eager = rlsuite.envs.make("cartpole", **kw)
    fused = rlsuite.envs.make("cartpole", compile=True, **kw)
    fused._fused_step = False
    params = eager.default_params(5)
    a, b = _rollout(eager, params, 1, 40), _rollout(fused, params, 1, 40)
    assert sum(int(s.done.sum()) for s in a) >= 5
    for sa, sb in zip(a, b, strict=True):
        assert torch.allclose(sa.obs, sb.obs, rtol=0, atol=1e-6)
        assert torch.equal(sa.done, sb.done) and torch.equal(sa.state.time, sb.state.time)
        assert sa.state.pool.cursor == sb.state.pool.cursor
