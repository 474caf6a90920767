"""IWOCS on a MuJoCo set (rlsuite.agents.iwocs.mujoco_env, .paper_scores): exact parameter writes,
a stateless engine env equal to gymnasium step for step, the paper's normalized score, and
halfcheetah_iwocs runs end to end through the runner, killed and resumed (``mujoco`` extra)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

from rlsuite import checkpoint, jobs
from rlsuite.agents.iwocs.boxes import get_box
from rlsuite.agents.iwocs.mujoco_env import MujocoParamsEnv
from rlsuite.agents.iwocs.mujoco_sets import make_env, set_params
from rlsuite.agents.iwocs.paper_scores import REFERENCES, add_normalized, normalized_score
from rlsuite.runner import compose, run

try:
    import mujoco  # noqa: F401

    HAVE_MUJOCO = True
except ImportError:
    HAVE_MUJOCO = False
needs_mujoco = pytest.mark.skipif(not HAVE_MUJOCO,
                                  reason="needs the mujoco extra (pip install -e '.[mujoco]')")


def _body(model, name: str) -> int:
    import mujoco

    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)


@needs_mujoco
def test_setting_halfcheetah_parameters_is_exact():
    """set_params and the engine env write exactly the values asked: torso and back-thigh masses,
    and world friction on every geom's sliding coefficient (RRLS's geom_friction[:, 0])."""
    env = make_env("halfcheetah_3")
    model = env.unwrapped.model
    set_params(env, "halfcheetah_3", [2.3, 0.7, 2.9])
    assert model.body_mass[_body(model, "torso")] == 0.7
    assert model.body_mass[_body(model, "bthigh")] == 2.9
    assert (model.geom_friction[:, 0] == 2.3).all() and model.ngeom == 9
    # RRLS indexes bodies by number (torso 1, back thigh 2): the names resolve to the same bodies
    assert (_body(model, "torso"), _body(model, "bthigh")) == (1, 2)
    engine = MujocoParamsEnv("halfcheetah_3")
    values = torch.tensor([[0.1, 7.0, 0.35]], dtype=torch.float64)
    params = get_box("halfcheetah_3").params(engine.default_params(1), values)
    obs, state = engine.reset(params, engine.make_generator(0))
    engine.step(state, torch.zeros(1, 6), params, engine.make_generator(0))
    m = engine.model
    assert (m.body_mass[1], m.body_mass[2]) == (7.0, 0.35) and (m.geom_friction[:, 0] == 0.1).all()
    # the defaults are the v5 model's own values (not the paper's v2 reference values)
    nominal = engine.default_params(1)
    assert float(nominal.torsomass) == pytest.approx(6.2502, abs=1e-4)
    assert float(nominal.worldfriction) == 0.4


def _rrls_write(env, friction: float, torso: float, bthigh: float) -> None:
    """RRLS's RobustHalfCheetah._change_params, literally (rrls/envs/half_cheetah.py)."""
    env.unwrapped.model.geom_friction[:, 0] = friction
    env.unwrapped.model.body_mass[1] = torso
    env.unwrapped.model.body_mass[2] = bthigh


