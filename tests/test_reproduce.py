"""The reproduction framework (rlsuite.reproduce): runs through the runner, read-back, stale
records, generated sections, and the quick check that fails on a number that does not regenerate."""

from __future__ import annotations

import json
import textwrap
import time
from pathlib import Path

import pytest

from rlsuite import reproduce
from rlsuite.reproduce import Citations, Job, Record

pytestmark = pytest.mark.xdist_group("reproduce")

TINY = ("num_envs=4", "agent.num_steps=16", "agent.num_minibatches=2", "total_steps=128",
        "eval_episodes=2", "tensorboard=false", "agent.fast_path=false")

TOY = textwrap.dedent('''
    from rlsuite.reproduce import Citations, Job, fmt

    TITLE = "Toy paper"
    PAGE = "results/toy.md"
    TINY = {tiny!r}

    def plan(quick):
        seeds = [0] if quick else [0, 1]
        return [Job(f"s{{s}}", "cartpole_ppo", (f"seed={{s}}", *TINY)) for s in seeds]

    def render(records, quick, out):
        cites = Citations(quick)
        rows = ["| seed | score | runs |", "|---|---|---|"]
        for tag, r in records.items():
            score = fmt(r.score, 6) if r.completed else "not run"
            rows.append(f"| {{tag[1:]}} | {{score}} | {{cites.cite([r])}} |")
        return {{"scores": "\\n".join(rows) + "\\n\\n" + cites.markdown()}}
''').format(tiny=TINY)


def make_toy_root(tmp_path: Path) -> Path:
    """A repository root under ``tmp_path`` holding the toy paper's module and page."""
    (tmp_path / "scripts" / "papers").mkdir(parents=True)
    (tmp_path / "scripts" / "papers" / "toy.py").write_text(TOY)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "toy.md").write_text(
        "# Toy\n\nhand-written\n\n<!-- generated:scores -->\nold\n<!-- /generated:scores -->\n\nend\n")
    return tmp_path


@pytest.fixture
def toy_root(tmp_path: Path) -> Path:
    return make_toy_root(tmp_path)


def test_quick_page_regenerates_and_check_catches_a_changed_number(toy_root: Path, capsys) -> None:
    runs = toy_root / "runs_a"
    assert reproduce.regenerate("toy", quick=True, root=toy_root, runs_root=runs, progress=False) == 0
    page = (toy_root / "results" / "quick" / "toy.md").read_text()
    assert "rlsuite experiment=cartpole_ppo seed=0" in page
    assert "commit" not in page  # quick pages hold no commits or timings: they regenerate at any commit
    record = reproduce.read_record(Job("s0", "cartpole_ppo"), runs / "s0")
    assert f"| 0 | {reproduce.fmt(record.score, 6)} |" in page
    # A check reruns from scratch (a fresh run root, removed afterwards) and finds the same page.
    import tempfile

    scratch = set(Path(tempfile.gettempdir()).glob("rlsuite-check-toy-*"))
    assert reproduce.regenerate("toy", quick=True, check=True, root=toy_root, progress=False) == 0
    assert set(Path(tempfile.gettempdir()).glob("rlsuite-check-toy-*")) == scratch
    # A committed number that the code does not produce fails the check, with a diff.
    tampered = page.replace(f"| 0 | {reproduce.fmt(record.score, 6)} |", "| 0 | 123.456 |")
    (toy_root / "results" / "quick" / "toy.md").write_text(tampered)
    capsys.readouterr()
    assert reproduce.regenerate("toy", quick=True, check=True, root=toy_root, progress=False) == 1
    out = capsys.readouterr()
    assert "-| 0 | 123.456 |" in out.out and "does not regenerate" in out.err


def test_full_page_splices_sections_and_cites_commits(toy_root: Path) -> None:
    runs = toy_root / "runs_full"
    assert reproduce.regenerate("toy", quick=False, root=toy_root, runs_root=runs, progress=False) == 0
    page = (toy_root / "results" / "toy.md").read_text()
    assert page.startswith("# Toy\n\nhand-written\n\n<!-- generated:scores -->\n| seed | score |")
    assert page.endswith("<!-- /generated:scores -->\n\nend\n") and "old" not in page
    record = reproduce.read_record(Job("s1", "cartpole_ppo"), runs / "s1")
    assert "[2] `rlsuite experiment=cartpole_ppo seed=1 " in page
    assert f"(commit {record.commit}, " in page and "CPU s)" in page


def test_no_run_renders_from_the_records_so_far(toy_root: Path) -> None:
    runs = toy_root / "runs_partial"
    reproduce.launch([Job("s0", "cartpole_ppo", ("seed=0", *TINY))], runs, progress=False)
    # s1 never ran: its row renders from an empty record, and nothing is launched.
    assert reproduce.regenerate("toy", quick=False, root=toy_root, runs_root=runs, run=False) == 1
    page = (toy_root / "results" / "toy.md").read_text()
    assert "| 0 | " in page and "**missing**" in page and not (runs / "s1").exists()


