"""Run identity: a run directory holds one run, resume continues only that run, and a resumed run's
logs and checkpoint directory carry nothing of the part that was lost."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from rlsuite import checkpoint, identity, jobs
from rlsuite.logging import read_metrics
from rlsuite.runner import compose, run

SMALL = ["num_envs=8", "agent.num_steps=16", "agent.num_minibatches=2", "agent.update_epochs=2",
         "eval_episodes=4", "progress=false", "tensorboard=false", "device=cpu"]


def _cfg(run_dir: Path, *extra: str):
    return compose([*SMALL, f"run_dir={run_dir}", *extra])


def _resolved(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


def test_identity_keys_what_changes_the_numbers_and_nothing_else(tmp_path: Path) -> None:
    base = _resolved(_cfg(tmp_path, "total_steps=256"))
    key = identity.make(base).key
    bookkeeping = {"run_dir": "/elsewhere", "resume": None, "progress": True, "threads": 4,
                   "checkpoint_every": 7, "device": "cuda", "tensorboard": True}
    assert identity.make({**base, **bookkeeping}).key == key
    compiled = copy.deepcopy(base)
    compiled["env"]["compile"] = True
    assert identity.make(compiled).key == key
    for change in ({"seed": 1}, {"total_steps": 512}, {"num_envs": 16}, {"eval_episodes": 8}):
        assert identity.make({**base, **change}).key != key, change
    tuned = copy.deepcopy(base)
    tuned["agent"]["learning_rate"] = 1e-4
    assert identity.make(tuned).key != key
    # The code: the version is keyed, the commit (and a dirty tree) only recorded.
    code = identity.code_version()
    assert identity.make(base, {**code, "commit": "0" * 40, "dirty": True}).key == key
    assert identity.make(base, {**code, "version": "9.9"}).key != key
    diff = identity.differences(identity.make(tuned), identity.make({**base, "seed": 3}))
    assert diff == {"agent.learning_rate": (1e-4, base["agent"]["learning_rate"]), "seed": (0, 3)}


def test_reused_run_dir_does_not_hand_back_another_runs_score(tmp_path: Path) -> None:
    score = run(_cfg(tmp_path, "total_steps=128"))
    before = (tmp_path / "result.json").read_text()
    assert jobs.read_result(tmp_path)["identity"]["config"]["agent"]["name"] == "ppo"
    other = compose(["agent=qrdqn", "env=acrobot", "total_steps=4096", "progress=false",
                     "tensorboard=false", f"run_dir={tmp_path}"])
    with pytest.raises(identity.RunMismatch) as err:
        run(other)
    message = str(err.value)
    assert "agent.name: 'ppo' there, 'qrdqn' here" in message
    assert "env.name: 'cartpole' there, 'acrobot' here" in message
    with pytest.raises(identity.RunMismatch, match="seed: 0 there, 1 here"):
        run(_cfg(tmp_path, "total_steps=128", "seed=1"))
    assert (tmp_path / "result.json").read_text() == before  # the owner's record is untouched
    assert run(_cfg(tmp_path, "total_steps=128", "threads=2")) == score  # unkeyed: same run


def test_resume_extends_the_budget_but_refuses_other_changes(tmp_path: Path) -> None:
    run(_cfg(tmp_path, "total_steps=256", "checkpoint_every=1"))
    # A completed run: a learning rate would apply to no step (see test_resume_changes.py).
    with pytest.raises(identity.RunMismatch) as err:
        run(_cfg(tmp_path, "total_steps=256", "agent.learning_rate=1e-4"))
    differing = str(err.value).split(" (it completed")[0]
    assert differing.endswith("agent.learning_rate: 0.001 there, 0.0001 here")
    assert "total_steps" not in differing
    run(_cfg(tmp_path, "total_steps=512", "checkpoint_every=3"))  # extend, another cadence
    record = jobs.read_result(tmp_path)
    assert record["global_step"] == 512 and record["identity"]["config"]["total_steps"] == 512
    steps = [int(r["step"]) for r in read_metrics(tmp_path)]
    assert steps == [128, 256, 256, 384, 512, 512]  # the first run's evaluation stays at 256
    assert json.loads((tmp_path / identity.IDENTITY_FILE).read_text())["config"]["total_steps"] == 512


def test_killed_run_resumes_with_rewound_logs_and_no_stale_temp(tmp_path: Path, monkeypatch,
                                                                interrupt_run) -> None:
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    common = ["total_steps=768", "checkpoint_every=2", "tensorboard=true"]
    run(_cfg(full_dir, *common))
    # Killed after iteration 3; the last checkpoint is iteration 2's, so iteration 3 is redone.
    interrupt_run(3)
    with pytest.raises(KeyboardInterrupt):
        run(_cfg(part_dir, *common))
    monkeypatch.undo()
    assert [int(r["step"]) for r in read_metrics(part_dir)] == [128, 256, 384]
    stale = checkpoint.checkpoint_dir(part_dir) / ".latest.pt.abc123.tmp"
    stale.write_bytes(b"")  # what a kill -9 during a checkpoint write leaves behind
    run(_cfg(part_dir, *common))
    assert not stale.exists()
    assert sorted(p.name for p in checkpoint.checkpoint_dir(part_dir).iterdir()) == ["latest.pt"]
    full, part = read_metrics(full_dir), read_metrics(part_dir)
    assert [r["step"] for r in part] == [r["step"] for r in full]  # 6 iterations + evaluation
    for a, b in zip(full, part, strict=True):
        assert {k: v for k, v in a.items() if not k.startswith("time/")} == \
            {k: v for k, v in b.items() if not k.startswith("time/")}

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(part_dir))
    events.Reload()
    steps = [e.step for e in events.Scalars("rollout/ep_rew_mean")]
    assert steps == [128, 256, 384, 512, 640, 768]  # iteration 3's first point purged
    reference = EventAccumulator(str(full_dir))
    reference.Reload()
    assert [e.value for e in events.Scalars("rollout/ep_rew_mean")] == \
        [e.value for e in reference.Scalars("rollout/ep_rew_mean")]


def _tamper(run_dir: Path, edit) -> None:
    path = checkpoint.checkpoint_dir(run_dir) / checkpoint.LATEST
    payload = torch.load(path, weights_only=True)
    edit(payload)
    torch.save(payload, path)


@pytest.mark.parametrize("edit, message", [
    (lambda p: p["config"].update(note="<script>"), "Key 'note' not in 'RunConfig'"),
    (lambda p: p["config"]["agent"].update(learning_rate="fast"), "agent.learning_rate"),
    (lambda p: p["config"]["env"].update(name="${oc.env:HOME}"), "interpolation"),
    (lambda p: p["config"]["agent"].update(learning_rate=0.5),
     "its config and its identity disagree: agent.learning_rate"),
], ids=["unknown_key", "wrong_type", "interpolation", "edited_value"])
def test_crafted_checkpoint_config_is_refused(tmp_path: Path, edit, message) -> None:
    run(_cfg(tmp_path, "total_steps=128"))
    config_yaml = (tmp_path / "config.yaml").read_text()
    _tamper(tmp_path, edit)
    for resume in (f"resume={tmp_path}", "resume=auto"):
        with pytest.raises(ValueError, match=message.replace("$", r"\$")):
            run(_cfg(tmp_path, "total_steps=256", resume))
    assert (tmp_path / "config.yaml").read_text() == config_yaml


def test_checkpoint_without_identity_is_checked_by_its_config(tmp_path: Path) -> None:
    """A weights-only checkpoint with no identity (older, or crafted) cannot change the run."""
    run(_cfg(tmp_path, "total_steps=128"))
    (tmp_path / identity.IDENTITY_FILE).unlink()
    (tmp_path / "result.json").unlink()

    def strip(payload: dict) -> None:
        del payload["identity"]
        payload["config"]["agent"]["learning_rate"] = 0.5

    _tamper(tmp_path, strip)
    with pytest.raises(identity.RunMismatch, match="agent.gamma: 0.99 there, 0.9 here"):
        run(_cfg(tmp_path, "total_steps=256", "agent.gamma=0.9"))
    # resume=<dir> runs the checkpoint's (validated) config, and says what it kept.
    run(_cfg(tmp_path, "total_steps=256", f"resume={tmp_path}"))
    assert OmegaConf.load(tmp_path / "config.yaml").agent.learning_rate == 0.5


def test_dirty_means_uncommitted_code_not_a_rewritten_results_page(tmp_path, monkeypatch) -> None:
    # scripts/reproduce.py rewrites results pages between runs: that must not mark later runs
    # dirty (and so stale); a change under rlsuite/, envs/ or conf/ must.
    import shutil
    import subprocess

    import rlsuite

    repo = tmp_path / "repo"
    for sub in ("rlsuite", "results"):
        (repo / sub).mkdir(parents=True)
    (repo / "rlsuite" / "__init__.py").write_text("__version__ = '0'\n")
    (repo / "results" / "page.md").write_text("old\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    fake = type(shutil)("rlsuite")
    fake.__file__ = str(repo / "rlsuite" / "__init__.py")
    fake.__version__ = rlsuite.__version__
    monkeypatch.setitem(sys.modules, "rlsuite", fake)

    def dirty() -> bool | None:
        identity.code_version.cache_clear()  # cached per process
        return identity.code_version()["dirty"]

    try:
        assert dirty() is False
        (repo / "results" / "page.md").write_text("rewritten\n")
        assert dirty() is False
        (repo / "rlsuite" / "__init__.py").write_text("__version__ = '1'\n")
        assert dirty() is True
    finally:
        monkeypatch.undo()
        identity.code_version.cache_clear()


def _as_written_by_other_code(run_dir: Path, edit) -> None:
    """Rewrite ``run_dir``'s checkpoint, ``identity.json`` and ``result.json`` as code with
    another config schema would have written them: ``edit`` changes the resolved config, and every
    identity is re-keyed from the edited config (as that code would have keyed it)."""
    def rekey(record: dict) -> dict:
        config = copy.deepcopy(record["config"])
        edit(config)
        return identity.make(config, record["code"]).to_dict()

    def rewrite(payload: dict) -> None:
        edit(payload["config"])
        payload["identity"] = rekey(payload["identity"])

    _tamper(run_dir, rewrite)
    for name in (identity.IDENTITY_FILE, jobs.RESULT_FILE):
        path = run_dir / name
        if not path.exists():
            continue
        record = json.loads(path.read_text())
        record.update(rekey(record) if name == identity.IDENTITY_FILE
                      else {"identity": rekey(record["identity"])})
        path.write_text(json.dumps(record))


def test_a_run_written_before_a_config_key_existed_resumes_with_its_default(tmp_path: Path) -> None:
    """Code that adds a config field (with a default) still continues, or reads back, the runs
    written before it: their records lack the key, which counts as its default."""
    run(_cfg(tmp_path, "total_steps=128"))
    _as_written_by_other_code(tmp_path, lambda config: config["agent"].pop("fast_path"))
    assert run(_cfg(tmp_path, "total_steps=128")) == jobs.read_result(tmp_path)["score"]  # read back
    run(_cfg(tmp_path, "total_steps=256"))  # continued from the checkpoint
    assert jobs.read_result(tmp_path)["global_step"] == 256
    # A value other than the default is another experiment, as for any keyed value.
    with pytest.raises(identity.RunMismatch, match="agent.fast_path: True there, False here"):
        run(_cfg(tmp_path, "total_steps=384", "agent.fast_path=false"))


def test_a_run_holding_a_key_removed_since_is_incompatible(tmp_path: Path) -> None:
    """A checkpoint with a config key the schemas no longer have cannot be continued by this code:
    IncompatibleRecord (a RunMismatch, so scripts/reproduce.py starts such a run again)."""
    run(_cfg(tmp_path, "total_steps=128"))
    (tmp_path / "result.json").unlink()  # interrupted: only the checkpoint and identity.json
    _as_written_by_other_code(tmp_path, lambda config: config["agent"].update(max_kl=0.05))
    with pytest.raises(identity.IncompatibleRecord, match="Key 'max_kl' not in 'PPOConfig'"):
        run(_cfg(tmp_path, "total_steps=256"))


def test_with_new_defaults_fills_a_nested_key_added_since() -> None:
    """The case that stopped the VGDF reproduction: ``agent.sac.fast_path`` (a field of the
    nested SACConfig) added after its checkpoints were written."""
    resolved = _resolved(compose(["experiment=vgdf_pendulum", "run_dir=/tmp/unused"]))
    current = identity.make(resolved)
    old = copy.deepcopy(current.config)
    del old["agent"]["sac"]["fast_path"]
    recorded = identity.make(old, current.code)
    assert "agent.sac.fast_path" in identity.differences(recorded, current)
    upgraded = identity.with_new_defaults(recorded, "test")
    assert upgraded.config["agent"]["sac"]["fast_path"] is True
    assert not identity.differences(upgraded, current)
    # a value the record holds is kept, even where it is not the default
    old["agent"]["sac"]["fast_path"] = False
    kept = identity.with_new_defaults(identity.make(old, current.code), "test")
    assert kept.config["agent"]["sac"]["fast_path"] is False
