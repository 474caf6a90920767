"""The batch simulator of MujocoParamsEnv (rlsuite.agents.iwocs.mujoco_batch) against the per-copy
gymnasium path, bit for bit: observations, rewards, flags, final observations and MuJoCo states,
per-copy parameters, seeded resets at the time limit and at terminations, a checkpoint round trip
(``mujoco`` extra)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

pytest.importorskip("mujoco")

from rlsuite.agents.iwocs.boxes import get_box  # noqa: E402
from rlsuite.agents.iwocs.mujoco_batch import batch_supported  # noqa: E402
from rlsuite.agents.iwocs.mujoco_env import MujocoParamsEnv, MujocoState  # noqa: E402

if not batch_supported("HalfCheetah-v5"):
    pytest.skip("needs mujoco.batch (MuJoCo >= 4.0)", allow_module_level=True)

SUPPORTED = ["halfcheetah_3", "halfcheetah_2", "hopper_3", "hopper_2", "walker_3", "walker_2",
             "invertedpendulum_2"]


def _grid_params(env: MujocoParamsEnv, name: str) -> object:
    """Every point of the set's 3-per-axis grid: 9 or 27 copies, all with distinct parameters."""
    box = get_box(name)
    return box.params(env.default_params(1), box.grid(3))


def _assert_same(a, b, where: str) -> None:
    """Every field of two engine Steps (or (obs, state) resets) equal, dtypes included."""
    pairs = ([("obs", a.obs, b.obs), ("reward", a.reward, b.reward),
              ("terminated", a.terminated, b.terminated), ("truncated", a.truncated, b.truncated),
              ("final_obs", a.final_obs, b.final_obs)] if hasattr(a, "reward") else [])
    sa, sb = (a.state, b.state) if pairs else (a[1], b[1])
    if not pairs:
        pairs.append(("obs", a[0], b[0]))
    pairs += [("physics", sa.physics, sb.physics), ("time", sa.time, sb.time)]
    for field, x, y in pairs:
        assert x.dtype == y.dtype and torch.equal(x, y), f"{where}: {field} differs"


def _run_pair(name: str, steps: int, limit: int, scale: float = 1.0, threads: int = 1
              ) -> tuple[int, int]:
    """Step the batch and gymnasium simulators side by side from the same reset, under the same
    seeded random actions; return (time-limit resets, termination resets) seen."""
    fast = MujocoParamsEnv(name, max_episode_steps=limit, simulator="batch", threads=threads)
    ref = MujocoParamsEnv(name, max_episode_steps=limit, simulator="gymnasium")
    params = _grid_params(fast, name)
    gen_f, gen_r = fast.make_generator(5), ref.make_generator(5)
    out_f, out_r = fast.reset(params, gen_f), ref.reset(params, gen_r)
    _assert_same(out_f, out_r, f"{name} reset")
    state_f, state_r = out_f[1], out_r[1]
    rng = np.random.default_rng(0)
    n = state_f.time.shape[0]
    truncations = terminations = 0
    for t in range(steps):
        a = torch.from_numpy(rng.uniform(-scale, scale, (n, *fast.action_space.shape)).astype(np.float32))
        step_f, step_r = fast.step(state_f, a, params, gen_f), ref.step(state_r, a, params, gen_r)
        _assert_same(step_f, step_r, f"{name} step {t}")
        truncations += int(step_f.truncated.sum())
        terminations += int(step_f.terminated.sum())
        state_f, state_r = step_f.state, step_r.state
    return truncations, terminations


def test_halfcheetah_3_batch_equals_gymnasium_for_300_steps_with_resets():
    """27 copies (the 3^3 grid: friction, torso and back-thigh masses all differ), 300 steps with
    a 40-step limit: seven seeded resets of every copy, every output bit-identical; two threads
    give the same bits."""
    truncations, terminations = _run_pair("halfcheetah_3", 300, 40)
    assert (truncations, terminations) == (7 * 27, 0)
    _run_pair("halfcheetah_3", 45, 40, threads=2)


