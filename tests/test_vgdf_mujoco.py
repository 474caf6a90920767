"""VGDF's MuJoCo targets (``mujoco`` extra): the broken joints' ranges, the morphology XMLs (they
load, equal their generator's output, and give the masses / geometry of the official XMLs), the
spaces the domains share, the terminal predicates, and VGDF on two gymnasium envs."""

from __future__ import annotations

import fnmatch
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

mujoco = pytest.importorskip("mujoco")
gymnasium = pytest.importorskip("gymnasium")

from rlsuite.agents.vgdf.agent import VGDF  # noqa: E402
from rlsuite.agents.vgdf.config import VGDFConfig  # noqa: E402
from rlsuite.agents.vgdf.domains import GymnasiumDomains  # noqa: E402
from rlsuite.envs import mujoco_shifts as ms  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MORPH = sorted(n for n, t in ms.TASKS.items() if t.kind == "morphology")
KINEMATIC = sorted(n for n, t in ms.TASKS.items() if t.kind == "kinematic")


def _by_name(model, kind, name: str) -> int:
    i = mujoco.mj_name2id(model, kind, name)
    assert i >= 0, name
    return i


# -- morphology ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MORPH)
def test_shipped_xml_is_the_transformation_output_and_loads(name):
    path = ms.asset_path(name)
    assert path.read_text() == ms.morph_xml(name), "regenerate: python -m rlsuite.envs.mujoco_shifts"
    model = mujoco.MjModel.from_xml_path(str(path))
    base = mujoco.MjModel.from_xml_path(str(ms.gymnasium_asset(ms.TASKS[name].base_xml)))
    # Same kinematic tree, joints and actuators: only geometry changes.
    assert (model.nbody, model.njnt, model.nu, model.nq) == (base.nbody, base.njnt, base.nu, base.nq)
    np.testing.assert_array_equal(model.jnt_range, base.jnt_range)
    np.testing.assert_array_equal(model.actuator_gear, base.actuator_gear)


# Body masses measured on the official XMLs (docs/vgdf.md): {body: (v5, target)}.
NOTES_MASSES = {
    "halfcheetah_no_thighs": {"torso": (6.250, 8.197), "bthigh": (1.544, 0.354), "fthigh": (1.438, 0.354),
                              "bshin": (1.587, 1.497), "bfoot": (1.095, 1.160), "fshin": (1.201, 1.277),
                              "ffoot": (0.885, 1.160)},
    "hopper_big_head": {"torso": (3.665, 27.816), "thigh": (4.058, 2.530)},
    "hopper_big_head_paper": {"torso": (3.665, 27.816), "thigh": (4.058, 4.058)},
    "walker_no_right_thigh": {"thigh": (4.058, 0.563), "leg": (2.781, 4.013)},
}


@pytest.mark.parametrize("name", sorted(NOTES_MASSES))
def test_morphology_masses_are_the_notes_values(name):
    source, target = (e.unwrapped.model for e in ms.make_pair(name))
    changed = NOTES_MASSES[name]
    for b in range(source.nbody):
        body = mujoco.mj_id2name(source, mujoco.mjtObj.mjOBJ_BODY, b)
        if body in changed:
            assert source.body_mass[b] == pytest.approx(changed[body][0], abs=5e-4), body
            assert target.body_mass[b] == pytest.approx(changed[body][1], abs=5e-4), body
        else:
            assert target.body_mass[b] == pytest.approx(source.body_mass[b], abs=1e-9), body
    if name == "halfcheetah_no_thighs":  # settotalmass="14" is kept
        assert target.body_mass.sum() == pytest.approx(14.0)


def test_walker_morph_is_the_official_global_geometry():
    """At the reference pose the local-coordinate edits put the right leg where the official
    global-coordinate walker_morph.xml has it (thigh 1.05 -> 1.045, leg 1.045 -> 0.3, foot at 0.3)."""
    model = mujoco.MjModel.from_xml_path(str(ms.asset_path("walker_no_right_thigh")))
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    geom = lambda n: data.geom_xpos[_by_name(model, mujoco.mjtObj.mjOBJ_GEOM, n)]  # noqa: E731
    anchor = lambda n: data.xanchor[_by_name(model, mujoco.mjtObj.mjOBJ_JOINT, n)]  # noqa: E731
    half = lambda n: model.geom_size[_by_name(model, mujoco.mjtObj.mjOBJ_GEOM, n), 1]  # noqa: E731
    np.testing.assert_allclose(geom("thigh_geom"), [0, 0, (1.05 + 1.045) / 2], atol=1e-9)
    assert half("thigh_geom") == pytest.approx((1.05 - 1.045) / 2)
    np.testing.assert_allclose(anchor("leg_joint"), [0, 0, 1.045], atol=1e-9)
    np.testing.assert_allclose(geom("leg_geom"), [0, 0, (1.045 + 0.3) / 2], atol=1e-9)
    assert half("leg_geom") == pytest.approx((1.045 - 0.3) / 2)
    np.testing.assert_allclose(anchor("foot_joint"), [0, 0, 0.3], atol=1e-9)
    np.testing.assert_allclose(geom("foot_geom"), [0.1, 0, 0.3], atol=1e-9)
    # The left leg is untouched: thigh 1.05 -> 0.6, foot joint at 0.1.
    np.testing.assert_allclose(geom("thigh_left_geom"), [0, 0, 0.825], atol=1e-9)
    np.testing.assert_allclose(anchor("foot_left_joint"), [0, 0, 0.1], atol=1e-9)


