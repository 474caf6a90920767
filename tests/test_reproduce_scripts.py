"""``scripts/reproduce.py``: every paper has a reproduction; legacy commands name scripts that exist
and options they take; every results page quotes its command."""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import reproduce as reproduce_script  # noqa: E402


@cache
def _help(script: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("paper", sorted(reproduce_script.LEGACY))
def test_legacy_commands_use_existing_scripts_and_options(paper: str) -> None:
    for command in reproduce_script.LEGACY[paper][1]:
        script = REPO / command[0]
        assert script.exists(), f"{paper}: {script} does not exist"
        help_text = _help(script)
        assert help_text.returncode == 0, help_text.stderr[-2000:]
        for option in (a for a in command[1:] if a.startswith("--")):
            assert option in help_text.stdout, f"{paper}: {script.name} has no option {option}"


def test_every_agent_package_has_a_paper_entry() -> None:
    papers = set(reproduce_script._names())
    assert {"distributional_dp", "iwocs", "hnpg", "vgdf", "dynlin_ucb", "ecrm"} <= papers
    converted = set(reproduce_script.reproduce.papers())
    assert not converted & set(reproduce_script.LEGACY), "a converted paper still has legacy commands"


@pytest.mark.parametrize("paper", ["distributional_dp", "iwocs", "hnpg", "vgdf", "dynlin_ucb", "ecrm"])
def test_dry_run_prints_without_running(paper: str, capsys) -> None:
    assert reproduce_script.main([paper, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "$ rlsuite experiment=" in out or "$ python scripts/" in out


def test_every_results_file_quotes_the_command_that_produced_it() -> None:
    missing = []
    for md in sorted((REPO / "results").glob("*.md")):
        text = md.read_text()
        scripts = [w.strip("`'\"(),") for w in text.split() if w.strip("`'\"(),").startswith("scripts/")]
        if md.name != "README.md" and not any((REPO / s).is_file() for s in scripts):
            missing.append(md.name)
    assert not missing, f"results files without a command naming an existing script: {missing}"


def test_every_results_page_opens_with_its_command() -> None:
    # A reader should not have to search the page: the command is within its first lines.
    late = [md.name for md in sorted((REPO / "results").glob("*.md"))
            if md.name != "README.md"
            and not any(".venv/bin/python scripts/" in line for line in md.read_text().splitlines()[:8])]
    assert not late, f"results pages whose first 8 lines quote no `.venv/bin/python scripts/...`: {late}"


def test_the_readme_reproduce_commands_parse_and_plan(capsys) -> None:
    """Every ``scripts/reproduce.py`` command of the README runs here with ``--dry-run`` (the
    options parse, the paper exists, its plan builds)."""
    import shlex

    readme = (REPO / "README.md").read_text()
    commands = [shlex.split(line, comments=True) for line in readme.splitlines()
                if line.startswith(".venv/bin/python scripts/reproduce.py")]
    assert len(commands) >= 5
    for argv in commands:
        assert reproduce_script.main([*argv[2:], "--dry-run"]) == 0, argv
    assert "$ rlsuite experiment=" in capsys.readouterr().out