@pytest.mark.parametrize("name", [s for s in SUPPORTED if s != "halfcheetah_3"])
def test_every_supported_set_batch_equals_gymnasium(name):
    """The other supported sets, 60 steps with a 12-step limit and actions beyond the control
    range (MuJoCo clamps them; the control cost does not): Hopper, Walker2d and InvertedPendulum
    terminate and reset mid-episode, and still every output is bit-identical."""
    truncations, terminations = _run_pair(name, 60, 12, scale=1.5)
    assert truncations > 0
    assert (terminations > 0) == (not name.startswith("halfcheetah"))


def test_float64_rewards_and_observations_equal_gymnasiums_before_the_float32_cast():
    """The simulators' own float64 outputs (not only the engine's float32 casts) are equal, and the
    states they write: on halfcheetah_3 and hopper_3 after 20 steps away from the reset."""
    for name in ("halfcheetah_3", "hopper_3"):
        fast = MujocoParamsEnv(name, max_episode_steps=1000, simulator="batch")
        params = _grid_params(fast, name)
        _, state = fast.reset(params, fast.make_generator(1))
        rng = np.random.default_rng(1)
        n = state.time.shape[0]
        for _ in range(20):
            a = torch.from_numpy(rng.uniform(-0.3, 0.3, (n, *fast.action_space.shape)).astype(np.float32))
            state = fast.step(state, a, params, fast.make_generator(1)).state
        actions = rng.uniform(-1, 1, (n, *fast.action_space.shape)).astype(np.float32)
        physics = state.physics.numpy()
        cols = torch.stack([getattr(params, p.name) for p in fast.mbox.params], 1).numpy()
        new, obs, reward, term = fast._batch.step(physics.copy(), actions, cols)
        ref_physics = physics.copy()
        ref_obs, ref_reward, ref_term = fast._step_gymnasium(ref_physics, actions, fast._values(params))
        assert obs.dtype == ref_obs.dtype == reward.dtype == ref_reward.dtype == np.float64
        assert np.array_equal(new, ref_physics) and np.array_equal(obs, ref_obs)
        assert np.array_equal(reward, ref_reward) and np.array_equal(term, ref_term)


