"""The deep IWOCS agent's config (``agent=iwocs``, :mod:`.deep`), which nests the SAC of every
phase. Light on purpose: :mod:`rlsuite.config` reads this schema without loading the agent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rlsuite import validation as rules
from rlsuite.agents.iwocs.boxes import BOXES
from rlsuite.agents.iwocs.mujoco_sets import MUJOCO_BOXES
from rlsuite.learners.sac import SACConfig

BASELINES = ("nominal_sac", "dr_sac")
"""The paper's baselines a run may train instead of IWOCS (:attr:`IWOCSConfig.method`;
:mod:`rlsuite.agents.iwocs.baselines`)."""


def _default_sac() -> SACConfig:
    # The Pendulum preset of rlsuite's SAC (conf/experiment/pendulum_sac.yaml: 64-64 nets, lr 1e-3,
    # 1000 warm-up steps) with utd 1 instead of 0.5: at 8k steps, utd 0.5 left some experts and
    # DR fallbacks unlearned (an 8k-step SAC on the heavy corner (1.5, 1) scored -780 / -289 on
    # it for two seeds, utd 1: -280 / -291 / -274 for three; results/iwocs.md). The replay only
    # ever holds one phase's data.
    return SACConfig(hidden_sizes=[64, 64], learning_rate=1e-3, learning_starts=1000, utd=1.0,
                     buffer_size=100_000)


INITIAL_MODELS = ("nominal", "fallback_worst_case")
"""Choices of :attr:`IWOCSConfig.initial_model`."""


@dataclass
class IWOCSConfig:
    """Deep IWOCS hyperparameters (defaults: the scaled-down Pendulum recipe of ``docs/iwocs.md``)."""

    name: str = "iwocs"
    """Registry name of the agent."""
    method: str = "iwocs"
    """What the run trains: ``iwocs``, or one of the paper's baselines on the same SAC, box and
    evaluation grid for the run's ``total_steps`` (``nominal_sac``, ``dr_sac``;
    :mod:`rlsuite.agents.iwocs.baselines`). Only ``sac``, ``box``, ``dr_resample_steps`` and the
    ``eval_*`` fields matter to a baseline."""
    box: str = "pendulum_mass_length"
    """Uncertainty box: one of ``rlsuite.agents.iwocs.boxes.BOXES``, whose env must be the run's
    env, or a MuJoCo set of ``rlsuite.agents.iwocs.mujoco_sets.MUJOCO_BOXES`` (``halfcheetah_3``;
    ``mujoco`` extra), whose env the agent builds itself (:mod:`.mujoco_env`; the run's env is then
    not stepped, only its ``num_envs`` copies are taken)."""
    episode_steps: int | None = None
    """Time limit of a MuJoCo set's env (None: gymnasium's, 1000 steps, the paper's); unused by
    the classic boxes (their env's ``max_episode_steps`` applies)."""
    sac: SACConfig = field(default_factory=_default_sac)
    """The SAC of every phase (DR fallback and experts)."""
    q_hidden_sizes: list[int] = field(default_factory=lambda: [64, 64, 64])
    """Hidden widths of the unregularized Q heads (one layer more than SAC's critic, App. F)."""
    predictor_hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden widths of the next-state predictor."""
    heads_learning_rate: float = 1e-3
    """Adam step size of the extra heads (the paper's critic rate, Table 5)."""
    dr_steps: int = 8000
    """Env steps (summed over copies) of the domain-randomized fallback SAC."""
    dr_resample_steps: int = 200
    """Steps per copy between fresh draws of the copies' params during DR (one Pendulum episode)."""
    model_steps: int = 8000
    """Env steps of each expert's SAC on its static model."""
    num_iterations: int = 2
    """Experts to train, the initial model's included (the paper's K: 3 for 2-D boxes)."""
    initial_model: str = "nominal"
    """The first expert's model: ``nominal`` (the reference model, Algorithm 1's T_0) or
    ``fallback_worst_case`` (the DR fallback's searched worst case)."""
    search: str = "grid"
    """Worst-case search: ``grid`` (IWOCS*) or ``cmaes`` (IWOCS)."""
    search_points: int = 10
    """Grid points per dimension of the search grid (10: the evaluation grid, as IWOCS* in the
    paper searched the grid it was evaluated on)."""
    search_episodes: int = 4
    """Episodes (initial states) per searched model."""
    cmaes_generations: int = 4
    """CMA-ES generations (paper: 6)."""
    cmaes_population: int = 8
    """CMA-ES population (paper: 100)."""
    thresholds: list[float] = field(default_factory=lambda: [round(0.1 * k, 1) for k in range(1, 11)])
    """Trust thresholds rho tried for each new expert (App. G: 10 values in [0.1, 1])."""
    repeat_tol: float = 1e-6
    """Normalized distance under which a worst case counts as an already-solved model."""
    eval_points: int = 10
    """Evaluation grid points per dimension (paper: 10)."""
    eval_episodes: int = 10
    """Episodes per evaluation grid point."""

    RESUMABLE: ClassVar[tuple[str, ...]] = ("heads_learning_rate", "eval_points", "eval_episodes")
    """Keys a resume may change (learning rates, evaluation settings: ``rlsuite.identity``)."""
    CHECKS: ClassVar[rules.Checks] = {
        "method": rules.choice("iwocs", *BASELINES), "box": rules.choice(*BOXES, *MUJOCO_BOXES),
        "sac": SACConfig, "episode_steps": rules.optional(rules.POSITIVE_INT),
        "q_hidden_sizes": rules.SIZES,
        "predictor_hidden_sizes": rules.SIZES, "heads_learning_rate": rules.POSITIVE,
        "dr_steps": rules.POSITIVE_INT, "dr_resample_steps": rules.POSITIVE_INT,
        "model_steps": rules.POSITIVE_INT, "num_iterations": rules.NONNEG_INT,
        "initial_model": rules.choice(*INITIAL_MODELS), "search": rules.choice("grid", "cmaes"),
        "search_points": rules.POSITIVE_INT, "search_episodes": rules.POSITIVE_INT,
        "cmaes_generations": rules.POSITIVE_INT, "cmaes_population": rules.POSITIVE_INT,
        "thresholds": rules.list_of(rules.POSITIVE, non_empty=True), "repeat_tol": rules.NONNEG,
        "eval_points": rules.POSITIVE_INT, "eval_episodes": rules.POSITIVE_INT,
    }

    def __post_init__(self) -> None:
        rules.nest(self, "sac", SACConfig)
        rules.validate(self)
