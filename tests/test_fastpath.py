"""The fast path (fused policy kernels + fused env steps) against the eager path.

Each test compiles a few small kernels (~1 s each with a warm inductor cache).
"""

import warnings

import pytest
import torch

import rlsuite.envs as envs
from rlsuite.core import autoreset
from rlsuite.engine import fastpath, fused_loop
from rlsuite.engine.evaluate import evaluate
from rlsuite.engine.rollout import collect, start
from rlsuite.engine.syncguard import HostSyncError, host_sync_point, no_host_sync
from rlsuite.learners.ppo import PPO, PPOConfig


def _agent(env, copies: int = 16, **config) -> PPO:
    return PPO(PPOConfig(num_steps=32, **config), env, env.default_params(copies), seed=0)


def _rollout(agent: PPO, policy, steps: int = 150):
    agent.policy_generator.manual_seed(5)
    state = start(agent.env, agent.params, agent.env.make_generator(0))
    return collect(agent.env, state, agent.params, policy, steps, agent.env.make_generator(1))


def test_fused_rollout_equals_eager_in_float64_env() -> None:
    # float64 CartPole: the fused env step is exact; the float32 policy agrees to rounding.
    env = envs.make("cartpole", dtype=torch.float64)
    agent = _agent(env)
    fused, fused_state = _rollout(agent, agent.fused_policy(False))
    fused_stream = agent.policy_generator.get_state()
    eager, eager_state = _rollout(agent, agent._eager_rollout_policy)
    assert int(eager.done.sum()) >= 50  # many autoresets inside the window
    for name in ("obs", "next_obs", "reward", "episode_return", "episode_length", "action",
                 "terminated", "truncated"):
        assert torch.equal(getattr(fused, name), getattr(eager, name)), name
    assert torch.equal(fused.extras["raw_action"], eager.extras["raw_action"])
    torch.testing.assert_close(fused.extras["log_prob"], eager.extras["log_prob"], rtol=0, atol=1e-6)
    torch.testing.assert_close(fused.extras["value"], eager.extras["value"], rtol=0, atol=1e-5)
    assert torch.equal(fused_state.obs, eager_state.obs)
    # Same generator use: both policy streams end in the same state.
    assert torch.equal(fused_stream, agent.policy_generator.get_state())


def _loop_kernels(policy) -> list:
    return list(fused_loop._KERNELS.get(policy, {}).values())


def test_a_fused_rollout_step_is_one_kernel_call() -> None:
    # Policy, env step, autoreset, episode statistics and the buffer writes: one compiled
    # program per step. Neither the policy's own kernel nor the env's step kernel is used.
    env = envs.make("cartpole")
    agent = _agent(env)
    policy = agent.fused_policy(False)
    calls = []
    data, _ = _rollout(agent, policy, steps=40)
    (kernel,) = _loop_kernels(policy)
    run = kernel._kernel.runner  # count the calls of the compiled step
    kernel._kernel.runner = lambda args, key: (lambda a: calls.append(1) or run(args, key)(a))
    _rollout(agent, policy, steps=40)
    assert len(calls) == 40 and kernel._kernel.cache_size() == 1
    # ... and that program is called directly, under none of torch's wrappers (core/compiled.py).
    assert all(run.direct for run in kernel._kernel._compiled.values())
    assert policy.kernel._kernel.cache_size() == 0
    assert fastpath.fast_env(env)._step_kernel._kernel.cache_size() == 0
    assert int(data.done.sum()) > 0


