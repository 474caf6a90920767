"""DηN (rlsuite.agents.distributional_dp.deta_n): stock relabelling, RU candidates, the exact
evaluation of a learned policy on a tabular MDP, the time-unrolled MDP of the risk-neutral
QR-DQN baseline, and (slow tier) learning against the exact solver and against QR-DQN."""

from __future__ import annotations

import pytest
import torch

from rlsuite.agents.distributional_dp import CVaR, Mean, ReturnTargeting, solve
from rlsuite.agents.distributional_dp.deta_n import (
    CategoricalHead,
    DetaN,
    DetaNConfig,
    StockQuantileNetwork,
    greedy_by_objective,
    greedy_returns,
    objective_ci,
    objective_scores,
    relabel_stocks,
    risk_neutral_qrdqn,
    stock_candidates,
    tabular_policy_returns,
)
from rlsuite.envs.tabular.stock_grid import stock_grid, stock_grid_env, unroll_time
from rlsuite.learners.buffers import Transitions


def test_relabel_stocks_moves_both_stocks_by_the_stock_recursion() -> None:
    n, gamma = 1000, 0.9
    t = torch.randint(0, 5, (n,)).float()
    reward = torch.randn(n)
    stock = torch.randn(n)
    obs = torch.stack([torch.ones(n), stock, t], 1)
    next_obs = torch.stack([torch.ones(n), (stock + reward) / gamma, t + 1], 1)
    batch = Transitions(obs=obs, action=torch.zeros(n, dtype=torch.int64), reward=reward,
                        next_obs=next_obs, terminated=torch.zeros(n, dtype=torch.bool),
                        truncated=torch.zeros(n, dtype=torch.bool))
    gen = torch.Generator().manual_seed(0)
    out = relabel_stocks(batch, 1, gamma, -3.0, 2.0, 0.75, gen, lambda c: c.clamp(-50.0, 50.0), 2)
    k = 750
    c_new = out.obs[:, 1]
    # The relabelled stocks are gamma^-t u with u ~ U[-3, 2]; the rest are untouched.
    u = c_new[:k] * gamma ** t[:k]
    assert float(u.min()) >= -3.0 - 1e-5 and float(u.max()) <= 2.0 + 1e-5 and float(u.std()) > 1.0
    assert torch.equal(out.obs[k:], obs[k:]) and torch.equal(out.next_obs[k:], next_obs[k:])
    # The next stock follows the wrapper's recursion and clip from the new stock.
    assert torch.allclose(out.next_obs[:k, 1], ((c_new[:k] + reward[:k]) / gamma).clamp(-50, 50))
    # Everything but the stocks is unchanged (the dynamics do not depend on the stock).
    assert torch.equal(out.obs[:, [0, 2]], obs[:, [0, 2]])
    assert torch.equal(out.next_obs[:, [0, 2]], next_obs[:, [0, 2]])
    assert out.reward is batch.reward and out.action is batch.action


def test_categorical_head_projects_exactly_on_the_integer_lattice() -> None:
    head = CategoricalHead(5, -2.0, 2.0, torch.device("cpu"))
    assert head.atoms.tolist() == [-2.0, -1.0, 0.0, 1.0, 2.0]
    next_probs = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.0], [0.5, 0.0, 0.0, 0.0, 0.5]])
    reward = torch.tensor([1.0, 0.5])
    done = torch.tensor([False, True])
    # Row 0: r + Z' shifts every atom by exactly one, the top mass (0.4 at 1 -> 2) stays whole.
    # Row 1 is terminal: the target is delta_{0.5}, split half-half between atoms 0 and 1.
    goal = torch.tensor([[0.0, 0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.5, 0.5, 0.0]])
    logits = torch.randn(2, 5, requires_grad=True)
    loss = head.loss(logits, reward, done, next_probs.log(), 1.0)
    expected = -(goal * logits.log_softmax(-1)).sum(-1).mean()
    assert float(loss.detach()) == pytest.approx(float(expected.detach()))
    # The cross-entropy is minimised exactly at the projected target.
    at_goal = goal.clamp_min(1e-30).log().requires_grad_(True)
    head.loss(at_goal, reward, done, next_probs.log(), 1.0).backward()
    assert float(at_goal.grad.abs().max()) < 1e-6
    values, probs = head.distribution(at_goal.detach())
    assert torch.allclose(probs, goal) and torch.equal(values[1], head.atoms)


