#!/usr/bin/env bash
# Create or reuse .venv with rlsuite installed (editable, with the dev extra).
# Fast the second time: it reinstalls only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV=.venv
STAMP="$VENV/.rlsuite-installed"
WANT="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
  # torch 2.13.0 is the CPU build on this machine's disk; installing it first keeps pip from
  # fetching a multi-GB CUDA build to satisfy the 'torch' requirement.
  "$VENV/bin/python" -m pip install -q "torch==2.13.0" || "$VENV/bin/python" -m pip install -q torch
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  echo "$WANT" > "$STAMP"
fi
