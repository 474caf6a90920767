"""Aggregate sweeps into a report (the ``rlsuite-report`` command, :func:`rlsuite.report.main`).

    .venv/bin/python scripts/report.py runs/multirun/2026-11-22_10-00-00 --out results/my_study.md

is the same as ``rlsuite-report runs/multirun/... --out ...``; this wrapper stays so that results
files can quote a command run from the repository root.
"""

from __future__ import annotations

import sys

from rlsuite.report import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:], prog="scripts/report.py"))