def test_objective_scores_weigh_atoms_by_their_probabilities() -> None:
    objective = CVaR(0.5)  # f(x) = min(x, 0) / 0.5
    values = torch.tensor([[[-2.0, 0.0, 4.0], [-1.0, -1.0, 3.0]]])
    uniform = torch.full_like(values, 1 / 3)
    stock = torch.tensor([1.0])
    # Uniform probabilities are the quantile case.
    assert torch.allclose(objective_scores(objective, stock, values, uniform),
                          objective_scores(objective, stock, values))
    probs = torch.tensor([[[0.5, 0.25, 0.25], [0.0, 0.5, 0.5]]])
    # Action 0: 0.5 * min(-1, 0) / 0.5 = -1; action 1: 0 (c + Z >= 0 on its support).
    assert objective_scores(objective, stock, values, probs).tolist() == [[-1.0, 0.0]]
    assert greedy_by_objective(objective, stock, values, probs).tolist() == [1]
    # A tie in the objective goes to the higher mean under the probabilities: 1.5 vs 1.
    tie = torch.tensor([[[0.0, 0.0, 3.0], [0.0, 2.0, 2.0]]])
    assert greedy_by_objective(objective, torch.tensor([0.0]), tie,
                               torch.tensor([[[0.25, 0.25, 0.5], [0.5, 0.0, 0.5]]])).tolist() == [0]


def test_one_hot_time_is_appended_to_the_scaled_observation() -> None:
    torch.manual_seed(0)
    scale = torch.tensor([1.0, 0.1, 1 / 16])
    net = StockQuantileNetwork(3, scale, 2, 4, [8], time_col=2, time_steps=16)
    obs = torch.tensor([[1.0, -3.0, 0.0], [0.0, 2.0, 15.0], [1.0, 0.0, 16.0]])
    steps = torch.zeros(3, 17)
    steps[0, 0] = steps[1, 15] = steps[2, 16] = 1.0
    expected = net.body(torch.cat([obs * scale, steps], 1))
    assert torch.equal(net(obs), expected)
    assert net.body.net[0].in_features == 3 + 17


def test_rollout_ru_scores_the_network_shortlist_in_chunks() -> None:
    env = stock_grid_env()  # deterministic: every episode at a stock has the same return
    cfg = DetaNConfig(objective="cvar", level=0.5, stock_low=-4.0, stock_high=1.0,
                      stock_grid_step=1.0, deploy_episodes=50, deploy_shortlist=3)
    agent = DetaN(cfg, env, env.default_params(4), seed=0)
    grid, objective = stock_candidates(cfg), agent.objective
    # Chunked episodes give the same scores, and the scores are RU's (c0 - x) + E f(x + G).
    chunked = agent._rollout_scores(objective, grid, 50, stream=0, chunk=7)
    whole = agent._rollout_scores(objective, grid, 50, stream=0)
    assert torch.equal(chunked, whole)
    for x, score in zip(grid.tolist(), whole.tolist(), strict=True):
        g = greedy_returns(agent.env, agent.act, 1, x, 1.0, torch.Generator().manual_seed(0))
        assert score == pytest.approx(-x + min(x + float(g[0]), 0.0) / 0.5)
    # Only the network's best three candidates are scored by episodes, and the best of them wins.
    network = agent._network_ru_scores(objective, grid, 256, torch.Generator().manual_seed(1))
    seen: list[list[float]] = []
    real = agent._rollout_scores

    def spy(obj, candidates, episodes, stream, net):
        seen.append(candidates.tolist())
        return real(obj, candidates, episodes, stream, net)

    agent._rollout_scores = spy
    stock = agent.choose_stock(torch.Generator().manual_seed(1))
    assert seen == [sorted(grid[network.topk(3).indices].tolist())]
    scores = dict(zip(grid.tolist(), whole.tolist(), strict=True))
    assert stock == max(seen[0], key=scores.get)
    assert agent.deployed_net is None  # no snapshots: the online network


