"""DηN: QR-DQN with the stock as an input, greedy by the objective (Avila Pires et al.,
arXiv 2501.13028, section 6; reconstructed in ``docs/distributional_dp.md``, "DηN").

The network reads the stock-augmented observation of :class:`rlsuite.envs.stock.StockAugmentedEnv`
(one-hot state or flattened observation, the stock ``c`` scaled by ``stock_scale``, and with
``include_time`` the step count over the time limit, and with ``time_one_hot`` the step count
one-hot as well) and outputs ``N`` quantiles ``theta_i(s, c, a)`` per action, as
:class:`rlsuite.learners.qrdqn.QuantileNetwork` (``representation="categorical"``: ``N`` logits
of fixed atoms instead, :class:`CategoricalHead`). Then:

* acting: epsilon-greedy on ``score(a) = mean_i f(c + theta_i(s, c, a))`` (ties within 1e-6 broken
  by the higher mean, then the lowest index, as the exact solver);
* target of a transition ``(s, c, a, r, s', c' = (c + r) / gamma)``::

      a' = argmax_b mean_i f(c' + theta^-_i(s', c', b)),   y_j = r + gamma (1 - done) theta^-_j(s', c', a')

  regressed by the quantile Huber loss (:func:`rlsuite.learners.qrdqn.quantile_huber_loss`). The
  post-reward stock ``c'`` comes from the wrapper's ``final_obs``. With the time in the
  observation the time limit is part of the MDP, so ``done = terminated | truncated``;
* every episode starts from a stock drawn uniformly from ``[stock_low, stock_high]``, and a
  fraction ``relabel_fraction`` of every sampled batch gets new stocks from that range with the
  next stock recomputed (:func:`relabel_stocks`, RIGOR's "stock editing"), so one network serves
  every initial stock (return targets, RU candidates) from the same data;
* CVaR / mean-CVaR deployment (RU): score candidate initial stocks ``x``
  (:func:`stock_candidates`) by ``(c0 - x) + E f(x + G)``, read off the network at the start
  states (``mean_s0 max_a mean_i f(x + theta_i(s0, x, a))``, RIGOR's procedure,
  ``docs/distributional_dp.md``, "DηN") or estimated from greedy episodes (``deploy_episodes``, for the
  ``deploy_shortlist`` candidates the network ranks best), and deploy the best; with
  ``deploy_snapshots`` the same search by episodes also chooses among the network's weights
  kept at the last few ``snapshot_interval`` steps (this suite's addition, not the paper's:
  late in training the greedy policy at a stock flips between good and fragile variants). Since
  ``f = min(x, 0) / level`` ranks actions the same for every level, one network trained with any
  level serves all levels.

The loss defaults to the Huber threshold ``kappa = 1`` (QR-DQN's); the grid presets use the pure
quantile loss ``kappa = 0`` (the Stoix fork's): on the stochastic grid ``kappa = 1`` made the
network's lower tails optimistic (Huber "quantiles" lean towards the centre), and the RU search
picked stocks worth CVaR_0.1 of -1.8 to -2.2 (exact optimum 0); with ``kappa = 0`` it picked the
optimal stock (``results/distributional_dp.md``).

``objective="mean"`` is DηN greedy by the mean (QR-DQN with an ignored stock input). The
risk-neutral baseline of the results is the suite's own QR-DQN, :func:`risk_neutral_qrdqn`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from rlsuite import validation as rules
from rlsuite.agents.distributional_dp import objectives as obj_lib
from rlsuite.agents.distributional_dp.agent import make_objective
from rlsuite.agents.distributional_dp.categorical import cramer_projection
from rlsuite.agents.distributional_dp.config import DetaNConfig
from rlsuite.core import spaces
from rlsuite.core.env import BatchedEnv
from rlsuite.engine.interaction import Interaction, InteractionCounters
from rlsuite.envs.stock import StockAugmentedEnv
from rlsuite.envs.tabular import TabularEnv
from rlsuite.learners.buffers import ReplayBuffer, Transitions
from rlsuite.learners.nets import polyak_update
from rlsuite.learners.qrdqn import (
    QRDQN,
    QuantileAgentCheckpoint,
    QuantileNetwork,
    action_quantiles,
    clipped_step,
    quantile_huber_loss,
    quantile_midpoints,
    quantile_optimizer,
    replay_learning_loop,
    target_quantiles,
)
from rlsuite.training import TrainingHooks


def relabel_stocks(batch: Transitions, stock_col: int, gamma: float, low: float, high: float,
                   fraction: float, generator: torch.Generator, clip: Any,
                   time_col: int | None) -> Transitions:
    """Stock relabelling ("stock editing", third-party RIGOR; ``docs/distributional_dp.md``, "DηN"): the first
    ``round(fraction * N)`` transitions of the batch get the stock ``c~_t = gamma^-t u``,
    ``u ~ U[low, high]``, and the next stock ``c~_{t+1} = clip((c~_t + r) / gamma)``, the wrapper's
    recursion. Valid because neither the dynamics nor the rewards depend on the stock; it is the
    same as relabelling the episode's initial stock to ``gamma^t c~_t - sum_k gamma^k r_{k+1}``,
    so every stored transition trains the network at every stock of the range, not only at the
    stock the behaviour policy happened to carry. ``time_col`` (the raw step count column, if the
    observation has one) gives ``t``; without it ``gamma^-t`` is taken as 1."""
    n = int(round(fraction * batch.obs.shape[0]))
    if n <= 0:
        return batch
    u = low + (high - low) * torch.rand(n, generator=generator, device=batch.obs.device,
                                        dtype=batch.obs.dtype)
    if time_col is not None and gamma < 1.0:
        u = u * gamma ** -batch.obs[:n, time_col]
    obs, next_obs = batch.obs.clone(), batch.next_obs.clone()
    obs[:n, stock_col] = u
    next_obs[:n, stock_col] = clip((u + batch.reward[:n].to(u.dtype)) / gamma)
    return Transitions(obs=obs, action=batch.action, reward=batch.reward, next_obs=next_obs,
                       terminated=batch.terminated, truncated=batch.truncated, extras=batch.extras)


class StockQuantileNetwork(nn.Module):
    """QR-DQN's quantile network on the scaled stock-augmented observation (``[B, A, N]``
    outputs: quantile locations, or logits of a categorical head)."""

    def __init__(self, obs_dim: int, scale: torch.Tensor, n_actions: int, n_quantiles: int,
                 hidden: list[int], time_col: int | None = None, time_steps: int = 0) -> None:
        """``time_steps > 0``: the network also reads the raw step count in column ``time_col``
        one-hot over ``0 .. time_steps`` (see ``DetaNConfig.time_one_hot``)."""
        super().__init__()
        self.register_buffer("scale", scale.float())
        self.time_col, self.time_steps = time_col, time_steps
        self.body = QuantileNetwork(obs_dim + (time_steps + 1 if time_steps else 0), n_actions,
                                    n_quantiles, hidden)

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        """The MLP's input ``[B, in]``: the scaled observation (and the time one-hot). It has no
        parameters, so the fast gradient step (:class:`FastDetaNStep`) starts after it."""
        x = obs.float() * self.scale
        if self.time_steps:
            t = obs[:, self.time_col].round().long().clamp(0, self.time_steps)
            x = torch.cat([x, nn.functional.one_hot(t, self.time_steps + 1).to(x.dtype)], 1)
        return x

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Raw outputs ``[B, A, N]``."""
        return self.body(self.features(obs))


