"""What a resume may change (learning rates, evaluation settings, the budget), that a changed
learning rate takes effect in every agent's optimizers, and how the change is recorded
(``resumed_with``); anything else is still refused, naming the key (rlsuite.identity)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import OmegaConf
from test_conformance import CASES, COMMON, SEED

from rlsuite import agents, checkpoint, identity, jobs, runner
from rlsuite.runner import compose, run

SMALL = ["num_envs=8", "agent.num_steps=16", "agent.num_minibatches=2", "agent.update_epochs=2",
         "eval_episodes=4", "progress=false", "tensorboard=false", "device=cpu"]


def _cfg(run_dir: Path, *extra: str):
    return compose([*SMALL, f"run_dir={run_dir}", *extra])


def _checkpoint(run_dir: Path) -> dict[str, Any]:
    return checkpoint.load(run_dir)


def _lrs(optimizer_state: dict[str, Any]) -> list[float]:
    return [float(group["lr"]) for group in optimizer_state["param_groups"]]


# -- (a) a diverged run goes on from its last good checkpoint at a sane learning rate --------------
@pytest.mark.parametrize("mode", ["auto", "dir"])
def test_diverged_ppo_resumes_from_its_last_good_checkpoint_with_a_sane_lr(tmp_path: Path,
                                                                          mode: str) -> None:
    common = ["total_steps=768", "agent.anneal_lr=false", "checkpoint_every=100"]
    # One iteration at the default rate, then stopped (the time limit checkpoints at step 128).
    with pytest.raises(jobs.TimeLimitReached):
        run(_cfg(tmp_path, *common, "time_limit_s=1e-9"))
    assert _checkpoint(tmp_path)["agent"]["global_step"] == 128
    # Resumed at lr 1e20, PPO diverges in its next iteration: a clear stop, the checkpoint kept.
    with pytest.raises(SystemExit) as stop:
        run(_cfg(tmp_path, *common, "agent.learning_rate=1e20"))
    message = str(stop.value)
    # (check_finite names the step count after the iteration's rollout: 256)
    assert message.startswith("rlsuite: training stopped: PPO diverged at step 256: non-finite")
    assert message.endswith(f"The last good checkpoint is {tmp_path / 'checkpoints' / 'latest.pt'}: "
                            f"the same command with resume=auto (or resume=<run dir>) continues "
                            f"from it, and may change agent.learning_rate there.")
    assert jobs.read_result(tmp_path)["status"] == jobs.FAILED
    good = _checkpoint(tmp_path)
    assert good["agent"]["global_step"] == 128 and _lrs(good["agent"]["optimizer"]) == [1e-3]
    # Resumed from that checkpoint at a sane rate, it trains on and completes.
    if mode == "auto":
        score = run(_cfg(tmp_path, *common, "agent.learning_rate=5e-4"))
    else:
        score = run(_cfg(tmp_path / "elsewhere", *common, "agent.learning_rate=5e-4",
                         f"resume={tmp_path}"))
    result = jobs.read_result(tmp_path)
    assert result["status"] == jobs.COMPLETED and result["score"] == score
    assert result["global_step"] == 768
    final = _checkpoint(tmp_path)
    assert final["agent"]["global_step"] == 768
    assert _lrs(final["agent"]["optimizer"]) == [5e-4]  # every param group at the new rate
    # The run is keyed by the rate it finished with; the change is on record, from the last good
    # checkpoint (the diverged attempt wrote none, so it is not part of this run's history).
    change = [{"step": 128, "key": "agent.learning_rate", "old": 1e-3, "new": 5e-4}]
    assert result["identity"]["config"]["agent"]["learning_rate"] == 5e-4
    assert result["identity"]["resumed_with"] == change
    assert final["identity"]["resumed_with"] == change
    claim = json.loads((tmp_path / identity.IDENTITY_FILE).read_text())
    assert claim["resumed_with"] == change and claim["key"] == result["identity"]["key"]
    # The command that made the change finds its run again; the original command does not get
    # the changed run's score (a rate would apply to no step of a completed run).
    assert run(_cfg(tmp_path, *common, "agent.learning_rate=5e-4")) == score
    with pytest.raises(identity.RunMismatch,
                       match=r"agent.learning_rate: 0.0005 there, 0.001 here \(it completed at step 768"):
        run(_cfg(tmp_path, *common))


def test_completed_run_takes_a_new_lr_only_with_steps_left(tmp_path: Path) -> None:
    run(_cfg(tmp_path, "total_steps=256"))
    with pytest.raises(identity.RunMismatch, match="would apply to no step"):
        run(_cfg(tmp_path, "total_steps=256", "agent.learning_rate=1e-4"))
    # The final evaluation may change without more steps: the final policy is evaluated again.
    run(_cfg(tmp_path, "total_steps=256", "eval_episodes=8"))
    record = jobs.read_result(tmp_path)
    assert record["status"] == jobs.COMPLETED and record["global_step"] == 256
    assert record["identity"]["resumed_with"] == [
        {"step": 256, "key": "eval_episodes", "old": 4, "new": 8}]
    # With a larger budget the new rate trains the steps that are left.
    run(_cfg(tmp_path, "total_steps=512", "eval_episodes=8", "agent.learning_rate=1e-4"))
    record = jobs.read_result(tmp_path)
    assert record["global_step"] == 512
    assert record["identity"]["resumed_with"] == [
        {"step": 256, "key": "eval_episodes", "old": 4, "new": 8},
        {"step": 256, "key": "agent.learning_rate", "old": 1e-3, "new": 1e-4},
        {"step": 256, "key": "total_steps", "old": 256, "new": 512}]


def test_resume_from_dir_keeps_a_learning_rate_the_command_does_not_set(tmp_path: Path) -> None:
    with pytest.raises(jobs.TimeLimitReached):
        run(_cfg(tmp_path, "total_steps=512", "agent.learning_rate=3e-4", "agent.anneal_lr=false",
                 "time_limit_s=1e-9"))
    # The command composes PPO's default 1e-3: not a value it sets, so the checkpoint's 3e-4 stays.
    run(_cfg(tmp_path / "x", "total_steps=512", "agent.anneal_lr=false", f"resume={tmp_path}"))
    final = _checkpoint(tmp_path)
    assert _lrs(final["agent"]["optimizer"]) == [3e-4]
    assert "resumed_with" not in jobs.read_result(tmp_path)["identity"]


# -- (c) anything else is still refused, naming the key -------------------------------------------
@pytest.mark.parametrize("change, named", [
    ("seed=1", "seed: 0 there, 1 here"),
    ("agent.gamma=0.9", "agent.gamma: 0.99 there, 0.9 here"),
    ("agent.anneal_lr=false", "agent.anneal_lr: True there, False here"),
])
def test_resume_auto_refuses_a_non_resumable_change(tmp_path: Path, change: str, named: str) -> None:
    with pytest.raises(jobs.TimeLimitReached):  # a checkpoint to continue from
        run(_cfg(tmp_path, "total_steps=512", "time_limit_s=1e-9"))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(identity.RunMismatch) as err:  # even beside a resumable change
        run(_cfg(tmp_path, "total_steps=512", change, "agent.learning_rate=1e-4"))
    message = str(err.value)
    assert named in message and "agent.learning_rate" not in message.split(". Only")[0]
    assert "Only total_steps, eval_episodes, agent.learning_rate may change" in message
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_resumable_keys_of_every_agent() -> None:
    """The documented set: learning rates and evaluation settings, nested configs' included."""
    expected = {
        "ppo": ["agent.learning_rate"], "sac": ["agent.learning_rate"],
        "qrdqn": ["agent.learning_rate"],
        "deta_n": ["agent.learning_rate", "agent.rollout_episodes"],
        "risk_neutral_qrdqn": ["agent.learning_rate", "agent.rollout_episodes"],
        "vgdf": ["agent.model_learning_rate", "agent.eval_every", "agent.eval_episodes",
                 "agent.sac.learning_rate"],
        "rlpd": ["agent.actor_lr", "agent.alpha_lr", "agent.sac.learning_rate"],
        "hnpg": ["agent.critic_lr"],
        "iwocs": ["agent.heads_learning_rate", "agent.eval_points", "agent.eval_episodes",
                  "agent.sac.learning_rate"],
        "ecrm": ["agent.policy_lr", "agent.eta_lr", "agent.critic_lr", "agent.baseline_lr",
                 "agent.npg_step_size", "agent.npg_q_lr", "agent.exact_every"],
    }
    for name in agents.names():
        keys = identity.resumable_keys({"agent": {"name": name}})
        assert keys[:2] == ("total_steps", "eval_episodes"), name
        assert list(keys[2:]) == expected.get(name, []), name
    assert identity.resumable_keys({"agent": {"name": "nonesuch"}}) == identity.RESUMABLE_KEYS


