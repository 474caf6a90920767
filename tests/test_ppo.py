"""PPO: determinism, save/load round trip, and (slow) solving the batched CartPole."""

from __future__ import annotations

import pytest
import torch

import rlsuite.envs as envs
from rlsuite.core.env import BatchedEnv
from rlsuite.engine.evaluate import evaluate
from rlsuite.learners.ppo import PPO, PPOConfig
from rlsuite.training import TrainingHooks

SMALL = PPOConfig(num_steps=16, num_minibatches=2, update_epochs=2)


def _agent(seed: int, env_name: str = "cartpole") -> PPO:
    env = envs.make(env_name)
    return PPO(SMALL, env, env.default_params(8), seed=seed)


def test_same_seed_same_numbers() -> None:
    a, b, c = _agent(0).learn(512), _agent(0).learn(512), _agent(1).learn(512)
    for (name, wa), wb, _wc in zip(a.model.state_dict().items(), b.model.state_dict().values(),
                                  c.model.state_dict().values(), strict=False):
        assert torch.equal(wa, wb), name
    assert any(not torch.equal(wa, wc) for wa, wc in zip(a.model.state_dict().values(),
                                                        c.model.state_dict().values(), strict=False))


def test_state_dict_round_trip_continues_identically() -> None:
    a = _agent(0).learn(256)
    b = _agent(5)  # different init: everything must come from the state dict
    b.load_state_dict(a.state_dict())
    obs = torch.randn(32, 4)
    assert torch.equal(a.act(obs, deterministic=True), b.act(obs, deterministic=True))
    a.learn(512)
    b.learn(512)
    for wa, wb in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=False):
        assert torch.equal(wa, wb)


def test_gaussian_policy_actions_are_clipped_to_the_box() -> None:
    agent = _agent(0, "pendulum")
    actions = agent.act(torch.randn(64, 3) * 10)
    assert actions.shape == (64, 1)
    assert float(actions.abs().max()) <= 2.0


def test_rejects_indivisible_minibatches() -> None:
    env = envs.make("cartpole")
    with pytest.raises(ValueError, match="num_minibatches=3: must divide num_envs"):
        PPO(PPOConfig(num_steps=16, num_minibatches=3), env, env.default_params(8))


class _SolvedAt(Exception):
    pass


class _GreedyEvaluation(TrainingHooks):
    """Every 4 iterations (32,768 env steps), a greedy evaluation of one episode per copy;
    stops training (:class:`_SolvedAt`, with the step) at a mean of 475."""

    def __init__(self, env: BatchedEnv) -> None:
        self.env, self.params = env, env.default_params(64)

    def on_iteration(self, agent: PPO, step: int, metrics: dict[str, float]) -> None:
        if agent.iteration % 4:
            return
        result = evaluate(agent.greedy_policy(), self.env, self.params, episodes=1,
                          generator=self.env.make_generator(123))
        if float(result.mean_return.mean()) >= 475:
            raise _SolvedAt(step)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ppo_solves_cartpole(seed: int) -> None:
    # "Solves" as the peer benchmark times it: a greedy 64-episode mean >= 475 within 400k steps.
    # Not the score after the last iteration: across 16 seeds that ended anywhere from 245 to 500
    # on the eager and the fused path alike (eager seeds 8 / 9 / 15: 346 / 316 / 255, fused seed
    # 0: 245), while every seed tried on both paths reached 475 at 65k-230k steps.
    env = envs.make("cartpole")
    agent = PPO(PPOConfig(), env, env.default_params(64), seed=seed)
    with pytest.raises(_SolvedAt):
        agent.learn(400_000, _GreedyEvaluation(env))


@pytest.mark.parametrize("discrete", [True, False])
@pytest.mark.parametrize("obs_dim,hidden", [(4, [64, 64]), (12, [16]), (3, []), (20, [9, 5, 7])])
def test_paired_forward_equals_the_networks(discrete: bool, obs_dim: int, hidden: list[int]) -> None:
    # Narrow layers (<= NARROW_LAYER inputs or outputs) as product-and-sum, wide ones as
    # matmuls, no hidden layer at all: the fused policy's maths is the modules' maths.
    from rlsuite.core import spaces
    from rlsuite.learners.ppo import NARROW_LAYER, ActorCritic

    assert 12 > NARROW_LAYER >= 4
    torch.manual_seed(0)
    action_space = spaces.Discrete(3) if discrete else spaces.Box.make(-1.0, 1.0, (2,))
    model = ActorCritic(spaces.Box.make(-1.0, 1.0, (obs_dim,)), action_space,
                        PPOConfig(hidden_sizes=hidden))
    with torch.no_grad():
        for p in model.parameters():  # non-zero biases and output layers: every term counts
            p.uniform_(-0.5, 0.5)
    g = torch.Generator().manual_seed(1)
    obs = torch.randn(32, obs_dim, generator=g)
    noise = torch.rand(32, 3, generator=g) if discrete else torch.randn(32, 2, generator=g)
    with torch.no_grad():
        expected = model(obs, noise)
        got = model.paired_forward(model.paired_weights(), obs, noise)
    torch.testing.assert_close(got[0], expected[0], rtol=0, atol=1e-5)  # same discrete actions
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=1e-5)
    torch.testing.assert_close(got[2], expected[2], rtol=0, atol=1e-5)
    # The greedy policy's layout, the actor alone: the same greedy actions, no value.
    with torch.no_grad():
        greedy = model.paired_forward(model.paired_weights(critic=False), obs, None)
        expected = model(obs, None)
    torch.testing.assert_close(greedy[0], expected[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(greedy[1], expected[1], rtol=0, atol=1e-5)
    assert greedy[2] is None
