"""The CPU reset pool: which initial state each ending copy gets, and what is (not) written."""

from __future__ import annotations

import torch

from rlsuite.core import autoreset
from rlsuite.envs.cartpole import CartPole


def _counting_sampler(calls: list[int]):
    """A sampler whose i-th state drawn (over all calls) is ``(i, -i)``: columns are traceable."""

    def sample(n: int, generator: torch.Generator) -> torch.Tensor:
        start = sum(calls)
        calls.append(n)
        i = torch.arange(start, start + n, dtype=torch.float32)
        return torch.stack([i, -i])

    return sample


def test_restart_takes_next_pool_columns_in_copy_order_and_writes_no_input() -> None:
    calls: list[int] = []
    sample = _counting_sampler(calls)
    gen = torch.Generator()
    pool = autoreset.ResetPool(sample(10, gen), cursor=3)
    fields = (torch.full((5,), 7.0), torch.full((5,), 8.0))
    time = torch.tensor([4, 5, 6, 7, 8], dtype=torch.int32)
    done = torch.tensor([False, True, False, True, True])

    out, time_out, pool_out, any_reset = autoreset.restart_stacked(
        fields, time, done, pool, sample, gen
    )
    assert any_reset and pool_out.cursor == 6 and pool_out.values is pool.values
    # Copies 1, 3, 4 end and take columns 3, 4, 5 of the pool, in that order.
    assert out[0].tolist() == [7.0, 3.0, 7.0, 4.0, 5.0]
    assert out[1].tolist() == [8.0, -3.0, 8.0, -4.0, -5.0]
    assert time_out.tolist() == [4, 0, 6, 0, 0]
    # The fields passed in are untouched (they may be the final observation's memory).
    assert fields[0].tolist() == [7.0] * 5 and fields[1].tolist() == [8.0] * 5
    assert calls == [10]


def test_restart_without_ends_returns_its_inputs_and_consumes_nothing() -> None:
    calls: list[int] = []
    sample = _counting_sampler(calls)
    pool = autoreset.ResetPool(sample(4, torch.Generator()), cursor=1)
    fields = (torch.zeros(3), torch.ones(3))
    time = torch.arange(3, dtype=torch.int32)
    out, time_out, pool_out, any_reset = autoreset.restart_stacked(
        fields, time, torch.zeros(3, dtype=torch.bool), pool, sample, torch.Generator()
    )
    assert not any_reset and out is fields and time_out is time and pool_out is pool


def test_ensure_pool_refills_only_when_fewer_than_batch_size_columns_are_left() -> None:
    calls: list[int] = []
    sample = _counting_sampler(calls)
    gen = torch.Generator()
    pool = autoreset.ResetPool(sample(8, gen), cursor=5)
    assert autoreset.ensure_pool(pool, 3, sample, gen) is pool  # 3 left: enough for B = 3
    fresh = autoreset.ensure_pool(pool, 4, sample, gen)
    assert fresh.cursor == 0
    assert fresh.values.shape == (2, max(autoreset.MIN_POOL, autoreset.POOL_STEPS * 4))
    # The refill continues the sampler's stream: its first state is the 9th ever drawn.
    assert fresh.values[:, 0].tolist() == [8.0, -8.0]


def test_restart_writes_time_in_place_and_fields_into_a_fresh_block() -> None:
    calls: list[int] = []
    sample = _counting_sampler(calls)
    pool = autoreset.ResetPool(sample(6, torch.Generator()), cursor=2)
    fields = (torch.zeros(4), torch.zeros(4))
    time = torch.full((4,), 9, dtype=torch.int32)
    done = torch.tensor([True, False, False, True])
    out, time_out, pool_out, any_reset = autoreset.restart_stacked(
        fields, time, done, pool, sample, torch.Generator()
    )
    assert any_reset and time_out is time
    assert out[0].tolist() == [2.0, 0.0, 0.0, 3.0] and out[1].tolist() == [-2.0, 0, 0, -3.0]
    assert fields[0].tolist() == [0.0] * 4  # the inputs are not written
    assert time.tolist() == [0, 9, 9, 0] and pool_out.cursor == 4


def test_reset_indices_are_the_true_copies() -> None:
    done = torch.tensor([False, True, True, False, True])
    assert autoreset.reset_indices(done).tolist() == [1, 2, 4]
    assert autoreset.reset_indices(torch.zeros(3, dtype=torch.bool)).size == 0


def test_step_resets_from_the_pool_in_order_and_keeps_the_final_observation() -> None:
    """CartPole end to end: ending copies start from the pool's next columns, in copy order."""
    env = CartPole(dtype=torch.float64)
    params = env.default_params(6)
    gen = env.make_generator(0)
    _, state = env.reset(params, gen)
    # Copies 1 and 4 start just past the angle threshold, tipping further: they terminate.
    theta = state.theta.clone()
    theta[[1, 4]] = torch.tensor([0.25, -0.25], dtype=torch.float64)
    state = type(state)(state.x, state.x_dot, theta, state.theta_dot, state.time, state.pool)
    cursor = state.pool.cursor
    step = env.step(state, torch.ones(6, dtype=torch.int64), params, gen)

    assert step.terminated.tolist() == [False, True, False, False, True, False]
    expected = state.pool.values[:, cursor : cursor + 2].T.to(torch.float32)
    assert torch.equal(step.obs[[1, 4]], expected)
    assert step.state.pool.cursor == cursor + 2
    assert step.state.time.tolist() == [1, 0, 1, 1, 0, 1]
    # final_obs holds the terminal states; the new state's fields are the new episode's.
    # (Euler: theta' = theta + tau * theta_dot, gymnasium's update.)
    reached = (theta + 0.02 * state.theta_dot)[[1, 4]].to(torch.float32)
    assert torch.equal(step.final_obs[[1, 4], 2], reached)
    assert torch.equal(step.state.theta[[1, 4]], state.pool.values[2, cursor : cursor + 2])
    # The input state is left as it was.
    assert theta[1].item() == 0.25 and state.time.tolist() == [0] * 6


def test_select_path_draws_for_every_copy_and_keeps_the_draw_only_where_done() -> None:
    """The CUDA path, run on CPU tensors: no host indexing, fresh states where done."""
    calls: list[int] = []
    sample = _counting_sampler(calls)
    fields = (torch.full((4,), 7.0), torch.full((4,), 8.0))
    done = torch.tensor([False, True, False, True])
    out, time = autoreset.restart_by_select(
        fields, torch.full((4,), 3, dtype=torch.int32), done, sample, torch.Generator()
    )
    assert calls == [4]  # one draw per copy, every step
    assert out[0].tolist() == [7.0, 1.0, 7.0, 3.0] and out[1].tolist() == [8.0, -1.0, 8.0, -3.0]
    assert time.tolist() == [3, 0, 3, 0] and time.dtype == torch.int32
    assert fields[0].tolist() == [7.0] * 4