def test_fused_rollout_with_one_generator_for_policy_and_env_equals_eager() -> None:
    # Policy noise and resets drawn from the same generator: the draws must interleave as in
    # the eager loop (policy noise, then the pool refill), so no whole-rollout noise draw.
    env = envs.make("cartpole", dtype=torch.float64)
    agent = _agent(env, copies=64)

    def run(policy):
        agent.policy_generator.manual_seed(5)
        state = start(env, agent.params, env.make_generator(0))
        data, end = collect(env, state, agent.params, policy, 60, agent.policy_generator)
        return data, end, agent.policy_generator.get_state()

    fused, fused_end, fused_stream = run(agent.fused_policy(False))
    eager, eager_end, eager_stream = run(agent._eager_rollout_policy)
    assert int(eager.done.sum()) > 64  # the pool (1024 columns) is refilled inside the window
    assert fused_end.env_state.pool.values.data_ptr() != start(
        env, agent.params, env.make_generator(0)).env_state.pool.values.data_ptr()
    for name in ("obs", "action", "next_obs", "reward", "terminated", "truncated"):
        assert torch.equal(getattr(fused, name), getattr(eager, name)), name
    assert torch.equal(fused_stream, eager_stream)
    assert fused_end.env_state.pool.cursor == eager_end.env_state.pool.cursor
    assert torch.equal(fused_end.env_state.pool.values, eager_end.env_state.pool.values)


@pytest.mark.parametrize("kind", ["uniform", "normal"])
@pytest.mark.parametrize("batch,width", [(64, 1), (64, 2), (7, 2), (8, 1), (3, 1), (16, 1), (5, 3)])
def test_noise_splits_evenly_exactly_when_one_draw_equals_the_steps(kind, batch, width) -> None:
    noise = fastpath.Noise(kind, width)
    g = torch.Generator().manual_seed(0)
    steps = torch.stack([noise.draw(batch, g, torch.device("cpu")) for _ in range(5)])
    after_steps = g.get_state()
    g.manual_seed(0)
    block = noise.draw(batch, g, torch.device("cpu"), steps=5)
    same = torch.equal(steps, block) and torch.equal(after_steps, g.get_state())
    # Never claimed where it is not so (conservative where it happens to be: 3 normals in all).
    assert same or not noise.splits_evenly(batch, torch.device("cpu"))
    assert noise.splits_evenly(batch, torch.device("cpu")) == (
        kind == "uniform" or batch * width % 16 == 0)
    if (batch * width) % 16 and batch * width * 5 > 16:
        assert kind == "uniform" or not same  # the reason for the rule


def test_noise_rejects_bad_fields() -> None:
    with pytest.raises(ValueError, match="kind"):
        fastpath.Noise("gumbel", 2)
    with pytest.raises(ValueError, match="width"):
        fastpath.Noise("uniform", 0)


def test_fused_rollout_float32_env_agrees_within_tolerance() -> None:
    env = envs.make("cartpole")
    agent = _agent(env)
    fused, _ = _rollout(agent, agent.fused_policy(False))
    eager, _ = _rollout(agent, agent._eager_rollout_policy)
    assert torch.equal(fused.action, eager.action) and torch.equal(fused.done, eager.done)
    torch.testing.assert_close(fused.obs, eager.obs, rtol=0, atol=1e-5)


def test_fused_rollout_on_a_continuous_env_keeps_raw_and_clipped_actions() -> None:
    env = envs.make("pendulum")
    agent = _agent(env, copies=8)
    fused, _ = _rollout(agent, agent.fused_policy(False), steps=40)
    fused_stream = agent.policy_generator.get_state()
    eager, _ = _rollout(agent, agent._eager_rollout_policy, steps=40)
    # 8 copies x 1 normal per step: not a whole block of 16, so drawn step by step, as eager.
    assert torch.equal(fused_stream, agent.policy_generator.get_state())
    torch.testing.assert_close(fused.extras["raw_action"], eager.extras["raw_action"], rtol=0, atol=1e-6)
    torch.testing.assert_close(fused.action, eager.action, rtol=0, atol=1e-6)
    assert float(fused.action.abs().max()) <= 2.0
    torch.testing.assert_close(fused.obs, eager.obs, rtol=0, atol=1e-4)