def test_rollout_scores_use_common_random_numbers() -> None:
    """Every candidate's episodes come from the same seeded stream: on the stochastic grid the
    score of a candidate does not depend on which candidates are scored with it or before it,
    and another stream gives other scores."""
    env = stock_grid_env(stochastic=True)
    cfg = DetaNConfig(objective="cvar", level=0.5, stock_low=-4.0, stock_high=1.0,
                      stock_grid_step=1.0, deploy_episodes=400)
    agent = DetaN(cfg, env, env.default_params(4), seed=0)
    grid, objective = stock_candidates(cfg), agent.objective
    together = agent._rollout_scores(objective, grid, 400, stream=5)
    for i in range(grid.shape[0]):
        alone = agent._rollout_scores(objective, grid[i:i + 1], 400, stream=5)
        assert torch.equal(alone, together[i:i + 1])
    other_stream = agent._rollout_scores(objective, grid, 400, stream=6)
    assert not torch.equal(other_stream, together)


def _constant_net(agent: DetaN, action: int) -> None:
    """Make ``agent.q_net`` prefer ``action`` everywhere (its last layer: zero weights, a bias
    that lifts that action's quantiles by 1)."""
    last = agent.q_net.body.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
        n = agent.head.size
        last.bias[action * n:(action + 1) * n] = 1.0


def test_snapshots_are_kept_and_the_deployment_picks_the_best_one_by_episodes() -> None:
    """With deploy_snapshots = 2 and snapshots every 64 env steps, learn keeps the last two
    (the final weights among them) and a checkpoint carries them. On the deterministic grid with
    target 2, a snapshot whose policy always moves down (into the -1 corner, return -14) beats
    one that always moves right (onto the +2 gem, return 28): the deployment picks it by
    episodes, acts with it, and the next learn goes back to the online network."""
    env = stock_grid_env()
    cfg = DetaNConfig(objective="target", target=2.0, learning_starts=32, num_steps=2,
                      deploy_episodes=64, deploy_snapshots=2, snapshot_interval=64)
    agent = DetaN(cfg, env, env.default_params(16), seed=0).learn(320)
    assert [step for step, _ in agent.snapshots] == [256, 320]
    saved = agent.state_dict()
    clone = DetaN(cfg, env, env.default_params(16), seed=0)
    clone.load_state_dict(saved)
    assert [step for step, _ in clone.snapshots] == [256, 320]
    assert all(torch.equal(a[1][k], b[1][k]) for a, b in zip(agent.snapshots, clone.snapshots,
                                                              strict=True) for k in a[1])
    # Overwrite the two snapshots with two known policies.
    rewards = {}
    for index, action in enumerate((1, 3)):
        _constant_net(agent, action)
        agent.snapshots[index] = (agent.snapshots[index][0],
                                  {k: v.clone() for k, v in agent.q_net.state_dict().items()})
        returns = greedy_returns(agent.env, agent.act, 1, -2.0, 1.0,
                                 torch.Generator().manual_seed(0))
        rewards[index] = float(returns[0])
    assert rewards == {0: -14.0, 1: 28.0}
    best = 0
    stock = agent.choose_stock(torch.Generator().manual_seed(0))
    assert stock == -2.0 and agent.deployed_step == agent.snapshots[best][0]
    chosen = greedy_returns(agent.env, agent.act, 1, -2.0, 1.0, torch.Generator().manual_seed(0))
    assert float(chosen[0]) == rewards[best]
    assert agent.final_metrics(env, env.default_params(4), torch.Generator().manual_seed(0))[
        "eval/deploy_network_step"] == agent.snapshots[best][0]
    assert agent.deploy_stock == -2.0  # cached by final_metrics for this deployment
    agent.choose_stock(torch.Generator().manual_seed(0))
    assert agent.deploy_stock is None  # a new choice drops the cached stock with the network
    agent.learn(384)
    assert agent.deployed_net is None and agent.snapshots[-1][0] == 384


