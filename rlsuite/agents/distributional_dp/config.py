"""Configs of the distributional-DP agents: the exact solver (``agent=distributional_dp``,
:mod:`.agent`) and DηN (``agent=deta_n``, :mod:`.deta_n`). Light on purpose: :mod:`rlsuite.config`
reads these schemas without loading the agents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from rlsuite import validation as rules

METHODS = ("value_iteration", "policy_iteration")
"""Solvers of :func:`rlsuite.agents.distributional_dp.solver.solve`."""
OBJECTIVES = ("mean", "cvar", "mean_cvar", "threshold", "target")
"""Objectives a config may name (:func:`rlsuite.agents.distributional_dp.agent.make_objective`)."""


@dataclass
class DistributionalDPConfig:
    """Exact stock-augmented distributional DP (Avila Pires et al. 2025, section 4)."""

    name: str = "distributional_dp"
    """Registry name of the agent."""
    objective: str = "cvar"
    """One of mean, cvar, mean_cvar, threshold (P(c0 + G >= target)), target (E -|c0 + G - target|)."""
    level: float = 0.1
    """CVaR tail mass (cvar, mean_cvar)."""
    mean_weight: float = 0.5
    """Weight m of the mean in m E + (1 - m) CVaR (mean_cvar)."""
    target: float = 0.0
    """Return target (target) or threshold (threshold)."""
    initial_stock: float = 0.0
    """The user's c0: the objective is of c0 + G."""
    method: str = "value_iteration"
    """value_iteration or policy_iteration."""
    gamma: float | None = None
    """Discount; None takes the env's MDP's (env.gamma)."""
    stock_resolution: float | None = None
    """Snap stocks to this lattice when exact enumeration is too large (approximate)."""
    num_stocks: int = 201
    """Stock grid size of the discounted solver (MDPs without a time limit)."""
    num_atoms: int = 101
    """Return atoms of the discounted solver."""
    rollout_episodes: int = 10_000
    """Episodes of the stock-augmented policy for the empirical objective (one per env copy)."""

    CHECKS: ClassVar[rules.Checks] = {
        "objective": rules.choice(*OBJECTIVES), "level": rules.UNIT_OPEN_LOW, "mean_weight": rules.UNIT,
        "target": rules.FINITE, "initial_stock": rules.FINITE, "method": rules.choice(*METHODS),
        "gamma": rules.optional(rules.UNIT), "stock_resolution": rules.optional(rules.POSITIVE),
        "num_stocks": rules.integer(2), "num_atoms": rules.integer(2),
        "rollout_episodes": rules.POSITIVE_INT,
    }

    def __post_init__(self) -> None:
        rules.validate(self)


