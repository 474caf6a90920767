"""The fast path (fused policy kernels + fused env steps) against the eager path.

Each test compiles a few small kernels (~1 s each with a warm inductor cache).
"""

import warnings

import pytest
import torch

import rlsuite.envs as envs
from rlsuite.core import autoreset
from rlsuite.engine import fastpath
from rlsuite.engine.evaluate import evaluate
from rlsuite.engine.rollout import collect, start
from rlsuite.engine.syncguard import HostSyncError, no_host_sync
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
    eager, _ = _rollout(agent, agent._eager_rollout_policy, steps=40)
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
    fused = evaluate(agent.greedy_policy(), env, params, 2, env.make_generator(3))
    eager = evaluate(lambda o: agent.model.sample(o, None, True)[0], env, params, 2,
                     env.make_generator(3))
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


def test_compilation_is_printed_as_a_phase_and_counted(capsys) -> None:
    kernel = fastpath.FastKernel("a tiny kernel", lambda x: (x.sin() + 1,))
    before = fastpath.compile_seconds()
    kernel(torch.zeros(7))
    kernel(torch.zeros(7))  # cached: no second line
    err = capsys.readouterr().err
    assert err.count("rlsuite: compiling a tiny kernel ... ") == 1 and err.rstrip().endswith(" s")
    assert fastpath.compile_seconds() > before


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
