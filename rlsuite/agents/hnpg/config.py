"""Configs of the combination-lock agents: HNPG (``agent=hnpg``, :mod:`.agent`) and the RLPD
baseline (``agent=rlpd``, :mod:`.rlpd`). Light on purpose: :mod:`rlsuite.config` reads these
schemas without loading the agents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rlsuite import validation as rules
from rlsuite.learners.npg import NPGConfig
from rlsuite.learners.sac import SACConfig


@dataclass
class HNPGConfig:
    """HNPG hyperparameters; defaults are the official code's (paper Table 1 final values)."""

    name: str = "hnpg"
    """Registry name of the agent."""
    hybrid: bool = True
    """Use offline data (HNPG); False is the paper's pure on-policy TRPO baseline."""
    batch_steps: int = 1000
    """On-policy env steps per iteration (rounded up to whole episodes: ceil(1000 / H) episodes)."""
    offline_episodes: int = 50_000
    """Episodes of epsilon-greedy optimal-policy data collected at construction."""
    offline_epsilon: float | None = None
    """Exploration rate of the offline behaviour policy; None is 1 / H (official)."""
    policy_hidden: int = 16
    """Hidden width of each step's policy MLP (two tanh layers)."""
    critic_hidden: int = 64
    """Hidden width of each step's Q MLP (two tanh layers)."""
    out_scale: float = 0.1
    """Initial scale of both output layers' weights (biases start at 0)."""
    init_log_std: float = 0.0
    """Initial log standard deviation of every policy."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critic fit."""
    critic_steps: int = 30
    """Full-batch Adam steps per step h per iteration (fresh optimizer each time)."""
    critic_on_weight: float = 1.0
    """lambda of paper Eq. 1: weight of the on-policy Monte-Carlo loss (offline TD loss has 1)."""
    critic_l2: float = 0.0
    """L2 penalty on the critic's last parameter tensor (the official code's effective l2)."""
    critic_scripted: bool = True
    """Run the critic's Adam loop through TorchScript (bit-identical to eager, less overhead)."""
    critic_sweep: str = "backward"
    """``backward``: fit h = H-1 .. 0, each target from the freshly fitted f_{h+1} (official);
    ``parallel``: all targets from the iteration-start critics, one batched fit (faster)."""
    gamma: float = 1.0
    """Discount (the official code forces 1 whatever --gamma says)."""
    gae_lambda: float = 0.97
    """GAE tau."""
    value_samples: int = 10
    """Policy samples averaged in V_h(s) = E_a f_h(s, a)."""
    offline_actor_actions: str = "policy"
    """Actions at offline states in the policy update: ``policy`` (re-sampled from the current
    policy, official) or ``dataset`` (the stored behaviour actions)."""
    npg: NPGConfig = field(default_factory=NPGConfig)
    """Each step's TRPO/NPG update (:class:`rlsuite.learners.npg.NPGConfig`): its defaults are the
    official code's, max KL 0.01, CG damping 0.1 and 10 iterations, line-search fractions 1, 1/2,
    ..., 1/2^9 accepted above 0.1 of the expected improvement."""
    npg_products: str = "closed_form"
    """How the NPG step gets the surrogate gradient and Fisher-vector products: ``closed_form``
    (Gaussian formulas, one forward- and one reverse-mode pass of the MLP per product, see
    :mod:`rlsuite.agents.hnpg.fisher`) or ``autograd`` (double backprop, as the official code)."""
    linesearch_kl_check: bool = True
    """Also require measured KL <= npg.max_kl in the line search (rlsuite's trpo_step rule; the
    official line search only checks the improvement)."""
    eval_episodes: int = 30
    """Stochastic-policy test episodes per iteration."""
    moving_average: int = 50
    """Iterations in the moving averages (and the stopping rule)."""
    stop_success: float = 0.5
    """Stop once the moving-average train success rate exceeds this."""
    stop_on_success: bool = True
    """Apply the stopping rule (False: spend the whole budget)."""
    dtype: str = "float64"
    """Policy dtype (the official code sets double as torch's default; the NPG's CG and line
    search are where precision matters)."""
    critic_dtype: str = "float32"
    """Critic dtype: float32 halves the critic fit's cost (the official code uses float64; the
    regression to returns in [0, 1] does not need it)."""

    RESUMABLE: ClassVar[tuple[str, ...]] = ("critic_lr",)
    """Keys a resume may change (learning rates, evaluation settings: ``rlsuite.identity``)."""
    CHECKS: ClassVar[rules.Checks] = {
        "hybrid": rules.FLAG, "batch_steps": rules.POSITIVE_INT, "offline_episodes": rules.POSITIVE_INT,
        "offline_epsilon": rules.optional(rules.UNIT), "policy_hidden": rules.POSITIVE_INT,
        "critic_hidden": rules.POSITIVE_INT, "out_scale": rules.POSITIVE, "init_log_std": rules.FINITE,
        "critic_lr": rules.POSITIVE, "critic_steps": rules.POSITIVE_INT,
        "critic_on_weight": rules.NONNEG, "critic_l2": rules.NONNEG, "critic_scripted": rules.FLAG,
        "critic_sweep": rules.choice("backward", "parallel"), "gamma": rules.UNIT,
        "gae_lambda": rules.UNIT, "value_samples": rules.POSITIVE_INT,
        "offline_actor_actions": rules.choice("policy", "dataset"), "npg": NPGConfig,
        "npg_products": rules.choice("closed_form", "autograd"),
        "linesearch_kl_check": rules.FLAG, "eval_episodes": rules.POSITIVE_INT,
        "moving_average": rules.POSITIVE_INT, "stop_success": rules.UNIT, "stop_on_success": rules.FLAG,
        "dtype": rules.DTYPE, "critic_dtype": rules.DTYPE,
    }

    def __post_init__(self) -> None:
        rules.nest(self, "npg", NPGConfig)
        rules.validate(self)