def test_a_checkpointed_state_resumes_identically_on_a_fresh_env():
    """A state saved with torch.save mid-episode and loaded into a fresh batch env continues
    exactly as the gymnasium env continues from the unsaved state (and the batch env itself)."""
    fast = MujocoParamsEnv("halfcheetah_3", max_episode_steps=30)
    assert fast.simulator == "batch"  # the default where supported
    params = _grid_params(fast, "halfcheetah_3")
    gen = fast.make_generator(2)
    _, state = fast.reset(params, gen)
    rng = np.random.default_rng(2)
    actions = [torch.from_numpy(rng.uniform(-1, 1, (27, 6)).astype(np.float32)) for _ in range(40)]
    for a in actions[:17]:
        state = fast.step(state, a, params, gen).state
    buf = io.BytesIO()
    torch.save({"physics": state.physics, "time": state.time, "gen": gen.get_state()}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    fresh = MujocoParamsEnv("halfcheetah_3", max_episode_steps=30, simulator="batch")
    ref = MujocoParamsEnv("halfcheetah_3", max_episode_steps=30, simulator="gymnasium")
    gen_f, gen_r = fresh.make_generator(0), ref.make_generator(0)
    gen_f.set_state(saved["gen"])
    gen_r.set_state(gen.get_state())
    state_f = MujocoState(saved["physics"], saved["time"])
    state_r = state
    for t, a in enumerate(actions[17:]):  # through the reset at step 30
        step_f, step_r = fresh.step(state_f, a, params, gen_f), ref.step(state_r, a, params, gen_r)
        step_o = fast.step(state, a, params, gen)
        _assert_same(step_f, step_r, f"resumed step {t}")
        _assert_same(step_o, step_r, f"continued step {t}")
        state_f, state_r, state = step_f.state, step_r.state, step_o.state


def test_a_diverged_copy_resets_the_same_way_in_both_simulators():
    """A copy whose velocity is infinite: MuJoCo's bad-state handling (reset to qpos0 with a
    warning) runs inside both simulators alike, and the other copies are unaffected."""
    fast = MujocoParamsEnv("halfcheetah_2", max_episode_steps=100, simulator="batch")
    ref = MujocoParamsEnv("halfcheetah_2", max_episode_steps=100, simulator="gymnasium")
    params = _grid_params(fast, "halfcheetah_2")
    _, state = fast.reset(params, fast.make_generator(0))
    physics = state.physics.clone()
    physics[4, 1 + fast.model.nq] = float("inf")  # the first qvel of copy 4 (after time, qpos)
    state = MujocoState(physics, state.time)
    a = torch.full((9, 6), 0.5)
    step_f = fast.step(state, a, params, fast.make_generator(0))
    step_r = ref.step(state, a, params, ref.make_generator(0))
    _assert_same(step_f, step_r, "diverged step")
    assert torch.isfinite(step_f.state.physics[4]).all()


def test_simulator_choice_and_unsupported_sets():
    """Ant and HumanoidStandup (observations from mj_rnePostConstraint's fields) stay on the
    gymnasium path under "auto" and are refused under "batch", naming the set; bad values are
    refused naming the argument, and params of another batch size than the state's."""
    assert MujocoParamsEnv("ant_2").simulator == "gymnasium"
    assert MujocoParamsEnv("hopper_2").simulator == "batch"
    with pytest.raises(ValueError, match=r"simulator = 'batch' does not support ant_3 \(Ant-v5\)"):
        MujocoParamsEnv("ant_3", simulator="batch")
    with pytest.raises(ValueError, match="simulator = 'fast': expected"):
        MujocoParamsEnv("hopper_2", simulator="fast")
    with pytest.raises(ValueError, match="threads = 0 must be >= 1"):
        MujocoParamsEnv("hopper_2", threads=0)
    env = MujocoParamsEnv("hopper_2")
    params = _grid_params(env, "hopper_2")
    _, state = env.reset(params, env.make_generator(0))
    with pytest.raises(ValueError, match="params batch size 1 != state batch size 9"):
        env.step(state, torch.zeros(9, 3), env.default_params(1), env.make_generator(0))


@pytest.mark.parametrize("nu", [1, 3, 6])
def test_control_cost_sums_each_row_in_gymnasiums_order(nu):
    """The float32 control cost over [B, nu] equals gymnasium's per-action
    ``w * np.sum(np.square(action))`` for every row (batch sizes below and above numpy's buffer),
    on magnitudes mixed so that a different summation order would change about a fifth of the
    rows (checked here too, so the equality is not vacuous)."""
    from rlsuite.agents.iwocs.mujoco_batch import _control_cost

    class Sim:
        _ctrl_cost_weight = 0.1

    rng = np.random.default_rng(nu)
    for n in (1, 27, 20000):
        a = (rng.uniform(-1, 1, (n, nu)) * rng.choice([1e-3, 1.0, 1e3], (n, nu))).astype(np.float32)
        cost = _control_cost(Sim, a)
        ref = np.array([Sim._ctrl_cost_weight * np.sum(np.square(row)) for row in a])
        assert cost.dtype == ref.dtype == np.float32 and np.array_equal(cost, ref)
    if nu > 2:
        sq = np.square(a)
        other = sq[:, 0] + np.sum(sq[:, 1:], axis=1)  # a0 + (a1 + ...): another order
        assert (Sim._ctrl_cost_weight * other != cost).mean() > 0.05
