"""The classic-control envs step for step against gymnasium's reference implementations.

The method is gymnax's: build gymnasium's env, put the same state into both, step both with the
same actions, compare everything, and after every gymnasium reset copy its fresh state into ours.
Copy ``i`` of the batch runs against its own gymnasium env, whose attributes are set to copy
``i``'s params, so the per-copy params are checked too.

Two modes. One step at a time: after every step our state is set back to gymnasium's, and the
step from that exact state is held to 1e-12 in float64 and 1e-4 in float32. Free running: our
float64 env runs on its own beside gymnasium over whole episodes and is held to 1e-9; this is
tested for CartPole and Pendulum. It cannot hold for Acrobot or for float32: torch's and numpy's
cos/sin differ in the last bit for ~0.1% of float64 arguments, and the acrobot swing is chaotic,
so such a 1-ulp difference grows ~10x every 5 steps (4e-16 at step 109 to 2.5e-10 at step 160 in
one run); a free float32 Acrobot is 7 rad off after 170 steps, and a free float32 Pendulum loses
digits of its unwrapped, spinning angle (2e-2 after 200 steps), while free float32 CartPole stays
within 5e-6 over 300 steps. Observations and rewards are float32 by contract, so in float64 they
are held to float32 rounding (1e-6).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium
import numpy as np
import pytest
import torch

import rlsuite.envs
from rlsuite.core import tree
from rlsuite.core.classic import ClassicControlEnv
from rlsuite.core.env import Step


@dataclass(frozen=True)
class Reference:
    """How one of our envs maps onto a gymnasium env."""

    gym_id: str
    gym_attr: Callable[[str], str]
    """Our params field -> the gymnasium attribute holding it."""
    policy: Callable[[np.random.Generator, np.ndarray], object]
    """``(rng, gymnasium obs) -> action`` for gymnasium; ours gets the same value as a tensor."""


def _acrobot_policy(rng: np.random.Generator, obs: np.ndarray) -> int:
    # Torque against the first joint's velocity pumps energy in: with 10% random actions the
    # tip reaches the bar in ~100 steps, so the loop sees many terminations.
    if rng.random() < 0.1:
        return int(rng.integers(3))
    return 2 if obs[4] < 0 else 0


# gymnasium's Acrobot names its constants in upper case, except dt; LINK_MOI sets both links.
ACROBOT_ATTRS = {"dt": "dt", "link_moi_1": "LINK_MOI", "link_moi_2": "LINK_MOI"}

REFERENCES = {
    "cartpole": Reference("CartPole-v1", lambda f: f, lambda rng, obs: int(rng.integers(2))),
    # Torques beyond +-2 exercise the clip (to 2, or to the copy's own max_torque). They are
    # float64: given a float32 action, gymnasium computes its torque term 3 u / (m l^2) in float32
    # (numpy's scalar promotion), which would cost the float64 comparison 7 digits.
    "pendulum": Reference(
        "Pendulum-v1", lambda f: f, lambda rng, obs: rng.uniform(-3.0, 3.0, size=(1,))
    ),
    "acrobot": Reference("Acrobot-v1", lambda f: ACROBOT_ATTRS.get(f, f.upper()), _acrobot_policy),
}


def make_reference(name: str, values: dict[str, float], **make_kw: object) -> gymnasium.Env:
    """``gymnasium.make`` (TimeLimit included) with the unwrapped env's attributes set."""
    ref = REFERENCES[name]
    env = gymnasium.make(ref.gym_id, **make_kw)
    raw = env.unwrapped
    for field, value in values.items():
        setattr(raw, ref.gym_attr(field), value)
    if name == "cartpole":
        # gymnasium's CartPole caches these two in __init__ and steps with the cached values.
        raw.total_mass = raw.masspole + raw.masscart
        raw.polemass_length = raw.masspole * raw.length
    return env


def batch_params(env: ClassicControlEnv, copies: list[dict[str, float]]):
    """Default params for ``len(copies)`` copies, copy ``i`` overridden by ``copies[i]``."""
    base = env.default_params(len(copies))
    changes = {}
    for name, default in tree.tensor_items(base):
        column = [c.get(name, float(default[i])) for i, c in enumerate(copies)]
        changes[name] = torch.tensor(column, dtype=default.dtype)
    return dataclasses.replace(base, **changes)


