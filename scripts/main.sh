#!/usr/bin/env bash
# Set up (if needed) and run the default experiment: PPO on the batched CartPole, ~1 minute on
# 2 CPU cores. Extra arguments are Hydra overrides: scripts/main.sh agent.learning_rate=3e-4
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/rlsuite "$@"
