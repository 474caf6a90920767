"""VGDF's configuration: one dataclass, defaults from the paper (Xu et al. 2023, Table 2 / App. E.1)
and, where the paper is silent, from the official code's configs (Kavka1/VGDF ``config/vgdf/*.yaml``).

Every place the official code departs from the paper's text is a switch here whose default is the
paper's; the code's value is named in the field's docstring (``docs/vgdf.md`` lists them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rlsuite import validation as rules
from rlsuite.agents.vgdf import filter as vfilter
from rlsuite.envs.mujoco_shifts import TASKS
from rlsuite.learners.sac import SACConfig

VARIANTS = ("vgdf", "mix", "zero_shot", "target_only", "darc")
MUJOCO_TASKS = tuple(TASKS)
"""Names ``mujoco_task`` accepts (the task table imports without the ``mujoco`` extra)."""


def _vgdf_sac() -> SACConfig:
    # Paper Table 2 / App. E.1 and the official config/vgdf/*.yaml: batch 128 per domain, one update
    # per source step, lr 3e-4, gamma 0.99, Polyak 0.005, fixed temperature 0.2, 256-256 networks,
    # replay 1e6 per domain. learning_starts is 0 because VGDF does not use it (UNUSED_SAC).
    return SACConfig(buffer_size=1_000_000, learning_starts=0, utd=1.0, batch_size=128, gamma=0.99,
                     tau=0.005, learning_rate=3e-4, alpha=0.2, hidden_sizes=[256, 256])


MOVED_TO_SAC = ("buffer_size", "batch_size", "utd", "gamma", "tau", "learning_rate", "alpha",
                "hidden_sizes")
"""Fields VGDFConfig held itself until they moved under ``sac`` (issue 18): ``agent.learning_rate``
is now ``agent.sac.learning_rate`` (:func:`rlsuite.cli.moved_key` names the new key)."""

UNUSED_SAC = {"learning_starts": "agent.random_steps (uniform random actions in both domains; "
                                 "updates start once both buffers hold a batch)",
              "num_steps": "nothing: each iteration steps every source copy once"}
"""Fields of the nested :class:`SACConfig` VGDF does not read, and what plays their part; a value
other than the default is refused so that it is not silently ignored."""


@dataclass
class VGDFConfig:
    """VGDF and its baselines on one engine env whose source and target domains are two params."""

    name: str = "vgdf"
    """Registry name of the agent."""
    variant: str = "vgdf"
    """``vgdf`` (value-guided filter), ``mix`` (all source data, no filter), ``zero_shot`` (SAC on
    the source only, scored in the target), ``target_only`` (SAC on the target data only, the same
    target budget) or ``darc`` (DARC's classifier reward correction, Eysenbach et al. 2021)."""
    target_shift: str = "action_low=0"
    """Target-domain params that differ from the source's, as ``"name=value,name=value"``
    (:func:`rlsuite.envs.shifts.parse_shift`): physics (``m``, ``l``, ``g``, ``masspole``...),
    ``max_speed`` (clipped joint velocity) or the actuator (``action_gain``, ``action_low``,
    ``action_high``). Default: a one-sided (half-broken) motor. A string, not a dict, so that a
    command-line override replaces it (``agent.target_shift='m=1.5,g=12'``)."""
    mujoco_task: str | None = None
    """One of the paper's MuJoCo tasks (:data:`rlsuite.envs.mujoco_shifts.TASKS`, ``mujoco``
    extra): source and target are then two gymnasium envs
    (:meth:`rlsuite.agents.vgdf.domains.GymnasiumDomains.for_task`) with the run's ``num_envs``
    source copies and ``target_envs`` target copies, ``target_shift`` is not used, and the run's
    engine env is not stepped (it only carries ``num_envs`` and the evaluation episodes). None:
    the engine env's own source / target params (``target_shift``)."""
    gamma_ratio: int = 10
    """Gamma: source steps per target step (paper: 10, 1 M : 100 k)."""
    target_envs: int = 1
    """Target-domain env copies stepped together (source copies: the run's ``num_envs``)."""
    keep_fraction: float = 0.25
    """xi: fraction of each source batch kept after the warm-up (paper: 25 %)."""
    warmup_steps: int = 100_000
    """Source steps before filtering starts; every source sample is used before (paper: 1e5)."""
    sac: SACConfig = field(default_factory=_vgdf_sac)
    """The shared SAC (:class:`rlsuite.learners.sac.SACConfig`), paper defaults: ``batch_size``
    (transitions sampled from *each* domain per update: 128), ``utd`` (updates per source step: 1),
    ``gamma``, ``tau``, ``learning_rate`` (Adam step size of the actor, the exploration actor, the
    critics, the temperature and DARC's classifiers: 3e-4), ``alpha`` (paper / code: fixed 0.2;
    None tunes it from ``init_alpha`` to ``target_entropy``), ``hidden_sizes`` (actors and critics,
    ReLU: 256-256), ``buffer_size`` (replay capacity of *each* domain: 1e6) and ``fast_path`` (the
    update on SAC's compiled kernels, :mod:`rlsuite.learners.sac_fast`, when both domains' batches
    together hold ``sac_fast.COMPILE_MIN_ROWS`` rows or more: the same maths and draws, rounding
    may differ; False: the eager autograd update). ``learning_starts`` and ``num_steps`` are not
    used and must keep their defaults (:data:`UNUSED_SAC`)."""
    random_steps: int = 0
    """Source steps of uniform random actions (both domains) before the policies act (0: none).
    Unlike SAC's ``learning_starts``, updates do not wait for them (only for a batch per domain)."""
    policy_delay: int = 2
    """Critic updates per actor update (code ``training_delay``: 2)."""
    grad_clip: float = 100.0
    """Gradient-norm clip of the critics and actors (code ``ac_gradient_clip``: 100)."""
    optimistic_exploration: bool = True
    """Act in the source domain with the optimistic policy trained on max(Q1, Q2) (paper's pi^E)."""
    ensemble_size: int = 7
    """Members of the target dynamics ensemble (paper: 7)."""
    num_elites: int = 5
    """Members ranked best by hold-out MSE (MBPO's elites; code: 5)."""
    fve_members: str = "all"
    """Members forming the fictitious value ensemble: ``all`` (paper and code: the code ranks
    elites but does not use them) or ``elites``."""
    model_hidden: list[int] = field(default_factory=lambda: [200, 200, 200, 200])
    """Hidden widths of each dynamics member (Swish)."""
    model_learning_rate: float = 1e-3
    """Adam step size of the dynamics ensemble."""
    model_weight_decay: list[float] = field(default_factory=lambda: [2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4])
    """Per-layer L2 coefficients (one per linear layer, MBPO's values)."""
    learn_logvar_bounds: bool = True
    """Train the log-variance bounds (PETS / MBPO); the code freezes them (``requires_grad=False``)."""
    model_train_freq: int = 250
    """Source steps between retrainings of the ensemble on all target data."""
    model_batch_size: int = 256
    """Minibatch of the ensemble's training."""
    model_holdout_ratio: float = 0.1
    """Hold-out fraction for early stopping and elites."""
    model_patience: int = 5
    """Epochs without a 1 % hold-out improvement tolerated at step 0."""
    model_patience_decay: int = 150_000
    """Source steps after which the patience drops by one (code: 150 k)."""
    model_max_epochs: int | None = None
    """Cap on epochs per retraining (None: until the patience runs out, as the code)."""
    model_gate: str = "target"
    """When the first fit may happen: ``target`` (once the target buffer holds a model batch) or
    ``source`` (the code checks the *source* buffer's size, so it fits on very few target samples)."""
    fictitious_next_state: str = "sample"
    """Fictitious next states: ``sample`` (paper), ``mean`` or ``mean_plus_var`` (code)."""
    fictitious_reward: str = "source"
    """Reward in the fictitious targets: ``source`` (the transition's own, paper) or ``model``
    (the ensemble's prediction, code)."""
    fictitious_action: str = "sample"
    """Action at fictitious next states: ``sample`` from pi (paper) or its ``mean`` (code)."""
    filter_ranking: str = "fvp"
    """What the filter ranks source samples by before keeping the top ``keep_fraction``: ``fvp``
    (the fictitious value proximity, paper Eq. 7) or ``random`` (uniform random scores: a control
    that keeps the same fraction of each batch with no regard to value, to tell the ranking's
    effect from the subsampling's; not in the paper). The FVP and the diagnostics are computed
    either way, so ``vgdf/`` logs the same quantities."""
    src_loss_normalisation: str = "kept"
    """Source TD loss averaged over the ``kept`` samples (paper) or the whole ``batch`` (code)."""
    darc_hidden: list[int] = field(default_factory=lambda: [256, 256])
    """Hidden widths of DARC's two domain classifiers."""
    darc_noise: float = 1.0
    """Std of the Gaussian noise added to the classifiers' inputs (DARC's default)."""
    darc_warmup: int = 100_000
    """Source steps before DARC's reward correction is applied (DARC / VGDF App. E.1: 1e5)."""
    eval_every: int = 10_000
    """Source steps between greedy evaluations in both domains (paper: 10 k)."""
    eval_episodes: int = 5
    """Episodes per domain per evaluation (paper: 5)."""
    diagnostics: bool = True
    """Log the filter's diagnostics (:mod:`rlsuite.agents.vgdf.diagnostics`): a few extra forward
    passes per update, no generator draw, so the run's numbers are the same either way."""

    RESUMABLE: ClassVar[tuple[str, ...]] = ("model_learning_rate", "eval_every", "eval_episodes")
    """Keys a resume may change besides the nested ``sac.learning_rate`` (learning rates,
    evaluation settings: ``rlsuite.identity``)."""
    CHECKS: ClassVar[rules.Checks] = {
        "variant": rules.choice(*VARIANTS), "target_shift": rules.TEXT,
        "mujoco_task": rules.optional(rules.choice(*MUJOCO_TASKS)),
        "gamma_ratio": rules.POSITIVE_INT, "target_envs": rules.POSITIVE_INT,
        "keep_fraction": rules.UNIT_OPEN_LOW, "warmup_steps": rules.NONNEG_INT, "sac": SACConfig,
        "random_steps": rules.NONNEG_INT, "policy_delay": rules.POSITIVE_INT,
        "grad_clip": rules.POSITIVE, "optimistic_exploration": rules.FLAG,
        "ensemble_size": rules.POSITIVE_INT, "num_elites": rules.POSITIVE_INT,
        "fve_members": rules.choice("all", "elites"), "model_hidden": rules.SIZES,
        "model_learning_rate": rules.POSITIVE,
        "model_weight_decay": rules.list_of(rules.NONNEG, non_empty=True),
        "learn_logvar_bounds": rules.FLAG, "model_train_freq": rules.POSITIVE_INT,
        "model_batch_size": rules.POSITIVE_INT,
        "model_holdout_ratio": rules.real(0.0, 1.0, high_open=True),
        "model_patience": rules.POSITIVE_INT, "model_patience_decay": rules.POSITIVE_INT,
        "model_max_epochs": rules.optional(rules.POSITIVE_INT),
        "model_gate": rules.choice("target", "source"),
        "fictitious_next_state": rules.choice(*vfilter.NEXT_STATE_MODES),
        "fictitious_reward": rules.choice(*vfilter.REWARD_MODES),
        "fictitious_action": rules.choice(*vfilter.ACTION_MODES),
        "filter_ranking": rules.choice(*vfilter.RANKINGS),
        "src_loss_normalisation": rules.choice(*vfilter.NORMALISATIONS), "darc_hidden": rules.SIZES,
        "darc_noise": rules.NONNEG, "darc_warmup": rules.NONNEG_INT, "eval_every": rules.POSITIVE_INT,
        "eval_episodes": rules.POSITIVE_INT, "diagnostics": rules.FLAG,
    }

    def __post_init__(self) -> None:
        rules.nest(self, "sac", SACConfig)
        rules.validate(self)

    def check_combinations(self) -> None:
        """Cross-field rules (run by :func:`rlsuite.validation.validate`)."""
        default = _vgdf_sac()
        for key, instead in UNUSED_SAC.items():
            value = getattr(self.sac, key)
            if value != getattr(default, key):
                raise rules.ConfigError(f"sac.{key}", value,
                                        f"not used by VGDF (keep {getattr(default, key)}); "
                                        f"what plays its part: {instead}")
        if self.num_elites > self.ensemble_size:
            raise rules.ConfigError("num_elites", self.num_elites,
                                f"must be at most ensemble_size = {self.ensemble_size}")
