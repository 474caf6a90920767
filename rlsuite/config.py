"""Typed configuration: the schemas Hydra validates every composed config against.

Defaults live here, once, in dataclasses with a docstring per field; the YAML files in ``conf/``
only select and override. Each schema is registered in Hydra's ConfigStore, so a misspelt key or a
value of the wrong type fails when the config is composed, naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from rlsuite import agents
from rlsuite import validation as rules
from rlsuite.envs.dynamical_bandit import NAMED_ARMS


@dataclass
class EnvConfig:
    """Which engine env to build and how (``rlsuite.envs.make(name, ...)``)."""

    name: str = MISSING
    """Registry name (``rlsuite.envs.names()``)."""
    params: Any = field(default_factory=dict)
    """Per-copy physics overrides applied to every copy, e.g. ``{g: 12.0}``; typed per env by
    :mod:`rlsuite.env_params` (every scalar field, None keeps the env's default)."""

    CHECKS: ClassVar[rules.Checks] = {
        "params": rules.mapping_of(rules.optional(rules.FINITE)),  # None: the env's default
    }


@dataclass
class ClassicEnvConfig(EnvConfig):
    """Classic-control envs (CartPole, Pendulum, Acrobot)."""

    max_episode_steps: int | None = None
    """Time limit; None keeps the env's own (gymnasium's)."""
    compile: bool = False
    """Fuse the physics with torch.compile (worth it for large num_envs)."""
    dtype: str = "float32"
    """State dtype: float32 or float64."""

    CHECKS: ClassVar[rules.Checks] = {
        "max_episode_steps": rules.optional(rules.POSITIVE_INT), "compile": rules.FLAG,
        "dtype": rules.DTYPE,
    }


@dataclass
class TabularEnvConfig(EnvConfig):
    """Finite MDPs stepped in batches (``rlsuite.envs.tabular``)."""

    max_episode_steps: int | None = 100
    """Time limit (gymnasium's registration for the toy-text envs)."""
    gamma: float = 1.0
    """Discount stored in the MDP (used by the exact solvers)."""

    CHECKS: ClassVar[rules.Checks] = {
        "max_episode_steps": rules.optional(rules.POSITIVE_INT), "gamma": rules.UNIT,
    }


@dataclass
class FrozenLakeEnvConfig(TabularEnvConfig):
    """gymnasium's FrozenLake as a TabularMDP (4x4 map; ``env=frozenlake8x8`` for 8x8)."""

    is_slippery: bool = True
    """Move in the intended direction with probability ``success_rate`` only."""
    success_rate: float = 1.0 / 3.0
    """Probability of the intended move on slippery ice."""

    CHECKS: ClassVar[rules.Checks] = {
        "is_slippery": rules.FLAG, "success_rate": rules.UNIT,
    }


@dataclass
class CliffWalkingEnvConfig(TabularEnvConfig):
    """gymnasium's CliffWalking (no time limit registered there; 200 here so episodes end)."""

    max_episode_steps: int | None = 200
    is_slippery: bool = False
    """gymnasium's slippery variant."""

    CHECKS: ClassVar[rules.Checks] = {
        "is_slippery": rules.FLAG,
    }


@dataclass
class StochasticCliffEnvConfig(TabularEnvConfig):
    """Stochastic CliffWalking (``rlsuite/envs/tabular/cliff.py``): slips, step and cliff costs."""

    max_episode_steps: int | None = 100
    slip: float = 0.02
    """Probability that the intended move is replaced by a uniformly random one."""
    step_cost: float = 1.0
    """Paid (as reward -step_cost) on every step."""
    cliff_cost: float = 10.0
    """Paid (as reward -cliff_cost) on entering the cliff."""
    cliff_terminates: bool = False
    """A fall ends the episode (else it returns the agent to the start, as in gymnasium)."""
    exploring_starts: bool = False
    """Start uniformly on the non-cliff, non-goal cells (for training on-policy learners)."""

    CHECKS: ClassVar[rules.Checks] = {
        "slip": rules.UNIT, "step_cost": rules.FINITE, "cliff_cost": rules.FINITE,
        "cliff_terminates": rules.FLAG, "exploring_starts": rules.FLAG,
    }


@dataclass
class GustyLedgeEnvConfig(EnvConfig):
    """GustyLedge (``rlsuite/envs/gusty_ledge.py``): a continuous ledge walk with rare gusts;
    physics (gust_prob, fall_cost, ...) via ``env.params``."""

    num_steps: int = 10
    """Steps from start to goal (the episode length when nothing falls)."""
    continuous: bool = False
    """Box action in [-1, 1] (lateral move 0.1 a) instead of the three discrete moves."""

    CHECKS: ClassVar[rules.Checks] = {
        "num_steps": rules.POSITIVE_INT, "continuous": rules.FLAG,
    }


@dataclass
class TaxiEnvConfig(TabularEnvConfig):
    """gymnasium's Taxi-v4."""

    max_episode_steps: int | None = 200
    is_rainy: bool = False
    """gymnasium's rainy variant (moves succeed with ``rainy_probability``)."""
    rainy_probability: float = 0.8
    """Success probability of a move when rainy."""

    CHECKS: ClassVar[rules.Checks] = {
        "is_rainy": rules.FLAG, "rainy_probability": rules.UNIT,
    }


@dataclass
class StockGridEnvConfig(TabularEnvConfig):
    """The 4x4 return-targeting gridworld (``rlsuite.envs.tabular.stock_grid``)."""

    max_episode_steps: int | None = 16
    """Episode cap (16, as the Stoix fork's replication of the paper's section 7.1)."""
    stochastic: bool = False
    """Our stochastic variant (a +2 / -1 gamble at (0, 3), a 3 / 0 terminal at (2, 2))."""

    CHECKS: ClassVar[rules.Checks] = {
        "stochastic": rules.FLAG,
    }


@dataclass
class RandomMDPEnvConfig(TabularEnvConfig):
    """A random MDP (Dirichlet transitions, Gaussian rewards), fixed by ``env.seed``."""

    num_states: int = 100
    num_actions: int = 4
    num_outcomes: int | None = None
    """Next states reachable from each (s, a); None: all."""
    seed: int = 0
    """Seed of the MDP itself (not of the run)."""
    gamma: float = 0.99
    terminal_prob: float = 0.0
    """Probability that an outcome is terminal."""

    CHECKS: ClassVar[rules.Checks] = {
        "num_states": rules.POSITIVE_INT, "num_actions": rules.POSITIVE_INT,
        "num_outcomes": rules.optional(rules.POSITIVE_INT), "seed": rules.SEED,
        "terminal_prob": rules.UNIT,
    }


@dataclass
class CombinationLockEnvConfig(EnvConfig):
    """HNPG's continuous combination lock (``rlsuite.envs.combination_lock``)."""

    horizon: int = 5
    """H: actions per episode (observation length 2^ceil(log2(H + 4)))."""
    seed: int = 0
    """Seed of the secret combinations (conf/env/comblock.yaml ties it to the run's seed)."""
    num_latent_actions: int = 10
    """Latent actions (and length of the continuous action vector)."""
    reward_mode: str = "final"
    """``final`` (official code: anti-reward only at the last step) or ``transition`` (paper)."""
    dense: bool = False
    """0.1 per correct step, no anti-reward (Hy-Q/BRIEE's dense lock)."""
    p_switch: float = 0.5
    anti_reward: float = 0.1
    anti_reward_prob: float = 0.5
    noise_std: float = 0.1
    """Std of the observation noise before the Hadamard rotation."""
    temperature: float = 0.1
    """Softmax temperature from action vector to latent action (official 0.1)."""
    max_episode_steps: int | None = None
    """Optional extra time limit (episodes already end after H steps)."""

    CHECKS: ClassVar[rules.Checks] = {
        "horizon": rules.POSITIVE_INT, "seed": rules.SEED, "num_latent_actions": rules.POSITIVE_INT,
        "reward_mode": rules.choice("final", "transition"), "dense": rules.FLAG, "p_switch": rules.UNIT,
        "anti_reward": rules.FINITE, "anti_reward_prob": rules.UNIT, "noise_std": rules.NONNEG,
        "temperature": rules.POSITIVE, "max_episode_steps": rules.optional(rules.POSITIVE_INT),
    }


@dataclass
class RunConfig:
    """Top-level keys of every run."""

    agent: Any = MISSING
    """The agent's config group (``agent=ppo``)."""
    env: Any = MISSING
    """The env's config group (``env=cartpole``)."""
    seed: int = 0
    """Seeds networks, env and policy generators."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``."""
    num_envs: int = 64
    """Env copies stepped in parallel (B)."""
    total_steps: int = 500_000
    """Env steps to train for, summed over copies."""
    run_dir: str | None = "${hydra:runtime.output_dir}"
    """Where logs, config and checkpoints go (Hydra's output dir by default; None where Hydra has
    none, as in ``rlsuite --cfg job --resolve``)."""
    resume: str | None = "auto"
    """``auto``: continue from ``run_dir``'s checkpoint if it has one (a requeued or relaunched
    sweep job; a run already completed there returns its recorded score); a run directory:
    continue from that run's latest checkpoint; ``null``: always start afresh."""
    threads: int = 1
    """CPU intra-op threads; 1 avoids several-fold slowdowns on a shared machine (docs/performance.md)."""
    checkpoint_every: int = 20
    """Iterations between checkpoints (one is always written at the end)."""
    eval_episodes: int = 64
    """Greedy evaluation episodes at the end of training (one per env copy)."""
    progress: bool = True
    """Show a progress bar with steps/s."""
    tensorboard: bool = True
    """Write TensorBoard event files (metrics.csv is always written)."""
    time_limit_s: float | None = None
    """Wall-clock seconds this process may train for (None: no limit). At the first iteration
    boundary past it the run checkpoints, records ``preempted`` (reason: the time limit) and stops
    (``rlsuite`` exits with status 3); the same command with ``resume=auto`` continues. Not part
    of the run's identity."""

    CHECKS: ClassVar[rules.Checks] = {
        "seed": rules.SEED,
        "device": rules.pattern(r"auto|cpu|mps|cuda(:\d+)?", "one of 'auto', 'cpu', 'cuda', 'cuda:N', 'mps'"),
        "num_envs": rules.POSITIVE_INT, "total_steps": rules.POSITIVE_INT, "run_dir": rules.TEXT,
        "resume": rules.optional(rules.TEXT), "threads": rules.POSITIVE_INT,
        "checkpoint_every": rules.POSITIVE_INT, "eval_episodes": rules.POSITIVE_INT,
        "progress": rules.FLAG, "tensorboard": rules.FLAG,
        "time_limit_s": rules.optional(rules.POSITIVE),
    }


@dataclass
class DynLinEnvConfig(EnvConfig):
    """Dynamical linear bandits (``rlsuite/envs/dynamical_bandit.py``); one copy = one trial."""

    sigma: float = 0.01
    """Noise std (official noise_sigma: 0.01 in the main text, 0.001 and 0.1 in the supplement)."""
    max_episode_steps: int | None = None
    """Optional time limit (None: the bandit never resets)."""
    extra_arms: list[str] = field(default_factory=list)
    """Named arms appended after the 6 budget vertices: ``[expert]`` adds the expert allocation
    as arm 6, which ``agent=expert`` plays (a point inside the budget polytope: the optimum and
    every other arm's regret are unchanged)."""

    CHECKS: ClassVar[rules.Checks] = {
        "sigma": rules.NONNEG, "max_episode_steps": rules.optional(rules.POSITIVE_INT),
        "extra_arms": rules.list_of(rules.choice(*sorted(NAMED_ARMS))),
    }


@dataclass
class DynLinRandomEnvConfig(DynLinEnvConfig):
    """A random stable system with a chosen spectral radius."""

    n: int = 3
    """State dimension."""
    d: int = 3
    """Action dimension (3: the budget vertices; otherwise the box [0, 1]^d)."""
    spectral_radius: float = 0.5
    """rho(A) of the generated system."""
    system_seed: int = 0
    """Seed of the system itself (not of the run)."""

    CHECKS: ClassVar[rules.Checks] = {
        "n": rules.POSITIVE_INT, "d": rules.POSITIVE_INT,
        "spectral_radius": rules.real(0.0, 1.0, high_open=True), "system_seed": rules.SEED,
    }


ENV_SCHEMAS: dict[str, type[EnvConfig]] = {
    "dynlin_env_schema": DynLinEnvConfig,
    "dynlin_random_env_schema": DynLinRandomEnvConfig,
    "classic_env_schema": ClassicEnvConfig,
    "frozenlake_env_schema": FrozenLakeEnvConfig,
    "cliffwalking_env_schema": CliffWalkingEnvConfig,
    "cliffwalking_stochastic_env_schema": StochasticCliffEnvConfig,
    "gusty_ledge_env_schema": GustyLedgeEnvConfig,
    "taxi_env_schema": TaxiEnvConfig,
    "random_mdp_env_schema": RandomMDPEnvConfig,
    "stockgrid_env_schema": StockGridEnvConfig,
    "comblock_env_schema": CombinationLockEnvConfig,
}
# Derived from the agent registry (rlsuite/agents/__init__.py): each package's register() call
# names its schema; resolving them imports the config modules only, not the agents.
AGENT_SCHEMAS: dict[str, type] = agents.schemas()


def shorten(text: str, max_chars: int = 120) -> str:
    """``text`` cut to ``max_chars`` with a hash of the whole, so names stay unique and
    deterministic: sweep job directories are named after their overrides, and a file name may not
    exceed 255 bytes (Optuna's sampled floats reach that quickly)."""
    text = str(text)
    if len(text) <= max_chars:
        return text
    import hashlib

    digest = hashlib.sha1(text.encode()).hexdigest()[:10]
    return f"{text[: max_chars - 11]}~{digest}"


def register_configs() -> None:
    """Register every schema with Hydra's ConfigStore, and the resolvers the presets use
    (``${rlsuite.gpus_per_job:}``: 1 on a machine with a GPU, else 0; ``${rlsuite.shorten:text}``).
    Idempotent."""
    from rlsuite.jobs import gpus_per_job

    OmegaConf.register_new_resolver("rlsuite.gpus_per_job", gpus_per_job, replace=True)
    OmegaConf.register_new_resolver("rlsuite.shorten", shorten, replace=True)
    from rlsuite.env_params import PARAMS_SCHEMAS, schema_name

    # Stored outside the ``agent``/``env`` groups (the YAML files extend them as
    # ``/ppo_schema@_here_``) so they are not listed as choices by ``--help`` or shell completion.
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    for name, node in {**AGENT_SCHEMAS, **ENV_SCHEMAS}.items():
        cs.store(name=name, node=node)
    for env, node in PARAMS_SCHEMAS.items():
        cs.store(name=schema_name(env), node=node)


register_configs()