def inject(
    env: ClassicControlEnv,
    state,
    index: list[int],
    gym_states: list[np.ndarray],
    restart: bool = True,
):
    """Our state with copies ``index`` set to gymnasium's states (time counters to 0 if restart)."""
    idx = torch.tensor(index, dtype=torch.long)
    values = torch.tensor(np.stack(gym_states), dtype=env.dtype)  # [n, F]
    changes = {}
    for j, field in enumerate(env.state_fields):
        column = getattr(state, field).clone()
        column[idx] = values[:, j]
        changes[field] = column
    time = state.time.clone()
    if restart:
        time[idx] = 0
    return dataclasses.replace(state, time=time, **changes)


def assert_near(ours: torch.Tensor, theirs: torch.Tensor, atol: float, rtol: float, where: str):
    """``|ours - theirs| <= atol + rtol |theirs|`` everywhere (a cheap ``assert_close``)."""
    err = (ours - theirs).abs() - rtol * theirs.abs()
    if err.numel() and float(err.max()) > atol:
        worst = int(err.flatten().argmax())
        raise AssertionError(
            f"{where}: ours {ours.flatten()[worst].item()!r} vs gymnasium's "
            f"{theirs.flatten()[worst].item()!r} (atol {atol}, rtol {rtol})"
        )


def to_tensor_actions(env: ClassicControlEnv, actions: list) -> torch.Tensor:
    if isinstance(actions[0], np.ndarray):
        return torch.tensor(np.stack(actions), dtype=env.dtype)
    return torch.tensor(actions, dtype=torch.int64)


@dataclass
class Counts:
    steps: int = 0
    terminated: int = 0
    truncated: int = 0


def run_parity(
    name: str,
    dtype: torch.dtype,
    copies: list[dict[str, float]],
    num_steps: int,
    seed: int = 0,
    max_episode_steps: int | None = None,
    free: bool = False,
) -> Counts:
    """Step ``len(copies)`` copies of our env beside as many gymnasium envs and compare.

    Unless ``free``, our state is set back to gymnasium's after every step (see the module doc).
    """
    if dtype == torch.float64:
        state_tol, out_tol = (1e-9 if free else 1e-12), 1e-6
    else:
        assert not free, "free float32 runs drift from gymnasium's float64 ones"
        state_tol, out_tol = 1e-4, 1e-4
    kw = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
    env = rlsuite.envs.make(name, dtype=dtype, **kw)
    gyms = [make_reference(name, c, **kw) for c in copies]
    params = batch_params(env, copies)
    generator = env.make_generator(seed)
    rng = np.random.default_rng(seed)
    b = len(copies)

    gym_obs = [g.reset(seed=seed + i)[0] for i, g in enumerate(gyms)]
    _, state = env.reset(params, generator)
    state = inject(env, state, list(range(b)), [g.unwrapped.state for g in gyms])
    counts = Counts()
    for t in range(num_steps):
        actions = [REFERENCES[name].policy(rng, o) for o in gym_obs]
        out = [g.step(a) for g, a in zip(gyms, actions, strict=True)]
        step: Step = env.step(state, to_tensor_actions(env, actions), params, generator)
        where = f"{name} {dtype} step {t}"

        gym_final = torch.tensor(np.stack([o[0] for o in out]), dtype=torch.float64)
        assert_near(step.final_obs.double(), gym_final, out_tol, out_tol, f"{where} final_obs")
        gym_reward = torch.tensor([float(o[1]) for o in out], dtype=torch.float64)
        assert_near(step.reward.double(), gym_reward, out_tol, out_tol, f"{where} reward")
        assert step.terminated.tolist() == [bool(o[2]) for o in out], where
        assert step.truncated.tolist() == [bool(o[3]) for o in out], where

        done = step.done.tolist()
        # The state each copy reached, where it was not replaced by a reset.
        ours = torch.stack([getattr(step.state, f) for f in env.state_fields], dim=1).double()
        theirs = torch.tensor(np.stack([g.unwrapped.state for g in gyms]), dtype=torch.float64)
        assert_near(ours[~step.done], theirs[~step.done], state_tol, 0.0, f"{where} state")
        assert torch.equal(step.obs[~step.done], step.final_obs[~step.done]), where
        restarted = [i for i in range(b) if done[i]]
        assert step.state.time[restarted].tolist() == [0] * len(restarted), where
        gym_obs = [o[0] for o in out]
        for i in restarted:
            gym_obs[i] = gyms[i].reset()[0]
        state = step.state
        if restarted:
            state = inject(env, state, restarted, [gyms[i].unwrapped.state for i in restarted])
        running = [i for i in range(b) if not done[i]]
        if not free and running:
            gym_states = [gyms[i].unwrapped.state for i in running]
            state = inject(env, state, running, gym_states, restart=False)
        counts.steps += 1
        counts.terminated += int(step.terminated.sum())
        counts.truncated += int(step.truncated.sum())
    return counts