def test_morph_assets_are_package_data():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is 3.11+")
    import tomllib

    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    # rlsuite.envs is envs/ (package-dir), so package rlsuite.envs.X.Y is the folder envs/X/Y.
    dirs = {pkg: REPO / "envs" / Path(*pkg.split(".")[2:]) for pkg in globs if pkg.startswith("rlsuite.envs")}
    for name in MORPH:
        path = ms.asset_path(name)
        assert any(path.is_relative_to(d) and any(
            fnmatch.fnmatch(rel := path.relative_to(d).as_posix(), g) and rel.count("/") == g.count("/")
            for g in globs[pkg]) for pkg, d in dirs.items()), path


def _capsule_mass(length: float, radius: float = 0.08, density: float = 5.0) -> float:
    return density * (np.pi * radius**2 * length + 4 / 3 * np.pi * radius**3)


def test_ant_short_feet_shortens_only_the_front_lower_legs():
    # The ankle bodies are unnamed in ant.xml: find them through their capsules. By hand: density 5,
    # radius 0.08, length 0.4 sqrt(2) -> 0.1 sqrt(2), so 5 (pi r^2 L + 4/3 pi r^3) = 0.06759 -> 0.02494.
    source, target = (e.unwrapped.model for e in ms.make_pair("ant_short_feet"))
    shortened = {source.geom_bodyid[_by_name(source, mujoco.mjtObj.mjOBJ_GEOM, g)]
                 for g in ("left_ankle_geom", "right_ankle_geom")}
    for b in range(source.nbody):
        if b in shortened:
            assert source.body_mass[b] == pytest.approx(_capsule_mass(0.4 * 2**0.5), rel=1e-9)
            assert target.body_mass[b] == pytest.approx(_capsule_mass(0.1 * 2**0.5), rel=1e-9)
        else:
            assert target.body_mass[b] == source.body_mass[b]
    assert source.nq == target.nq == 15 and ms.make_pair("ant_short_feet")[0].observation_space.shape == (27,)


# -- kinematic ----------------------------------------------------------------------------------
# Ranges in radians (docs/vgdf.md, measured on the v5 models): joint -> target range.
NOTES_RANGES = {
    "halfcheetah_broken_thigh": {"bthigh": (-0.0052, 0.0105)},
    "hopper_broken_joints": {"thigh_joint": (-0.002618, 0.0), "foot_joint": (-0.31416, 0.31416)},
    "walker_broken_right_foot": {"foot_joint": (-0.007854, 0.007854)},
    "ant_broken_hips": {"hip_1": (-0.005236, 0.005236), "hip_2": (-0.005236, 0.005236)},
}


@pytest.mark.parametrize("name", KINEMATIC)
def test_broken_joint_ranges_are_the_notes_values(name):
    source, target = (e.unwrapped.model for e in ms.make_pair(name))
    expected = NOTES_RANGES[name]
    for j in range(source.njnt):
        joint = mujoco.mj_id2name(source, mujoco.mjtObj.mjOBJ_JOINT, j)
        if joint in expected:
            np.testing.assert_allclose(target.jnt_range[j], expected[joint], atol=5e-6)
            scale = next(s for s in ms.TASKS[name].joints if s.joint == joint)
            np.testing.assert_array_equal(target.jnt_range[j],
                                          source.jnt_range[j] * [scale.lower, scale.upper])
        else:
            np.testing.assert_array_equal(target.jnt_range[j], source.jnt_range[j])
    # Nothing else in the model changes.
    np.testing.assert_array_equal(target.body_mass, source.body_mass)
    np.testing.assert_array_equal(target.geom_size, source.geom_size)


def _excursion(env, task, steps: int = 400) -> tuple[np.ndarray, np.ndarray]:
    model, data = env.unwrapped.model, env.unwrapped.data
    adr = [model.jnt_qposadr[j] for j in ms.joint_ids(model, task)]
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    lo, hi = np.full(len(adr), np.inf), np.full(len(adr), -np.inf)
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        lo, hi = np.minimum(lo, data.qpos[adr]), np.maximum(hi, data.qpos[adr])
        if term or trunc:
            env.reset()
    return lo, hi