class QuantileHead:
    """Quantile representation (QR-DQN): the ``N`` outputs are equally likely return values
    ``theta_i``, regressed by the quantile Huber loss at the midpoints ``tau_hat``."""

    def __init__(self, n_quantiles: int, kappa: float, device: torch.device) -> None:
        self.size, self.kappa = n_quantiles, kappa
        self.tau_hat = quantile_midpoints(n_quantiles, device)

    def distribution(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(values, probs)`` of raw outputs ``[..., N]``; ``probs = None`` means uniform."""
        return out, None

    def loss(self, current: torch.Tensor, reward: torch.Tensor, done: torch.Tensor,
             next_out: torch.Tensor, gamma: float) -> torch.Tensor:
        """Quantile Huber loss of ``current [B, N]`` towards ``r + gamma (1 - done) theta'``."""
        goal = target_quantiles(reward, done, next_out, gamma)
        return quantile_huber_loss(current, goal, self.tau_hat, self.kappa)


class CategoricalHead:
    """Categorical representation (C51, Bellemare et al. 2017): the ``N`` outputs are logits of
    the probabilities of fixed atoms ``z_j`` evenly spaced on ``[low, high]``; the target
    ``law(r + gamma (1 - done) Z')`` is Cramer-projected onto the atoms
    (:func:`~rlsuite.agents.distributional_dp.categorical.cramer_projection`) and the loss is
    the cross-entropy. On a lattice (integer rewards, ``gamma = 1``, integer atoms covering the
    returns) the projection is exact, so the loss's fixed point is the true return distribution,
    while repeated quantile projections bias the tails that a CVaR search reads
    (:func:`~rlsuite.agents.distributional_dp.analysis.quantile_dp`)."""

    def __init__(self, n_atoms: int, low: float, high: float, device: torch.device) -> None:
        if n_atoms < 2 or not low < high:
            raise ValueError(f"DηN categorical head: need n_atoms >= 2 and atoms_low < atoms_high, "
                             f"got n_atoms = {n_atoms}, atoms_low = {low}, atoms_high = {high}")
        self.size = n_atoms
        self.atoms = torch.linspace(low, high, n_atoms, device=device)

    def distribution(self, out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(atoms broadcast to out, softmax(out))``."""
        return self.atoms.expand_as(out), out.softmax(-1)

    def loss(self, current: torch.Tensor, reward: torch.Tensor, done: torch.Tensor,
             next_out: torch.Tensor, gamma: float) -> torch.Tensor:
        """Cross-entropy of the logits ``current [B, N]`` against the projected target."""
        keep = (~done).to(self.atoms.dtype).unsqueeze(-1)
        shifted = reward.to(self.atoms.dtype).unsqueeze(-1) + gamma * keep * self.atoms
        goal = cramer_projection(self.atoms, shifted, next_out.softmax(-1))
        return -(goal * current.log_softmax(-1)).sum(-1).mean()


def make_head(config: DetaNConfig, device: torch.device) -> QuantileHead | CategoricalHead:
    """The return representation named by ``config.representation``."""
    if config.representation == "quantile":
        return QuantileHead(config.n_quantiles, config.kappa, device)
    if config.representation == "categorical":
        return CategoricalHead(config.n_atoms, config.atoms_low, config.atoms_high, device)
    raise ValueError(f"DηN: representation = {config.representation!r}; expected 'quantile' or "
                     "'categorical'")


def objective_scores(objective: obj_lib.Objective, stock: torch.Tensor, values: torch.Tensor,
                     probs: torch.Tensor | None = None) -> torch.Tensor:
    """``E f(c + Z)`` per action, ``sum_i p_i f(c + z_i)`` (``mean_i`` when ``probs`` is None,
    quantiles): ``[B, A]`` from stocks ``[B]`` and values (and probs) ``[B, A, N]``."""
    x = stock.view(-1, 1, 1).to(values.dtype) + values
    utility = objective.utility(x.unsqueeze(-1))
    return utility.mean(-1) if probs is None else (utility * probs.to(utility.dtype)).sum(-1)


def distribution_mean(values: torch.Tensor, probs: torch.Tensor | None) -> torch.Tensor:
    """``E Z`` per action: ``[B, A]`` from ``[B, A, N]``."""
    return values.mean(-1) if probs is None else (values * probs).sum(-1)


def greedy_by_objective(objective: obj_lib.Objective, stock: torch.Tensor, values: torch.Tensor,
                        probs: torch.Tensor | None = None, tol: float = 1e-6) -> torch.Tensor:
    """``argmax_a`` of :func:`objective_scores`, ties broken by the higher mean: ``[B]``."""
    score = objective_scores(objective, stock, values, probs)
    best = score.max(-1, keepdim=True).values
    tied = score >= best - tol * (1.0 + best.abs())
    return torch.where(tied, distribution_mean(values, probs), -torch.inf).argmax(-1)


@torch.no_grad()
def deta_n_bootstrap(target: Callable[[torch.Tensor], torch.Tensor], batch: Transitions,
                     objective: obj_lib.Objective, stock_col: int, head: QuantileHead | CategoricalHead,
                     time_in_obs: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The target side of the DηN loss (``target``: the target network, or a function computing
    its raw outputs ``[B, A, N]``): ``(the target's raw outputs [B, N] at its
    greedy-by-objective action at (s', c'), done [B])``, where ``done`` cuts the bootstrap
    (with the time in the observation a truncation too). Shared by the eager loss
    (:func:`deta_n_loss`) and the fast step (:class:`FastDetaNStep`)."""
    next_all = target(batch.next_obs)
    next_stock = batch.next_obs[:, stock_col]
    a_next = greedy_by_objective(objective, next_stock, *head.distribution(next_all))
    done = batch.terminated | batch.truncated if time_in_obs else batch.terminated
    return action_quantiles(next_all, a_next), done


def deta_n_loss(online: nn.Module, target: nn.Module, batch: Transitions, objective: obj_lib.Objective,
                stock_col: int, gamma: float, head: QuantileHead | CategoricalHead,
                time_in_obs: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The DηN loss on one batch: the target's greedy-by-objective action at ``(s', c')``."""
    next_out, done = deta_n_bootstrap(target, batch, objective, stock_col, head, time_in_obs)
    current = action_quantiles(online(batch.obs), batch.action)
    loss = head.loss(current, batch.reward, done, next_out, gamma)
    values, probs = head.distribution(current.detach())
    return loss, {"loss": loss.detach(), "q_mean": distribution_mean(values, probs).mean()}


class DetaN(QuantileAgentCheckpoint, InteractionCounters):
    """DηN on any engine env with a Discrete action space (see the module docstring)."""

    def __init__(self, config: DetaNConfig, env: BatchedEnv, params: Any, seed: int = 0) -> None:
        if not isinstance(env.action_space, spaces.Discrete):
            raise ValueError(f"DηN needs a Discrete action space, got {type(env.action_space).__name__}")
        rules.validate(config)  # again: a config may have been changed after construction
        if config.time_one_hot and not (config.include_time and env.max_episode_steps):
            raise ValueError("DηN: time_one_hot = True needs include_time = True and an env with a "
                             f"time limit (max_episode_steps = {env.max_episode_steps})")
        if config.deploy_snapshots < 0 or config.snapshot_interval <= 0:
            raise ValueError(f"DηN: deploy_snapshots = {config.deploy_snapshots} must be >= 0 and "
                             f"snapshot_interval = {config.snapshot_interval} > 0")
        if config.deploy_snapshots > 0 and config.deploy_episodes <= 0:
            raise ValueError(f"DηN: deploy_snapshots = {config.deploy_snapshots} needs "
                             f"deploy_episodes > 0 (got {config.deploy_episodes}): the networks' "
                             "own readings are biased differently, so only episodes can rank them")
        self.config, self.seed = config, seed
        self.objective = make_objective(config)  # type: ignore[arg-type]
        self.objective.check_gamma(config.gamma)
        self.base_env = env
        self.env = StockAugmentedEnv(env, config.gamma, (config.stock_low, config.stock_high),
                                     include_time=config.include_time)
        self.params = self.env.wrap_params(params)
        self.device = env.device
        self.stock_col = self.env.base_dim
        obs_dim = self.env.observation_space.shape[0]
        scale = torch.ones(obs_dim)
        scale[self.stock_col] = 1.0 / config.stock_scale
        if config.include_time:
            scale[self.stock_col + 1] = 1.0 / max(1, env.max_episode_steps or 1)
        torch.manual_seed(seed)
        n_actions = env.action_space.n
        self.head = make_head(config, self.device)
        time_steps = (env.max_episode_steps or 0) if config.include_time and config.time_one_hot else 0
        self.q_net = StockQuantileNetwork(obs_dim, scale, n_actions, self.head.size,
                                          config.hidden_sizes, self.stock_col + 1,
                                          time_steps).to(self.device)
        self.target_net = copy.deepcopy(self.q_net).requires_grad_(False)
        self.optimizer = quantile_optimizer(self.q_net, config.learning_rate,
                                            0.01 / config.batch_size, config.fast_path)
        self.buffer = ReplayBuffer.for_env(self.env, config.buffer_size)
        self.interaction = Interaction(self.env, self.params, seed)
        self.policy_generator = self.interaction.policy_generator
        self.exploration_rate = config.exploration_initial_eps
        self.num_updates = 0
        self._fast_step: Any = None
        """With ``fast_path``: the :class:`~rlsuite.agents.distributional_dp.deta_n_fast.FastDetaNStep`
        built at the first update, or False where it does not apply (eager step)."""
        self.deploy_stock: float | None = None
        self.snapshots: list[tuple[int, dict[str, torch.Tensor]]] = []
        """``(env step, online weights)`` kept for the deployment (``deploy_snapshots``)."""
        self.deployed_net: nn.Module | None = None
        """The snapshot network that :meth:`choose_stock` chose (None: ``q_net``); greedy acting
        uses it until the next :meth:`learn`."""
        self.deployed_step: int | None = None
        """The env step of the deployed network's weights."""

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """Greedy-by-objective actions on stock-augmented observations (epsilon-greedy unless
        ``deterministic``)."""
        net = self.q_net if self.deployed_net is None else self.deployed_net
        greedy = self._greedy(net, obs)
        if deterministic:
            return greedy
        explore = torch.rand(obs.shape[0], generator=self.policy_generator, device=self.device)
        return torch.where(explore < self.exploration_rate, self._random_action(obs), greedy)

    def _greedy(self, net: nn.Module, obs: torch.Tensor) -> torch.Tensor:
        """Greedy-by-objective actions of ``net`` on stock-augmented observations."""
        return greedy_by_objective(self.objective, obs[:, self.stock_col],
                                   *self.head.distribution(net(obs)))

    def _random_action(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.randint(self.env.action_space.n, (obs.shape[0],),  # type: ignore[union-attr]
                             generator=self.policy_generator, device=self.device)

    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> DetaN:
        """Train until ``total_steps`` env steps (continues from the counters): QR-DQN's loop
        (:func:`~rlsuite.learners.qrdqn.replay_learning_loop`) with :meth:`gradient_step` as its
        update and the snapshots kept after each iteration."""
        self.deployed_net = self.deployed_step = None  # acting and learning use q_net
        replay_learning_loop(self, total_steps, hooks, label="DηN", update=self.gradient_step,
                             after_iteration=self._after_iteration)
        if not self.snapshots or self.snapshots[-1][0] != self.global_step:
            self._keep_snapshot()  # the final weights are always a candidate
        self.deploy_stock = None
        return self

    def gradient_step(self, batch: Transitions) -> dict[str, torch.Tensor]:
        """One update on a sampled replay batch: relabel a ``relabel_fraction`` of its stocks
        (:func:`relabel_stocks`), the objective's distributional loss (:func:`deta_n_loss`), one
        Adam step with the gradient-norm clip, then the Polyak target update (every step,
        ``tau``). Returns the loss statistics."""
        cfg = self.config
        if cfg.relabel_fraction > 0:
            low = cfg.stock_low if cfg.relabel_low is None else cfg.relabel_low
            high = cfg.stock_high if cfg.relabel_high is None else cfg.relabel_high
            time_col = self.stock_col + 1 if cfg.include_time else None
            batch = relabel_stocks(batch, self.stock_col, cfg.gamma, low, high, cfg.relabel_fraction,
                                   self.policy_generator, self.env._clip, time_col)
        if cfg.fast_path and self._fast_step is None:
            from rlsuite.agents.distributional_dp import deta_n_fast  # imports this module

            applies = deta_n_fast.fast_step_applies(self.q_net, self.head, self.optimizer)
            self._fast_step = (deta_n_fast.FastDetaNStep(self.q_net, self.target_net, self.optimizer)
                               if applies else False)
        if self._fast_step:  # closed-form gradients, fused Adam (deta_n_fast)
            stats = self._fast_step.step(batch, self.objective, self.stock_col, cfg.gamma,
                                         self.head, cfg.include_time, cfg.max_grad_norm)
            polyak_update(self.q_net.parameters(), self.target_net.parameters(), cfg.tau)
            return stats
        loss, stats = deta_n_loss(self.q_net, self.target_net, batch, self.objective, self.stock_col,
                                  cfg.gamma, self.head, cfg.include_time)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clipped_step(self.optimizer, self.q_net, cfg.max_grad_norm)
        polyak_update(self.q_net.parameters(), self.target_net.parameters(), cfg.tau)
        return stats

    def _after_iteration(self, step_before: int) -> None:
        """Keep a snapshot when this iteration crossed a multiple of ``snapshot_interval``."""
        if self.global_step // self.config.snapshot_interval > step_before // self.config.snapshot_interval:
            self._keep_snapshot()

    def _keep_snapshot(self) -> None:
        """Keep the online weights at this step (the last ``deploy_snapshots``; none if 0)."""
        if self.config.deploy_snapshots > 0:
            weights = {k: v.detach().clone() for k, v in self.q_net.state_dict().items()}
            self.snapshots = [*self.snapshots, (self.global_step, weights)]
            self.snapshots = self.snapshots[-self.config.deploy_snapshots:]

    def state_dict(self) -> dict[str, Any]:
        """:meth:`QuantileAgentCheckpoint.state_dict` plus the kept snapshots."""
        out = super().state_dict()
        out["snapshots"] = {"steps": [step for step, _ in self.snapshots],
                            "weights": [copy.deepcopy(w) for _, w in self.snapshots]}
        return out

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (checkpoints without snapshots load too)."""
        super().load_state_dict(data)
        kept = data.get("snapshots", {"steps": [], "weights": []})
        self.snapshots = [(int(step), w) for step, w in zip(kept["steps"], kept["weights"],
                                                             strict=True)]
        self.deployed_net = self.deployed_step = None

    # -- deployment and evaluation ------------------------------------------------------------
    @torch.no_grad()
    def choose_stock(self, generator: torch.Generator, starts: int = 256,
                     objective: obj_lib.Objective | None = None) -> float:
        """The initial stock to deploy: ``dp_stock(c0)``, or for RU objectives the best
        candidate (:func:`stock_candidates`) scored at sampled start states; with
        ``deploy_snapshots`` also the network to deploy (:attr:`deployed_net`).

        A candidate ``x`` scores the Rockafellar-Uryasev objective ``(c0 - x) + E f(x + G)``
        (``docs/distributional_dp.md``, "DηN"), with ``E f(x + G)`` read off the network,
        ``mean_s0 max_a mean_i f(x + theta_i(s0, x, a))`` (``deploy_episodes = 0``), or estimated
        from ``deploy_episodes`` greedy episodes deployed at ``x``. The network's estimate carries
        the quantile representation's bias: on the stochastic grid even the exact fixed point of
        the quantile-projected DP with 100 quantiles predicts CVaR_0.25 = 0.16 at the optimal
        stock, whose policy has 1.01, and its RU search picks a stock worth 0.86
        (:func:`~rlsuite.agents.distributional_dp.analysis.quantile_dp_report`,
        ``results/distributional_dp.md``). Monte-Carlo scores have no such bias but need many
        episodes per candidate. (Scoring a candidate by the objective of the predicted
        distribution deployed there instead of RU's bound picked worse stocks too.)

        With ``deploy_snapshots > 0`` every kept snapshot proposes its own shortlist, all
        (snapshot, stock) pairs are scored by episodes, and the best pair wins (ties: the newest
        snapshot, then the lowest stock); for objectives without an outer search each snapshot is
        scored at ``dp_stock(c0)``. Late in training the greedy policy at a given stock can
        flip between a good and a fragile variant from one snapshot to the next (on the
        stochastic grid, seed 1: CVaR_0.25 of 1.009 with the 80k-step weights, 0.793 at best
        with the final ones), and choosing by episodes keeps a good one
        (``results/distributional_dp.md``). Every candidate is
        scored on the same random stream (common random numbers), so their differences carry
        less noise than their values.

        ``objective`` (default: the agent's) may be another level's CVaR: the greedy policy of
        ``min(x, 0) / level`` does not depend on the level, only this choice does."""
        cfg = self.config
        objective = objective or self.objective
        # A new choice replaces the deployment (network and cached stock) as a whole.
        self.deployed_net = self.deployed_step = self.deploy_stock = None
        c0 = torch.tensor([cfg.initial_stock], dtype=torch.float64)
        by_episodes = cfg.deploy_episodes > 0
        use_snapshots = by_episodes and bool(self.snapshots) and cfg.deploy_snapshots > 0
        if not objective.outer_search and not use_snapshots:
            return float(objective.dp_stock(c0)[0])
        stream = int(torch.randint(1 << 62, (1,), generator=generator, device=generator.device))
        best: tuple[float, float, int, nn.Module] | None = None
        for step, net in self._deployment_networks(use_snapshots):
            if objective.outer_search:
                grid = stock_candidates(cfg)
                score = self._network_ru_scores(objective, grid, starts, generator, net)
                if by_episodes and 0 < cfg.deploy_shortlist < grid.shape[0]:
                    grid = grid[score.topk(cfg.deploy_shortlist).indices.sort().values]
            else:
                grid = objective.dp_stock(c0)
            if by_episodes:
                score = self._rollout_scores(objective, grid, cfg.deploy_episodes, stream, net)
            i = int(score.argmax())
            if best is None or float(score[i]) > best[0]:
                best = (float(score[i]), float(grid[i]), step, net)
        assert best is not None
        _, stock, self.deployed_step, net = best
        self.deployed_net = None if net is self.q_net else net
        return stock

    def _deployment_networks(self, use_snapshots: bool) -> list[tuple[int, nn.Module]]:
        """``(env step, network)`` candidates for the deployment, newest first: the last
        ``deploy_snapshots`` kept snapshots (so lowering ``deploy_snapshots`` after training
        narrows the choice), or the online network alone."""
        if not use_snapshots:
            return [(self.global_step, self.q_net)]
        nets = []
        for step, weights in reversed(self.snapshots[-self.config.deploy_snapshots:]):
            net = copy.deepcopy(self.q_net).requires_grad_(False)
            net.load_state_dict(weights)
            nets.append((step, net))
        return nets

    def _network_ru_scores(self, objective: obj_lib.Objective, grid: torch.Tensor, starts: int,
                           generator: torch.Generator, net: nn.Module | None = None
                           ) -> torch.Tensor:
        """RU scores ``[G]`` of the candidates, ``E f(x + G)`` read off ``net`` (default:
        ``q_net``) at ``starts`` sampled start states."""
        net = self.q_net if net is None else net
        obs, _ = self.env.reset(self.env.wrap_params(self.base_env.default_params(starts), 0.0),
                                generator)
        obs = obs.unsqueeze(0).repeat(grid.shape[0], 1, 1)  # [G, starts, D]
        obs[..., self.stock_col] = grid.view(-1, 1).to(obs.dtype)
        values, probs = self.head.distribution(net(obs.reshape(-1, obs.shape[-1])).double())
        stock = obs[..., self.stock_col].reshape(-1).double()
        best = objective_scores(objective, stock, values, probs).max(-1).values  # [G * starts]
        return objective.outer_value(self.config.initial_stock, grid,
                                     best.view(grid.shape[0], -1).mean(1))

    def _rollout_scores(self, objective: obj_lib.Objective, grid: torch.Tensor, episodes: int,
                        stream: int, net: nn.Module | None = None, chunk: int = 1 << 16
                        ) -> torch.Tensor:
        """Scores ``[G]`` of ``net``'s (default: ``q_net``) greedy policy deployed at each
        candidate stock ``x``, from ``episodes`` episodes stepped ``chunk`` at a time: RU's
        ``(c0 - x) + E f(x + G)`` for outer-search objectives, else ``E f(x + G)``. Every
        candidate's episodes draw from a generator seeded with ``stream`` (common random
        numbers)."""
        net = self.q_net if net is None else net

        def act(obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
            return self._greedy(net, obs)

        expected = []
        for x in grid.tolist():
            generator = torch.Generator(device=self.device).manual_seed(stream)
            total, left = 0.0, episodes
            while left > 0:
                n = min(chunk, left)
                g = greedy_returns(self.env, act, n, x, self.config.gamma, generator)
                total += float(objective.utility(x + g.view(-1, 1)).sum())
                left -= n
            expected.append(total / episodes)
        expected_utility = torch.tensor(expected, dtype=torch.float64)
        if not objective.outer_search:
            return expected_utility
        return objective.outer_value(self.config.initial_stock, grid, expected_utility)

    @torch.no_grad()
    def rollout_returns(self, episodes: int, generator: torch.Generator,
                        stock: float | None = None) -> torch.Tensor:
        """Discounted returns ``[episodes]`` of the greedy policy deployed at ``stock`` (default:
        :meth:`choose_stock`), one episode per copy."""
        if stock is None:
            if self.deploy_stock is None:
                self.deploy_stock = self.choose_stock(generator)
            stock = self.deploy_stock
        return greedy_returns(self.env, self.act, episodes, stock, self.config.gamma, generator)

    def final_metrics(self, env: BatchedEnv, params: Any, generator: torch.Generator
                      ) -> dict[str, float]:
        """Empirical objective (the score) with a 95% CI, mean return, CVaR of the returns; with
        ``report_levels`` / ``report_targets`` the report of every deployment as well."""
        from rlsuite.agents.distributional_dp.analysis import deta_n_report

        cfg = self.config
        g = self.rollout_returns(self.config.rollout_episodes, generator)
        lo, hi = objective_ci(self.objective, g, self.config.initial_stock, generator)
        return {
            "eval/empirical_objective": self.objective.evaluate(g, None, self.config.initial_stock),
            "eval/objective_ci_low": lo, "eval/objective_ci_high": hi,
            "eval/mean_return": float(g.mean()),
            "eval/cvar": obj_lib.CVaR(self.config.level).evaluate(g),
            "eval/deploy_stock": float(self.deploy_stock) if self.deploy_stock is not None
            else float("nan"),
            "eval/deploy_network_step": float(self.global_step if self.deployed_step is None
                                              else self.deployed_step),
            "eval/episodes": float(g.shape[0]),
            **(deta_n_report(self, generator) if cfg.report_levels or cfg.report_targets else {}),
        }


@torch.no_grad()
def greedy_returns(env: StockAugmentedEnv, act: Any, episodes: int, stock: float | torch.Tensor,
                   gamma: float, generator: torch.Generator) -> torch.Tensor:
    """Discounted returns ``[episodes]`` (float64, CPU) of ``act(obs, deterministic=True)`` on
    ``env`` started at ``stock`` (a float or one per episode), one episode per copy, all copies
    stepped at once."""
    params = env.wrap_params(env.env.default_params(episodes), stock)
    obs, state = env.reset(params, generator)
    returns = torch.zeros(episodes, dtype=torch.float64, device=env.device)
    running = torch.ones(episodes, dtype=torch.bool, device=env.device)
    limit = env.max_episode_steps or 10_000
    for t in range(limit):
        step = env.step(state, act(obs, deterministic=True), params, generator)
        returns += torch.where(running, gamma**t * step.reward.double(), 0.0)
        running &= ~(step.terminated | step.truncated)
        obs, state = step.obs, step.state
        if t % 16 == 15 and not bool(running.any()):
            break
    return returns.cpu()


def risk_neutral_qrdqn(env: TabularEnv, config: DetaNConfig, seed: int = 0,
                       num_envs: int = 16) -> QRDQN:
    """The risk-neutral baseline with ``num_envs`` copies:
    :class:`~rlsuite.agents.distributional_dp.baselines.RiskNeutralQRDQN` (the suite's QR-DQN
    on the time-unrolled MDP, with DηN's network, loss and schedule settings from ``config``)."""
    from rlsuite.agents.distributional_dp.baselines import RiskNeutralQRDQN

    return RiskNeutralQRDQN(config, env, env.default_params(num_envs), seed)


def stock_candidates(config: DetaNConfig) -> torch.Tensor:
    """The RU candidate initial stocks ``[G]`` (float64): ``stock_grid`` evenly spaced points on
    ``[stock_low, stock_high]``, or the multiples of ``stock_grid_step`` there."""
    lo, hi = config.stock_low, config.stock_high
    if config.stock_grid_step > 0:
        k = torch.arange(math.ceil(lo / config.stock_grid_step - 1e-9),
                         math.floor(hi / config.stock_grid_step + 1e-9) + 1, dtype=torch.float64)
        if k.numel() == 0:
            raise ValueError(f"DηN: no multiple of stock_grid_step = {config.stock_grid_step} in "
                             f"[stock_low, stock_high] = [{lo}, {hi}]")
        return k * config.stock_grid_step
    return torch.linspace(lo, hi, config.stock_grid, dtype=torch.float64)


def objective_ci(objective: obj_lib.Objective, returns: torch.Tensor, initial_stock: float,
                 generator: torch.Generator, resamples: int = 200) -> tuple[float, float]:
    """95% confidence interval of the empirical objective: normal for expected utilities (a
    mean of per-episode utilities), percentile bootstrap for CVaR-type objectives."""
    g = returns.double().cpu()
    n = g.shape[0]
    if not objective.outer_search:
        u = objective.utility(objective.dp_stock(torch.tensor([initial_stock],
                                                                dtype=torch.float64)) + g.view(-1, 1))
        half = 1.96 * float(u.std()) / math.sqrt(n)
        return float(u.mean()) - half, float(u.mean()) + half
    cpu_gen = torch.Generator().manual_seed(int(torch.randint(1 << 30, (1,), generator=generator)))
    idx = torch.randint(n, (resamples, n), generator=cpu_gen)
    values = torch.tensor([objective.evaluate(g[row], None, initial_stock) for row in idx])
    return float(values.quantile(0.025)), float(values.quantile(0.975))


@torch.no_grad()
def tabular_policy_returns(agent: DetaN | QRDQN, mdp: Any, initial_stock: float
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact return distribution ``(returns [n], probs [n])`` of the agent's greedy policy deployed
    at ``initial_stock`` on a finite-horizon :class:`~rlsuite.envs.tabular.TabularMDP` (the MDP of
    the agent's :class:`~rlsuite.envs.tabular.TabularEnv`), by forward propagation of the
    ``(state, stock, return so far)`` atoms: the learned policy's objective without Monte-Carlo
    error. The stock follows the wrapper's recursion and clipping; atoms are merged on equal
    ``(state, stock, return)``, so the cost grows with the distinct stocks, not the paths."""
    if mdp.horizon is None:
        raise ValueError("tabular_policy_returns needs a finite-horizon MDP (mdp.horizon)")
    mdp = mdp.to("cpu")
    gamma, env = agent.config.gamma, agent.env
    states = torch.nonzero(mdp.initial > 0).view(-1)
    probs = mdp.initial[states].clone()
    stock = env._clip(torch.full((states.shape[0],), float(initial_stock), dtype=env.dtype)).double()
    acc = torch.zeros(states.shape[0], dtype=torch.float64)
    done_r, done_p = [], []
    for t in range(mdp.horizon):
        time_t = torch.full((states.shape[0],), t, dtype=torch.int64)
        obs = env.observe(states.to(agent.device), stock.to(env.dtype).to(agent.device),
                          time_t.to(agent.device))
        a = agent.act(obs, deterministic=True).cpu()
        nxt, rew = mdp.next_state[states, a], mdp.reward[states, a]  # [M, K]
        p = mdp.prob[states, a] * probs.unsqueeze(1)
        ends = mdp.terminal[states, a] | (t == mdp.horizon - 1)
        acc2 = acc.unsqueeze(1) + gamma**t * rew
        stock2 = env._clip(((stock.unsqueeze(1) + rew) / gamma).to(env.dtype)).double()
        live = p > 0
        fin = live & ends
        done_r.append(acc2[fin])
        done_p.append(p[fin])
        go = live & ~ends
        if not bool(go.any()):
            break
        key = torch.stack([nxt[go].double(), (stock2[go] * 2**20).round(), (acc2[go] * 2**20).round()], 1)
        uniq, inv = torch.unique(key, dim=0, return_inverse=True)
        probs = torch.zeros(uniq.shape[0], dtype=torch.float64).index_add_(0, inv, p[go])
        first = torch.full((uniq.shape[0],), -1, dtype=torch.int64).scatter_(
            0, inv, torch.arange(inv.shape[0]))  # any member stands for its class
        states, stock, acc = nxt[go][first], stock2[go][first], acc2[go][first]
    r, p = torch.cat(done_r), torch.cat(done_p)
    uniq, inv = torch.unique((r * 2**20).round(), return_inverse=True)
    return uniq / 2**20, torch.zeros(uniq.shape[0], dtype=torch.float64).index_add_(0, inv, p)
