"""QR-DQN's greedy policy as a fused kernel: the same actions and evaluation as its module path
(``act(obs, deterministic=True)``); plain MLPs only."""

from __future__ import annotations

import torch
from torch import nn

from rlsuite import envs
from rlsuite.engine.evaluate import evaluate
from rlsuite.engine.fastpath import FusedPolicy
from rlsuite.learners.greedy import greedy_mlp_policy
from rlsuite.learners.qrdqn import QRDQN, QRDQNConfig


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
        return greedy_mlp_policy("test", nn.Sequential(*modules), lambda out: out)

    assert policy(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)) is not None
    assert policy(nn.Linear(2, 3)) is not None
    assert policy(nn.Linear(2, 3), nn.ELU(), nn.Linear(3, 1)) is None
    assert policy(nn.Linear(2, 3), nn.ReLU(), nn.LayerNorm(3), nn.Linear(3, 1)) is None