SOFT_MARGIN = 0.15
"""MuJoCo limits are soft: a joint pushed by full torque overshoots its range by about a tenth of
a radian (measured, seed 0: HalfCheetah's broken thigh 0.06, Walker's broken foot 0.13)."""


@pytest.mark.parametrize("name", KINEMATIC)
def test_broken_joint_stays_in_its_scaled_range_under_random_actions(name):
    task = ms.TASKS[name]
    source, target = ms.make_pair(name)
    (s_lo, s_hi), (t_lo, t_hi) = _excursion(source, task), _excursion(target, task)
    rng_t = target.unwrapped.model.jnt_range[ms.joint_ids(target.unwrapped.model, task)]
    assert (t_lo >= rng_t[:, 0] - SOFT_MARGIN).all() and (t_hi <= rng_t[:, 1] + SOFT_MARGIN).all()
    # Where a limit is cut to a hundredth or less, the intact joint goes well past the broken
    # one's bound (Hopper's foot, x 0.4, is not checked this way: random actions rarely push the
    # intact foot to 0.4 of its range before the hopper falls).
    for k, scale in enumerate(task.joints):
        if scale.lower <= 0.01:
            assert s_lo[k] < rng_t[k, 0] - SOFT_MARGIN, (scale.joint, s_lo[k])
        if scale.upper <= 0.01:
            assert s_hi[k] > rng_t[k, 1] + SOFT_MARGIN, (scale.joint, s_hi[k])


# -- both kinds ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(ms.TASKS))
def test_source_and_target_share_spaces_but_not_dynamics(name):
    source, target = ms.make_pair(name)
    assert source.observation_space == target.observation_space
    assert source.action_space == target.action_space
    assert target.spec.id == ms.TASKS[name].target_id and target.spec.max_episode_steps == 1000
    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, (30, *source.action_space.shape)).astype(np.float32)
    trajs = []
    for env in (source, target):
        obs, _ = env.reset(seed=3)
        out = [obs]
        for a in actions:
            obs, *_ = env.step(a)
            out.append(obs)
        trajs.append(np.stack(out))
    if ms.TASKS[name].kind == "kinematic":  # same bodies: the same start state
        np.testing.assert_array_equal(trajs[0][0], trajs[1][0])
    assert np.abs(trajs[0] - trajs[1]).max() > 1e-2


@pytest.mark.parametrize("env_id,fn", [("Hopper-v5", ms.hopper_terminal),
                                       ("Walker2d-v5", ms.walker_terminal),
                                       ("Ant-v5", ms.ant_terminal)])
def test_terminal_predicates_agree_with_the_env(env_id, fn):
    env = gymnasium.make(env_id, **({"include_cfrc_ext_in_observation": False} if env_id == "Ant-v5" else {}))
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    flags, preds = [], []
    for _ in range(600):
        obs, _, term, trunc, _ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        flags.append(term)
        preds.append(bool(fn(torch.as_tensor(obs))))
        if term or trunc:
            obs, _ = env.reset()
    assert sum(flags) >= 5 and flags == preds


def test_domains_reject_different_spaces():
    with pytest.raises(ValueError, match="observation_space"):
        GymnasiumDomains("HalfCheetah-v5", "Hopper-v5", 1, 1)


# -- VGDF on two gymnasium envs -----------------------------------------------------------------
TINY = dict(sac={"hidden_sizes": [16, 16], "batch_size": 32, "utd": 0.25}, ensemble_size=3,
            num_elites=2, model_hidden=[16],
            model_weight_decay=[1e-5, 1e-5], model_train_freq=100, model_max_epochs=3,
            model_batch_size=32, warmup_steps=200, random_steps=50, eval_every=400,
            eval_episodes=2)


class Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []

    def on_iteration(self, agent, step: int, metrics: dict[str, float]) -> None:
        self.rows.append((step, dict(metrics)))


def _mujoco_agent(seed: int = 0, task: str = "hopper_big_head", **kw) -> VGDF:
    domains = GymnasiumDomains.for_task(task, 2, 1, max_episode_steps=50)
    return VGDF(VGDFConfig(**(TINY | kw)), seed=seed, domains=domains)