# -- (b) every agent's optimizers carry the config's rates after loading a checkpoint -------------
def _is_rate(key: str) -> bool:
    last = key.rsplit(".", 1)[-1]
    return last in ("learning_rate", "lr") or last.endswith(("_lr", "_learning_rate", "step_size"))


def _optimizers(obj: Any, path: str = "", seen: set[int] | None = None,
                depth: int = 0) -> dict[str, torch.optim.Optimizer]:
    """Every torch optimizer reachable from ``obj``'s attributes (dicts, lists, dataclasses), by
    attribute path: the agents keep them as attributes (PPO's ``optimizer``, SAC's ``opt.actor``,
    ECRM's ``net_opts['eta']``)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 3 or isinstance(obj, (torch.Tensor, torch.nn.Module, type)):
        return {}
    seen.add(id(obj))
    if isinstance(obj, torch.optim.Optimizer):
        return {path: obj}
    if isinstance(obj, dict):
        children = obj.items()
    elif isinstance(obj, (list, tuple)):
        children = enumerate(obj)
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("rlsuite"):
        children = vars(obj).items()
    else:
        return {}
    found: dict[str, torch.optim.Optimizer] = {}
    for key, child in children:
        found.update(_optimizers(child, f"{path}.{key}" if path else str(key), seen, depth + 1))
    return found


def _build(name: str, *extra: str) -> tuple[Any, Any]:
    cfg = runner.compose([f"agent={name}", *COMMON, *CASES[name].overrides, *extra])
    env = runner.build_env(cfg.env, torch.device("cpu"))
    params = runner.build_params(env, cfg.env, int(cfg.num_envs))
    spec = agents.get(name)
    agent_cfg = spec.config_cls(**OmegaConf.to_container(cfg.agent, resolve=True))
    return spec.build(agent_cfg, env, params, SEED), cfg


WITH_OPTIMIZERS = {"ppo", "sac", "qrdqn", "deta_n", "risk_neutral_qrdqn", "vgdf", "rlpd", "ecrm"}
"""Agents that keep torch optimizers across iterations (HNPG fits its critic with a functional
Adam whose rate it reads from its config; IWOCS builds a SAC per expert from ``agent.sac``)."""


@pytest.mark.parametrize("name", sorted(CASES))
def test_loaded_optimizers_carry_the_new_learning_rates(name: str) -> None:
    old, cfg = _build(name)
    rates = [k for k in identity.resumable_keys(OmegaConf.to_container(cfg)) if _is_rate(k)]
    changed = [f"{k}={OmegaConf.select(cfg, k) * 0.37}" for k in rates]
    state = old.state_dict()
    found = _optimizers(old)
    assert (name in WITH_OPTIMIZERS) == bool(found), sorted(found)
    if not found and name != "hnpg":
        return  # nothing that a checkpoint could bring back at an old rate
    loaded, new_cfg = _build(name, *changed)
    loaded.load_state_dict(state)
    reference, _ = _build(name, *changed)  # what a run started at the new rates would carry
    got, want = _optimizers(loaded), _optimizers(reference)
    assert sorted(got) == sorted(want) == sorted(found)
    for path, optimizer in got.items():
        lrs = [float(g["lr"]) for g in optimizer.param_groups]
        assert lrs == [float(g["lr"]) for g in want[path].param_groups], path
        assert all(lr not in [float(g["lr"]) for g in found[path].param_groups] for lr in lrs), path
    if name == "hnpg":  # its critic's functional Adam reads the rate from the built settings
        assert loaded.critic_settings.lr == pytest.approx(new_cfg.agent.critic_lr)


def test_annealed_ppo_rate_keeps_its_place_in_the_schedule_at_a_new_base() -> None:
    old, _ = _build("ppo")
    old.learn(CASES["ppo"].total_steps)  # 4 iterations: the last ran at 1e-3 * (1 - 3/4)
    state = old.state_dict()
    assert _lrs(state["optimizer"]) == [pytest.approx(2.5e-4)]
    same, _ = _build("ppo")
    same.load_state_dict(state)  # the same base: the saved rate as it was, bit for bit
    assert _lrs(same.optimizer.state_dict()) == _lrs(state["optimizer"])
    lower, _ = _build("ppo", "agent.learning_rate=5e-4")
    lower.load_state_dict(state)
    assert _lrs(lower.optimizer.state_dict()) == [pytest.approx(5e-4 * 0.25, rel=1e-12)]


def test_a_run_directory_in_use_is_refused(tmp_path: Path) -> None:
    """A sweep over learning rates that shares one run_dir must not have a second job continue
    the first one's checkpoint while the first is still training there."""
    with pytest.raises(jobs.TimeLimitReached):
        run(_cfg(tmp_path, "total_steps=512", "time_limit_s=1e-9"))
    training = identity.RunLock(tmp_path)  # what the first job holds while it trains
    training.acquire()
    try:
        with pytest.raises(identity.RunInUse, match=rf"{tmp_path} is in use: another run \(pid \d+\)"):
            run(_cfg(tmp_path, "total_steps=512", "agent.learning_rate=1e-4"))
        assert jobs.read_result(tmp_path)["status"] == jobs.PREEMPTED  # its record untouched
    finally:
        training.release()
    run(_cfg(tmp_path, "total_steps=512", "agent.learning_rate=1e-4"))  # free again: continues
    assert jobs.read_result(tmp_path)["status"] == jobs.COMPLETED
