"""Bad inputs are refused before anything runs, with an error naming the field and the value.

Table-driven: each CLI case composes a config as the ``rlsuite`` command would and runs it (the
run must raise a :class:`ConfigError` and leave no run directory behind); each library case builds
a config or an agent directly. Every case asserts the error type and that the message names the
offending field with its value (``agent.num_minibatches=0``). The divergence tests check the one
path every learner stops through (:func:`rlsuite.training.check_finite`).
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import torch

import rlsuite.envs as envs
from rlsuite import checkpoint, config
from rlsuite.agents.distributional_dp.agent import DistributionalDPConfig
from rlsuite.agents.distributional_dp.deta_n import DetaNConfig
from rlsuite.agents.dynlin.config import (
    AR2Config,
    DynLinUCBConfig,
    Exp3Config,
    FixedPolicyConfig,
    LinUCBConfig,
)
from rlsuite.agents.ecrm.config import ECRMConfig
from rlsuite.agents.hnpg.agent import HNPGConfig
from rlsuite.agents.hnpg.rlpd import RLPDConfig
from rlsuite.agents.iwocs.deep import IWOCSConfig
from rlsuite.agents.vgdf.config import VGDFConfig
from rlsuite.core import params as params_lib
from rlsuite.learners.npg import NPGConfig
from rlsuite.learners.ppo import PPO, PPOConfig
from rlsuite.learners.qrdqn import QRDQNConfig
from rlsuite.learners.sac import SACConfig
from rlsuite.runner import check_config, compose, run
from rlsuite.training import TrainingDiverged, TrainingHooks, check_finite
from rlsuite.validation import ConfigError, rules_of, unchecked_fields

QUIET = ["progress=false", "tensorboard=false"]

# (overrides, the text the message must contain: "<dotted field>=<value>")
CLI_CASES: list[tuple[str, str]] = [
    # top-level keys
    ("num_envs=0", "num_envs=0: must be a positive integer"),
    ("num_envs=-3", "num_envs=-3"),
    ("total_steps=-1", "total_steps=-1: must be a positive integer"),
    ("total_steps=0", "total_steps=0"),
    ("checkpoint_every=0", "checkpoint_every=0"),
    ("eval_episodes=0", "eval_episodes=0"),
    ("threads=0", "threads=0"),
    ("seed=-1", "seed=-1"),
    ("device=cpuu", "device='cpuu': must be one of 'auto', 'cpu', 'cuda', 'cuda:N'"),
    ("device=gpu", "device='gpu'"),
    # PPO
    ("agent.num_steps=0", "agent.num_steps=0: must be a positive integer"),
    ("agent.num_minibatches=0", "agent.num_minibatches=0: must be a positive integer"),
    ("agent.update_epochs=0", "agent.update_epochs=0"),
    ("agent.gamma=1.5", "agent.gamma=1.5: must be in [0.0, 1.0]"),
    ("agent.gamma=-0.1", "agent.gamma=-0.1"),
    ("agent.gae_lambda=2", "agent.gae_lambda=2.0"),
    ("agent.learning_rate=0", "agent.learning_rate=0.0: must be a positive number"),
    ("agent.learning_rate=-1e-3", "agent.learning_rate=-0.001"),
    ("agent.clip_coef=0", "agent.clip_coef=0.0"),
    ("agent.max_grad_norm=0", "agent.max_grad_norm=0.0"),
    ("agent.target_kl=-1", "agent.target_kl=-1.0"),
    ("agent.vf_coef=nan", "agent.vf_coef=nan"),
    ("agent.hidden_sizes=[64,0]", "agent.hidden_sizes=[64, 0]: must be a list, each a positive integer"),
    ("num_envs=4 agent.num_steps=8 agent.num_minibatches=3",
     "agent.num_minibatches=3: must divide num_envs * num_steps = 32"),
    # classic env and its physics
    ("env.dtype=float16", "env.dtype='float16': must be one of 'float32', 'float64'"),
    ("env.max_episode_steps=0", "env.max_episode_steps=0"),
    ("env.params.masscart=-1", "env.params.masscart=-1.0: must be positive"),
    ("env.params.masspole=nan", "env.params.masspole=nan"),
    ("env.params.length=0", "env.params.length=0.0"),
    ("env.params.tau=inf", "env.params.tau=inf"),
    ("env.params.gravity=nan", "env.params.gravity=nan: must be a finite number"),
    ("+env.params.foo=1", "env.params.foo=1: unknown param of cartpole"),
    # SAC
    ("agent=sac env=pendulum agent.batch_size=0", "agent.batch_size=0"),
    ("agent=sac env=pendulum agent.tau=0", "agent.tau=0.0: must be in (0.0, 1.0]"),
    ("agent=sac env=pendulum agent.tau=1.5", "agent.tau=1.5"),
    ("agent=sac env=pendulum agent.utd=0", "agent.utd=0.0"),
    ("agent=sac env=pendulum agent.learning_starts=-1", "agent.learning_starts=-1"),
    ("agent=sac env=pendulum agent.buffer_size=0", "agent.buffer_size=0"),
    ("agent=sac env=pendulum agent.alpha=-0.1", "agent.alpha=-0.1"),
    ("agent=sac env=pendulum env.params.m=-1", "env.params.m=-1.0: must be positive"),
    ("agent=sac env=pendulum env.params.g=inf", "env.params.g=inf"),
    # QR-DQN
    ("agent=qrdqn agent.n_quantiles=0", "agent.n_quantiles=0"),
    ("agent=qrdqn agent.exploration_final_eps=1.5", "agent.exploration_final_eps=1.5"),
    ("agent=qrdqn agent.target_update_interval=0", "agent.target_update_interval=0"),
    ("agent=qrdqn agent.kappa=-1", "agent.kappa=-1.0"),
    ("agent=qrdqn env=acrobot env.params.link_mass_1=0", "env.params.link_mass_1=0.0"),
    # ECRM: CVaR level, choices, a combination
    ("agent=ecrm env=cliffwalking agent.alpha=0", "agent.alpha=0.0: must be in (0.0, 1.0]"),
    ("agent=ecrm env=cliffwalking agent.alpha=1.5", "agent.alpha=1.5"),
    ("agent=ecrm env=cliffwalking agent.risk_weight=2", "agent.risk_weight=2.0"),
    ("agent=ecrm env=cliffwalking agent.variant=reinforc",
     "agent.variant='reinforc': must be one of 'reinforce', 'actor_critic', 'npg'"),
    ("agent=ecrm env=cliffwalking agent.variant=npg agent.parameterization=direct",
     "agent.parameterization='direct': must be 'softmax' or 'neural' with variant='npg'"),
    # exact distributional DP and DηN
    ("agent=distributional_dp env=frozenlake agent.level=0", "agent.level=0.0"),
    ("agent=distributional_dp env=frozenlake agent.objective=cvarr", "agent.objective='cvarr'"),
    ("agent=distributional_dp env=frozenlake agent.method=vi", "agent.method='vi'"),
    ("agent=deta_n env=stockgrid agent.stock_low=5", "agent.stock_low=5.0: must be at most stock_high"),
    ("agent=deta_n env=stockgrid agent.representation=histogram", "agent.representation='histogram'"),
    # IWOCS (a nested SAC), HNPG, VGDF
    ("agent=iwocs env=pendulum agent.sac.batch_size=0", "agent.sac.batch_size=0"),
    ("agent=iwocs env=pendulum agent.search=random", "agent.search='random'"),
    ("agent=iwocs env=pendulum agent.box=nope", "agent.box='nope'"),
    ("agent=hnpg env=comblock agent.critic_sweep=forward", "agent.critic_sweep='forward'"),
    ("agent=hnpg env=comblock agent.dtype=float16", "agent.dtype='float16'"),
    ("agent=hnpg env=comblock agent.npg.max_kl=0", "agent.npg.max_kl=0.0"),
    ("agent=vgdf env=pendulum agent.variant=vgdff", "agent.variant='vgdff'"),
    ("agent=vgdf env=pendulum agent.keep_fraction=0", "agent.keep_fraction=0.0"),
    ("agent=vgdf env=pendulum agent.num_elites=9", "agent.num_elites=9: must be at most ensemble_size"),
    # other envs' fields
    ("env=frozenlake env.success_rate=1.5", "env.success_rate=1.5"),
    ("env=random_mdp env.num_states=0", "env.num_states=0"),
    ("agent=hnpg env=comblock env.reward_mode=dense", "env.reward_mode='dense'"),
    # GustyLedge's and CombinationLock's physics, checked before the run (field, value, copy)
    ("agent=ecrm env=gusty_ledge env.params.gust_prob=1.5",
     "env.params.gust_prob=1.5: must be in [0, 1] (copy 0)"),
    ("agent=ecrm env=gusty_ledge env.params.climb=-0.5",
     "env.params.climb=-0.5: must be non-negative and finite (copy 0)"),
    ("agent=hnpg env=comblock env.params.temperature=0",
     "env.params.temperature=0.0: must be positive and finite (copy 0)"),
    ("agent=hnpg env=comblock env.params.anti_reward_prob=-0.5",
     "env.params.anti_reward_prob=-0.5: must be in [0, 1] (copy 0)"),
    # bandits
    ("agent=dynlin_ucb env=dynlin_synthetic agent.rho_bar=1.0", "agent.rho_bar=1.0: must be in [0.0, 1.0)"),
    ("agent=lin_ucb env=dynlin_synthetic agent.variant=ucb", "agent.variant='ucb'"),
    ("agent=dynlin_ucb env=dynlin_random env.spectral_radius=1.2", "env.spectral_radius=1.2"),
]


@pytest.mark.parametrize(("overrides", "expected"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_refuses_before_anything_runs(tmp_path: Path, overrides: str, expected: str) -> None:
    run_dir = tmp_path / "run"
    # Small budgets first, so a case's own override wins (and a wrongly accepted case is quick).
    cfg = compose(["num_envs=4", "total_steps=64", f"run_dir={run_dir}", *QUIET, *overrides.split()])
    with pytest.raises(ConfigError) as info:
        run(cfg)
    assert expected in str(info.value)
    assert not run_dir.exists()  # no log, checkpoint or result.json: nothing ran


def test_misspelt_key_is_refused_by_the_schema_naming_it() -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="agent.num_step"):
        compose(["agent.num_step=4"])
    with pytest.raises(ConfigCompositionException, match="num_envs"):
        compose(["num_envs=many"])


def test_console_script_prints_the_field_and_writes_nothing(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-m", "rlsuite", "agent.num_minibatches=0", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 1
    assert "agent.num_minibatches=0: must be a positive integer" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "result.json").exists()


# -- library: every config refuses bad values at construction -------------------------------------
LIBRARY_CASES: list[tuple[Callable[[], Any], str]] = [
    (lambda: PPOConfig(num_steps=0), "num_steps=0: must be a positive integer"),
    (lambda: PPOConfig(num_minibatches="4"), "num_minibatches='4': must be a positive integer"),
    (lambda: PPOConfig(gamma=1.5), "gamma=1.5"),
    (lambda: PPOConfig(anneal_lr="yes"), "anneal_lr='yes': must be true or false"),
    (lambda: SACConfig(tau=0.0), "tau=0.0"),
    (lambda: SACConfig(hidden_sizes=[256, -1]), "hidden_sizes=[256, -1]"),
    (lambda: QRDQNConfig(exploration_fraction=-0.1), "exploration_fraction=-0.1"),
    (lambda: NPGConfig(backtrack_coef=1.0), "backtrack_coef=1.0: must be in (0.0, 1.0)"),
    (lambda: ECRMConfig(alpha=0.0), "alpha=0.0"),
    (lambda: DetaNConfig(level=1.5), "level=1.5"),
    (lambda: DistributionalDPConfig(num_atoms=1), "num_atoms=1"),
    (lambda: HNPGConfig(gamma=2.0), "gamma=2.0"),
    (lambda: HNPGConfig(npg={"damping": -1.0}), "npg.damping=-1.0"),
    (lambda: RLPDConfig(offline_fraction=1.5), "offline_fraction=1.5"),
    (lambda: RLPDConfig(sac={"batch_size": 0}), "sac.batch_size=0"),
    (lambda: RLPDConfig(sac={"batch_sise": 64}), "sac.batch_sise=64: not a field of SACConfig"),
    (lambda: IWOCSConfig(sac={"batch_size": 0}), "sac.batch_size=0"),
    (lambda: VGDFConfig(variant="x"), "variant='x': must be one of 'vgdf', 'mix'"),
    (lambda: DynLinUCBConfig(delta=0.0), "delta=0.0"),
    (lambda: LinUCBConfig(variant="x"), "variant='x'"),
    (lambda: Exp3Config(horizon=0), "horizon=0"),
    (lambda: AR2Config(sigma=-1.0), "sigma=-1.0"),
    (lambda: FixedPolicyConfig(policy="oracle"), "policy='oracle'"),
]


@pytest.mark.parametrize(("make", "expected"), LIBRARY_CASES, ids=[c[1] for c in LIBRARY_CASES])
def test_library_configs_refuse_bad_values(make: Callable[[], Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert expected in str(info.value)


def test_ppo_constructor_refuses_an_uneven_minibatch_split() -> None:
    env = envs.make("cartpole")
    with pytest.raises(ConfigError, match=r"num_minibatches=3: must divide num_envs \* num_steps = 32"):
        PPO(PPOConfig(num_steps=8, num_minibatches=3), env, env.default_params(4))


# -- env params at reset, and actions ---------------------------------------------------------------
def _reset(name: str, **values: Any) -> None:
    env = envs.make(name)
    env.reset(params_lib.with_values(env.default_params(4), **values), env.make_generator(0))


@pytest.mark.parametrize(("name", "values", "expected"), [
    ("cartpole", {"masscart": -1.0}, "params.masscart=-1.0: must be positive and finite (copy 0)"),
    ("cartpole", {"masspole": [0.1, 0.1, math.nan, 0.1]}, "params.masspole=nan: must be positive and "
                                                          "finite (copy 2)"),
    ("cartpole", {"length": 0.0}, "params.length=0.0"),
    ("cartpole", {"gravity": math.inf}, "params.gravity=inf: must be finite"),
    ("pendulum", {"l": -0.5}, "params.l=-0.5"),
    ("acrobot", {"link_moi_2": math.nan}, "params.link_moi_2=nan"),
    ("gusty_ledge", {"gust_prob": 1.5}, "params.gust_prob=1.5: must be in [0, 1] (copy 0)"),
    ("gusty_ledge", {"climb": [0.1, -0.5, 0.1, 0.1]},
     "params.climb=-0.5: must be non-negative and finite (copy 1)"),
    ("gusty_ledge", {"fall_cost": math.nan}, "params.fall_cost=nan: must be non-negative and finite"),
    ("gusty_ledge", {"start_height": math.inf}, "params.start_height=inf: must be finite (copy 0)"),
    ("comblock", {"p_switch": 2.0}, "params.p_switch=2.0: must be in [0, 1] (copy 0)"),
    ("comblock", {"anti_reward_prob": [0.5, 0.5, 0.5, math.nan]},
     "params.anti_reward_prob=nan: must be in [0, 1] (copy 3)"),
    ("comblock", {"temperature": 0.0}, "params.temperature=0.0: must be positive and finite (copy 0)"),
    ("comblock", {"noise_std": -1.0}, "params.noise_std=-1.0: must be non-negative and finite"),
    ("comblock", {"anti_reward": math.inf}, "params.anti_reward=inf: must be finite (copy 0)"),
])
def test_env_params_are_checked_at_reset(name: str, values: dict, expected: str) -> None:
    with pytest.raises(ValueError) as info:
        _reset(name, **values)
    assert expected in str(info.value)


def test_combination_lock_names_the_copy_with_an_impossible_combination() -> None:
    env = envs.make("comblock", horizon=3)
    params = env.default_params(4)
    combos = params.combos.clone()
    combos[2, 1, 0] = 10  # latent actions are 0 .. 9
    bad = params_lib.with_values(params, combos=combos)
    with pytest.raises(ConfigError) as info:
        env.reset(bad, env.make_generator(0))
    assert str(info.value) == (f"params.combos={combos[2].tolist()}: must be latent actions in "
                               f"[0, 10) (copy 2)")


@pytest.mark.parametrize(("make", "expected"), [
    (lambda: envs.make("gusty_ledge", num_steps=0), "num_steps=0: must be a positive integer"),
    (lambda: envs.make("comblock", p_switch=1.5), "p_switch=1.5: must be in [0, 1]"),
    (lambda: envs.make("comblock", noise_std=math.nan), "noise_std=nan: must be non-negative"),
    (lambda: envs.make("comblock", temperature=0.0), "temperature=0.0: must be positive and finite"),
    (lambda: envs.make("comblock", anti_reward=math.inf), "anti_reward=inf: must be finite"),
    (lambda: envs.make("comblock", reward_mode="dense"),
     "reward_mode='dense': must be one of 'final', 'transition'"),
    (lambda: envs.make("comblock", horizon=0), "horizon=0: must be a positive integer"),
], ids=["gusty_num_steps", "p_switch", "noise_std", "temperature", "anti_reward", "reward_mode",
        "horizon"])
def test_env_constructors_name_the_field_and_value(make: Callable[[], Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert str(info.value).startswith(expected)


def test_wrong_sized_field_is_the_one_blamed() -> None:
    # gravity is the first field: it used to set the expected batch size, blaming masscart.
    with pytest.raises(ValueError, match=r"params\.gravity has batch size 3; expected 4"):
        _reset("cartpole", gravity=[9.8, 9.8, 9.8])


def test_out_of_range_actions_are_refused_when_checking_is_on() -> None:
    env = envs.make("cartpole")
    params = env.default_params(2)
    _, state = env.reset(params, env.make_generator(0))
    five = torch.tensor([0, 5])
    env.step(state, five, params, env.make_generator(0))  # off by default: no host sync per step
    env.check_actions = True
    with pytest.raises(ValueError, match=r"cartpole action 5 of copy 1 is outside the action space"):
        env.step(state, five, params, env.make_generator(0))
    pend = envs.make("pendulum")
    pend.check_actions = True
    p = pend.default_params(2)
    _, s = pend.reset(p, pend.make_generator(0))
    with pytest.raises(ValueError, match=r"pendulum action \[nan\] of copy 0"):
        pend.step(s, torch.tensor([[math.nan], [0.0]]), p, pend.make_generator(0))


# -- the schemas themselves -------------------------------------------------------------------------
SCHEMAS = {**config.AGENT_SCHEMAS, **config.ENV_SCHEMAS, "run_schema": config.RunConfig}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_schema_field_has_a_rule_and_the_defaults_pass(name: str) -> None:
    cls = SCHEMAS[name]
    assert unchecked_fields(cls, exempt=("name", "agent", "env")) == []
    if cls in config.AGENT_SCHEMAS.values():
        cls()  # __post_init__ validates the defaults
    from dataclasses import MISSING, fields

    defaults = {f.name: f.default for f in fields(cls) if f.default is not MISSING}
    for field_name, rule in rules_of(cls).items():
        if field_name in defaults and isinstance(defaults[field_name], int | float | str | bool | None):
            if defaults[field_name] == "???" or str(defaults[field_name]).startswith("${"):
                continue
            rule.check(field_name, defaults[field_name])


EXPERIMENTS = sorted(p.name.removesuffix(".yaml")
                     for p in (resources.files("rlsuite.conf") / "experiment").iterdir()
                     if p.name.endswith(".yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_preset_passes_validation(tmp_path: Path, name: str) -> None:
    check_config(compose([f"experiment={name}", f"run_dir={tmp_path}"]))


# -- divergence ---------------------------------------------------------------------------------------
class _Checkpointing(TrainingHooks):
    """Saves a checkpoint after every iteration, as the runner's hooks do."""

    def __init__(self, path: Path) -> None:
        self.path, self.steps = path, []

    def on_iteration(self, agent: Any, step: int, metrics: dict[str, float]) -> None:
        self.steps.append(step)
        checkpoint.save(self.path, agent.state_dict(), {})