@needs_mujoco
def test_engine_env_equals_gymnasium_with_rrls_writes_and_its_state_is_in_tensors():
    """Two copies with different parameters, stepped together, each follow gymnasium's
    HalfCheetah-v5 with RRLS's writes bit for bit (from gymnasium's reset of the drawn seed);
    stepping again from an old state (a branch) repeats the same transition."""
    engine = MujocoParamsEnv("halfcheetah_3", max_episode_steps=30)
    values = torch.tensor([[0.1, 0.1, 3.0], [4.0, 7.0, 0.1]], dtype=torch.float64)
    params = get_box("halfcheetah_3").params(engine.default_params(1), values)
    gen = engine.make_generator(3)
    seeds = torch.randint(0, 2**31 - 1, (2,), generator=engine.make_generator(3)).tolist()
    obs, state = engine.reset(params, gen)
    refs = []
    for (f, t, b), seed in zip(values.tolist(), seeds, strict=True):
        ref = gymnasium.make("HalfCheetah-v5", max_episode_steps=30)
        _rrls_write(ref, f, t, b)
        refs.append((ref, ref.reset(seed=seed)[0]))
    for k, (_, o) in enumerate(refs):
        assert torch.equal(obs[k], torch.as_tensor(o, dtype=torch.float32))
    rng = np.random.default_rng(0)
    first = None
    for t in range(30):
        a = rng.uniform(-1, 1, (2, 6)).astype(np.float32)
        step = engine.step(state, torch.from_numpy(a), params, gen)
        if t == 0:
            first = (state, torch.from_numpy(a), step)
        for k, (ref, _) in enumerate(refs):
            o, r, term, trunc, _ = ref.step(a[k])
            assert torch.equal(step.final_obs[k], torch.as_tensor(o, dtype=torch.float32))
            assert float(step.reward[k]) == np.float32(r)
            assert (bool(step.terminated[k]), bool(step.truncated[k])) == (term, trunc)
        state = step.state
    assert bool(step.truncated.all()) and int(step.state.time.max()) == 0  # reset after 30 steps
    again = engine.step(first[0], first[1], params, gen)  # branch from the first state
    assert torch.equal(again.obs, first[2].obs) and torch.equal(again.reward, first[2].reward)


def test_normalized_score_is_the_papers_formula_on_its_own_numbers():
    """(v - v_TD3) / |v_M2TD3 - v_TD3|: M2TD3 -> 1, TD3 -> 0, and the raw worst cases of IWOCS
    Table 8 (HalfCheetah 3, x 1e3) map to Table 1's normalized scores within its rounding."""
    assert normalized_score(5.0, 1.0, 3.0) == 2.0
    assert normalized_score(0.0, 1.0, -3.0) == -0.25  # |one - zero|: a sign-safe denominator
    with pytest.raises(ValueError, match="references are equal"):
        normalized_score(1.0, 2.0, 2.0)
    ref = REFERENCES["halfcheetah_3"]
    assert normalized_score(ref.m2td3, ref.td3, ref.m2td3) == 1.0
    assert normalized_score(ref.td3, ref.td3, ref.m2td3) == 0.0
    table8 = {"M2TD3": 930.0, "DR (TD3)": 1090.0, "IWOCS*": 330.0, "IWOCS": 250.0,
              "SoftM2TD3": 1530.0, "M3DDPG": -660.0, "RARL": -810.0}
    table1 = {"M2TD3": 1.00, "DR (TD3)": 1.10, "IWOCS*": 0.61, "IWOCS": 0.56, "SoftM2TD3": 1.39,
              "M3DDPG": -0.03, "RARL": -0.13}
    for method, raw in table8.items():
        assert normalized_score(raw, ref.td3, ref.m2td3) == pytest.approx(table1[method], abs=0.006)
    out = add_normalized("halfcheetah_3", {"eval/worst_case_return": 330.0, "eval/mean_return": 1.0,
                                           "eval/last/worst_case_return": ref.td3})
    assert list(out)[0] == "eval/worst_case_return"  # the run's score stays first
    assert out["eval/normalized_worst_case"] == normalized_score(330.0, ref.td3, ref.m2td3)
    assert out["eval/last/normalized_worst_case"] == 0.0
    assert add_normalized("pendulum_mass_length", {"eval/worst_case_return": 1.0}) == {
        "eval/worst_case_return": 1.0}


def _run(run_dir: Path, *extra: str) -> float:
    return run(compose(["experiment=halfcheetah_iwocs_smoke", f"run_dir={run_dir}",
                        "progress=false", "tensorboard=false", *extra]))


def _final(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / "result.json").read_text())["metrics"]