DTYPES = [torch.float64, torch.float32]
# (steps, terminations at least) per env: CartPole's random play ends an episode in ~22 steps;
# Acrobot's pumping policy reaches the bar in ~100; Pendulum only truncates, at 200.
RUNS = {"cartpole": (300, 30), "pendulum": (250, 0), "acrobot": (300, 4)}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(RUNS))
def test_each_step_matches_gymnasium(name: str, dtype: torch.dtype) -> None:
    num_steps, min_terminations = RUNS[name]
    counts = run_parity(name, dtype, [{}, {}, {}], num_steps=num_steps)
    assert counts.terminated >= min_terminations
    if name == "pendulum":
        # It never terminates: each copy truncates at gymnasium's 200 steps, once.
        assert (counts.terminated, counts.truncated) == (0, 3)


@pytest.mark.parametrize("name", ["cartpole", "pendulum"])
def test_float64_free_run_matches_gymnasium(name: str) -> None:
    num_steps, min_terminations = RUNS[name]
    counts = run_parity(name, torch.float64, [{}, {}, {}], num_steps=num_steps, free=True)
    assert counts.terminated >= min_terminations
    assert counts.terminated + counts.truncated >= 3


# Each copy of one batch has its own physics; each runs against a gymnasium env set the same way.
PER_COPY = {
    "cartpole": [
        {"gravity": 9.8},
        {"gravity": 20.0},
        {"masspole": 0.3, "length": 0.8, "force_mag": 15.0},
        {"masscart": 2.0, "tau": 0.01},
    ],
    "pendulum": [
        {"g": 9.8},
        {"g": 20.0},
        {"m": 2.0, "l": 0.7, "max_torque": 1.0},
        {"max_speed": 5.0, "dt": 0.02},
    ],
    "acrobot": [
        {"link_mass_2": 1.0},
        {"link_mass_2": 2.0},
        {"link_length_1": 1.3, "link_com_pos_1": 0.6, "link_com_pos_2": 0.4},
        {"link_mass_1": 0.5, "link_moi_1": 0.7, "link_moi_2": 0.7, "dt": 0.1},
        {"max_vel_1": 2.0, "max_vel_2": 5.0},
    ],
}


@pytest.mark.parametrize("name", sorted(PER_COPY))
def test_per_copy_params_match_gymnasium_envs_with_those_attributes(name: str) -> None:
    counts = run_parity(name, torch.float64, PER_COPY[name], num_steps=250)
    assert counts.terminated + counts.truncated > 0


def test_per_copy_params_really_change_the_dynamics() -> None:
    """Two copies from one state, differing only in gravity, part ways on the first step."""
    env = rlsuite.envs.make("pendulum", dtype=torch.float64)
    params = batch_params(env, [{"g": 9.8}, {"g": 20.0}])
    _, state = env.reset(params, env.make_generator(0))
    start = np.array([1.0, 0.0])
    state = inject(env, state, [0, 1], [start, start])
    step = env.step(state, torch.zeros(2, 1, dtype=torch.float64), params, env.make_generator(0))
    # thdot' = thdot + 3 g / (2 l) sin(th) dt, gymnasium's update.
    expected = [3 * g / 2 * math.sin(1.0) * 0.05 for g in (9.8, 20.0)]
    assert_near(step.state.thdot, torch.tensor(expected, dtype=torch.float64), 1e-15, 0.0, "thdot")


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_default_time_limit_is_gymnasiums(name: str) -> None:
    spec = gymnasium.spec(REFERENCES[name].gym_id)
    assert rlsuite.envs.make(name).max_episode_steps == spec.max_episode_steps


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_truncation_matches_gymnasium_time_limit(name: str) -> None:
    # A short limit makes every env truncate often; gymnasium's TimeLimit wrapper is the reference.
    counts = run_parity(name, torch.float64, [{}, {}, {}], num_steps=60, max_episode_steps=7)
    assert counts.truncated >= 9
    assert counts.steps == 60


def test_terminated_and_truncated_on_the_same_step() -> None:
    """gymnasium's TimeLimit reports both flags when the last allowed step also terminates."""
    gym_env = make_reference("cartpole", {}, max_episode_steps=1)
    gym_env.reset(seed=0)
    falling = np.array([0.0, 0.0, 0.2, 2.0])  # theta leaves +-12 degrees within one step
    gym_env.unwrapped.state = falling.copy()
    _, _, gym_term, gym_trunc, _ = gym_env.step(1)

    env = rlsuite.envs.make("cartpole", dtype=torch.float64, max_episode_steps=1)
    params = env.default_params(1)
    _, state = env.reset(params, env.make_generator(0))
    state = inject(env, state, [0], [falling])
    step = env.step(state, torch.tensor([1]), params, env.make_generator(0))
    assert (gym_term, gym_trunc) == (True, True)
    assert (bool(step.terminated[0]), bool(step.truncated[0])) == (True, True)


