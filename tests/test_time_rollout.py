"""scripts/time_rollout.py: the in-tree rollout timing (the peer benchmark's rollout measure)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "time_rollout.py"


def test_time_rollout_times_at_least_one_fused_rollout() -> None:
    spec = importlib.util.spec_from_file_location("time_rollout", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    us = module.time_rollout(seconds=0.0, envs=16, steps=32)
    assert len(us) == 1 and 0 < us[0] < 1e6  # one rollout timed, in microseconds per step