def test_only_runs_the_matching_jobs_and_renders_every_record(toy_root: Path) -> None:
    runs = toy_root / "runs_only"
    assert reproduce.regenerate("toy", quick=False, root=toy_root, runs_root=runs, progress=False,
                                only=["s1"]) == 1  # s0 has no record yet
    assert (runs / "s1" / "result.json").exists() and not (runs / "s0").exists()
    assert "not run" in (toy_root / "results" / "toy.md").read_text()
    with pytest.raises(ValueError, match=r"only=\['s9'\]: no job of toy matches"):
        reproduce.regenerate("toy", quick=False, root=toy_root, runs_root=runs, only=["s9"])


def test_recorded_runs_are_read_back_and_stale_ones_rerun(toy_root: Path, monkeypatch) -> None:
    plan = [Job("s0", "cartpole_ppo", ("seed=0", *TINY))]
    runs = toy_root / "runs_b"
    first = reproduce.launch(plan, runs, progress=False)[0]
    assert first.completed and len(first.timing) == 1
    monkeypatch.setattr(reproduce, "is_stale", lambda result, keep_since=None: False)
    again = reproduce.launch(plan, runs, progress=False)[0]
    assert len(again.timing) == 1 and again.score == first.score  # read back, not rerun
    monkeypatch.setattr(reproduce, "is_stale", lambda result, keep_since=None: True)
    kept = reproduce.launch(plan, runs, keep_stale=True, progress=False)[0]
    assert len(kept.timing) == 1  # keep_stale reads the old record back
    rerun = reproduce.launch(plan, runs, progress=False)[0]
    assert len(rerun.timing) == 1 and rerun.timing[0] != first.timing[0]  # a fresh run directory
    assert rerun.score == first.score  # same config, same code: the same number


def test_a_stale_record_is_removed_only_when_its_job_reruns(toy_root: Path, monkeypatch) -> None:
    # A plan stopped by a signal after its first job keeps the second job's stale record (it
    # used to remove every stale record before running any: an interrupted rerun lost them).
    plan = [Job("s0", "cartpole_ppo", ("seed=0", *TINY)), Job("s1", "cartpole_ppo", ("seed=1", *TINY))]
    runs = toy_root / "runs_stale"
    old = reproduce.launch(plan, runs, progress=False)
    monkeypatch.setattr(reproduce, "is_stale", lambda result, keep_since=None: True)
    real = reproduce._run_one
    monkeypatch.setattr(reproduce, "_run_one", lambda job, *a: real(job, *a) and None
                        or reproduce.PREEMPTED)  # every job "preempted" after running
    first, second = reproduce.launch(plan, runs, progress=False)
    assert first.timing != old[0].timing  # s0 reran in a fresh directory
    assert second.completed and second.timing == old[1].timing  # s1's old record is intact


def test_a_run_that_fails_is_recorded_and_the_plan_goes_on(tmp_path: Path) -> None:
    plan = [Job("bad", "cartpole_ppo", ("seed=0", *TINY, "agent.learning_rate=-1")),
            Job("good", "cartpole_ppo", ("seed=0", *TINY))]
    bad, good = reproduce.launch(plan, tmp_path, progress=False)
    assert not bad.completed and good.completed


def test_is_stale_compares_the_recorded_commit_with_the_checkout() -> None:
    from rlsuite.identity import code_version

    head = code_version()
    if head["commit"] is None:
        pytest.skip("not a git checkout")
    assert reproduce.is_stale({"identity": {"code": {"commit": "0" * 40, "dirty": False}}})
    assert reproduce.is_stale({"identity": {"code": {"commit": head["commit"], "dirty": True}}})
    assert reproduce.is_stale({})


def test_keep_since_keeps_runs_recorded_at_or_after_a_commit() -> None:
    from rlsuite.identity import code_version

    head = code_version()["commit"]
    if head is None:
        pytest.skip("not a git checkout")
    # The commit before the last one that changed rlsuite/: its runs are stale by default.
    last = reproduce._git("log", "-1", "--format=%H", "HEAD", "--", "rlsuite").stdout.strip()
    older = reproduce._git("rev-parse", f"{last}~1").stdout.strip()
    if not older:
        pytest.skip("shallow history")
    made_at = {"identity": {"code": {"commit": older, "dirty": False}}}
    assert reproduce.is_stale(made_at)
    assert not reproduce.is_stale(made_at, keep_since=older)  # made at the vouched commit
    assert not reproduce.is_stale(made_at, keep_since=f"{older}~3")  # made after it
    assert reproduce.is_stale(made_at, keep_since=head)  # made before it
    dirty = {"identity": {"code": {"commit": head, "dirty": True}}}
    assert reproduce.is_stale(dirty, keep_since=older)  # a dirty tree is never vouched for
    with pytest.raises(ValueError, match="keep_since='no-such-rev': not a commit"):
        reproduce.check_commit("no-such-rev")


