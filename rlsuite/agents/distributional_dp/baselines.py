"""The risk-neutral baseline of DηN's results: the suite's QR-DQN on the time-unrolled MDP.

``rlsuite experiment=stockgrid_deta_n_cvar agent.name=risk_neutral_qrdqn`` trains it with the
same network, quantiles, loss, learning rate, replay, utd and epsilon schedule as the DηN preset
(it reads the same :class:`~rlsuite.agents.distributional_dp.deta_n.DetaNConfig`; the stock and
deployment fields do not apply). QR-DQN bootstraps through time limits (gymnasium semantics), so
it runs on :func:`~rlsuite.envs.tabular.stock_grid.unroll_time` of the env's MDP, where the time
limit is a termination and the step count is part of the (one-hot) state: its target is then
exact for the finite-horizon return, and the optima are those of the original MDP.
"""

from __future__ import annotations

from typing import Any

import torch

from rlsuite.agents.distributional_dp import objectives as obj_lib
from rlsuite.agents.distributional_dp.analysis import baseline_report, mean_ci, tabular_mdp
from rlsuite.agents.distributional_dp.deta_n import DetaNConfig, greedy_returns
from rlsuite.core import tree
from rlsuite.core.env import BatchedEnv
from rlsuite.envs.stock import StockAugmentedEnv
from rlsuite.envs.tabular import TabularEnv
from rlsuite.learners.qrdqn import QRDQN, QRDQNConfig


def baseline_config(config: DetaNConfig) -> QRDQNConfig:
    """QR-DQN's settings taken from a DηN config (network, loss and schedule; target network
    updated by Polyak averaging every gradient step, as DηN's)."""
    return QRDQNConfig(
        n_quantiles=config.n_quantiles, kappa=config.kappa, hidden_sizes=list(config.hidden_sizes),
        learning_rate=config.learning_rate, batch_size=config.batch_size,
        buffer_size=config.buffer_size, learning_starts=config.learning_starts, gamma=config.gamma,
        num_steps=config.num_steps, utd=config.utd, target_update_interval=1, tau=config.tau,
        exploration_fraction=config.exploration_fraction,
        exploration_initial_eps=config.exploration_initial_eps,
        exploration_final_eps=config.exploration_final_eps, max_grad_norm=config.max_grad_norm,
        fast_path=config.fast_path)


class RiskNeutralQRDQN(QRDQN):
    """QR-DQN (greedy by the mean, no stock) on the time-unrolled MDP of a finite-horizon
    :class:`TabularEnv`. Its ``env`` is a :class:`StockAugmentedEnv` with the stock fixed at 0
    (the wrapper one-hot encodes the state), so DηN's exact and empirical scoring apply to it
    unchanged. ``final_metrics`` scores its policy for DηN's ``report_levels`` (objective cvar)
    or ``report_targets`` (objective target)."""

    def __init__(self, config: DetaNConfig, env: BatchedEnv, params: Any, seed: int = 0) -> None:
        from rlsuite.envs.tabular.stock_grid import unroll_time

        if not isinstance(env, TabularEnv):
            raise ValueError("risk_neutral_qrdqn runs on the time-unrolled MDP of a TabularEnv "
                             f"(e.g. env=stockgrid), got {type(env).__name__}")
        self.deta_n_config = config
        self.mdp = unroll_time(tabular_mdp(env))
        base = TabularEnv(self.mdp, device=env.device)
        wrapped = StockAugmentedEnv(base, config.gamma, 0.0, include_time=False)
        super().__init__(baseline_config(config), wrapped, wrapped.default_params(tree.batch_size(params)),
                         seed)

    def final_metrics(self, env: BatchedEnv, params: Any, generator: torch.Generator
                      ) -> dict[str, float]:
        """Mean return over ``rollout_episodes`` greedy episodes (the score), then the report."""
        cfg = self.deta_n_config
        g = greedy_returns(self.env, self.act, cfg.rollout_episodes, 0.0, cfg.gamma, generator)
        lo, hi = mean_ci(g)
        out = {"eval/mean_return": float(g.mean()), "eval/mean_ci_low": lo, "eval/mean_ci_high": hi,
               "eval/cvar": obj_lib.CVaR(cfg.level).evaluate(g), "eval/episodes": float(g.shape[0])}
        levels = list(cfg.report_levels) if cfg.objective == "cvar" else []
        targets = list(cfg.report_targets) if cfg.objective == "target" else []
        if levels or targets:
            out.update(baseline_report(self, self.mdp, levels, targets, cfg.rollout_episodes, generator))
        return out
