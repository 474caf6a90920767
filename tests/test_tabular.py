"""Tabular MDPs: exact tensors from toy-text dicts and gymnasium, validation, alias sampling, and
the batched env against the MDP's own probabilities and gymnasium's toy-text envs."""

from __future__ import annotations

import dataclasses
import math

import gymnasium
import numpy as np
import pytest
import torch

import rlsuite.envs
from rlsuite.envs.tabular import (
    NO_HORIZON,
    TabularEnv,
    TabularMDP,
    TabularState,
    alias,
    cliff_walking,
    frozen_lake,
    params_from_mdps,
    random_mdp,
    taxi,
)

# A hand-built 3-state, 2-action MDP. (0, 1) has two outcomes that reach state 2 with different
# rewards, one of them terminal; state 2 is absorbing.
TOY = {
    0: {
        0: [(0.5, 0, 1.0, False), (0.5, 1, 2.0, False)],
        1: [(0.25, 2, -1.0, True), (0.75, 2, 3.0, False)],
    },
    1: {
        0: [(1.0, 2, 0.5, False)],
        1: [(0.1, 0, 0.0, False), (0.2, 1, 0.0, False), (0.7, 2, 10.0, True)],
    },
    2: {0: [(1.0, 2, 0.0, False)], 1: [(1.0, 2, 0.0, False)]},
}


def toy_mdp(**kwargs) -> TabularMDP:
    return TabularMDP.from_toy_text(TOY, initial=kwargs.pop("initial", 0), **kwargs)


def dense_from_toy_text(P, num_states, num_actions):
    """Reference dense P and R from a toy-text dict, by plain Python loops."""
    dense = np.zeros((num_states, num_actions, num_states))
    expected_r = np.zeros((num_states, num_actions))
    for s in range(num_states):
        for a in range(num_actions):
            for p, ns, r, _ in P[s][a]:
                dense[s, a, ns] += p
                expected_r[s, a] += p * r
    return torch.from_numpy(dense), torch.from_numpy(expected_r)


def chi2_upper(df: int, z: float = 4.5) -> float:
    """Wilson-Hilferty upper quantile of chi-square(df) at a normal z (z=4.5: p ~ 3e-6)."""
    c = 2.0 / (9.0 * df)
    return df * (1.0 - c + z * math.sqrt(c)) ** 3


def assert_frequencies(samples: torch.Tensor, prob: torch.Tensor) -> None:
    """Counts of ``samples`` over ``len(prob)`` values fit ``prob``: no impossible value, each
    frequency within 5 sigma, and a chi-square below its ~3e-6 upper quantile."""
    n = samples.numel()
    counts = torch.bincount(samples.reshape(-1), minlength=prob.numel()).to(torch.float64)
    prob = prob.to(torch.float64)
    assert counts.numel() == prob.numel()
    assert counts[prob == 0].sum() == 0, "drew a value of probability 0"
    freq = counts / n
    sigma = torch.sqrt(prob * (1 - prob) / n)
    assert torch.all((freq - prob).abs() <= 5 * sigma + 1e-12), (freq, prob)
    support = prob > 0
    expected = prob[support] * n
    chi2 = ((counts[support] - expected) ** 2 / expected).sum().item()
    df = int(support.sum()) - 1
    if df > 0:
        assert chi2 < chi2_upper(df), (chi2, df)


def env_at(env: TabularEnv, states: torch.Tensor, time: int = 0) -> TabularState:
    return TabularState(states.clone(), torch.full_like(states, time, dtype=torch.int32))


# -- the MDP tensors ----------------------------------------------------------------------------