def test_fused_policy_on_an_eager_tabular_env_equals_eager() -> None:
    # Not a classic-control env: the env steps eagerly, only the (one-hot input) policy is fused.
    env = envs.make("frozenlake")
    agent = _agent(env, copies=8)
    fused, _ = _rollout(agent, agent.fused_policy(False), steps=50)
    eager, _ = _rollout(agent, agent._eager_rollout_policy, steps=50)
    assert torch.equal(fused.action, eager.action) and torch.equal(fused.obs, eager.obs)
    torch.testing.assert_close(fused.extras["log_prob"], eager.extras["log_prob"], rtol=0, atol=1e-6)


def test_fused_evaluation_equals_eager_evaluation() -> None:
    env = envs.make("cartpole", dtype=torch.float64)
    agent = _agent(env)
    params = env.default_params(32)
    greedy = agent.greedy_policy()
    fused = evaluate(greedy, env, params, 2, env.make_generator(3))
    eager = evaluate(lambda o: agent.model.sample(o, None, True)[0], env, params, 2,
                     env.make_generator(3))
    assert torch.equal(fused.returns, eager.returns) and torch.equal(fused.lengths, eager.lengths)
    # One fused program per step: the policy's own kernel never ran.
    assert greedy.kernel._kernel.cache_size() == 0 and len(_loop_kernels(greedy)) == 1
    with pytest.raises(ValueError, match="did not finish"):
        evaluate(greedy, env, params, 2, env.make_generator(3), max_steps=5)


def test_fused_evaluation_builds_its_arguments_once_and_refills_in_place(monkeypatch) -> None:
    # The argument list is built before the loop and updated in place from the kernel's outputs
    # (as the fused rollout's); only a reset-pool refill writes the env's part of it anew.
    env = envs.make("cartpole", dtype=torch.float64)
    agent = _agent(env)
    params = env.default_params(512)  # > 1024 resets: the pool refills
    greedy = agent.greedy_policy()
    flat_calls, refills = [], []
    flat, ensure = fused_loop._EnvArgs.flat, fused_loop._EnvArgs.ensure_pool
    monkeypatch.setattr(fused_loop._EnvArgs, "flat", lambda self: flat_calls.append(1) or flat(self))
    monkeypatch.setattr(fused_loop._EnvArgs, "ensure_pool",
                        lambda self, gen: refills.append(ensure(self, gen)) or refills[-1])
    fused = evaluate(greedy, env, params, 4, env.make_generator(4))
    monkeypatch.undo()
    assert sum(refills) >= 1 and len(refills) > 50  # steps taken, the pool refilled on the way
    assert len(flat_calls) == 1 + sum(refills)
    eager = evaluate(lambda o: agent.model.sample(o, None, True)[0], env, params, 4,
                     env.make_generator(4))
    assert torch.equal(fused.returns, eager.returns) and torch.equal(fused.lengths, eager.lengths)


def test_fast_path_off_compiles_nothing_and_learns_identically_to_itself() -> None:
    env = envs.make("cartpole")
    before = fastpath.compile_seconds()
    a = _agent(env, fast_path=False).learn(2 * 16 * 32)
    b = _agent(env, fast_path=False).learn(2 * 16 * 32)
    assert fastpath.compile_seconds() == before
    for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(x, y)


