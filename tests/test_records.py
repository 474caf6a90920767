"""Committed run records (rlsuite.records): finished runs and interrupted runs' checkpoints survive
the machine that made them, through ``results/records/<paper>/``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from test_reproduce import TINY, make_toy_root

from rlsuite import records, reproduce
from rlsuite.logging import read_metrics
from rlsuite.reproduce import Job, Record

pytestmark = pytest.mark.xdist_group("reproduce")


@pytest.fixture
def toy_root(tmp_path: Path) -> Path:
    return make_toy_root(tmp_path)


def _fake_run(run_dir: Path, status: str | None, checkpoint_bytes: int = 0) -> None:
    run_dir.mkdir(parents=True)
    if status is not None:
        (run_dir / "result.json").write_text(json.dumps({"status": status, "score": 1.5}))
    (run_dir / "config.yaml").write_text("seed: 0\n")
    (run_dir / "metrics.csv").write_text("step,x\n1,0.5\n2,0.25\n")
    (run_dir / "events.out.tfevents.1.host.1.0").write_bytes(b"tb")
    if checkpoint_bytes:
        (run_dir / "checkpoints").mkdir()
        (run_dir / "checkpoints" / "latest.pt").write_bytes(b"c" * checkpoint_bytes)


def test_a_completed_run_is_archived_without_its_checkpoint_and_restored_exactly(tmp_path: Path) -> None:
    _fake_run(tmp_path / "run", "completed", checkpoint_bytes=10)
    assert records.archive(tmp_path / "run", tmp_path / "rec", checkpoint_limit=100)
    kept = sorted(p.name for p in (tmp_path / "rec").iterdir())
    assert kept == ["config.yaml", "metrics.csv.gz", "result.json"]  # no checkpoint, no TensorBoard
    packed = (tmp_path / "rec" / "metrics.csv.gz").read_bytes()
    assert records.archive(tmp_path / "run", tmp_path / "rec")
    assert (tmp_path / "rec" / "metrics.csv.gz").read_bytes() == packed  # same rows, same bytes
    assert records.restore(tmp_path / "rec", tmp_path / "elsewhere")
    for name in ("metrics.csv", "result.json", "config.yaml"):
        assert (tmp_path / "elsewhere" / name).read_bytes() == (tmp_path / "run" / name).read_bytes()


def test_an_interrupted_run_is_archived_only_with_a_checkpoint_under_the_limit(tmp_path: Path) -> None:
    _fake_run(tmp_path / "run", "time_limit", checkpoint_bytes=10)
    assert not records.archive(tmp_path / "run", tmp_path / "rec")  # limit 0: never
    assert not records.archive(tmp_path / "run", tmp_path / "rec", checkpoint_limit=9)
    assert not (tmp_path / "rec").exists()
    assert records.archive(tmp_path / "run", tmp_path / "rec", checkpoint_limit=10)
    assert (tmp_path / "rec" / "checkpoints" / "latest.pt").read_bytes() == b"c" * 10
    # A later interruption without a checkpoint to keep leaves that record as it was.
    shutil.rmtree(tmp_path / "run" / "checkpoints")
    assert not records.archive(tmp_path / "run", tmp_path / "rec", checkpoint_limit=10)
    assert (tmp_path / "rec" / "checkpoints" / "latest.pt").exists()


def test_restore_leaves_progress_made_here_alone_when_the_record_is_not_the_same_run(
        tmp_path: Path) -> None:
    """Run directories without an identity (so not known to be the record's run) are never replaced."""
    _fake_run(tmp_path / "run", "completed")
    records.archive(tmp_path / "run", tmp_path / "rec")
    _fake_run(tmp_path / "local", None, checkpoint_bytes=3)  # an interrupted run here
    assert not records.restore(tmp_path / "rec", tmp_path / "local")
    assert not (tmp_path / "local" / "result.json").exists()
    assert not records.restore(tmp_path / "missing", tmp_path / "new")  # no record: nothing made
    assert not (tmp_path / "new").exists()


def _claimed_run(run_dir: Path, status: str | None, step: int | None, seed: int = 0) -> None:
    """A run directory of PPO on CartPole (seed ``seed``) with a real identity, a result of
    ``status`` (None: none) and a checkpoint at ``step`` (None: none)."""
    from omegaconf import OmegaConf

    from rlsuite import checkpoint, identity
    from rlsuite.runner import compose

    _fake_run(run_dir, status)
    resolved = OmegaConf.to_container(compose([f"seed={seed}", f"run_dir={run_dir}"]), resolve=True)
    identity.claim(run_dir, identity.make(resolved))
    if step is not None:
        checkpoint.save(run_dir / "checkpoints" / "latest.pt", {"global_step": step}, resolved)


def test_a_newer_record_of_the_same_run_replaces_an_older_copy_here(tmp_path: Path) -> None:
    """This machine's run directory came from an older record (interrupted at step 100); the
    repository now holds the same run completed, or checkpointed later: the record replaces the
    copy (TensorBoard file and stale checkpoint gone). Nothing is replaced by an earlier
    checkpoint, by another run's record, over a run completed here, or while a run holds the lock."""
    from rlsuite.identity import RunLock

    local = tmp_path / "local"
    _claimed_run(tmp_path / "done", "completed", None)
    records.archive(tmp_path / "done", tmp_path / "rec_done")
    _claimed_run(tmp_path / "later", "preempted", 300)
    records.archive(tmp_path / "later", tmp_path / "rec_later", checkpoint_limit=10**7)
    _claimed_run(tmp_path / "earlier", "preempted", 50)
    records.archive(tmp_path / "earlier", tmp_path / "rec_earlier", checkpoint_limit=10**7)
    _claimed_run(tmp_path / "other", "completed", None, seed=1)
    records.archive(tmp_path / "other", tmp_path / "rec_other")

    _claimed_run(local, "preempted", 100)
    assert not records.restore(tmp_path / "rec_earlier", local)
    assert not records.restore(tmp_path / "rec_other", local)  # another seed: another run
    lock = RunLock(local)
    lock.acquire()  # a run training here now
    assert not records.restore(tmp_path / "rec_done", local)
    lock.release()
    assert records.restore(tmp_path / "rec_later", local)
    assert records._checkpoint_step(local / "checkpoints" / "latest.pt") == 300
    assert not list(local.glob("events.out.tfevents.*"))
    assert records.restore(tmp_path / "rec_done", local)
    assert json.loads((local / "result.json").read_text())["status"] == "completed"
    assert not (local / "checkpoints").exists()
    assert not records.restore(tmp_path / "rec_later", local)  # completed here: left alone


def test_a_page_regenerates_from_committed_records_on_a_new_machine(toy_root: Path, monkeypatch) -> None:
    first = toy_root / "runs_machine_a"
    assert reproduce.regenerate("toy", quick=False, root=toy_root, runs_root=first, progress=False) == 0
    page = (toy_root / "results" / "toy.md").read_text()
    committed = toy_root / "results" / "records" / "toy"
    assert sorted(p.name for p in committed.iterdir()) == ["s0", "s1"]
    assert not list(committed.rglob("*.pt")) and not list(committed.rglob("events.*"))
    shutil.rmtree(first)  # the machine is gone; the repository (with its records) is not
    (toy_root / "results" / "toy.md").write_text(page.replace("| 0 |", "| stale |"))
    second = toy_root / "runs_machine_b"
    assert reproduce.regenerate("toy", quick=False, root=toy_root, runs_root=second, run=False) == 0
    assert (toy_root / "results" / "toy.md").read_text() == page
    # Running the plan reads the restored runs back instead of rerunning them.
    monkeypatch.setattr(reproduce, "is_stale", lambda result, keep_since=None: False)
    toy = reproduce.load_paper("toy", toy_root)
    again = reproduce.launch(toy.plan(False), toy_root / "runs_c", records=toy.records(),
                             progress=False)
    before = json.loads((committed / "s0" / "reproduce_timing.json").read_text())
    assert again[0].completed and again[0].timing == before  # one process segment: not rerun


def test_an_interrupted_run_continues_on_another_machine_from_its_saved_checkpoint(
        toy_root: Path) -> None:
    job = Job("s0", "cartpole_ppo", ("seed=0", *TINY))
    first = toy_root / "runs" / "reproduce" / "toy"
    stopped = reproduce.launch([job], first, extra=("time_limit_s=0.000001",), progress=False)[0]
    assert not stopped.completed and (first / "s0" / "checkpoints" / "latest.pt").exists()
    committed = toy_root / "results" / "records" / "toy"
    assert reproduce.regenerate("toy", quick=False, root=toy_root, save_records=0) == 0
    assert not (committed / "s0").exists()  # no checkpoint allowed: nothing worth keeping
    assert reproduce.regenerate("toy", quick=False, root=toy_root, save_records=2**24) == 0
    assert (committed / "s0" / "checkpoints" / "latest.pt").exists()
    shutil.rmtree(first)
    resumed = reproduce.launch([job], toy_root / "runs_b",
                               records=reproduce.load_paper("toy", toy_root).records(),
                               progress=False)[0]
    # Continued here: its CPU time counts the first machine's segment and this one's.
    assert resumed.completed and resumed.timing[:1] == stopped.timing and len(resumed.timing) == 2
    assert resumed.result["identity"]["code"] == stopped.result["identity"]["code"]
    uninterrupted = reproduce.launch([Job("u", "cartpole_ppo", job.overrides)], toy_root / "runs_u",
                                     progress=False)[0]
    assert resumed.score == uninterrupted.score
    assert not (committed / "s0" / "checkpoints").exists()  # the completed record replaced it


def test_verify_passes_a_page_made_from_its_records_and_catches_an_edit(toy_root: Path, capsys) -> None:
    page_path = toy_root / "results" / "toy.md"
    assert reproduce.verify("toy", root=toy_root) == 0  # no records yet: not checked
    assert "but only 0 of 2 runs have a completed record" in capsys.readouterr().out
    assert reproduce.regenerate("toy", quick=False, root=toy_root, progress=False) == 0
    shutil.rmtree(toy_root / "runs")  # verify needs only the committed records
    assert reproduce.verify("toy", root=toy_root) == 0
    assert "is what its committed records render (2 of 2 runs completed)" in capsys.readouterr().out
    page = page_path.read_text()
    edited = page.replace("| 0 | ", "| 0 | 9", 1)
    assert edited != page
    page_path.write_text(edited)
    assert reproduce.verify("toy", root=toy_root) == 1
    out = capsys.readouterr()
    assert "-| 0 | 9" in out.out and "is not what its 2 committed records render" in out.err


def test_a_page_that_reads_a_final_checkpoint_keeps_it_in_the_record(tmp_path: Path) -> None:
    _fake_run(tmp_path / "run", "completed", checkpoint_bytes=10)
    assert records.archive(tmp_path / "run", tmp_path / "rec", final_checkpoint=True)
    assert (tmp_path / "rec" / "checkpoints" / "latest.pt").read_bytes() == b"c" * 10
    records.restore(tmp_path / "rec", tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "checkpoints" / "latest.pt").read_bytes() == b"c" * 10
    shutil.rmtree(tmp_path / "run" / "checkpoints")
    with pytest.raises(FileNotFoundError, match="reads this run's final checkpoint"):
        records.archive(tmp_path / "run", tmp_path / "rec", final_checkpoint=True)
    # ECRM's page draws its heatmaps from four runs' final checkpoints.
    ecrm = reproduce.load_paper("ecrm")
    kept = [job.tag for job in ecrm.plan(False) if ecrm.keeps_checkpoint(job.tag)]
    assert kept == ["npg_l0.0_a1.0_s0", "npg_l0.5_a0.1_s0", "npg_l1.0_a0.05_s0", "npg_l1.0_a0.1_s0"]
    assert not reproduce.load_paper("hnpg").keeps_checkpoint("hnpg_H5_s0")


def test_a_record_keeps_only_the_metrics_its_page_reads_and_their_curves_exactly(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _fake_run(run, "completed")
    (run / "metrics.csv").write_text("step,a,b,c\n10,0.1,,1\n20,,0.30000000000000004,2\n30,,,3\n"
                                     "40,0.5,0.25,4\n")
    store = records.RecordStore(tmp_path / "rec", columns=("b", "a", "missing"))
    assert store.save("t", run)
    store.load("t", tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "metrics.csv").read_text() == (
        "step,b,a\n10,,0.1\n20,0.30000000000000004,\n40,0.25,0.5\n")
    full = Record(Job("t", "cartpole_ppo"), run, {}, read_metrics(run))
    kept = Record(Job("t", "cartpole_ppo"), tmp_path / "elsewhere", {},
                  read_metrics(tmp_path / "elsewhere"))
    assert kept.curve("a") == full.curve("a") and kept.curve("b") == full.curve("b")
    # An interrupted run's record keeps every column: the resumed run appends its full rows.
    (run / "result.json").write_text(json.dumps({"status": "time_limit"}))
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "latest.pt").write_bytes(b"c")
    assert store.save("t", run, checkpoint_limit=10)
    shutil.rmtree(tmp_path / "elsewhere")
    store.load("t", tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere" / "metrics.csv").read_text() == (run / "metrics.csv").read_text()
    # The pages whose records are thinned read only what they keep.
    assert reproduce.load_paper("vgdf_mujoco").records().columns == (
        "vgdf/accept_ratio", "vgdf/value_kept", "vgdf/value_rejected", "vgdf/model_fresh_mse",
        "darc/reward_correction")
    assert reproduce.load_paper("ecrm").records().columns is None