def test_from_toy_text_exact_tensors_and_round_trip():
    mdp = toy_mdp(gamma=0.9, horizon=7)
    assert (mdp.num_states, mdp.num_actions, mdp.num_outcomes) == (3, 2, 3)
    assert mdp.gamma == 0.9 and mdp.horizon == 7
    # Outcome i of P[s][a] is slot k = i; short lists are padded with prob-0 self loops.
    assert mdp.next_state[1, 1].tolist() == [0, 1, 2]
    assert mdp.next_state[0, 0].tolist() == [0, 1, 0]
    assert mdp.prob[0, 1].tolist() == [0.25, 0.75, 0.0]
    assert mdp.reward[0, 1].tolist() == [-1.0, 3.0, 0.0]
    assert mdp.terminal[0, 1].tolist() == [True, False, False]
    assert mdp.initial.tolist() == [1.0, 0.0, 0.0]
    expected_p = torch.tensor(
        [
            [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]],
            [[0.0, 0.0, 1.0], [0.1, 0.2, 0.7]],
            [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]],
        ],
        dtype=torch.float64,
    )
    assert torch.equal(mdp.P, expected_p)
    expected_r = torch.tensor(
        [[1.5, 0.25 * -1.0 + 0.75 * 3.0], [0.5, 0.7 * 10.0], [0.0, 0.0]], dtype=torch.float64
    )
    assert torch.equal(mdp.R, expected_r)
    # The terminal outcomes are not bootstrapped.
    expected_cont = expected_p.clone()
    expected_cont[0, 1, 2] = 0.75
    expected_cont[1, 1, 2] = 0.0
    assert torch.equal(mdp.P_continue, expected_cont)
    assert mdp.terminal_prob.tolist() == [[0.0, 0.25], [0.0, 0.7], [0.0, 0.0]]
    assert mdp.to_toy_text() == TOY
    # A probability vector works as the initial distribution too.
    vec = toy_mdp(initial=[0.2, 0.8, 0.0])
    assert vec.initial.tolist() == [0.2, 0.8, 0.0]
    assert toy_mdp(initial=np.int64(2)).initial.tolist() == [0.0, 0.0, 1.0]


