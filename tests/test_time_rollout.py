"""scripts/time_rollout.py: the in-tree rollout timing (the peer benchmark's rollout measure)."""

from script_module import load_script


def test_time_rollout_times_at_least_one_fused_rollout() -> None:
    module = load_script("time_rollout.py")
    us = module.time_rollout(seconds=0.0, envs=16, steps=32)
    assert len(us) == 1 and 0 < us[0] < 1e6  # one rollout timed, in microseconds per step