def test_deta_n_refuses_a_bad_representation_and_a_one_hot_time_without_a_limit() -> None:
    env = stock_grid_env()
    with pytest.raises(ValueError, match="representation='quantiles'"):
        DetaN(DetaNConfig(representation="quantiles"), env, env.default_params(2))
    with pytest.raises(ValueError, match="atoms_low=3.0"):
        DetaN(DetaNConfig(representation="categorical", atoms_low=3.0, atoms_high=1.0), env,
              env.default_params(2))
    with pytest.raises(ValueError, match="time_one_hot"):
        DetaN(DetaNConfig(time_one_hot=True, include_time=False), env, env.default_params(2))
    with pytest.raises(ValueError, match="deploy_snapshots = 3 needs deploy_episodes > 0"):
        DetaN(DetaNConfig(deploy_snapshots=3), env, env.default_params(2))
    with pytest.raises(ValueError, match="snapshot_interval=0"):
        DetaN(DetaNConfig(deploy_snapshots=3, deploy_episodes=10, snapshot_interval=0), env,
              env.default_params(2))


def test_stock_candidates_grid_and_lattice() -> None:
    grid = stock_candidates(DetaNConfig(stock_low=-2.0, stock_high=1.0, stock_grid=7))
    assert grid.tolist() == [-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0]
    lattice = stock_candidates(DetaNConfig(stock_low=-2.5, stock_high=1.2, stock_grid_step=1.0))
    assert lattice.tolist() == [-2.0, -1.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="stock_grid_step"):
        stock_candidates(DetaNConfig(stock_low=0.2, stock_high=0.7, stock_grid_step=1.0))
    with pytest.raises(ValueError, match="relabel_fraction"):
        env = stock_grid_env()
        DetaN(DetaNConfig(relabel_fraction=1.5), env, env.default_params(2))


def test_unroll_time_keeps_the_optima_and_ends_at_the_horizon() -> None:
    for stochastic in (False, True):
        mdp = stock_grid(stochastic=stochastic)
        unrolled = unroll_time(mdp)
        assert unrolled.num_states == 16 * 16
        assert bool(unrolled.terminal[15 * 16:].all())  # the last step ends every episode
        assert not bool(unrolled.terminal[:16][:, :, 0].all())
        for objective in (Mean(), CVaR(0.25), ReturnTargeting(5.0)):
            assert solve(unrolled, objective).value == pytest.approx(solve(mdp, objective).value)


class _StockTimePolicy:
    """A hand-written policy of (cell, stock, time) on the stochastic grid: walk right to (0, 3),
    gamble there while the stock is below 1 and fewer than 12 steps have passed, then walk to the
    terminal gamble at (2, 2) via (1, 3) and (1, 2)."""

    def __init__(self, env: DetaN) -> None:
        self.env, self.device = env.env, env.device
        self.config = env.config

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        cell, stock, t = obs[:, :16].argmax(1), obs[:, 16], obs[:, 17]
        action = torch.full_like(cell, 4)  # stay
        action[cell < 3] = 3  # right
        gamble = (stock < 1.0) & (t < 12)
        action[(cell == 3) & ~gamble] = 1  # down
        action[cell == 7] = 2  # left
        action[cell == 6] = 1  # down into the terminal gamble
        return action