@dataclass
class DetaNConfig:
    """DηN hyperparameters (defaults: a small-gridworld setting between the Stoix fork's and
    RIGOR's values, ``docs/distributional_dp.md``, "DηN"; the paper's own are unknown)."""

    name: str = "deta_n"
    """Registry name of the agent."""
    objective: str = "target"
    """mean, cvar, mean_cvar, threshold or target (as agent=distributional_dp)."""
    level: float = 0.25
    """CVaR tail mass (cvar, mean_cvar)."""
    mean_weight: float = 0.5
    """Weight of the mean (mean_cvar)."""
    target: float = 4.0
    """Return target (target) or threshold (threshold)."""
    initial_stock: float = 0.0
    """The user's c0."""
    gamma: float = 1.0
    """Discount of the return and of the stock recursion."""
    stock_low: float = -10.0
    """Lower end of the training initial-stock range."""
    stock_high: float = 2.0
    """Upper end of the training initial-stock range."""
    stock_scale: float = 10.0
    """The network reads c / stock_scale."""
    include_time: bool = True
    """Give the network the step count (finite-horizon optimal policies depend on it)."""
    time_one_hot: bool = False
    """Also feed the step count one-hot (``max_episode_steps + 1`` inputs; needs
    ``include_time`` and a time limit), besides ``t / max_episode_steps``: finite-horizon
    policies switch at particular steps, which a ReLU network reads more easily from a one-hot
    code than from one scalar (``results/distributional_dp.md``)."""
    representation: str = "quantile"
    """``quantile`` (QR-DQN's ``N`` quantile locations, quantile Huber loss) or ``categorical``
    (C51-style probabilities on ``n_atoms`` fixed atoms evenly spaced on ``[atoms_low,
    atoms_high]``, Cramer-projected targets, cross-entropy loss). See :class:`QuantileHead` and
    :class:`CategoricalHead`. On the stock grids at 40k steps the categorical head returned the
    target 5 exactly where quantiles missed it by 1, but deployed worse CVaR policies on the
    stochastic grid (the ablation of ``results/distributional_dp.md``)."""
    n_quantiles: int = 50
    """Quantiles per action (RIGOR: 50), representation = quantile."""
    kappa: float = 1.0
    """Huber threshold of the quantile loss."""
    n_atoms: int = 51
    """Atoms per action, representation = categorical."""
    atoms_low: float = -20.0
    """Lowest return atom (returns below land on it), representation = categorical."""
    atoms_high: float = 20.0
    """Highest return atom, representation = categorical."""
    hidden_sizes: list[int] = field(default_factory=lambda: [128, 128])
    """Hidden widths of the ReLU quantile network."""
    learning_rate: float = 5e-4
    """Adam step size."""
    batch_size: int = 128
    """Transitions per gradient step."""
    buffer_size: int = 100_000
    """Replay capacity."""
    learning_starts: int = 2000
    """Env steps of uniform random actions before learning."""
    num_steps: int = 4
    """Steps per env copy per iteration."""
    utd: float = 0.25
    """Gradient steps per env step."""
    tau: float = 0.01
    """Polyak rate of the target network, applied every gradient step (Stoix fork)."""
    exploration_fraction: float = 0.5
    """Fraction of training over which epsilon decays (RIGOR: 0.5)."""
    exploration_initial_eps: float = 1.0
    """Initial epsilon."""
    exploration_final_eps: float = 0.05
    """Final epsilon."""
    max_grad_norm: float | None = 10.0
    """Global gradient-norm clip."""
    fast_path: bool = True
    """Adam over flat parameter blocks, one fused call per step (QR-DQN's
    :func:`rlsuite.learners.qrdqn.quantile_optimizer`), and with the quantile head the gradient
    written out in closed form (:mod:`rlsuite.agents.distributional_dp.deta_n_fast`); False:
    autograd and ``torch.optim.Adam`` per tensor."""
    stock_grid: int = 241
    """Candidate initial stocks scored for RU deployment (cvar, mean_cvar), evenly spaced on
    ``[stock_low, stock_high]`` (unless ``stock_grid_step`` is set)."""
    stock_grid_step: float = 0.0
    """If > 0, the RU candidates are the multiples of this step in ``[stock_low, stock_high]``
    instead: RU's optimal ``b*`` is an atom of the optimal return (a quantile of it), so
    when every return lies on a lattice (integer rewards, ``gamma = 1``) only lattice stocks can
    be optimal, and a stock between two lattice points deploys a worse policy."""
    deploy_episodes: int = 0
    """RU candidate scoring (cvar, mean_cvar): 0 reads ``E f(x + G)`` off the network at the
    start states; > 0 estimates it from that many greedy episodes deployed at each candidate
    (see :meth:`DetaN.choose_stock`)."""
    deploy_shortlist: int = 0
    """With ``deploy_episodes > 0``: score by episodes only the ``deploy_shortlist`` candidates
    that the network's reading ranks best (0: every candidate)."""
    deploy_snapshots: int = 0
    """With ``deploy_episodes > 0``: also keep the online network's weights every
    ``snapshot_interval`` env steps (the last ``deploy_snapshots`` of them; the final weights are
    always one), and let the deployment choose the network as well as the stock: every snapshot's
    own shortlist is scored by episodes and the best (snapshot, stock) pair is deployed (see
    :meth:`DetaN.choose_stock`). 0: deploy the final network."""
    snapshot_interval: int = 10_000
    """Env steps between two kept snapshots (``deploy_snapshots > 0``)."""
    relabel_fraction: float = 0.0
    """Fraction of each sampled batch whose stock is relabelled (see :func:`relabel_stocks`)."""
    relabel_low: float | None = None
    """Lower end of the relabelled stocks (``gamma^t``-scaled); None: ``stock_low``."""
    relabel_high: float | None = None
    """Upper end of the relabelled stocks; None: ``stock_high``."""
    rollout_episodes: int = 10_000
    """Evaluation episodes in final_metrics (one per copy)."""
    report_levels: list[float] = field(default_factory=list)
    """objective = cvar on a tabular env: final_metrics also deploys the network for each of
    these CVaR levels by every RU deployment and scores each exactly and by ``rollout_episodes``
    episodes (:func:`rlsuite.agents.distributional_dp.analysis.deta_n_report`)."""
    report_targets: list[float] = field(default_factory=list)
    """objective = target on a tabular env: final_metrics also scores the network deployed at
    ``initial_stock - target`` for each of these return targets (as ``report_levels``)."""

    RESUMABLE: ClassVar[tuple[str, ...]] = ("learning_rate", "rollout_episodes")
    """Keys a resume may change (learning rates, evaluation settings: ``rlsuite.identity``)."""
    CHECKS: ClassVar[rules.Checks] = {
        "objective": rules.choice(*OBJECTIVES), "level": rules.UNIT_OPEN_LOW, "mean_weight": rules.UNIT,
        "target": rules.FINITE, "initial_stock": rules.FINITE, "gamma": rules.UNIT,
        "stock_low": rules.FINITE, "stock_high": rules.FINITE, "stock_scale": rules.POSITIVE,
        "include_time": rules.FLAG, "time_one_hot": rules.FLAG,
        "representation": rules.choice("quantile", "categorical"), "n_quantiles": rules.POSITIVE_INT,
        "kappa": rules.NONNEG, "n_atoms": rules.integer(2), "atoms_low": rules.FINITE,
        "atoms_high": rules.FINITE, "hidden_sizes": rules.SIZES, "learning_rate": rules.POSITIVE,
        "batch_size": rules.POSITIVE_INT, "buffer_size": rules.POSITIVE_INT,
        "learning_starts": rules.NONNEG_INT, "num_steps": rules.POSITIVE_INT, "utd": rules.POSITIVE,
        "tau": rules.UNIT_OPEN_LOW, "exploration_fraction": rules.UNIT,
        "exploration_initial_eps": rules.UNIT, "exploration_final_eps": rules.UNIT,
        "max_grad_norm": rules.optional(rules.POSITIVE), "fast_path": rules.FLAG,
        "stock_grid": rules.POSITIVE_INT,
        "stock_grid_step": rules.NONNEG, "deploy_episodes": rules.NONNEG_INT,
        "deploy_shortlist": rules.NONNEG_INT, "deploy_snapshots": rules.NONNEG_INT,
        "snapshot_interval": rules.POSITIVE_INT, "relabel_fraction": rules.UNIT,
        "relabel_low": rules.optional(rules.FINITE), "relabel_high": rules.optional(rules.FINITE),
        "rollout_episodes": rules.POSITIVE_INT, "report_levels": rules.list_of(rules.UNIT_OPEN_LOW),
        "report_targets": rules.list_of(rules.FINITE),
    }

    def __post_init__(self) -> None:
        rules.validate(self)

    def check_combinations(self) -> None:
        """Cross-field rules (run by :func:`rlsuite.validation.validate`)."""
        if self.stock_low > self.stock_high:
            raise rules.ConfigError("stock_low", self.stock_low,
                                f"must be at most stock_high = {self.stock_high}")
        if self.atoms_low >= self.atoms_high:
            raise rules.ConfigError("atoms_low", self.atoms_low,
                                f"must be below atoms_high = {self.atoms_high}")