@pytest.mark.slow
def test_ppo_at_a_huge_learning_rate_stops_cleanly_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    env = envs.make("cartpole")
    params = env.default_params(4)
    cfg = PPOConfig(num_steps=16, num_minibatches=2, update_epochs=1, anneal_lr=False)
    agent = PPO(cfg, env, params, seed=0)
    hooks = _Checkpointing(tmp_path / "latest.pt")
    agent.learn(128, hooks)  # two clean iterations, checkpointed
    assert hooks.steps == [64, 128]
    agent.config.learning_rate = 1e20
    with pytest.raises(TrainingDiverged, match=r"^PPO diverged at step 192: non-finite loss train/"):
        agent.learn(1024, hooks)
    assert hooks.steps == [64, 128]  # the diverged iteration never reached the hooks
    payload = checkpoint.load(tmp_path / "latest.pt")
    assert payload["agent"]["global_step"] == 128
    assert all(torch.isfinite(v).all() for v in payload["agent"]["model"].values())
    fresh = PPO(cfg, env, params, seed=1)
    fresh.load_state_dict(payload["agent"])
    assert fresh.global_step == 128


@pytest.mark.slow  # 7-25 s; CI's slow tier runs it (default-tier budget)
def test_ppo_divergence_through_the_runner_names_the_quantity(tmp_path: Path) -> None:
    cfg = compose(["agent=ppo", "env=cartpole", f"run_dir={tmp_path}", "num_envs=4", "agent.num_steps=16",
                   "agent.num_minibatches=2", "agent.update_epochs=1", "total_steps=128",
                   "agent.learning_rate=1e20", *QUIET])
    with pytest.raises(SystemExit, match=r"PPO diverged at step 64: non-finite .*none was written"):
        run(cfg)
    assert not (tmp_path / "checkpoints" / "latest.pt").exists()