def test_tabular_policy_returns_matches_rollouts_of_the_same_policy() -> None:
    """The exact distribution of a stock- and time-dependent policy agrees with 40k Monte-Carlo
    episodes of the wrapper atom by atom (4 standard errors), and with the closed form of its
    first atoms."""
    env = stock_grid_env(stochastic=True)
    policy = _StockTimePolicy(DetaN(DetaNConfig(objective="cvar", hidden_sizes=[8]), env,
                                    env.default_params(2)))
    returns, probs = tabular_policy_returns(policy, stock_grid(stochastic=True), -3.0)  # type: ignore[arg-type]
    assert float(probs.sum()) == pytest.approx(1.0) and returns.numel() >= 8
    # Stock -3 gambles at least twice: +2 +2 reaches stock 1 and stops (then 3 or 0 at (2, 2)).
    assert float(probs[returns == 7.0].sum()) >= 0.125
    episodes = 40_000
    g = greedy_returns(policy.env, policy.act, episodes, -3.0, 1.0, torch.Generator().manual_seed(1))
    for r, p in zip(returns.tolist(), probs.tolist(), strict=True):
        freq = float((g == r).double().mean())
        assert abs(freq - p) <= 4 * (p * (1 - p) / episodes) ** 0.5 + 1e-4
    assert float((g.unsqueeze(1) == returns.unsqueeze(0)).any(1).double().mean()) == 1.0


@pytest.mark.slow
def test_deta_n_matches_the_exact_optimum_on_the_return_targeting_grid() -> None:
    """DηN's empirical E -|G - target| over 10^4 greedy episodes is within 5% of the target
    scale of the exact optimum (0: every target can be returned exactly), for two targets from
    one network."""
    env = stock_grid_env()
    agent = DetaN(DetaNConfig(objective="target", target=4.0, relabel_fraction=0.75,
                              stock_low=-14.0, stock_high=4.0, kappa=0.0), env,
                  env.default_params(16), seed=0)
    agent.learn(16_000)
    for target in (4.0, 8.0):
        returns = agent.rollout_returns(10_000, torch.Generator().manual_seed(1), stock=-target)
        exact = solve(stock_grid(), ReturnTargeting(target)).value
        assert abs(ReturnTargeting(target).evaluate(returns) - exact) <= 0.05 * target


@pytest.mark.slow
def test_deta_n_cvar_trades_mean_for_cvar_against_risk_neutral_qrdqn() -> None:
    """Over three seeds, DηN trained with min(x, 0) and RU-deployed for CVaR_0.25 has a higher
    CVaR and a lower mean than the suite's risk-neutral QR-DQN trained on the same grid with the
    same network and schedule (both scored exactly on the MDP), and QR-DQN is near the
    risk-neutral optimum (mean 7). DηN gets 24k env steps (at 12k one seed still deployed the
    stock-0 policy, CVaR 0), QR-DQN 12k."""
    sto, objective = stock_grid(stochastic=True), CVaR(0.25)
    for seed in range(3):
        env = stock_grid_env(stochastic=True)
        cfg = DetaNConfig(objective="cvar", level=0.25, relabel_fraction=0.75, stock_low=-14.0,
                          stock_high=4.0, kappa=0.0, stock_grid_step=1.0)
        deta = DetaN(cfg, env, env.default_params(16), seed=seed).learn(24_000)
        qrdqn = risk_neutral_qrdqn(env, cfg, seed).learn(12_000)
        stock = deta.choose_stock(torch.Generator().manual_seed(seed), objective=objective)
        r_d, p_d = tabular_policy_returns(deta, sto, stock)
        r_q, p_q = tabular_policy_returns(qrdqn, unroll_time(sto), 0.0)
        cvar_d, cvar_q = objective.evaluate(r_d, p_d), objective.evaluate(r_q, p_q)
        mean_d, mean_q = float((r_d * p_d).sum()), float((r_q * p_q).sum())
        assert cvar_d > cvar_q + 0.1, (seed, cvar_d, cvar_q)
        assert mean_d < mean_q - 0.5, (seed, mean_d, mean_q)
        # Near the optimum's 7: 6.26 on seed 2 on one CPU, 6.3 or more on another (rounding
        # differs between machines and moves a 12k-step run), so the bound is 6.0 (86 %).
        assert mean_q > 6.0, (seed, mean_q)