def test_backup_is_the_bellman_operator():
    mdp = toy_mdp(gamma=0.5)
    v = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    q = mdp.backup(v)
    expected = torch.tensor(
        [
            [1.5 + 0.5 * (0.5 * 1 + 0.5 * 2), 2.0 + 0.5 * (0.75 * 4)],
            [0.5 + 0.5 * 4, 7.0 + 0.5 * (0.1 * 1 + 0.2 * 2)],
            [0.5 * 4, 0.5 * 4],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(q, expected, rtol=0, atol=1e-15)
    assert mdp.backup(torch.stack([v, 2 * v])).shape == (2, 3, 2)


def test_from_dense_round_trip():
    mdp = toy_mdp()
    rebuilt = TabularMDP.from_dense(mdp.P, mdp.R, initial=mdp.initial, terminal=None)
    assert torch.equal(rebuilt.P, mdp.P)
    assert torch.equal(rebuilt.R, mdp.R)
    # Outcomes are the support, in increasing next state; K is the largest support.
    assert rebuilt.num_outcomes == 3
    assert rebuilt.next_state[0, 0, :2].tolist() == [0, 1]
    assert rebuilt.prob[0, 0].tolist() == [0.5, 0.5, 0.0]
    # R per transition and terminal next states.
    r_sas = torch.arange(18, dtype=torch.float64).reshape(3, 2, 3)
    term = torch.tensor([False, False, True])
    with_r = TabularMDP.from_dense(mdp.P, r_sas, initial=1, terminal=term)
    assert torch.equal(with_r.R, (mdp.P * r_sas).sum(-1))
    assert torch.equal(with_r.terminal_prob, mdp.P[..., 2])
    assert with_r.initial.tolist() == [0.0, 1.0, 0.0]


TOY_TEXT_ENVS = [
    ("FrozenLake-v1", {}, (16, 4, 3), 100),
    ("FrozenLake-v1", {"is_slippery": False}, (16, 4, 1), 100),
    ("FrozenLake8x8-v1", {}, (64, 4, 3), 200),
    ("CliffWalking-v1", {}, (48, 4, 1), None),
    ("CliffWalking-v1", {"is_slippery": True}, (48, 4, 3), None),
    ("Taxi-v4", {}, (500, 6, 1), 200),
    ("Taxi-v4", {"is_rainy": True}, (500, 6, 3), 200),
]


@pytest.mark.parametrize(("env_id", "kwargs", "dims", "horizon"), TOY_TEXT_ENVS)
def test_gymnasium_toy_text_exact(env_id, kwargs, dims, horizon):
    env = gymnasium.make(env_id, **kwargs)
    mdp = TabularMDP.from_gymnasium(env_id, **kwargs)
    assert (mdp.num_states, mdp.num_actions, mdp.num_outcomes) == dims
    assert mdp.horizon == horizon
    P = env.unwrapped.P
    dense, expected_r = dense_from_toy_text(P, dims[0], dims[1])
    assert torch.equal(mdp.P, dense)
    torch.testing.assert_close(mdp.R, expected_r, rtol=0, atol=1e-12)
    assert torch.equal(mdp.initial, torch.from_numpy(env.unwrapped.initial_state_distrib))
    # Every outcome, slot by slot.
    for s in range(dims[0]):
        for a in range(dims[1]):
            for k, (p, ns, r, t) in enumerate(P[s][a]):
                assert (mdp.prob[s, a, k].item(), mdp.next_state[s, a, k].item()) == (p, ns)
                assert (mdp.reward[s, a, k].item(), mdp.terminal[s, a, k].item()) == (r, t)


def test_named_constructors_and_registry():
    assert frozen_lake(map_name="8x8").num_states == 64
    assert frozen_lake(is_slippery=False).num_outcomes == 1
    assert cliff_walking().horizon is None
    assert taxi().horizon == 200 and taxi(horizon=None).horizon is None
    for name, dims, limit in [
        ("frozenlake", (16, 4), 100), ("frozenlake8x8", (64, 4), 200),
        ("cliffwalking", (48, 4), None), ("taxi", (500, 6), 200), ("random_mdp", (100, 4), 100),
    ]:
        env = rlsuite.envs.make(name)
        assert isinstance(env, TabularEnv) and env.name == name
        assert (env.observation_space.n, env.action_space.n) == dims
        assert env.max_episode_steps == limit
        expected = NO_HORIZON if limit is None else limit
        assert env.default_params(3).horizon.tolist() == [expected] * 3
    env = rlsuite.envs.make("random_mdp", num_states=7, num_actions=2, num_outcomes=3, seed=1,
                            max_episode_steps=None)
    assert env.mdp.next_state.shape == (7, 2, 3) and env.max_episode_steps is None
    with pytest.raises(ValueError, match="fickle_passenger"):
        TabularMDP.from_gymnasium("Taxi-v4", fickle_passenger=True)


class _OldStyleDiscreteEnv(gymnasium.Env):
    """A pre-0.26 ``DiscreteEnv``-style env: ``P`` and ``isd`` attributes, no spec."""

    observation_space = gymnasium.spaces.Discrete(3)
    action_space = gymnasium.spaces.Discrete(2)

    def __init__(self):
        self.P = TOY
        self.isd = np.array([0.5, 0.5, 0.0])


def test_from_gymnasium_reads_isd_from_an_env_instance():
    mdp = TabularMDP.from_gymnasium(_OldStyleDiscreteEnv(), gamma=0.9)
    assert mdp.initial.tolist() == [0.5, 0.5, 0.0]
    assert mdp.horizon is None and mdp.gamma == 0.9
    assert mdp.to_toy_text() == TOY
    env = gymnasium.make("FrozenLake-v1", is_slippery=False)
    assert torch.equal(TabularMDP.from_gymnasium(env).P, frozen_lake(is_slippery=False).P)
    with pytest.raises(TypeError, match="need an env id"):
        TabularMDP.from_gymnasium(env, is_slippery=True)
    with pytest.raises(ValueError, match="has no transition dict P"):
        TabularMDP.from_gymnasium("CartPole-v1")


def test_random_mdp_is_seeded():
    a, b = random_mdp(10, 3, 4, seed=5), random_mdp(10, 3, 4, seed=5)
    c = random_mdp(10, 3, 4, seed=6)
    assert torch.equal(a.prob, b.prob) and torch.equal(a.next_state, b.next_state)
    assert not torch.equal(a.prob, c.prob)
    # Distinct next states within each (s, a).
    assert (a.next_state.sort(-1).values.diff(dim=-1) > 0).all()


# -- validation ---------------------------------------------------------------------------------


def _fields(**changes):
    mdp = toy_mdp()
    base = {f.name: getattr(mdp, f.name) for f in dataclasses.fields(mdp)}
    base.update(changes)
    return base


def _with(tensor: torch.Tensor, index, value) -> torch.Tensor:
    out = tensor.clone()
    out[index] = value
    return out


MDP = toy_mdp()
INVALID = [
    ("row sum", dict(prob=_with(MDP.prob, (1, 0, 0), 0.9)), r"prob\[s=1, a=0\] sums to 0\.9;"),
    ("negative", dict(prob=_with(_with(MDP.prob, (2, 1, 0), 1.5), (2, 1, 1), -0.5)),
     r"prob\[s=2, a=1, k=1\] = -0\.5 is negative"),
    ("nan prob", dict(prob=_with(MDP.prob, (0, 0, 1), math.nan)), r"prob\[s=0, a=0, k=1\] = nan"),
    ("next state", dict(next_state=_with(MDP.next_state, (0, 1, 1), 3)),
     r"next_state\[s=0, a=1, k=1\] = 3 is out of range \[0, 3\)"),
    ("negative next state", dict(next_state=_with(MDP.next_state, (2, 0, 0), -1)),
     r"next_state\[s=2, a=0, k=0\] = -1 is out of range"),
    ("float next state", dict(next_state=MDP.next_state.double()),
     r"next_state must hold integers"),
    ("reward", dict(reward=_with(MDP.reward, (1, 1, 2), math.inf)),
     r"reward\[s=1, a=1, k=2\] = inf"),
    ("reward shape", dict(reward=MDP.reward[:, :, :2]),
     r"TabularMDP\.reward has shape \(3, 2, 2\); expected \[S, A, K\] = \(3, 2, 3\)"),
    ("terminal", dict(terminal=MDP.terminal.double() * 0.5), r"terminal must be bool"),
    ("initial sum", dict(initial=torch.tensor([0.5, 0.0, 0.0])), r"initial sums to 0\.5;"),
    ("initial negative", dict(initial=torch.tensor([1.5, -0.5, 0.0])), r"initial\[1\] = -0\.5"),
    ("initial shape", dict(initial=torch.ones(4) / 4),
     r"initial has shape \(4,\); expected \[S\] = \(3,\)"),
    ("gamma", dict(gamma=1.5), r"gamma = 1\.5 must be a number in \[0, 1\]"),
    ("gamma negative", dict(gamma=-0.1), r"gamma = -0\.1"),
    ("horizon", dict(horizon=0), r"horizon = 0 must be a positive int"),
    ("rank", dict(next_state=MDP.next_state[0]), r"next_state must have shape \[S, A, K\]"),
]


@pytest.mark.parametrize(("case", "changes", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_invalid_mdp_names_field_and_value(case, changes, message):
    with pytest.raises(ValueError, match=message):
        TabularMDP(**_fields(**changes))


def test_invalid_toy_text_names_state_and_action():
    missing_action = {
        0: {0: [(1.0, 0, 0, False)], 1: [(1.0, 1, 0, False)]},
        1: {0: [(1.0, 0, 0, False)]},
    }
    with pytest.raises(ValueError, match=r"P\[1\] has no action 1"):
        TabularMDP.from_toy_text(missing_action, initial=0)
    with pytest.raises(ValueError, match=r"P's states must be 0\.\.1; state 1 is missing"):
        TabularMDP.from_toy_text({0: {0: [(1.0, 0, 0, False)]}, 2: {0: [(1.0, 0, 0, False)]}}, 0)
    with pytest.raises(ValueError, match=r"P\[0\]\[1\] has no outcomes"):
        TabularMDP.from_toy_text({0: {0: [(1.0, 0, 0, False)], 1: []}}, 0)
    with pytest.raises(ValueError, match=r"P\[0\]\[0\]\[1\] = \(0\.5, 0\) must be"):
        TabularMDP.from_toy_text({0: {0: [(0.5, 0, 0.0, False), (0.5, 0)]}}, 0)
    with pytest.raises(ValueError, match=r"prob\[s=0, a=0\] sums to 0\.8"):
        TabularMDP.from_toy_text({0: {0: [(0.5, 0, 0.0, False), (0.3, 0, 0.0, False)]}}, 0)
    with pytest.raises(ValueError, match=r"next_state\[s=0, a=0, k=0\] = 4 is out of range"):
        TabularMDP.from_toy_text({0: {0: [(1.0, 4, 0.0, False)]}}, 0)
    with pytest.raises(ValueError, match=r"initial state 2 is out of range \[0, 1\)"):
        TabularMDP.from_toy_text({0: {0: [(1.0, 0, 0.0, False)]}}, 2)
    with pytest.raises(ValueError, match=r"from_dense: P must have shape \[S, A, S\]"):
        TabularMDP.from_dense(torch.ones(2, 2, 3) / 3, torch.zeros(2, 2), 0)
    with pytest.raises(ValueError, match=r"R must have shape \[S, A\]"):
        TabularMDP.from_dense(torch.ones(2, 1, 2) / 2, torch.zeros(2, 2), 0)


def test_invalid_params_and_actions():
    small = random_mdp(5, 2, 2)
    with pytest.raises(ValueError, match=r"mdps\[1\] has S=6, A=2; mdps\[0\] has S=5, A=2"):
        params_from_mdps([small, random_mdp(6, 2, 2)])
    env = TabularEnv(small)
    params = env.default_params(4)
    gen = env.make_generator(0)
    _, state = env.reset(params, gen)
    with pytest.raises(ValueError, match=r"action 2 is out of range \[0, 2\)"):
        env.step(state, torch.tensor([0, 1, 2, 0]), params, gen)
    with pytest.raises(ValueError, match=r"action -1 is out of range"):
        env.step(state, torch.tensor([0, -1, 1, 0]), params, gen)
    with pytest.raises(TypeError, match="integer indices"):
        env.step(state, torch.zeros(4), params, gen)
    other = random_mdp(6, 2, 2).params(4)
    message = r"params\.next_state has shape \(4, 6, 2, 2, 2\); expected \(4, 5, 2, 2, 2\)"
    with pytest.raises(ValueError, match=message):
        env.reset(other, gen)


# -- alias tables -------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [1, 2, 3, 7, 64])
def test_alias_tables_encode_the_distribution_exactly(k):
    gen = torch.Generator().manual_seed(k)
    prob = torch.rand(400, k, generator=gen, dtype=torch.float64)
    prob[prob < 0.3] = 0.0  # zeros, and rows with a single outcome
    prob[:5] = 0.0
    prob[:5, k // 2] = 1.0
    prob[5:10] = 1.0  # uniform rows: every scaled weight is 1 up to rounding
    prob[10:20] = torch.rand(10, k, generator=gen, dtype=torch.float64) ** 12  # peaked
    prob[20:30, 0] += 1e-13  # a hair above the rest
    prob[prob.sum(-1) == 0, 0] = 1.0
    prob = prob / prob.sum(-1, keepdim=True)
    threshold, slot = alias.build(prob)
    torch.testing.assert_close(alias.distribution(threshold, slot), prob, rtol=0, atol=1e-14)
    assert ((threshold >= 0) & (threshold <= 1)).all()
    assert (threshold[prob == 0] == 0).all()  # a 0-probability slot is never kept ...
    assert (prob.gather(-1, slot)[threshold < 1] > 0).all()  # ... nor an alias
    # Leading dims are kept.
    t3, s3 = alias.build(prob.view(20, 20, k))
    assert torch.equal(t3.view(400, k), threshold) and torch.equal(s3.view(400, k), slot)


def test_alias_draws_match_the_distribution():
    gen = torch.Generator().manual_seed(1)
    prob = torch.tensor([0.5, 0.0, 0.2, 0.05, 0.25, 1e-3], dtype=torch.float64)
    prob = prob / prob.sum()
    threshold, slot = alias.build(prob)
    pairs = alias.pair_table(torch.arange(6), slot)  # [6, 2]: slot, alias
    assert pairs[:, 0].tolist() == list(range(6)) and torch.equal(pairs[:, 1], slot)
    picks = alias.draw(threshold.float(), 6, 1_000_000, gen)
    assert_frequencies(pairs.reshape(-1)[picks], prob)
    # Many rows at once, from flat tables (row r, slot j at r * K + j).
    rows_prob = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.3, 0.7]], dtype=torch.float64)
    threshold, slot = alias.build(rows_prob)
    pairs = alias.pair_table(torch.arange(6).view(2, 3), slot)  # the flat slot index
    rows = torch.arange(1_000_000) % 2
    picks = alias.draw(threshold.float().reshape(-1), 3, rows.numel(), gen, rows=rows)
    draws = pairs.reshape(-1)[picks]
    assert ((draws // 3) == rows).all()
    assert_frequencies(draws[rows == 0], rows_prob[0])
    assert_frequencies(draws[rows == 1] - 3, rows_prob[1])


# -- the batched env ----------------------------------------------------------------------------


@pytest.mark.parametrize("index_resets", [True, False])
def test_next_state_frequencies_match_P(index_resets):
    mdp = frozen_lake()  # slippery: 3 outcomes, some reaching the same state
    env = TabularEnv(mdp)
    env.index_resets = index_resets
    n = 300_000
    gen = env.make_generator(3)
    params = env.default_params(n)
    for s, a in [(0, 1), (6, 2), (14, 2)]:
        state = env_at(env, torch.full((n,), s))
        step = env.step(state, torch.full((n,), a), params, gen)
        assert_frequencies(step.final_obs, mdp.P[s, a])
        # Reward and termination belong to the outcome reached.
        goal = step.final_obs == 15
        assert torch.equal(step.reward, goal.float())
        hole = torch.isin(step.final_obs, torch.tensor([5, 7, 11, 12]))
        assert torch.equal(step.terminated, goal | hole)


def test_outcomes_with_the_same_next_state_keep_their_reward_and_termination():
    mdp = toy_mdp()
    env = TabularEnv(mdp)
    n = 200_000
    params = env.default_params(n)
    gen = env.make_generator(4)
    state = env_at(env, torch.zeros(n, dtype=torch.long))
    step = env.step(state, torch.ones(n, dtype=torch.long), params, gen)
    # (0, 1): 0.25 -> state 2, reward -1, terminal; 0.75 -> state 2, reward 3, not terminal.
    assert (step.final_obs == 2).all()
    assert torch.equal(step.terminated, step.reward == -1.0)
    assert set(step.reward.unique().tolist()) == {-1.0, 3.0}
    assert_frequencies(step.terminated.long(), torch.tensor([0.75, 0.25]))
    # Terminated copies restart at the initial state 0; the others stay at 2.
    assert torch.equal(step.obs, torch.where(step.terminated, 0, 2))
    assert torch.equal(step.state.time, torch.where(step.terminated, 0, 1).int())
    assert not step.truncated.any()


@pytest.mark.parametrize("index_resets", [True, False])
def test_autoreset_draws_from_the_initial_distribution(index_resets):
    # Every transition terminates: after one step every copy restarted.
    initial = torch.tensor([0.1, 0.0, 0.6, 0.3], dtype=torch.float64)
    P = torch.full((4, 2, 4), 0.25, dtype=torch.float64)
    everything = torch.ones(4, dtype=torch.bool)
    mdp = TabularMDP.from_dense(P, torch.zeros(4, 2), initial, terminal=everything)
    env = TabularEnv(mdp)
    env.index_resets = index_resets
    n = 400_000
    params = env.default_params(n)
    gen = env.make_generator(5)
    obs, state = env.reset(params, gen)
    assert_frequencies(obs, initial)
    step = env.step(state, torch.zeros(n, dtype=torch.long), params, gen)
    assert step.terminated.all() and (step.state.time == 0).all()
    assert_frequencies(step.final_obs, P[0, 0])
    assert_frequencies(step.obs, initial)


@pytest.mark.parametrize("index_resets", [True, False])
def test_truncation_at_the_horizon(index_resets):
    # A chain 0 -> 1 -> 2 -> 3 (terminal on entering 3), horizon 3: episodes from 0 end at step 3
    # terminated AND truncated; from 1 they terminate at step 2.
    P = torch.zeros(4, 1, 4, dtype=torch.float64)
    for s in range(4):
        P[s, 0, min(s + 1, 3)] = 1.0
    terminal = torch.tensor([False, False, False, True])
    mdp = TabularMDP.from_dense(P, torch.ones(4, 1), 0, horizon=3, terminal=terminal)
    env = TabularEnv(mdp)
    env.index_resets = index_resets
    params = env.default_params(2)
    gen = env.make_generator(0)
    state = env_at(env, torch.tensor([0, 1]))
    action = torch.zeros(2, dtype=torch.long)
    seen = []
    for _ in range(4):
        step = env.step(state, action, params, gen)
        state = step.state
        seen.append((step.final_obs.tolist(), step.obs.tolist(), step.terminated.tolist(),
                     step.truncated.tolist(), state.time.tolist()))
    assert seen == [
        ([1, 2], [1, 2], [False, False], [False, False], [1, 1]),
        ([2, 3], [2, 0], [False, True], [False, False], [2, 0]),
        ([3, 1], [0, 1], [True, False], [True, False], [0, 1]),
        ([1, 2], [1, 2], [False, False], [False, False], [1, 2]),
    ]
    # Without a terminal state, truncation alone ends the episode; no horizon, never.
    free = TabularMDP.from_dense(P, torch.ones(4, 1), 0, horizon=2)
    env = TabularEnv(free, max_episode_steps=None)
    step = env.step(env_at(env, torch.tensor([0]), time=1), torch.zeros(1, dtype=torch.long),
                    env.default_params(1), gen)
    assert step.truncated.tolist() == [True] and step.terminated.tolist() == [False]
    assert step.obs.tolist() == [0] and step.final_obs.tolist() == [1]
    env = TabularEnv(dataclasses.replace(free, horizon=None))
    assert env.default_params(1).horizon.tolist() == [NO_HORIZON]


def test_per_copy_mdps_behave_differently():
    n = 100_000
    a, b = random_mdp(6, 2, 3, seed=1), random_mdp(6, 2, 2, seed=2, horizon=1)  # K padded to 3
    params = params_from_mdps([a, b], copies=n)
    assert params.next_state.shape == (2 * n, 6, 2, 3, 2) and params.flat.offset is not None
    env = TabularEnv(a)
    gen = env.make_generator(6)
    state = env_at(env, torch.full((2 * n,), 4))
    step = env.step(state, torch.ones(2 * n, dtype=torch.long), params, gen)
    assert_frequencies(step.final_obs[:n], a.P[4, 1])
    assert_frequencies(step.final_obs[n:], b.P[4, 1])
    assert not torch.equal(a.P[4, 1], b.P[4, 1])
    # Per-copy time limits: b's copies truncate after one step, a's (horizon 100) do not.
    assert not step.truncated[:n].any() and step.truncated[n:].all()
    # Per-copy initial distributions too.
    obs, _ = env.reset(params, gen)
    assert_frequencies(obs[:n], a.initial)
    assert_frequencies(obs[n:], b.initial)
    # Rewards follow each copy's own table.
    expected = torch.cat([
        a.reward[4, 1][(a.next_state[4, 1] == step.final_obs[:n, None]).long().argmax(-1)],
        b.reward[4, 1][(b.next_state[4, 1] == step.final_obs[n:, None]).long().argmax(-1)],
    ]).float()
    assert torch.equal(step.reward, expected)
    dense = params.dense_P()
    assert torch.equal(dense[0], a.P) and torch.equal(dense[-1], b.P)


def test_shared_and_per_copy_layouts_step_identically():
    mdp = random_mdp(12, 3, 4, seed=3, horizon=5, terminal_prob=0.1)
    env = TabularEnv(mdp)
    shared = env.default_params(64)
    assert shared.next_state.stride(0) == 0 and shared.flat.offset is None
    per_copy = params_from_mdps([mdp], copies=64)
    assert per_copy.flat.offset is not None
    runs = []
    for params in (shared, per_copy):
        gen = env.make_generator(11)
        obs, state = env.reset(params, gen)
        out = [obs]
        actions = torch.Generator().manual_seed(0)
        for _ in range(30):
            step = env.step(state, torch.randint(0, 3, (64,), generator=actions), params, gen)
            state = step.state
            out += [step.obs, step.final_obs, step.reward, step.terminated, step.truncated]
        runs.append(out)
    for x, y in zip(*runs, strict=True):
        assert torch.equal(x, y)


def test_same_seed_same_trajectory():
    env = rlsuite.envs.make("random_mdp", num_states=20, num_actions=3, num_outcomes=5,
                            max_episode_steps=10)

    def run(seed):
        params = env.default_params(256)
        gen = env.make_generator(seed)
        obs, state = env.reset(params, gen)
        out = [obs]
        for t in range(50):
            step = env.step(state, (obs + t) % 3, params, gen)
            obs, state = step.obs, step.state
            out += [obs, step.reward, step.terminated, step.truncated]
        return out

    first, again, other = run(0), run(0), run(1)
    assert all(torch.equal(x, y) for x, y in zip(first, again, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(first, other, strict=True))


@pytest.mark.parametrize(
    ("env_id", "kwargs", "name", "mdp_kwargs"),
    [
        ("FrozenLake-v1", {"is_slippery": False}, "frozenlake", {"is_slippery": False}),
        ("FrozenLake8x8-v1", {"is_slippery": False}, "frozenlake8x8", {"is_slippery": False}),
        ("CliffWalking-v1", {}, "cliffwalking", {}),
        ("Taxi-v4", {}, "taxi", {}),
    ],
)
def test_parity_with_gymnasium_deterministic_episodes(env_id, kwargs, name, mdp_kwargs):
    """Step gymnasium's env and ours with the same actions over whole episodes; ours autoresets,
    gymnasium is reset (and its random start state copied into ours)."""
    # CliffWalking has no time limit; cap it so random episodes end.
    limit = {"cliffwalking": 60}.get(name)
    ref = gymnasium.make(env_id, **kwargs, **({"max_episode_steps": limit} if limit else {}))
    ours = rlsuite.envs.make(name, **mdp_kwargs, **({"max_episode_steps": limit} if limit else {}))
    params = ours.default_params(1)
    gen = ours.make_generator(0)
    rng = np.random.default_rng(0)
    ref_obs, _ = ref.reset(seed=0)
    state = env_at(ours, torch.tensor([ref_obs]))
    episodes = steps = 0
    while episodes < 8:
        a = int(rng.integers(ours.num_actions))
        ref_obs, ref_r, ref_term, ref_trunc, _ = ref.step(a)
        step = ours.step(state, torch.tensor([a]), params, gen)
        steps += 1
        assert step.final_obs.item() == ref_obs
        assert step.reward.item() == ref_r
        assert (step.terminated.item(), step.truncated.item()) == (ref_term, ref_trunc)
        state = step.state
        if ref_term or ref_trunc:
            episodes += 1
            ref_obs, _ = ref.reset(seed=episodes)
            if ours.mdp.initial.max() == 1.0:  # one start state: our own reset must give it
                assert step.obs.item() == ref_obs
            state = env_at(ours, torch.tensor([ref_obs]))
        else:
            assert step.obs.item() == ref_obs and state.time.item() == ref._elapsed_steps
    assert steps > 8


def test_gymnasium_export_speaks_discrete():
    from rlsuite.engine.gym_export import gymnasium_id

    env = gymnasium.make(gymnasium_id("frozenlake"), is_slippery=False)
    obs, _ = env.reset(seed=0)
    assert obs == 0
    assert env.step(1) == (4, 0.0, False, False, {})
    vec = gymnasium.make_vec(gymnasium_id("taxi"), num_envs=3)
    obs, _ = vec.reset(seed=0)
    assert obs.dtype == torch.int64 and obs.shape == (3,)
    assert all(taxi().initial[o] > 0 for o in obs.tolist())


@pytest.mark.parametrize(
    "name", ["frozenlake", "frozenlake8x8", "cliffwalking", "taxi", "random_mdp"]
)
def test_registered_envs_pass_the_env_checker(name):
    from rlsuite.core.checker import check_env

    env = rlsuite.envs.make(name)
    report = check_env(env, batch_size=4, seed=0)
    assert report.steps > 0


def test_env_checker_with_per_copy_params():
    from rlsuite.core.checker import check_env

    # One horizon for all: the checker holds every copy to env.max_episode_steps.
    models = [random_mdp(8, 3, k, seed=k, horizon=5) for k in (1, 2, 3)]
    env = TabularEnv(models[0])
    params = params_from_mdps(models, copies=2)
    report = check_env(env, batch_size=6, seed=1, params=params)
    assert report.truncations > 0


def test_env_returns_match_exact_policy_evaluation():
    """Solver view and env agree: the mean return of the greedy FrozenLake policy over 20k batched
    episodes matches its exact 100-step value from backward recursion on P_continue and R."""
    mdp = frozen_lake(gamma=1.0)  # slippery, horizon 100
    discounted = dataclasses.replace(mdp, gamma=0.99)
    v = torch.zeros(mdp.num_states, dtype=torch.float64)
    for _ in range(300):  # value iteration
        v = discounted.backup(v).max(-1).values
    policy = discounted.backup(v).argmax(-1)  # [S]
    states = torch.arange(mdp.num_states)
    exact = torch.zeros(mdp.num_states, dtype=torch.float64)
    for _ in range(mdp.horizon):
        exact = mdp.R[states, policy] + mdp.P_continue[states, policy] @ exact
    env = TabularEnv(mdp)
    n = 20_000
    params = env.default_params(n)
    gen = env.make_generator(7)
    obs, state = env.reset(params, gen)
    returns = torch.zeros(n, dtype=torch.float64)
    running = torch.ones(n, dtype=torch.bool)
    for _ in range(mdp.horizon):
        step = env.step(state, policy[obs], params, gen)
        returns += torch.where(running, step.reward.double(), 0.0)
        running &= ~step.done
        obs, state = step.obs, step.state
    assert not running.any()  # every first episode ended by step 100
    p = exact[0].item()  # from the single start state
    assert 0.5 < p < 0.9
    assert abs(returns.mean().item() - p) < 5 * math.sqrt(p * (1 - p) / n)
