"""TensorBoard: every run ends with its hparams (resolved config + final metrics) in its own
event file, readable by the HParams dashboard."""

from __future__ import annotations

from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import metadata as hp_metadata
from tensorboard.plugins.hparams import plugin_data_pb2

from rlsuite.logging import Logger, flatten_config
from rlsuite.runner import compose, run

SMALL = ["num_envs=8", "agent.num_steps=16", "agent.num_minibatches=2", "agent.update_epochs=2",
         "eval_episodes=4", "progress=false", "device=cpu", "total_steps=256"]


def _hparams(run_dir: Path) -> tuple[dict, list[str], EventAccumulator]:
    """(hparams of the session, metric tags of the experiment, the accumulator) of a run dir."""
    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0, "scalars": 0})
    acc.Reload()
    content = acc.PluginTagToContent(hp_metadata.PLUGIN_NAME)
    data = {tag: plugin_data_pb2.HParamsPluginData.FromString(raw) for tag, raw in content.items()}
    start = data[hp_metadata.SESSION_START_INFO_TAG].session_start_info
    values = {}
    for key, value in start.hparams.items():
        kind = value.WhichOneof("kind")
        values[key] = getattr(value, kind)
    experiment = data[hp_metadata.EXPERIMENT_TAG].experiment
    metrics = [m.name.tag for m in experiment.metric_infos]
    assert data[hp_metadata.SESSION_END_INFO_TAG].session_end_info.status == 1  # STATUS_SUCCESS
    return values, metrics, acc


def test_flatten_config_dots_nested_keys_and_stringifies_the_rest() -> None:
    flat = flatten_config({"seed": 3, "agent": {"lr": 1e-3, "net": {"hidden": [64, 64]}},
                           "resume": None, "progress": False, "env": {"name": "cartpole"}})
    assert flat == {"seed": 3, "agent.lr": 1e-3, "agent.net.hidden": "[64, 64]",
                    "resume": "None", "progress": False, "env.name": "cartpole"}


def test_write_hparams_goes_into_the_runs_own_event_file(tmp_path: Path) -> None:
    logger = Logger(tmp_path)
    logger.log(10, {"eval/mean_reward": 42.0})
    logger.write_hparams({"seed": 1, "agent": {"gamma": 0.99}}, {"eval/mean_reward": 42.0})
    logger.close()
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []  # no per-call subdirectory
    values, metrics, acc = _hparams(tmp_path)
    assert values == {"seed": 1.0, "agent.gamma": 0.99}
    assert metrics == ["eval/mean_reward"]
    assert [e.value for e in acc.Scalars("eval/mean_reward")] == [42.0]


def test_every_run_writes_hparams_at_its_end(tmp_path: Path) -> None:
    cfg = compose([*SMALL, f"run_dir={tmp_path}", "seed=4", "agent.learning_rate=0.001"])
    score = run(cfg)
    values, metrics, acc = _hparams(tmp_path)
    assert values["seed"] == 4.0 and values["agent.learning_rate"] == 0.001
    assert values["agent.name"] == "ppo" and values["env.name"] == "cartpole"
    assert values["num_envs"] == 8.0 and values["total_steps"] == 256.0
    assert metrics == ["eval/mean_reward"]
    # the metric the dashboard shows is the run's final score, logged as a scalar of that tag
    assert acc.Scalars("eval/mean_reward")[-1].value == pytest.approx(score, rel=1e-6)