@pytest.mark.slow
def test_deta_n_cvar_is_within_5_percent_of_the_exact_optimum() -> None:
    """One DηN network with the settings of ``experiment=stockgrid_deta_n_cvar`` (seed 2, 120k
    env steps, the last five 10k-step snapshots kept), deployed for CVaR_0.25 and CVaR_0.5 by
    the RU search over (snapshot, stock) pairs (each snapshot's five best candidates re-scored by
    30,000 greedy episodes each): the exact CVaR of the deployed policy is within 5% of the exact
    optimum at both levels. Over 10^4 episodes the empirical CVaR_0.5 is within 5% as well; the
    empirical CVaR_0.25 is too noisy for that (its 95% CI spans about +-15%), so there its CI
    must cover the optimum. Seed 2 was the hardest seed for this deployment in the runs made
    by the scripts the runner replaced (``git show 98b3293:results/distributional_dp.md``:
    CVaR_0.25 4.2% and CVaR_0.5 1.0% below the optimum, the largest gaps of the three seeds);
    its final network's own reading deployed CVaR_0.25 9.6% below. (In the runner's runs of the
    current page every seed's snapshot deployment reaches the optimum.) With this test's stream
    (generator seed 0) it deployed the optimum at both levels when last run (snapshots 110,016 and
    100,032). About 10 CPU-minutes."""
    env, sto = stock_grid_env(stochastic=True), stock_grid(stochastic=True)
    cfg = DetaNConfig(objective="cvar", level=0.25, relabel_fraction=0.75, stock_low=-14.0,
                      stock_high=4.0, kappa=0.0, stock_grid_step=1.0, time_one_hot=True, utd=0.5,
                      hidden_sizes=[256, 256], deploy_episodes=30_000, deploy_shortlist=5,
                      deploy_snapshots=5, snapshot_interval=10_000)
    agent = DetaN(cfg, env, env.default_params(16), seed=2).learn(120_000)
    # The first iteration past every multiple of 10k env steps (64 steps an iteration).
    assert [step for step, _ in agent.snapshots] == [80_000, 90_048, 100_032, 110_016, 120_000]
    gen = torch.Generator().manual_seed(0)
    for level in (0.25, 0.5):
        objective = CVaR(level)
        optimum = solve(sto, objective).value
        stock = agent.choose_stock(gen, objective=objective)
        exact = objective.evaluate(*tabular_policy_returns(agent, sto, stock))
        assert exact >= 0.95 * optimum, (level, stock, agent.deployed_step, exact, optimum)
        returns = agent.rollout_returns(10_000, gen, stock=stock)
        empirical = objective.evaluate(returns)
        if level == 0.5:
            assert abs(empirical - optimum) <= 0.05 * optimum, (stock, empirical, optimum)
        else:
            low, high = objective_ci(objective, returns, 0.0, gen)
            assert low <= optimum <= high, (stock, low, high, optimum)


