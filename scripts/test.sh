#!/usr/bin/env bash
# Set up (if needed) and run the default test tier. Extra arguments go to pytest
# (scripts/test.sh -m slow runs the learning-threshold tier).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