def test_failed_compilation_warns_once_and_runs_eagerly(monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr("torch._inductor.compile", broken)
    fastpath._WARNED.discard("test kernel")
    kernel = fastpath.FastKernel("test kernel", lambda x: (x * 2,))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = [kernel(torch.ones(3))[0] for _ in range(3)]
        other = fastpath.FastKernel("test kernel", lambda x: (x + 1,))
        other(torch.ones(2))
    assert [str(w.message).count("no compiler here") for w in caught] == [1]
    assert all(o.tolist() == [2.0, 2.0, 2.0] for o in outs)


def test_compilation_is_printed_as_a_phase_and_counted(capsys, monkeypatch) -> None:
    monkeypatch.setenv("RLSUITE_KERNEL_STORE", "0")  # compile, do not load an earlier build
    kernel = fastpath.FastKernel("a tiny kernel", lambda x: (x.sin() + 1,))
    before = fastpath.compile_seconds()
    kernel(torch.zeros(7))
    kernel(torch.zeros(7))  # cached: no second line
    err = capsys.readouterr().err
    assert err.count("rlsuite: compiling a tiny kernel ... ") == 1 and err.rstrip().endswith(" s")
    assert fastpath.compile_seconds() > before


@pytest.mark.slow  # a cold TorchInductor cache (a fresh CI machine) makes it ~15 s
def test_collection_and_evaluation_never_sync_with_the_host(monkeypatch) -> None:
    # The device path (resets by torch.where, as on CUDA) on this CPU; compile outside the guard.
    monkeypatch.setattr(autoreset, "uses_pool", lambda device: False)
    env = envs.make("cartpole")
    agent = _agent(env)
    policy, greedy = agent.fused_policy(False), agent.greedy_policy()
    _rollout(agent, policy, steps=2)
    evaluate(greedy, env, env.default_params(16), 1, env.make_generator(3))
    with no_host_sync():
        data, _ = _rollout(agent, policy, steps=60)
        result = evaluate(greedy, env, env.default_params(16), 1, env.make_generator(3))
    assert int(data.done.sum()) > 0 and result.returns.shape == (16, 1)
    # The CPU path, one fused kernel per step with the reset pool: sync-free too, apart from the
    # reads it marks (the pool cursor every ~P/B steps) and the param-value check that a CPU
    # reset makes by design (BatchedEnv.check_params), marked here.
    monkeypatch.undo()
    cpu_env = envs.make("cartpole")
    check_values = cpu_env.check_param_values

    def marked_check(params):
        with host_sync_point():
            check_values(params)

    monkeypatch.setattr(cpu_env, "check_param_values", marked_check)
    cpu_agent = _agent(cpu_env)
    cpu_policy, cpu_greedy = cpu_agent.fused_policy(False), cpu_agent.greedy_policy()
    _rollout(cpu_agent, cpu_policy, steps=100)  # compile (T is part of the kernel's shapes)
    evaluate(cpu_greedy, cpu_env, cpu_env.default_params(16), 1, cpu_env.make_generator(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fused kernels ran compiled, not an eager fallback
        with no_host_sync():
            data, _ = _rollout(cpu_agent, cpu_policy, steps=100)
            evaluate(cpu_greedy, cpu_env, cpu_env.default_params(16), 1,
                     cpu_env.make_generator(3))
    assert len(_loop_kernels(cpu_policy)) == 1 and int(data.done.sum()) > 16
    # The guard is live: the eager CPU pool path reads resets on the host and is caught.
    monkeypatch.undo()
    eager_env = envs.make("cartpole")
    state = start(eager_env, agent.params, eager_env.make_generator(0))
    with pytest.raises(HostSyncError), no_host_sync():
        collect(eager_env, state, agent.params, agent._eager_rollout_policy, 60,
                eager_env.make_generator(1))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_collection_and_evaluation_pass_cuda_sync_debug_mode() -> None:
    env = envs.make("cartpole", device="cuda")
    agent = _agent(env)
    policy, greedy = agent.fused_policy(False), agent.greedy_policy()
    _rollout(agent, policy, steps=2)  # compile outside the checked region
    evaluate(greedy, env, env.default_params(16), 1, env.make_generator(3))
    state = start(env, agent.params, env.make_generator(0))
    torch.cuda.set_sync_debug_mode("error")
    try:
        data, _ = collect(env, state, agent.params, policy, 60, env.make_generator(1))
        with no_host_sync():
            collect(env, state, agent.params, policy, 60, env.make_generator(1))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert data.obs.device.type == "cuda" and int(data.done.sum()) > 0


def test_fused_policy_reads_the_live_weights() -> None:
    # Weights are kernel inputs, not constants baked in at trace time: an optimizer step or a
    # load_state_dict after the first call changes what the compiled policy computes.
    env = envs.make("cartpole")
    agent = _agent(env)
    obs = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    greedy = agent.greedy_policy()
    before = greedy(obs)[0]
    with torch.no_grad():
        for p in agent.model.actor.parameters():
            p.mul_(-1.0)  # biases start at 0 and tanh is odd: every logit, so the action, flips
    after = greedy(obs)[0]
    assert torch.equal(after, agent.model.sample(obs, None, True)[0])
    assert torch.equal(after, 1 - before)


def test_fast_env_is_a_cached_compiled_twin_that_follows_the_time_limit() -> None:
    env = envs.make("cartpole")
    twin = fastpath.fast_env(env)
    assert twin is not env and twin.compiled and not env.compiled
    assert fastpath.fast_env(env) is twin and fastpath.fast_env(twin) is twin
    env.max_episode_steps = 7
    assert fastpath.fast_env(env).max_episode_steps == 7
    tabular = envs.make("frozenlake")
    assert fastpath.fast_env(tabular) is tabular


def test_fused_policies_see_the_weights_after_fused_adam_steps() -> None:
    # torch's fused Adam writes the parameters without bumping their version counters: a layout
    # of the weights cached on versions would go stale after learn() (seen: PPO stopped
    # learning). Every fused call lays the weights out again.
    env = envs.make("cartpole")
    agent = _agent(env)
    obs = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    greedy, rollout = agent.greedy_policy(), agent.fused_policy(False)
    greedy(obs)
    agent.learn(2 * 16 * 32)
    _, _, value = agent.model(obs, None)
    logits = agent.model.actor(obs)
    assert torch.equal(greedy(obs)[0], logits.argmax(-1))
    torch.testing.assert_close(rollout(obs)[1]["value"], value, rtol=0, atol=1e-5)


@pytest.mark.slow
def test_fused_rollout_from_a_state_laid_out_otherwise_equals_eager() -> None:
    # The first step's state may come from elsewhere (a checkpoint, the eager path) with other
    # strides than the kernel's own outputs: the compiled version is chosen again at step 1.
    env = envs.make("cartpole", dtype=torch.float64)
    agent = _agent(env)

    def run(policy):
        agent.policy_generator.manual_seed(5)
        state = start(env, agent.params, env.make_generator(0))
        state = type(state)(state.obs.contiguous(), state.env_state, state.episode)
        return collect(env, state, agent.params, policy, 40, env.make_generator(1))[0]

    assert run(agent.fused_policy(False)).obs.shape == (40, 16, 4)
    fused, eager = run(agent.fused_policy(False)), run(agent._eager_rollout_policy)
    for name in ("obs", "next_obs", "action", "reward", "terminated"):
        assert torch.equal(getattr(fused, name), getattr(eager, name)), name


@pytest.mark.parametrize("name", ["pendulum", "acrobot"])
def test_fused_steps_of_a_trigonometric_env_are_repeatable_bit_for_bit(name) -> None:
    # A vectorised sin/cos rounds its lanes differently when any lane of its vector is out of
    # range; the fused step's lanes past the batch used to reach the observation (from the reset
    # merge), so the same rollout came out 1 ulp apart from call to call, and a copy's next
    # observation 1 ulp from its final one. A 25-step limit makes every copy reset once.
    env = envs.make(name, max_episode_steps=25)
    agent = _agent(env, copies=4)
    policy = agent.fused_policy(False)
    first, again = (_rollout(agent, policy, steps=32)[0] for _ in range(2))
    assert int(first.done.sum()) == 4
    for field in ("obs", "next_obs", "action", "reward", "done"):
        assert torch.equal(getattr(first, field), getattr(again, field)), field
    going_on = ~first.done[:-1]
    assert torch.equal(first.obs[1:][going_on], first.next_obs[:-1][going_on])


def test_two_same_seed_ppo_agents_on_pendulum_learn_the_same_weights() -> None:
    env = envs.make("pendulum", max_episode_steps=25)  # the kernels of the test above

    def weights() -> torch.Tensor:
        agent = _agent(env, copies=4)
        agent.learn(256)
        return torch.cat([p.detach().flatten() for p in agent.model.parameters()])

    assert torch.equal(weights(), weights())
