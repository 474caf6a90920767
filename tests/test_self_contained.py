"""The repository documents itself: no tracked file points to documents outside it.

Design notes and research briefs written while the project was built live outside the repository
and are not shipped with it. What a reader needs from them is in ``docs/``; a comment, docstring,
config comment or page that sends the reader to them instead is a dead end for anyone with only a
checkout. This test fails on such a pointer and names the file, the line and the text.
"""

from __future__ import annotations

import posixpath
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
THIS = Path(__file__).resolve().relative_to(ROOT).as_posix()

SIBLING = "shared"
"""The directory beside the checkout that held the design and the notes (spelt once, here, so
that this file does not itself read as a pointer)."""
OUTSIDE = re.compile(rf"\.\./{SIBLING}\b|\b{SIBLING}/notes\b|\b{SIBLING}/DESIGN")
"""Paths into that directory."""

NOTE_FILE = re.compile(
    r"(?P<path>[\w./-]*?)\b(?P<name>aesthetics|dynamics-shift|ecosystem|hybrid-bandits|performance"
    r"|risk-sensitive|DESIGN)\.md\b")
"""The outside documents by file name; a name that resolves to a tracked file (``docs/performance.md``,
or ``performance.md`` linked from ``docs/``) is a pointer inside the repository and allowed."""

NOTES_SECTION = re.compile(
    r"\b(?:research|performance)\s+notes\b"
    r"|\bnotes?'?\s*(?:§|section\s+\d|part\s+\d|[ABC]\d|\d+\.\d+|\(\s*[ABC]?\d)"
    r"|\b(?:the|per the|from the)\s+notes\b(?!\s*(?:=|:))", re.IGNORECASE)
"""Prose pointers to "the notes" and their numbered sections (``notes §A7.3``, ``notes B8``,
``notes 2.3``, ``per the notes``)."""


def tracked_files() -> list[str]:
    """Text files under version control, this test excluded (it must spell the patterns)."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as err:  # e.g. an sdist without .git
        pytest.skip(f"git ls-files unavailable: {err}")
    names = [n for n in out.stdout.decode().split("\0") if n and n != THIS]
    return [n for n in names if (ROOT / n).is_file()]


def _read_text(name: str) -> str | None:
    data = (ROOT / name).read_bytes()
    if b"\0" in data[:8192]:
        return None  # binary (images, checkpoints)
    return data.decode("utf-8", errors="replace")


def _resolves(name: str, ref: str, tracked: set[str]) -> bool:
    """Whether ``ref`` names a tracked file, relative to the repository root or to ``name``'s folder."""
    here = Path(name).parent.as_posix()
    return any(posixpath.normpath(c) in tracked for c in (ref, posixpath.join(here, ref)))


def find_pointers(name: str, text: str, tracked: set[str]) -> list[str]:
    """``"path:line: text"`` for every pointer to outside documents in ``text``."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        bad = bool(OUTSIDE.search(line) or NOTES_SECTION.search(line))
        for match in NOTE_FILE.finditer(line):
            ref = match.group("path") + match.group("name") + ".md"
            bad |= not _resolves(name, ref, tracked)
        if bad:
            found.append(f"{name}:{number}: {line.strip()[:160]}")
    return found


def test_no_tracked_file_points_outside_the_repository() -> None:
    names = tracked_files()
    tracked = set(names) | {THIS}
    offenders = []
    for name in names:
        text = _read_text(name)
        if text is not None:
            offenders += find_pointers(name, text, tracked)
    assert not offenders, "pointers to documents outside the repository:\n" + "\n".join(offenders)


@pytest.mark.parametrize("line, bad", [
    (f"The design is in [`../{SIBLING}/DESIGN.md`](../{SIBLING}/DESIGN.md).", True),
    (f"see ``{SIBLING}/notes/performance.md``, B5", True),
    ("(``risk-sensitive.md`` 1.3)", True),
    ("scaled down for a small CPU (notes §A7.3)", True),
    ("the notes' suggestion (App. F)", True),
    ("per the notes, P2 text not checked", True),
    ("the official DLB code run by the research notes", True),
    ("1 avoids 10-100x slowdowns (performance notes)", True),
    ("see docs/performance.md, 'One intra-op thread on CPU'", False),
    ("## Notes", False),
    ("notes = NOTES + _horizon_notes(runs)", False),
])
def test_the_patterns(line: str, bad: bool) -> None:
    tracked = {"docs/performance.md", "docs/README.md"}
    assert bool(find_pointers("rlsuite/x.py", line, tracked)) is bad
    # a relative link from inside docs/ resolves
    assert not find_pointers("docs/README.md", "[performance.md](performance.md)", tracked)
