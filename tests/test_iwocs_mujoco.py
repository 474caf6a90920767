"""MuJoCo uncertainty sets of IWOCS (Table 7) as gymnasium env factories (``mujoco`` extra)."""

import numpy as np
import pytest

pytest.importorskip("mujoco")

from rlsuite.agents.iwocs.mujoco_sets import (  # noqa: E402
    MUJOCO_BOXES,
    episode_returns,
    get_mujoco_box,
    make_env,
    nominal_values,
    set_params,
)


def _rollout(env, steps: int = 30) -> np.ndarray:
    """Observations under a fixed action sequence from a fixed reset."""
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    out = [obs]
    for _ in range(steps):
        obs, *_ = env.step(rng.uniform(-0.5, 0.5, env.action_space.shape).astype(np.float32))
        out.append(obs)
    return np.stack(out)


@pytest.mark.parametrize("name", sorted(MUJOCO_BOXES))
def test_every_parameter_changes_the_dynamics_between_its_bounds(name):
    """RRLS's effective-parameters check: each parameter at its low vs high bound (others at the
    lower bound) changes the trajectory under the same actions."""
    mbox = get_mujoco_box(name)
    env = make_env(name)
    lows = [p.low for p in mbox.params]
    for k, p in enumerate(mbox.params):
        set_params(env, name, lows)
        at_low = _rollout(env)
        set_params(env, name, lows[:k] + [p.high] + lows[k + 1:])
        at_high = _rollout(env)
        assert not np.allclose(at_low, at_high), f"{name}.{p.name} has no effect"
    env.close()


def test_floor_only_friction_is_inert_below_the_foot_friction_on_hopper():
    """docs/iwocs.md (friction): with RRLS's floor-only write, Hopper trajectories are identical for floor
    friction 0.1 and 1.8 (the foot's 2.0 wins the max); writing the feet too makes it act."""
    env = make_env("hopper_2")
    runs = {}
    for mode in ("floor", "floor_and_feet"):
        for mu in (0.1, 1.8):
            set_params(env, "hopper_2", [mu, 3.0], friction=mode)
            runs[mode, mu] = _rollout(env, 60)
    assert np.array_equal(runs["floor", 0.1], runs["floor", 1.8])
    assert not np.allclose(runs["floor_and_feet", 0.1], runs["floor_and_feet", 1.8])


def test_named_bodies_nominal_values_and_bad_values():
    # friction reports its first target, the floor (1.0; the foot has 2.0)
    assert nominal_values("hopper_3") == pytest.approx([1.0, 3.6652, 4.0579], abs=1e-4)
    # M2TD3's "front right leg" is body 4 (the front-left ankle, 0.0676); RRLS's is body 5
    assert nominal_values("ant_3")[2] == pytest.approx(0.0676, abs=1e-4)
    assert nominal_values("ant_3", ant_leg="rrls")[2] == pytest.approx(0.0392, abs=1e-4)
    assert nominal_values("invertedpendulum_2") == pytest.approx([5.0186, 10.472], abs=1e-3)
    env = make_env("walker_2")
    with pytest.raises(ValueError, match=r"walker_2.torsomass = 9.0 is outside \[0.1, 5.0\]"):
        set_params(env, "walker_2", [1.0, 9.0])
    with pytest.raises(ValueError, match="1 values for 2 params"):
        set_params(env, "walker_2", [1.0])
    with pytest.raises(KeyError, match="unknown MuJoCo uncertainty set"):
        get_mujoco_box("hopper_9")


def test_episode_returns_scores_each_parameter_vector():
    """InvertedPendulum with a zero action: one mean return per parameter vector, reproducible."""
    box = get_mujoco_box("invertedpendulum_2").box
    values = box.grid(2)
    returns = episode_returns(lambda obs: np.zeros(1, dtype=np.float32), "invertedpendulum_2",
                              values, episodes=1, seed=0)
    assert returns.shape == (4,) and bool((returns >= 1).all())
    # the same first vector again gives the same return (reset seeds depend on the position)
    again = episode_returns(lambda obs: np.zeros(1, dtype=np.float32), "invertedpendulum_2",
                            values[:1], episodes=1, seed=0)
    assert float(again[0]) == float(returns[0])