def test_vgdf_learns_from_a_source_and_a_target_gymnasium_env():
    agent, rec = _mujoco_agent(), Recorder()
    assert agent.terminal is ms.hopper_terminal
    agent.learn(400, rec)
    assert agent.global_step == 400 and agent.target_steps == 40  # Gamma = 10
    assert len(agent.src_buffer) == 400 and len(agent.tar_buffer) == 40
    # The target buffer holds a model batch (32) at source step 320: one refit, at 400.
    assert agent.model_fits == 1
    accept = [m["vgdf/accept_ratio"] for s, m in rec.rows if "vgdf/accept_ratio" in m]
    assert accept[-1] == pytest.approx(0.25) and all(a == 1.0 for a in accept[:-1])
    final = rec.rows[-1][1]
    assert {"eval/target_return", "eval/source_return"} <= set(final)
    # The target buffer really is the big-head hopper: the source env's dynamics do not explain it.
    # (Episodes end on the healthy predicate: terminated flags match the hand-coded one.)
    tar = agent.tar_buffer.ordered()
    np.testing.assert_array_equal(tar.terminated.numpy(), ms.hopper_terminal(tar.next_obs).numpy())
    # Seeded: a second run repeats the first one's data (its first 200 source steps here).
    again = _mujoco_agent()
    again.learn(200)
    assert torch.equal(again.src_buffer.ordered().obs, agent.src_buffer.ordered().obs[:200])
    assert torch.equal(again.tar_buffer.ordered().next_obs, tar.next_obs[:20])
    agent.domains.close()
    again.domains.close()


def test_the_runner_trains_vgdf_on_a_mujoco_preset(tmp_path):
    """``rlsuite experiment=vgdf_halfcheetah`` (``agent.mujoco_task``): the runner builds the two
    gymnasium domains, trains, and scores the greedy policy in the broken-thigh target."""
    from rlsuite import jobs
    from rlsuite.logging import read_metrics
    from rlsuite.runner import compose, run

    cfg = compose(["experiment=vgdf_halfcheetah", "total_steps=300", "num_envs=2", "eval_episodes=1",
                   "agent.sac.hidden_sizes=[16,16]", "agent.sac.batch_size=16", "agent.model_batch_size=16",
                   "agent.ensemble_size=3", "agent.num_elites=2", "agent.model_hidden=[16]",
                   "agent.model_weight_decay=[1e-5,1e-5]", "agent.model_train_freq=100",
                   "agent.model_max_epochs=2", "agent.sac.utd=0.25", "agent.random_steps=40",
                   "agent.warmup_steps=200", "agent.eval_every=1000", f"run_dir={tmp_path}",
                   "progress=false", "tensorboard=false", "threads=1"])
    assert cfg.agent.mujoco_task == "halfcheetah_broken_thigh"
    score = run(cfg)
    result = jobs.read_result(tmp_path)
    assert result["status"] == "completed" and result["metrics"]["eval/target_return"] == score
    assert set(result["metrics"]) == {"eval/target_return", "eval/source_return"}
    rows = read_metrics(tmp_path)
    assert rows[-2]["vgdf/target_steps"] == 30  # Gamma = 10 source steps per target step
    accept = [r["vgdf/accept_ratio"] for r in rows if "vgdf/accept_ratio" in r]
    assert accept[0] == 1.0 and accept[-1] == pytest.approx(0.25)  # filtering after the warm-up


def test_a_vgdf_mujoco_run_stopped_mid_episode_resumes_to_the_same_numbers(tmp_path):
    """A run stopped by its time limit (mid-episode: the gymnasium simulators' state goes into the
    checkpoint) and continued with resume=auto ends with the uninterrupted run's metrics. Before
    the simulators' state was saved, the resumed run stopped at its first step (stale tick)."""
    from rlsuite import jobs
    from rlsuite.runner import compose, run

    tiny = ["experiment=vgdf_halfcheetah", "total_steps=300", "num_envs=2", "eval_episodes=1",
            "agent.sac.hidden_sizes=[16,16]", "agent.sac.batch_size=16", "agent.model_batch_size=16",
            "agent.ensemble_size=3", "agent.num_elites=2", "agent.model_hidden=[16]",
            "agent.model_weight_decay=[1e-5,1e-5]", "agent.model_train_freq=100",
            "agent.model_max_epochs=2", "agent.sac.utd=0.25", "agent.random_steps=40",
            "agent.warmup_steps=200", "agent.eval_every=1000", "progress=false",
            "tensorboard=false", "threads=1", "checkpoint_every=1"]
    straight = run(compose([*tiny, f"run_dir={tmp_path / 'a'}"]))
    with pytest.raises(jobs.TimeLimitReached):
        run(compose([*tiny, f"run_dir={tmp_path / 'b'}", "time_limit_s=0.000001"]))
    assert jobs.read_result(tmp_path / "b")["status"] != "completed"
    resumed = run(compose([*tiny, f"run_dir={tmp_path / 'b'}", "resume=auto"]))
    assert resumed == straight
    assert jobs.read_result(tmp_path / "b")["metrics"] == jobs.read_result(tmp_path / "a")["metrics"]