@needs_mujoco
def test_halfcheetah_iwocs_runs_through_the_runner_and_resumes_after_a_kill(tmp_path: Path):
    """The smoke preset end to end: worst case = min over the 2 x 2 x 2 grid, the normalized
    score beside it, the unselected last phase too; stopped after its first phase (the time
    limit checkpoints there, as a preemption does), the same command finishes it with the
    same final metrics as the uninterrupted run."""
    whole = tmp_path / "whole"
    score = _run(whole)
    final = _final(whole)
    grid = [final[f"eval/grid/{i}_{j}_{k}"] for i in range(2) for j in range(2) for k in range(2)]
    assert score == final["eval/worst_case_return"] == min(grid)
    ref = REFERENCES["halfcheetah_3"]
    assert final["eval/normalized_worst_case"] == pytest.approx(
        normalized_score(score, ref.td3, ref.m2td3), rel=1e-12)
    assert {"eval/last/worst_case_return", "eval/last/normalized_worst_case",
            "eval/fallback/worst_case_return", "eval/expert_1/worst_case_return"} <= set(final)
    assert final["eval/worst_torsomass"] in (0.1, 7.0)  # a grid point of the box
    assert json.loads((whole / "result.json").read_text())["global_step"] == 500
    killed = tmp_path / "killed"
    with pytest.raises(jobs.TimeLimitReached):
        _run(killed, "time_limit_s=1e-9")
    assert jobs.read_result(killed)["status"] != jobs.COMPLETED
    assert checkpoint.load(killed)["agent"]["global_step"] == 300  # the DR phase, kept
    assert _run(killed, "resume=auto") == score
    assert _final(killed) == final


@needs_mujoco
def test_dr_sac_baseline_resumes_mid_episode_bit_for_bit(tmp_path: Path):
    """The DR SAC baseline stopped mid-episode (its checkpoint holds the MuJoCo states as
    tensors) and resumed gives the uninterrupted run's final metrics exactly."""
    common = ("agent.method=dr_sac", "total_steps=240", "checkpoint_every=30",
              "agent.sac.learning_starts=60")
    whole = tmp_path / "whole"
    _run(whole, *common)
    killed = tmp_path / "killed"
    with pytest.raises(jobs.TimeLimitReached):
        _run(killed, *common, "time_limit_s=1e-9")  # stops after the first SAC iteration
    saved = checkpoint.load(killed)["agent"]["sac"]
    assert saved["global_step"] == 2 and any(k.startswith("rollout_state") for k in saved)
    _run(killed, *common, "resume=auto")
    assert _final(killed) == _final(whole)
    assert "eval/normalized_worst_case" in _final(whole)


def test_results_page_mujoco_section_renders_runs_and_says_not_yet_run():
    """scripts/papers/iwocs.py: the full plan holds IWOCS, DR and nominal SAC on halfcheetah_3
    for seeds 0-2 (the quick plan none: no mujoco extra in CI); the generated section shows the
    worst case and the paper's normalized score of the runs made, *not yet run* for the others,
    and the budget beside the paper's."""
    from rlsuite.reproduce import Record, load_paper

    paper = load_paper("iwocs")
    full, quick = paper.plan(False), paper.plan(True)
    mujoco_jobs = {(j.tag, j.preset) for j in full if j.tag.startswith("halfcheetah")}
    assert mujoco_jobs == {(f"halfcheetah_{m}_s{s}", "halfcheetah_iwocs" + p)
                           for m, p in (("iwocs", ""), ("dr_sac", "_dr_sac"),
                                        ("nominal_sac", "_nominal_sac")) for s in (0, 1, 2)}
    assert not any(j.preset.startswith("halfcheetah") for j in quick)
    ref = REFERENCES["halfcheetah_3"]
    records = {}
    for job in full:
        result = {}
        if job.tag in ("halfcheetah_iwocs_s0", "halfcheetah_iwocs_s1"):
            worst = 330.0 if job.tag.endswith("0") else 170.0
            result = {"status": "completed", "metrics": {
                "eval/worst_case_return": worst, "eval/last/worst_case_return": ref.td3},
                "identity": {"config": {"total_steps": 160000, "num_envs": 4, "agent": {
                    "dr_steps": 64000, "num_iterations": 3, "model_steps": 32000,
                    "sac": {"hidden_sizes": [256, 256]}, "eval_points": 10, "eval_episodes": 1,
                    "episode_steps": None, "thresholds": [0.5] * 10}}}}
        records[job.tag] = Record(job, Path("/nonexistent"), result)
    text = paper.module.mujoco_section(records)  # what render() puts in the full page
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()
            if line.startswith("| ") and "---" not in line}
    iwocs = rows["IWOCS* (kept phase chosen on the grid)"]
    mean_norm = (normalized_score(330.0, ref.td3, ref.m2td3) + normalized_score(170, ref.td3, ref.m2td3)) / 2
    assert " 2/3 | 250 +- " in iwocs and f" | {mean_norm:.4g} +- " in iwocs
    assert "seed 0: 330, seed 1: 170; not yet run: halfcheetah_iwocs_s2" in iwocs
    assert "| IWOCS*: 0.61 | 160 k / 5 M |" in iwocs
    assert " | 0 +- 0 | " in rows["IWOCS (last phase, no choice)"]  # v_TD3 normalizes to 0
    assert "0/3 | not yet run (halfcheetah_dr_sac_s0, " in rows["DR SAC"]
    assert "TD3: 0.00" in rows["nominal SAC"]
    assert "DR fallback 64 k + up to 3 experts x 32 k = 160 k env steps" in text


