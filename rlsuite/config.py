"""Typed configuration: the schemas Hydra validates every composed config against.

Defaults live here, once, in dataclasses with a docstring per field; the YAML files in ``conf/``
only select and override. Each schema is registered in Hydra's ConfigStore, so a misspelt key or a
value of the wrong type fails when the config is composed, naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from rlsuite.learners.ppo import PPOConfig
from rlsuite.learners.qrdqn import QRDQNConfig
from rlsuite.learners.sac import SACConfig


@dataclass
class EnvConfig:
    """Which engine env to build and how (``rlsuite.envs.make(name, ...)``)."""

    name: str = MISSING
    """Registry name (``rlsuite.envs.names()``)."""
    params: dict[str, float] = field(default_factory=dict)
    """Per-copy physics overrides applied to every copy, e.g. ``{gravity: 12.0}``."""


@dataclass
class ClassicEnvConfig(EnvConfig):
    """Classic-control envs (CartPole, Pendulum, Acrobot)."""

    max_episode_steps: int | None = None
    """Time limit; None keeps the env's own (gymnasium's)."""
    compile: bool = False
    """Fuse the physics with torch.compile (worth it for large num_envs)."""
    dtype: str = "float32"
    """State dtype: float32 or float64."""


@dataclass
class TabularEnvConfig(EnvConfig):
    """Finite MDPs stepped in batches (``rlsuite.envs.tabular``)."""

    max_episode_steps: int | None = 100
    """Time limit (gymnasium's registration for the toy-text envs)."""
    gamma: float = 1.0
    """Discount stored in the MDP (used by the exact solvers)."""


@dataclass
class FrozenLakeEnvConfig(TabularEnvConfig):
    """gymnasium's FrozenLake as a TabularMDP (4x4 map; ``env=frozenlake8x8`` for 8x8)."""

    is_slippery: bool = True
    """Move in the intended direction with probability ``success_rate`` only."""
    success_rate: float = 1.0 / 3.0
    """Probability of the intended move on slippery ice."""


@dataclass
class CliffWalkingEnvConfig(TabularEnvConfig):
    """gymnasium's CliffWalking (no time limit registered there; 200 here so episodes end)."""

    max_episode_steps: int | None = 200
    is_slippery: bool = False
    """gymnasium's slippery variant."""


@dataclass
class TaxiEnvConfig(TabularEnvConfig):
    """gymnasium's Taxi-v4."""

    max_episode_steps: int | None = 200
    is_rainy: bool = False
    """gymnasium's rainy variant (moves succeed with ``rainy_probability``)."""
    rainy_probability: float = 0.8
    """Success probability of a move when rainy."""


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
    run_dir: str = "${hydra:runtime.output_dir}"
    """Where logs, config and checkpoints go (Hydra's output dir by default)."""
    resume: str | None = "auto"
    """``auto``: continue from ``run_dir``'s checkpoint if it has one (a requeued or relaunched
    sweep job; a run already completed there returns its recorded score); a run directory:
    continue from that run's latest checkpoint; ``null``: always start afresh."""
    threads: int = 1
    """CPU intra-op threads; 1 avoids 10-100x slowdowns on a shared machine (performance notes)."""
    checkpoint_every: int = 20
    """Iterations between checkpoints (one is always written at the end)."""
    eval_episodes: int = 64
    """Greedy evaluation episodes at the end of training (one per env copy)."""
    progress: bool = True
    """Show a progress bar with steps/s."""
    tensorboard: bool = True
    """Write TensorBoard event files (metrics.csv is always written)."""


ENV_SCHEMAS: dict[str, type[EnvConfig]] = {
    "classic_env_schema": ClassicEnvConfig,
    "frozenlake_env_schema": FrozenLakeEnvConfig,
    "cliffwalking_env_schema": CliffWalkingEnvConfig,
    "taxi_env_schema": TaxiEnvConfig,
    "random_mdp_env_schema": RandomMDPEnvConfig,
}
AGENT_SCHEMAS: dict[str, type] = {
    "ppo_schema": PPOConfig,
    "sac_schema": SACConfig,
    "qrdqn_schema": QRDQNConfig,
}


def register_configs() -> None:
    """Register every schema with Hydra's ConfigStore, and the resolvers the presets use
    (``${rlsuite.gpus_per_job:}``: 1 on a machine with a GPU, else 0). Idempotent."""
    from rlsuite.jobs import gpus_per_job

    OmegaConf.register_new_resolver("rlsuite.gpus_per_job", gpus_per_job, replace=True)
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=RunConfig)
    for name, node in AGENT_SCHEMAS.items():
        cs.store(group="agent", name=name, node=node)
    for name, node in ENV_SCHEMAS.items():
        cs.store(group="env", name=name, node=node)


register_configs()