@pytest.mark.parametrize(("who", "overrides"), [
    ("SAC", "agent=sac env=pendulum agent.learning_starts=8 agent.batch_size=8 agent.hidden_sizes=[8] "
            "agent.buffer_size=1000"),
    ("QR-DQN", "agent=qrdqn agent.learning_starts=8 agent.batch_size=8 agent.n_quantiles=4 "
               "agent.hidden_sizes=[8]"),
])
def test_off_policy_learners_diverge_through_the_same_path(tmp_path: Path, who: str, overrides: str) -> None:
    cfg = compose([*overrides.split(), "agent.learning_rate=1e20", "num_envs=4", "total_steps=200",
                   f"run_dir={tmp_path}", *QUIET])
    with pytest.raises(SystemExit, match=rf"{who} diverged at step \d+: non-finite loss train/"):
        run(cfg)


def test_check_finite_names_losses_parameters_and_actions() -> None:
    net = torch.nn.Linear(2, 1)
    assert check_finite("X", 3, {"a": torch.tensor(1.5), "b": 2.0}, net.named_parameters()) == \
        {"a": 1.5, "b": 2.0}
    with torch.no_grad():
        net.weight[0, 0] = math.inf
    with pytest.raises(TrainingDiverged, match=r"^X diverged at step 3: non-finite loss a=nan; "
                                               r"parameter weight; action$"):
        check_finite("X", 3, {"a": torch.tensor(math.nan)}, net.named_parameters(),
                     torch.tensor([0.0, math.nan]))
