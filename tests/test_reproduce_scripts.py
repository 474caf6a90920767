"""``scripts/reproduce.py``: every paper has a reproduction module, its plan builds, and every
results page quotes its command."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import reproduce as reproduce_script  # noqa: E402


def test_every_agent_package_has_a_paper_entry() -> None:
    papers = set(reproduce_script._names())
    assert {"distributional_dp", "iwocs", "hnpg", "vgdf", "dynlin_ucb", "ecrm"} <= papers
    for paper in papers:  # each page a paper module writes exists and holds its markers
        module = reproduce_script.reproduce.load_paper(paper).module
        assert "<!-- generated:" in (REPO / module.PAGE).read_text(), module.PAGE


@pytest.mark.parametrize("paper", ["distributional_dp", "iwocs", "hnpg", "vgdf", "dynlin_ucb", "ecrm"])
def test_dry_run_prints_without_running(paper: str, capsys) -> None:
    assert reproduce_script.main([paper, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "$ rlsuite experiment=" in out


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
    pages = [*sorted((REPO / "results").glob("*.md")), *sorted((REPO / "results" / "quick").glob("*.md"))]
    late = [md.name for md in pages
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