# -- DηN on QR-DQN's loop ----------------------------------------------------------------------------
def _learn_before_the_shared_loop(agent: DetaN, total_steps: int, rows: list) -> None:
    """DηN's own training loop as it was before it ran on QR-DQN's (commit a28bbb4,
    ``DetaN.learn``), kept as the reference the shared loop must reproduce bit for bit."""
    import time

    from torch import nn

    from rlsuite.agents.distributional_dp.deta_n import deta_n_loss
    from rlsuite.learners.nets import polyak_update
    from rlsuite.learners.qrdqn import linear_epsilon
    from rlsuite.training import LossTotals, updates_due

    cfg = agent.config
    steps_per_iter = agent.interaction.num_envs * cfg.num_steps
    num_iterations = max(1, total_steps // steps_per_iter)
    time_col = agent.stock_col + 1 if cfg.include_time else None
    relabel = (cfg.stock_low if cfg.relabel_low is None else cfg.relabel_low,
               cfg.stock_high if cfg.relabel_high is None else cfg.relabel_high)
    agent.deployed_net = agent.deployed_step = None
    while agent.iteration < num_iterations:
        tic = time.perf_counter()
        step_before = agent.global_step
        agent.exploration_rate = linear_epsilon(agent.global_step, total_steps, cfg)
        warmup = agent.global_step < cfg.learning_starts
        data = agent.interaction.collect(agent._random_action if warmup else agent.act, cfg.num_steps)
        agent.buffer.add_rollout(data)
        due = updates_due(cfg.utd, agent.global_step, cfg.learning_starts, agent.num_updates)
        totals = LossTotals()
        for _ in range(due):
            batch = agent.buffer.sample(cfg.batch_size, agent.policy_generator)
            if cfg.relabel_fraction > 0:
                batch = relabel_stocks(batch, agent.stock_col, cfg.gamma, relabel[0], relabel[1],
                                       cfg.relabel_fraction, agent.policy_generator, agent.env._clip,
                                       time_col)
            loss, stats = deta_n_loss(agent.q_net, agent.target_net, batch, agent.objective,
                                      agent.stock_col, cfg.gamma, agent.head, cfg.include_time)
            agent.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(agent.q_net.parameters(), cfg.max_grad_norm)
            agent.optimizer.step()
            polyak_update(agent.q_net.parameters(), agent.target_net.parameters(), cfg.tau)
            agent.num_updates += 1
            totals.add(stats)
        metrics = totals.means("DηN", agent.global_step, params=agent.q_net.named_parameters())
        metrics.update(agent.interaction.record_episodes(data))
        metrics["rollout/exploration_rate"] = 1.0 if warmup else agent.exploration_rate
        metrics["train/n_updates"] = float(agent.num_updates)
        metrics["time/fps"] = steps_per_iter / (time.perf_counter() - tic)
        agent.interaction.iteration += 1
        if agent.global_step // cfg.snapshot_interval > step_before // cfg.snapshot_interval:
            agent._keep_snapshot()
        rows.append((agent.global_step, metrics))
    if not agent.snapshots or agent.snapshots[-1][0] != agent.global_step:
        agent._keep_snapshot()
    agent.deploy_stock = None


def _same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return a == b


@pytest.mark.parametrize("overrides", [
    # fast_path=False: the former loop's step is the eager one; the written-out step is checked
    # against it in tests/test_deta_n_fast.py
    {"objective": "cvar", "relabel_fraction": 0.5, "deploy_episodes": 8, "deploy_snapshots": 2,
     "snapshot_interval": 32, "utd": 0.5, "fast_path": False},
    {"representation": "categorical", "n_atoms": 11, "objective": "target", "target": 2.0},
], ids=["quantile_relabel_snapshots", "categorical"])
def test_deta_n_on_the_shared_qrdqn_loop_matches_its_former_own_loop(overrides: dict) -> None:
    """``DetaN.learn`` runs QR-DQN's loop (``replay_learning_loop``) with its own gradient step
    and snapshot hook: every weight, optimizer moment, buffer row, generator state, snapshot and
    metric equals that of DηN's former copy of the loop, bit for bit."""
    from rlsuite.training import TrainingHooks

    env = stock_grid_env(stochastic=True)
    cfg = DetaNConfig(hidden_sizes=[16, 16], n_quantiles=8, batch_size=8, learning_starts=16,
                      buffer_size=500, num_steps=4, **overrides)
    rows_new: list = []

    class Rows(TrainingHooks):
        def on_iteration(self, agent: object, step: int, metrics: dict) -> None:
            rows_new.append((step, metrics))

    shared = DetaN(cfg, env, env.default_params(4), seed=5).learn(400, Rows())
    reference = DetaN(cfg, env, env.default_params(4), seed=5)
    rows_old: list = []
    _learn_before_the_shared_loop(reference, 400, rows_old)
    assert shared.iteration == reference.iteration == 25 and shared.num_updates > 0
    assert _same(shared.state_dict(), reference.state_dict())
    untimed = [[(s, {k: v for k, v in m.items() if k != "time/fps"}) for s, m in rows]
               for rows in (rows_new, rows_old)]
    assert untimed[0] == untimed[1]
