"""rlsuite.agents.distributional_dp.analysis and .baselines: the quantile-projected DP's fixed point
(against the numbers of the script it replaced), DηN's deployment report (against the exact
evaluation it is built from), and the risk-neutral QR-DQN baseline (bit for bit the suite's QR-DQN
on the time-unrolled grid)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from rlsuite.agents.distributional_dp import CVaR, solve
from rlsuite.agents.distributional_dp.analysis import (
    baseline_report,
    deta_n_report,
    quantile_dp_report,
    selection_episodes,
)
from rlsuite.agents.distributional_dp.baselines import RiskNeutralQRDQN, baseline_config
from rlsuite.agents.distributional_dp.deta_n import DetaN, DetaNConfig, tabular_policy_returns
from rlsuite.envs.stock import StockAugmentedEnv
from rlsuite.envs.tabular import TabularEnv
from rlsuite.envs.tabular.stock_grid import stock_grid, stock_grid_env, unroll_time
from rlsuite.learners.qrdqn import QRDQN

TINY = dict(hidden_sizes=[16, 16], n_quantiles=8, batch_size=16, learning_starts=64,
            buffer_size=2000, stock_low=-6.0, stock_high=2.0, stock_grid_step=1.0,
            relabel_fraction=0.75, kappa=0.0, rollout_episodes=64)


def test_quantile_dp_fixed_point_biases_the_ru_search_at_level_a_quarter() -> None:
    """N = 50 on the stochastic grid, as scripts/deta_n_quantile_dp.py found (the numbers of
    results/distributional_dp.md before the runner): the table's greedy policy at stock -4 is
    CVaR_0.25-optimal (1.009), but the table predicts -0.32 there, so the RU search on the
    table's own predictions picks stock -2 (exact CVaR_0.25 0.793); at level 0.5 it picks the
    optimal stock -7."""
    mdp = stock_grid(stochastic=True)
    report = quantile_dp_report(mdp, 50, range(-14, 5), (0.25, 0.5))
    quarter, half = report[0.25], report[0.5]
    assert quarter["best_stock"] == -4
    assert quarter["best_cvar"] == pytest.approx(solve(mdp, CVaR(0.25)).value, abs=1e-12)
    assert quarter["best_predicted_cvar"] == pytest.approx(-0.32, abs=1e-9)
    assert quarter["ru_stock"] == -2 and quarter["ru_cvar"] == pytest.approx(0.79296875, abs=1e-12)
    assert half["ru_stock"] == half["best_stock"] == -7
    assert half["ru_cvar"] == pytest.approx(solve(mdp, CVaR(0.5)).value, abs=1e-12)


@pytest.fixture(scope="module")
def trained() -> DetaN:
    env = stock_grid_env(stochastic=True)
    cfg = DetaNConfig(objective="cvar", level=0.25, deploy_episodes=32, deploy_shortlist=3,
                      deploy_snapshots=2, snapshot_interval=128, report_levels=[0.25, 1.0], **TINY)
    return DetaN(cfg, env, env.default_params(8), seed=0).learn(512)


def test_deta_n_report_scores_each_deployment_exactly_and_restores_the_config(trained: DetaN) -> None:
    agent, mdp = trained, stock_grid(stochastic=True)
    out = deta_n_report(agent, torch.Generator().manual_seed(0))
    assert (agent.config.deploy_episodes, agent.config.deploy_snapshots) == (32, 2)
    assert agent.deployed_net is None
    for level in (0.25, 1.0):
        key, objective = f"report/cvar_{level:g}", CVaR(level)
        # The network and rollout deployments act with the final network: their exact scores
        # are the CVaR of its exact return law at the stock they chose, and the best stock
        # bounds both.
        for name in ("network", "rollout"):
            stock = out[f"{key}/{name}/stock"]
            r, p = tabular_policy_returns(agent, mdp, stock)
            assert out[f"{key}/{name}/exact"] == pytest.approx(objective.evaluate(r, p), abs=1e-12)
            assert out[f"{key}/{name}/exact_mean"] == pytest.approx(float((r * p).sum()), abs=1e-12)
            assert out[f"{key}/best_stock/exact"] >= out[f"{key}/{name}/exact"] - 1e-12
            assert out[f"{key}/{name}/network_step"] == agent.global_step
            p = f"{key}/{name}"
            assert out[f"{p}/ci_low"] <= out[f"{p}/empirical"] <= out[f"{p}/ci_high"]
        assert out[f"{key}/network/selection_episodes"] == 0
        assert out[f"{key}/rollout/selection_episodes"] == 3 * 32
        assert out[f"{key}/snapshot/selection_episodes"] == 2 * 3 * 32
        assert out[f"{key}/snapshot/network_step"] in [step for step, _ in agent.snapshots]
    # At level 1 the CVaR is the mean.
    assert out["report/cvar_1/network/exact"] == pytest.approx(out["report/cvar_1/network/exact_mean"])


def test_selection_episodes_counts_candidates_networks_and_episodes(trained: DetaN) -> None:
    cfg = trained.config
    assert selection_episodes(trained, "network") == 0
    assert selection_episodes(trained, "rollout") == cfg.deploy_shortlist * cfg.deploy_episodes
    assert selection_episodes(trained, "snapshot") == 2 * cfg.deploy_shortlist * cfg.deploy_episodes
    wide = dataclasses.replace(cfg, deploy_shortlist=0)  # 0: every candidate, -6 .. 2
    shell = type("Shell", (), {"config": wide, "snapshots": trained.snapshots})()
    assert selection_episodes(shell, "rollout") == 9 * cfg.deploy_episodes


def test_risk_neutral_qrdqn_is_the_suites_qrdqn_on_the_unrolled_grid() -> None:
    """The baseline agent trains bit for bit as the suite's QR-DQN built by hand on the
    time-unrolled grid (the construction of the results before the runner), and its report's
    exact CVaR at level 1 is its exact mean."""
    env = stock_grid_env(stochastic=True)
    cfg = DetaNConfig(objective="cvar", report_levels=[0.25, 1.0], **TINY)
    agent = RiskNeutralQRDQN(cfg, env, env.default_params(8), seed=1).learn(512)
    wrapped = StockAugmentedEnv(TabularEnv(unroll_time(stock_grid(stochastic=True))), cfg.gamma, 0.0,
                                include_time=False)
    reference = QRDQN(baseline_config(cfg), wrapped, wrapped.default_params(8), seed=1).learn(512)
    for (name, a), (_, b) in zip(agent.q_net.state_dict().items(), reference.q_net.state_dict().items(),
                                 strict=True):
        assert torch.equal(a, b), name
    out = baseline_report(agent, agent.mdp, [0.25, 1.0], [], 64, torch.Generator().manual_seed(0))
    assert out["report/cvar_1/baseline/exact"] == pytest.approx(out["report/cvar_1/baseline/exact_mean"])
    assert out["report/cvar_0.25/baseline/exact"] <= out["report/cvar_1/baseline/exact"] + 1e-12
    metrics = agent.final_metrics(env, None, torch.Generator().manual_seed(0))
    assert next(iter(metrics)) == "eval/mean_return" and "report/cvar_0.25/baseline/exact" in metrics


def test_report_fields_are_validated() -> None:
    from rlsuite.validation import ConfigError

    with pytest.raises(ConfigError, match="report_levels"):
        DetaNConfig(report_levels=[0.0])
    with pytest.raises(ConfigError, match="report_targets"):
        DetaNConfig(report_targets=["x"])
