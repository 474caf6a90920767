"""Hyperparameters of the ECRM agent (risk-averse policy gradient, Yu and Ying arXiv 2301.10932).

The paper's step sizes, batch sizes and coefficients are unknown (``docs/ecrm.md``,
"Sources and what could be read"); the defaults here are ours, chosen on stochastic CliffWalking.
Choices the paper leaves open are switches: ``share_first_policy`` (separate first-step policy or not),
``condition_on_prev`` (the actor also sees the previous stage's threshold, the class in which the
exact optimum lies), ``eta_weighting`` (how the threshold step is weighted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rlsuite import validation as rules
from rlsuite.learners.npg import NPGConfig

VARIANTS = ("reinforce", "actor_critic", "npg")
PARAMETERIZATIONS = ("softmax", "direct", "neural")
ETA_WEIGHTINGS = ("uniform", "objective")
NPG_FORMS = ("auto", "closed_form", "trpo")
ETA_DECAYS = ("iteration", "visits")


@dataclass
class ECRMConfig:
    """ECRM agent settings (rewards convention: maximize the ECRM of rewards)."""

    name: str = "ecrm"
    """Registry name of the agent."""
    variant: str = "reinforce"
    """Policy update: ``reinforce`` (score function, Monte-Carlo reward-to-go), ``actor_critic``
    (a SARSA critic of the risk-adjusted stage rewards), ``npg`` (the shared natural-gradient /
    trust-region step of ``rlsuite.learners.npg`` on the REINFORCE advantages)."""
    parameterization: str = "softmax"
    """``softmax`` (tabular logits), ``direct`` (tabular probabilities, projected onto the simplex)
    or ``neural`` (MLPs; any engine env: softmax actors for discrete actions, Gaussian actors for
    Box actions)."""
    risk_weight: float = 0.5
    """lambda in [0, 1]: weight of CVaR in each stage's mean-CVaR."""
    alpha: float = 0.1
    """CVaR tail mass in (0, 1]; 1 gives the mean."""
    gamma: float = 1.0
    """Discount (episodic tasks with a time limit may use 1)."""
    chunk_steps: int = 25
    """Steps collected per engine call while waiting for every copy's episode to end (one host
    sync per chunk)."""
    max_episode_steps: int = 1000
    """Hard cap on an episode's steps inside the agent (the env's own limit normally ends it
    earlier); an episode still running here is cut as if truncated."""
    policy_lr: float = 0.1
    """Actor step size (Adam for softmax and neural, plain gradient ascent for direct)."""
    eta_lr: float = 0.5
    """Threshold step size (faster time scale than the actor): an SGD step on tables, Adam's rate
    for the network of a non-tabular env (use ~1e-2 there, see conf/experiment/gusty_ledge_ecrm)."""
    eta_lr_decay: float = 0.5
    """The tabular threshold step at iteration n is ``eta_lr / (1 + n)^eta_lr_decay``: with a
    constant step a quantile-regression iterate keeps oscillating around an atom of a discrete
    reward (and sitting above the atom costs ``1 / alpha - 1`` times more than below); 0 keeps it
    constant. Decays slower than 1/n (stochastic-approximation conditions)."""
    eta_decay_by: str = "iteration"
    """Tabular thresholds: ``n`` in the step's decay counts ``iteration``s, or a cell's own
    ``visits`` (iterations whose batch updated it; the usual per-component stochastic-
    approximation schedule: a cell the policy stopped visiting keeps a step size that can still
    track its quantile when it is visited again, e.g. by exploring starts)."""
    eta_updates: int = 1
    """Threshold steps per iteration, on the same batch."""
    eta_weighting: str = "uniform"
    """``uniform``: the per-sample quantile-regression step ``alpha - 1{R' < eta}`` averaged per
    (s, a) (tabular) or per sample (neural); ``objective``: the sampled gradient of J itself,
    weighted by ``gamma^t lam / alpha`` (``docs/ecrm.md``, "Gradients"). Both have the VaR as fixed point."""
    critic_lr: float = 0.5
    """Critic step size (actor-critic; tables: fraction of the TD error per iteration; networks:
    Adam's rate)."""
    ac_natural: bool = False
    """Actor-critic, tabular softmax: instead of the sampled-advantage Adam step, take the
    closed-form natural step (``npg_form``'s, with ``npg_step_size``, ``ent_coef``, ``npg.max_kl``)
    on ``Q(s, a) = E[stage signal | s, a] + critic(s, a)``: a natural actor-critic whose pair
    value is the SARSA critic (the NPG variant uses Monte-Carlo tables instead)."""
    critic_updates: int = 4
    """Critic steps per iteration (actor-critic)."""
    baseline: bool = True
    """Subtract a learned baseline b(first, s) (REINFORCE, NPG); never depends on a_t."""
    baseline_lr: float = 0.2
    """Baseline step size (tables: fraction of the error per iteration; networks: Adam's rate)."""
    ent_coef: float = 0.0
    """Entropy regularization tau: adds ``-tau log pi(a_t | s_t)`` to every stage's reward
    (entropy-regularized NPG, Cen et al. 2022); 0 for none."""
    log_barrier: float = 0.0
    """Log-barrier regularizer kappa of the softmax PG analysis (Agarwal et al. 2021 sec. 5.2;
    the paper's setting 2): adds ``kappa / (S A) sum log pi`` of each table to the actor's
    objective (``objective.log_barrier``), which keeps every probability bounded away from 0 at
    its stationary points. Tabular softmax, REINFORCE or sampled actor-critic steps only."""
    direct_min_prob: float = 0.01
    """Direct parameterization: probabilities are projected onto {pi >= this} (exploration)."""
    share_first_policy: bool = False
    """Use the later-stage policy at the first step too (default: separate, as in the paper)."""
    condition_on_prev: bool = False
    """The later-stage actor also sees eta(s_{t-1}, a_{t-1}) (neural only)."""
    discount_weighting: bool = True
    """Weight step t's score by gamma^t (the exact gradient of the discounted objective)."""
    npg_form: str = "auto"
    """NPG update: ``closed_form`` (tabular softmax: the exact natural gradient of a softmax table,
    ``theta(s, .) <- (1 - step tau) theta(s, .) + step Q_tau(s, .)`` for every state with an
    estimate, Cen et al.'s entropy-regularized NPG with ``tau = ent_coef``, the form the paper's
    global convergence is proved for; ``Q_tau`` are Monte-Carlo tables of the risk-adjusted
    reward-to-go, one per stage), ``trpo`` (the shared trust-region step of
    ``rlsuite.learners.npg`` on the sampled REINFORCE advantages), ``auto`` (closed form for
    softmax tables, trpo for networks)."""
    npg_step_size: float = 1.0
    """Closed-form NPG: the step on the logits (Cen et al.'s ``eta / (1 - gamma)``); ``step *
    ent_coef`` must lie in [0, 1] (1: soft policy iteration)."""
    npg_q_lr: float = 0.5
    """Closed-form NPG: each visited cell's Q table moves this fraction towards the batch's mean
    reward-to-go there (1: the batch estimate alone); a never visited cell has no estimate and
    gets advantage 0."""
    explore_starts: int = 0
    """Closed-form NPG and actor-critic (tabular): this many extra episodes per iteration start
    at a uniformly random reachable state with a uniformly random first action and go on with
    the later-stage policy (exploring starts: the restart distribution nu of the sample-based NPG
    analysis, Agarwal et al. 2021 sec. 6). They train the Q tables, the critic and the
    thresholds only, never the actor's sampled step or the logged metrics; their steps count in
    ``global_step``. 0: none."""
    npg: NPGConfig = field(default_factory=lambda: NPGConfig(damping=1e-3))
    """The natural steps' settings (:class:`rlsuite.learners.npg.NPGConfig`). ``max_kl``: the
    trust-region radius of NPG (both forms) and of the natural actor-critic (mean KL over the
    batch's states; the closed form uses its quadratic model). ``damping`` (default 1e-3, not
    TRPO's 0.1): a tabular Fisher block is the state's visit frequency times ``diag(pi) - pi
    pi^T`` (~1/S), so 0.1 would swamp it and turn the natural step into a tiny plain-gradient step
    (measured on CliffWalking: no progress in 1.5M steps). The CG and line-search fields apply to
    the TRPO form."""
    init_log_std: float = -0.5
    """Neural actors on a Box action space (Gaussian): initial log standard deviation."""
    hidden_sizes: list[int] = field(default_factory=lambda: [64, 64])
    """Hidden widths of the neural actor, threshold and critic MLPs."""
    failure_reward: float | None = None
    """A step whose reward is <= this counts as a failure (``ecrm/failure_rate`` = episodes
    with one); None: inferred for stochastic CliffWalking (-cliff_cost), else not logged."""
    warm_start_temperature: float = 0.0
    """Tabular softmax: start both actors at ``temperature * one_hot(a*)`` with ``a*`` the
    risk-neutral optimal action (value iteration on the env's MDP over its horizon), i.e. fine-tune
    from the risk-neutral optimum; 0: uniform start."""
    exact_every: int = 10
    """Tabular MDPs with a horizon: log the exact ECRM of the current policy every this many
    iterations (0: never)."""

    RESUMABLE: ClassVar[tuple[str, ...]] = ("policy_lr", "eta_lr", "critic_lr", "baseline_lr",
                                             "npg_step_size", "npg_q_lr", "exact_every")
    """Keys a resume may change (learning rates, evaluation settings: ``rlsuite.identity``)."""
    CHECKS: ClassVar[rules.Checks] = {
        "variant": rules.choice(*VARIANTS), "parameterization": rules.choice(*PARAMETERIZATIONS),
        "risk_weight": rules.UNIT, "alpha": rules.UNIT_OPEN_LOW, "gamma": rules.UNIT,
        "chunk_steps": rules.POSITIVE_INT, "max_episode_steps": rules.POSITIVE_INT,
        "policy_lr": rules.POSITIVE, "eta_lr": rules.POSITIVE, "eta_lr_decay": rules.NONNEG,
        "eta_decay_by": rules.choice(*ETA_DECAYS), "eta_updates": rules.POSITIVE_INT,
        "eta_weighting": rules.choice(*ETA_WEIGHTINGS), "critic_lr": rules.POSITIVE,
        "ac_natural": rules.FLAG, "critic_updates": rules.POSITIVE_INT, "baseline": rules.FLAG,
        "baseline_lr": rules.POSITIVE, "ent_coef": rules.NONNEG, "log_barrier": rules.NONNEG,
        "direct_min_prob": rules.real(0.0, 1.0, high_open=True), "share_first_policy": rules.FLAG,
        "condition_on_prev": rules.FLAG, "discount_weighting": rules.FLAG,
        "npg_form": rules.choice(*NPG_FORMS), "npg_step_size": rules.POSITIVE,
        "npg_q_lr": rules.UNIT_OPEN_LOW, "explore_starts": rules.NONNEG_INT, "npg": NPGConfig,
        "init_log_std": rules.FINITE, "hidden_sizes": rules.SIZES,
        "failure_reward": rules.optional(rules.FINITE), "warm_start_temperature": rules.FINITE,
        "exact_every": rules.NONNEG_INT,
    }

    def __post_init__(self) -> None:
        rules.nest(self, "npg", NPGConfig)
        rules.validate(self)

    def check_combinations(self) -> None:
        """Cross-field rules (run by :func:`rlsuite.validation.validate`)."""
        if self.variant == "npg" and self.parameterization == "direct":
            raise rules.ConfigError("parameterization", self.parameterization,
                                "must be 'softmax' or 'neural' with variant='npg'")
        if self.npg_form == "closed_form" and self.parameterization != "softmax":
            raise rules.ConfigError("npg_form", self.npg_form, "needs parameterization='softmax'")
        if not 0.0 <= self.npg_step_size * self.ent_coef <= 1.0:
            raise rules.ConfigError("npg_step_size", self.npg_step_size,
                                f"npg_step_size * ent_coef must lie in [0, 1] (ent_coef = {self.ent_coef})")
        if self.condition_on_prev and self.parameterization != "neural":
            raise rules.ConfigError("condition_on_prev", True, "needs parameterization='neural'")
        if self.ac_natural and (self.variant != "actor_critic" or self.parameterization != "softmax"):
            raise rules.ConfigError("ac_natural", True,
                                "needs variant='actor_critic' and parameterization='softmax'")
        natural = self.variant == "npg" or self.ac_natural
        if self.log_barrier and (self.parameterization != "softmax" or natural):
            raise rules.ConfigError("log_barrier", self.log_barrier,
                                "needs parameterization='softmax' with variant 'reinforce' or "
                                "'actor_critic' (not ac_natural): the natural steps ignore it")
        if self.warm_start_temperature and self.parameterization != "softmax":
            raise rules.ConfigError("warm_start_temperature", self.warm_start_temperature,
                                "needs parameterization='softmax'")