def test_citations_number_runs_in_order_and_compress_ranges() -> None:
    jobs = [Job(f"t{i}", "cartpole_ppo", (f"seed={i}",)) for i in range(4)]
    records = [Record(j, Path("."), {"status": "completed", "identity": {"code": {"commit": "abc"}}})
               for j in jobs]
    cites = Citations(quick=False)
    assert cites.cite(records[:3]) == "[1-3]"
    assert cites.cite([records[3], records[0]]) == "[1,4]"
    text = cites.markdown()
    assert "[4] `rlsuite experiment=cartpole_ppo seed=3` (commit abc)" in text
    assert "commit" not in Citations(quick=True).markdown()


def test_bad_plans_and_pages_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Job.preset='nope'"):
        Job("x", "nope")
    with pytest.raises(ValueError, match="Job.tag='a/b'"):
        Job("a/b", "cartpole_ppo")
    with pytest.raises(ValueError, match="duplicate tags"):
        reproduce.launch([Job("x", "cartpole_ppo"), Job("x", "cartpole_ppo")], tmp_path)
    with pytest.raises(ValueError, match="no markers <!-- generated:table -->"):
        reproduce.splice("# page\n", {"table": "| a |"})
    with pytest.raises(ValueError, match="paper='nope': unknown"):
        reproduce.load_paper("nope")


def test_the_committed_quick_pages_have_a_paper_module() -> None:
    """Every results/quick page is produced by a paper module (none is written by hand)."""
    quick = sorted(p.stem for p in (reproduce.REPO / "results" / "quick").glob("*.md"))
    assert set(quick) <= set(reproduce.papers()), json.dumps(quick)


def test_an_interrupted_run_of_another_experiment_is_started_again(tmp_path: Path, capsys) -> None:
    # A run stopped by its time limit after its first iteration, under another config ...
    old = Job("s0", "cartpole_ppo", ("seed=0", *TINY, "agent.gamma=0.9"))
    first = reproduce.launch([old], tmp_path, extra=("time_limit_s=0.000001",), progress=False)[0]
    assert not first.completed and (tmp_path / "s0" / "checkpoints").is_dir()
    # ... is not continued as the plan's job (its identity differs): the job starts afresh.
    new = Job("s0", "cartpole_ppo", ("seed=0", *TINY))
    again = reproduce.launch([new], tmp_path, progress=False)[0]
    assert again.completed and "starting it again" in capsys.readouterr().err
    assert again.result["identity"]["config"]["agent"]["gamma"] == 0.99
    assert len(again.timing) == 1  # the removed run's process segment is not counted
    fresh = reproduce.launch([Job("t", "cartpole_ppo", ("seed=0", *TINY))], tmp_path, progress=False)
    assert fresh[0].score == again.score  # the same number as a run that never shared the directory


def test_the_segment_clock_keeps_the_time_of_a_process_killed_without_warning(tmp_path: Path) -> None:
    # A run directory that an earlier process already timed; this process's segment appears in
    # the file while it runs, so a SIGKILL (no `finally`) still leaves its CPU seconds there.
    path = tmp_path / "run" / reproduce.TIMING_FILE
    path.parent.mkdir()
    earlier = {"wall_s": 5.0, "cpu_s": 4.0, "commit": "abc"}
    path.write_text(json.dumps([earlier]))
    clock = reproduce.SegmentClock(path, "def", interval_s=0.02)
    busy = time.process_time()
    while time.process_time() - busy < 0.2:
        pass
    deadline = time.monotonic() + 10.0  # wait for a tick after the busy loop (a loaded machine)
    seen = json.loads(path.read_text())  # what a kill now would leave
    while (len(seen) < 2 or seen[1]["cpu_s"] < 0.15) and time.monotonic() < deadline:
        time.sleep(0.02)
        seen = json.loads(path.read_text())
    assert seen[0] == earlier and seen[1]["commit"] == "def" and seen[1]["cpu_s"] >= 0.15
    clock.stop()
    final = json.loads(path.read_text())
    assert len(final) == 2 and final[1]["cpu_s"] >= seen[1]["cpu_s"]
    assert not list(path.parent.glob("*.tmp"))
    # Before the runner makes the run directory there is nothing to write, and no error.
    missing = reproduce.SegmentClock(tmp_path / "later" / reproduce.TIMING_FILE, None, interval_s=0.01)
    time.sleep(0.05)
    missing.stop()
    assert not (tmp_path / "later").exists()