# -- autoreset ----------------------------------------------------------------------------------

RESET_BOUNDS = {
    # (state field, |bound|) of the initial-state distributions, from gymnasium's reset().
    "cartpole": {"x": 0.05, "x_dot": 0.05, "theta": 0.05, "theta_dot": 0.05},
    "pendulum": {"th": math.pi, "thdot": 1.0},
    "acrobot": {"theta1": 0.1, "theta2": 0.1, "dtheta1": 0.1, "dtheta2": 0.1},
}


def _rollout(name: str, seed: int, num_steps: int, batch_size: int = 8) -> list[Step]:
    env = rlsuite.envs.make(name, max_episode_steps=40)
    params = env.default_params(batch_size)
    generator = env.make_generator(seed)
    actions = torch.Generator().manual_seed(seed + 1)
    _, state = env.reset(params, generator)
    steps = []
    for _ in range(num_steps):
        action = env.action_space.batched(batch_size).sample(actions)
        step = env.step(state, action, params, generator)
        steps.append(step)
        state = step.state
    return steps


def _expected_obs(name: str, state) -> torch.Tensor:
    """gymnasium's observation of a state, written out here rather than taken from the env."""
    if name == "cartpole":
        rows = [state.x, state.x_dot, state.theta, state.theta_dot]
    elif name == "pendulum":
        rows = [torch.cos(state.th), torch.sin(state.th), state.thdot]
    else:
        rows = [
            torch.cos(state.theta1), torch.sin(state.theta1),
            torch.cos(state.theta2), torch.sin(state.theta2), state.dtheta1, state.dtheta2,
        ]
    return torch.stack(rows, dim=1).to(torch.float32)


@pytest.mark.parametrize("name", sorted(RESET_BOUNDS))
def test_autoreset_returns_pre_reset_obs_and_a_fresh_start(name: str) -> None:
    steps = _rollout(name, seed=3, num_steps=90)
    resets = 0
    previous_time = torch.zeros(8, dtype=torch.int32)
    for step in steps:
        done = step.done
        resets += int(done.sum())
        # The time counter restarts where an episode ended and counts on elsewhere.
        assert torch.equal(step.state.time, torch.where(done, 0, previous_time + 1).int())
        # Where nothing ended, the obs to act on is the one the transition reached.
        assert torch.equal(step.obs[~done], step.final_obs[~done])
        # Where an episode ended, the state is a fresh draw inside gymnasium's reset bounds and
        # obs is its observation ...
        for field, bound in RESET_BOUNDS[name].items():
            value = getattr(step.state, field)[done]
            assert bool((value.abs() <= bound).all()), (field, value)
        assert torch.equal(step.obs, _expected_obs(name, step.state))
        # ... while final_obs is the observation the episode ended on (its value is checked
        # against gymnasium's by the parity tests above), not the new start.
        assert not bool((step.final_obs[done] == step.obs[done]).all(dim=1).any())
        previous_time = step.state.time
    assert resets >= 8


@pytest.mark.parametrize("name", sorted(RESET_BOUNDS))
def test_same_seed_is_bit_identical_and_another_seed_is_not(name: str) -> None:
    a, b, c = (_rollout(name, seed, num_steps=60) for seed in (5, 5, 6))
    assert any(bool(s.done.any()) for s in a)  # the comparison covers autoresets
    for sa, sb in zip(a, b, strict=True):
        flat_a, flat_b = tree.flatten(sa), tree.flatten(sb)
        for (key, va), (_, vb) in zip(flat_a.items(), flat_b.items(), strict=True):
            if isinstance(va, torch.Tensor):
                assert torch.equal(va, vb), key
            else:
                assert va == vb, key
    assert not all(torch.equal(sa.obs, sc.obs) for sa, sc in zip(a, c, strict=True))


def test_final_obs_is_the_terminal_observation_for_cartpole() -> None:
    """A terminating CartPole copy's final_obs is outside the +-12 degree band, its obs inside."""
    steps = _rollout("cartpole", seed=0, num_steps=60)
    terminal = [(s.final_obs[s.terminated], s.obs[s.terminated]) for s in steps]
    terminal = [(f, o) for f, o in terminal if f.numel()]
    assert terminal
    for final, fresh in terminal:
        outside = (final[:, 0].abs() > 2.4) | (final[:, 2].abs() > 12 * 2 * math.pi / 360)
        assert bool(outside.all())
        assert bool((fresh.abs() <= 0.05).all())
