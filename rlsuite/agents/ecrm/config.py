"""Hyperparameters of the ECRM agent (risk-averse policy gradient, Yu and Ying arXiv 2301.10932).

The paper's step sizes, batch sizes and coefficients are unknown (``risk-sensitive.md`` 2.4-2.5,
tag [U]); the defaults here are ours, chosen on stochastic CliffWalking. Choices the notes mark
unknown are switches: ``share_first_policy`` (separate first-step policy or not),
``condition_on_prev`` (the actor also sees the previous stage's threshold, the class in which the
exact optimum lies), ``eta_weighting`` (how the threshold step is weighted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

VARIANTS = ("reinforce", "actor_critic", "npg")
PARAMETERIZATIONS = ("softmax", "direct", "neural")
ETA_WEIGHTINGS = ("uniform", "objective")


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
    or ``neural`` (MLPs; any env with discrete actions)."""
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
    eta_updates: int = 1
    """Threshold steps per iteration, on the same batch."""
    eta_weighting: str = "uniform"
    """``uniform``: the per-sample quantile-regression step ``alpha - 1{R' < eta}`` averaged per
    (s, a) (tabular) or per sample (neural); ``objective``: the sampled gradient of J itself,
    weighted by ``gamma^t lam / alpha`` (notes 2.3). Both have the VaR as fixed point."""
    critic_lr: float = 0.5
    """Critic step size (actor-critic; tables: fraction of the TD error per iteration; networks:
    Adam's rate)."""
    critic_updates: int = 4
    """Critic steps per iteration (actor-critic)."""
    baseline: bool = True
    """Subtract a learned baseline b(first, s) (REINFORCE, NPG); never depends on a_t."""
    baseline_lr: float = 0.2
    """Baseline step size (tables: fraction of the error per iteration; networks: Adam's rate)."""
    ent_coef: float = 0.0
    """Entropy regularization tau: adds ``-tau log pi(a_t | s_t)`` to every stage's reward
    (entropy-regularized NPG, notes 2.3); 0 for none."""
    log_barrier: float = 0.0
    """Log-barrier regularizer kappa of the softmax PG analysis: adds
    ``kappa / (S A) sum log pi`` to the objective (tabular softmax only)."""
    direct_min_prob: float = 0.01
    """Direct parameterization: probabilities are projected onto {pi >= this} (exploration)."""
    share_first_policy: bool = False
    """Use the later-stage policy at the first step too (default: separate, as in the paper)."""
    condition_on_prev: bool = False
    """The later-stage actor also sees eta(s_{t-1}, a_{t-1}) (neural only)."""
    discount_weighting: bool = True
    """Weight step t's score by gamma^t (the exact gradient of the discounted objective)."""
    max_kl: float = 0.01
    """NPG: trust-region radius (mean KL over the batch's states)."""
    npg_damping: float = 1e-3
    """NPG: Fisher damping. Small: a tabular Fisher block is the state's visit frequency times
    ``diag(pi) - pi pi^T`` (~1/S), so TRPO's usual 0.1 would swamp it and turn the natural step
    into a tiny plain-gradient step (measured on CliffWalking: no progress in 1.5M steps)."""
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

    def __post_init__(self) -> None:
        checks = (("variant", VARIANTS), ("parameterization", PARAMETERIZATIONS),
                  ("eta_weighting", ETA_WEIGHTINGS))
        for name, allowed in checks:
            if getattr(self, name) not in allowed:
                raise ValueError(f"ECRMConfig.{name} = {getattr(self, name)!r}; expected one of {allowed}")
        if not 0.0 <= self.risk_weight <= 1.0:
            raise ValueError(f"ECRMConfig.risk_weight = {self.risk_weight} must lie in [0, 1]")
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"ECRMConfig.alpha = {self.alpha} must lie in (0, 1]")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"ECRMConfig.gamma = {self.gamma} must lie in [0, 1]")
        if self.variant == "npg" and self.parameterization == "direct":
            raise ValueError("ECRMConfig: variant='npg' needs parameterization 'softmax' or 'neural'")
        if self.condition_on_prev and self.parameterization != "neural":
            raise ValueError("ECRMConfig.condition_on_prev needs parameterization='neural'")
        for name in ("chunk_steps", "max_episode_steps", "eta_updates", "critic_updates"):
            if getattr(self, name) < 1:
                raise ValueError(f"ECRMConfig.{name} = {getattr(self, name)} must be >= 1")
        if self.warm_start_temperature and self.parameterization != "softmax":
            raise ValueError("ECRMConfig.warm_start_temperature needs parameterization='softmax'")
        if not 0.0 <= self.direct_min_prob < 1.0:
            raise ValueError(f"ECRMConfig.direct_min_prob = {self.direct_min_prob} must lie in [0, 1)")