def _rlpd_sac() -> SACConfig:
    # HNPG paper Table 2: critic learning rate 1e-3, gamma 0.99, Polyak 0.005 per update (0.01 every
    # 2 steps there), initial temperature 0.1, minibatch 128 (half offline), 256x256 networks,
    # buffer 1e6, one update per online sample.
    return SACConfig(learning_rate=1e-3, gamma=0.99, tau=0.005, init_alpha=0.1, batch_size=128,
                     hidden_sizes=[256, 256], buffer_size=1_000_000, utd=1.0)


@dataclass
class RLPDConfig:
    """RLPD-on-SAC hyperparameters (defaults: HNPG paper Table 2)."""

    name: str = "rlpd"
    """Registry name of the agent."""
    num_envs: int = 8
    """Env copies stepped per iteration (each step is followed by ``sac.utd`` updates per sample)."""
    offline_episodes: int = 50_000
    """Episodes of epsilon-greedy optimal-policy data (as HNPG's)."""
    offline_epsilon: float | None = None
    """Exploration rate of the offline behaviour policy; None is 1 / H."""
    offline_fraction: float = 0.5
    """Share of each minibatch drawn from the offline data (RLPD's symmetric sampling)."""
    sac: SACConfig = field(default_factory=_rlpd_sac)
    """The shared SAC (:class:`rlsuite.learners.sac.SACConfig`): ``batch_size`` (half offline,
    half online), ``utd`` (gradient steps per online sample), ``gamma``, ``tau`` (per update),
    ``init_alpha``, ``hidden_sizes`` (actor and each critic, ReLU), ``buffer_size`` (online
    replay), ``learning_rate`` (the critics'; ``actor_lr`` and ``alpha_lr`` set the others').
    ``num_steps`` (rounds of one step and its updates per iteration; the per-iteration
    bookkeeping runs once per iteration, nothing else depends on it). ``learning_starts`` is not
    used: RLPD learns from the first online sample."""
    actor_lr: float = 1e-3
    """Adam step size of the actor."""
    alpha_lr: float = 1e-4
    """Adam step size of the temperature."""
    action_bound: float = 1.0
    """Actions are squashed into ``[-action_bound, action_bound]^A``."""
    success_window: int = 50_000
    """Online samples whose episodes form the moving-average success rate (HNPG: 50 x 1000)."""
    stop_success: float = 0.5
    """Stop once the moving-average success rate exceeds this."""
    stop_on_success: bool = True

    RESUMABLE: ClassVar[tuple[str, ...]] = ("actor_lr", "alpha_lr")
    """Keys a resume may change besides the nested ``sac.learning_rate`` (the critics'):
    learning rates (``rlsuite.identity``)."""
    CHECKS: ClassVar[rules.Checks] = {
        "num_envs": rules.POSITIVE_INT, "offline_episodes": rules.POSITIVE_INT,
        "offline_epsilon": rules.optional(rules.UNIT), "offline_fraction": rules.UNIT,
        "sac": SACConfig, "actor_lr": rules.POSITIVE, "alpha_lr": rules.POSITIVE,
        "action_bound": rules.POSITIVE, "success_window": rules.POSITIVE_INT,
        "stop_success": rules.UNIT, "stop_on_success": rules.FLAG,
    }

    def __post_init__(self) -> None:
        rules.nest(self, "sac", SACConfig)
        rules.validate(self)
