"""SAC's and QR-DQN's greedy policies as fused kernels: the same actions and evaluation as their
module path (``act(obs, deterministic=True)``), seeing every weight update; plain MLPs only."""

from __future__ import annotations

import pytest
import torch
from script_module import load_script
from torch import nn

from rlsuite import envs
from rlsuite.engine.evaluate import evaluate
from rlsuite.engine.fastpath import FusedPolicy
from rlsuite.learners.greedy import greedy_mlp_policy
from rlsuite.learners.qrdqn import QRDQN, QRDQNConfig
from rlsuite.learners.sac import SAC, SACConfig


@pytest.mark.slow  # 7-25 s; CI's slow tier runs it (default-tier budget)
def test_sac_greedy_policy_is_fused_and_evaluates_as_act() -> None:
    env = envs.make("pendulum")
    agent = SAC(SACConfig(hidden_sizes=[16, 16], learning_starts=8, batch_size=8), env,
                env.default_params(4), seed=0)
    agent.learn(32)  # a few updates: the weights are not the initial ones
    greedy = agent.greedy_policy()
    assert isinstance(greedy, FusedPolicy)
    obs = torch.randn(5, 3)
    torch.testing.assert_close(greedy(obs)[0], agent.act(obs, deterministic=True),
                               rtol=0, atol=1e-5)
    params = env.default_params(8)
    fused = evaluate(greedy, env, params, 1, env.make_generator(1))
    again = evaluate(greedy, env, params, 1, env.make_generator(1))
    eager = evaluate(lambda o: agent.act(o, deterministic=True), env, params, 1,
                     env.make_generator(1))
    assert torch.equal(fused.returns, again.returns)  # repeatable bit for bit
    # tanh inside the kernel is exp-based (~1e-7 from torch.tanh): returns agree to rounding
    torch.testing.assert_close(fused.returns, eager.returns, rtol=1e-4, atol=1e-3)
    assert torch.equal(fused.lengths, eager.lengths)
    # the live weights: after more learning the fused policy acts as the new act does
    agent.learn(64)
    torch.testing.assert_close(greedy(obs)[0], agent.act(obs, deterministic=True),
                               rtol=0, atol=1e-5)


def test_sac_greedy_policy_off_the_fast_path_is_act() -> None:
    env = envs.make("pendulum")
    agent = SAC(SACConfig(hidden_sizes=[16], fast_path=False), env, env.default_params(2), seed=0)
    greedy = agent.greedy_policy()
    obs = torch.randn(3, 3)
    assert not isinstance(greedy, FusedPolicy)
    assert torch.equal(greedy(obs), agent.act(obs, deterministic=True))


def test_qrdqn_greedy_policy_is_fused_and_evaluates_as_act() -> None:
    # float64 physics (the float32 one fused and eager differs in rounding, and CartPole's
    # episodes amplify it): the same greedy actions give the same episodes, bit for bit
    env = envs.make("cartpole", dtype=torch.float64)
    agent = QRDQN(QRDQNConfig(hidden_sizes=[16], learning_starts=16, batch_size=8,
                              n_quantiles=5), env, env.default_params(4), seed=0)
    agent.learn(64)
    greedy = agent.greedy_policy()
    assert isinstance(greedy, FusedPolicy)
    obs = torch.randn(64, 4, dtype=torch.float64)
    assert torch.equal(greedy(obs)[0], agent.act(obs, deterministic=True))
    params = env.default_params(16)
    fused = evaluate(greedy, env, params, 2, env.make_generator(2))
    eager = evaluate(lambda o: agent.act(o, deterministic=True), env, params, 2,
                     env.make_generator(2))
    assert torch.equal(fused.returns, eager.returns) and torch.equal(fused.lengths, eager.lengths)


def test_only_plain_mlps_get_a_fused_greedy_policy() -> None:
    def policy(*modules: nn.Module):
        return greedy_mlp_policy("test", nn.Sequential(*modules), lambda out, _: out)

    assert policy(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)) is not None
    assert policy(nn.Linear(2, 3)) is not None
    assert policy(nn.Linear(2, 3), nn.ELU(), nn.Linear(3, 1)) is None
    assert policy(nn.Linear(2, 3), nn.ReLU(), nn.LayerNorm(3), nn.Linear(3, 1)) is None


def test_bench_greedy_eval_times_both_paths_and_refuses_bad_arguments(capsys) -> None:

    import pytest

    bench = load_script("bench_greedy_eval.py")
    (learner, fused, module), = bench.main(["qrdqn", "--rounds", "1", "--copies", "4"])
    assert learner == "qrdqn" and fused > 0 and module > 0
    assert "module / fused" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main(["dqn"])
    assert "learner 'dqn'" in capsys.readouterr().err