@needs_mujoco
@pytest.mark.parametrize("name", ["ant_3", "hopper_3", "humanoidstandup_3", "invertedpendulum_2",
                                  "walker_3", "halfcheetah_2"])
def test_every_set_steps_like_gymnasium_with_set_params(name):
    """Any set, at a random point of its box: the engine env's copy equals gymnasium's env with
    set_params applied, observation, reward and termination (InvertedPendulum falls: the
    terminated path), up to 40 steps."""
    from rlsuite.agents.iwocs.mujoco_sets import MUJOCO_BOXES

    env = MujocoParamsEnv(name, max_episode_steps=40)
    box = get_box(name)
    values = box.sample(1, torch.Generator().manual_seed(1))
    params = box.params(env.default_params(1), values)
    gen = env.make_generator(0)
    seed = torch.randint(0, 2**31 - 1, (1,), generator=env.make_generator(0)).item()
    obs, state = env.reset(params, gen)
    ref = gymnasium.make(MUJOCO_BOXES[name].env_id, max_episode_steps=40)
    set_params(ref, name, values[0])
    assert torch.equal(obs[0], torch.as_tensor(ref.reset(seed=seed)[0], dtype=torch.float32))
    rng = np.random.default_rng(0)
    for _ in range(40):
        a = rng.uniform(-0.4, 0.4, env.action_space.shape).astype(np.float32)
        step = env.step(state, torch.from_numpy(a)[None], params, gen)
        o, r, term, trunc, _ = ref.step(a)
        assert torch.equal(step.final_obs[0], torch.as_tensor(o, dtype=torch.float32))
        assert float(step.reward[0]) == np.float32(r) and bool(step.terminated[0]) == term
        state = step.state
        if term or trunc:
            break
    assert term == (name == "invertedpendulum_2")


def test_a_mujoco_set_without_the_extra_is_refused_naming_the_field(monkeypatch):
    """Without mujoco, agent.box=halfcheetah_3 stops with a ConfigError naming agent.box and the
    extra to install (before any env is built), not gymnasium's import error."""
    import sys

    from rlsuite import envs
    from rlsuite.agents.iwocs.deep import IWOCS, IWOCSConfig
    from rlsuite.validation import ConfigError

    monkeypatch.setitem(sys.modules, "mujoco", None)  # import mujoco now raises ImportError
    env = envs.make("pendulum")
    with pytest.raises(ConfigError, match=r"box='halfcheetah_3': a MuJoCo set needs the mujoco extra"):
        IWOCS(IWOCSConfig(box="halfcheetah_3"), env, env.default_params(2))
