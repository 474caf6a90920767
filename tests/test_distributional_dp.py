"""Stock-augmented distributional DP (rlsuite.agents.distributional_dp) against references
written here: ordinary value iteration, classic DP on the augmented state, brute force over all
deterministic history-dependent policies, and closed forms (docs/distributional_dp.md)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from rlsuite import risk
from rlsuite.agents.distributional_dp import (
    CVaR,
    ExpectedUtility,
    Homeostatic,
    Mean,
    MeanCVaR,
    ProbabilityOfThreshold,
    ReturnTargeting,
    Tails,
    solve,
)
from rlsuite.envs.tabular import TabularMDP, random_mdp


def _episodic(seed: int, gamma: float, horizon: int, states: int = 3, actions: int = 2,
              outcomes: int = 2, terminal_prob: float = 0.2, start: int | None = None
              ) -> TabularMDP:
    """A small random MDP with some terminal outcomes (optionally a fixed start state)."""
    mdp = random_mdp(states, actions, num_outcomes=outcomes, seed=seed, gamma=gamma,
                     horizon=horizon, terminal_prob=terminal_prob)
    if start is not None:
        init = torch.zeros(states, dtype=torch.float64)
        init[start] = 1.0
        mdp = TabularMDP(mdp.next_state, mdp.reward, mdp.prob, mdp.terminal, init, gamma, horizon)
    return mdp


def _value_iteration(mdp: TabularMDP) -> float:
    """Ordinary finite-horizon VI from the initial distribution."""
    v = torch.zeros(mdp.num_states, dtype=torch.float64)
    for _ in range(mdp.horizon):
        v = mdp.backup(v).max(-1).values
    return float((mdp.initial * v).sum())


def _outcomes(mdp: TabularMDP, s: int, a: int) -> list[tuple[float, int, float, bool]]:
    return [(float(mdp.prob[s, a, k]), int(mdp.next_state[s, a, k]), float(mdp.reward[s, a, k]),
             bool(mdp.terminal[s, a, k])) for k in range(mdp.num_outcomes) if mdp.prob[s, a, k] > 0]


def _classic_augmented(mdp: TabularMDP, f, degree: float, c0: float) -> float:
    """Classic DP on (t, s, c): V_t(s, c) = max_a E[f(c + r) if the episode ends, else
    gamma^deg V_{t+1}(s', (c + r) / gamma)] (the classic augmented Bellman equation), by plain recursion."""
    g = mdp.gamma

    def v(t: int, s: int, c: float) -> float:
        best = -math.inf
        for a in range(mdp.num_actions):
            total = 0.0
            for p, s2, r, term in _outcomes(mdp, s, a):
                if term or t == mdp.horizon - 1:
                    total += p * f(c + r)
                else:
                    total += p * g**degree * v(t + 1, s2, (c + r) / g)
            best = max(best, total)
        return best

    return sum(float(mdp.initial[s]) * v(0, s, c0) for s in range(mdp.num_states)
               if mdp.initial[s] > 0)


def _all_history_policies(mdp: TabularMDP, s: int, t: int) -> list[list[tuple[float, float]]]:
    """Return distributions [(G, prob)] of every deterministic history-dependent policy from
    state ``s`` at time ``t`` (a policy picks an action at every history node independently)."""
    g = mdp.gamma
    out = []
    for a in range(mdp.num_actions):
        branches = []
        for p, s2, r, term in _outcomes(mdp, s, a):
            if term or t == mdp.horizon - 1:
                branches.append([[(r, p)]])
            else:
                branches.append([[(r + g * x, p * q) for x, q in sub]
                                 for sub in _all_history_policies(mdp, s2, t + 1)])
        for combo in itertools.product(*branches):
            out.append([atom for part in combo for atom in part])
    return out


def _brute_force(mdp: TabularMDP, score) -> float:
    starts = [s for s in range(mdp.num_states) if mdp.initial[s] > 0]
    per_start = [_all_history_policies(mdp, s, 0) for s in starts]
    best = -math.inf
    for combo in itertools.product(*per_start):
        atoms = [(x, float(mdp.initial[s]) * q) for s, dist in zip(starts, combo, strict=True)
                 for x, q in dist]
        values = torch.tensor([x for x, _ in atoms], dtype=torch.float64)
        probs = torch.tensor([q for _, q in atoms], dtype=torch.float64)
        best = max(best, score(values, probs))
    return best


# -- invariances (docs/distributional_dp.md, "Verification cases") -----------------------------------------
@pytest.mark.parametrize("gamma", [1.0, 0.8])
@pytest.mark.parametrize("method", ["value_iteration", "policy_iteration"])
def test_mean_equals_ordinary_value_iteration(gamma: float, method: str) -> None:
    for seed in range(10):
        mdp = random_mdp(6, 3, num_outcomes=3, seed=seed, gamma=gamma, horizon=5,
                         terminal_prob=0.1)
        sol = solve(mdp, Mean(), initial_stock=0.7, method=method)
        assert sol.value == pytest.approx(0.7 + _value_iteration(mdp), abs=1e-9)
        assert sol.mean == pytest.approx(_value_iteration(mdp), abs=1e-9)
        assert float(sol.probs.sum()) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_homogeneous_utilities_equal_classic_augmented_dp(gamma: float) -> None:
    cases = [
        (ExpectedUtility(lambda x: x.clamp(max=0.0), 1.0), lambda x: min(x, 0.0), 1.0),
        (ReturnTargeting(), lambda x: -abs(x), 1.0),
        (ProbabilityOfThreshold(), lambda x: float(x >= 0), 0.0),
    ]
    for seed in range(5):
        mdp = _episodic(seed, gamma, horizon=3)
        for objective, f, degree in cases:
            for c0 in (-1.5, 0.3):
                sol = solve(mdp, objective, initial_stock=c0)
                ref = _classic_augmented(mdp, f, degree, c0)
                assert sol.value == pytest.approx(ref, abs=1e-9), (seed, objective.name, c0)
                # The returned distribution is the policy's: its objective is the value.
                assert objective.evaluate(sol.returns, sol.probs, c0) == pytest.approx(
                    sol.value, abs=1e-9)
                pi = solve(mdp, objective, initial_stock=c0, method="policy_iteration")
                assert pi.value == pytest.approx(ref, abs=1e-9)


def test_cvar_at_level_one_is_the_mean() -> None:
    for seed in range(5):
        mdp = _episodic(seed, 1.0, horizon=3)
        assert solve(mdp, CVaR(1.0)).value == pytest.approx(_value_iteration(mdp), abs=1e-9)


@pytest.mark.parametrize("gamma", [1.0, 0.8])
def test_cvar_equals_brute_force_over_history_dependent_policies(gamma: float) -> None:
    level = 0.3
    for seed in range(4):
        mdp = _episodic(seed, gamma, horizon=2)  # random initial distribution over 3 states
        sol = solve(mdp, CVaR(level))
        ref = _brute_force(mdp, lambda v, p: float(risk.cvar(v, p, level)))
        assert sol.value == pytest.approx(ref, abs=1e-9), seed
        # The reported value is the CVaR of the returned distribution (rlsuite.risk).
        assert float(risk.cvar(sol.returns, sol.probs, level)) == pytest.approx(ref, abs=1e-9)
    for seed in range(3):  # one start state, three steps
        mdp = _episodic(100 + seed, gamma, horizon=3, start=0)
        for method in ("value_iteration", "policy_iteration"):
            sol = solve(mdp, CVaR(level), method=method)
            ref = _brute_force(mdp, lambda v, p: float(risk.cvar(v, p, level)))
            assert sol.value == pytest.approx(ref, abs=1e-9), (seed, method)


def test_mean_cvar_equals_brute_force() -> None:
    objective = MeanCVaR(level=0.25, mean_weight=0.4)
    for seed in range(4):
        mdp = _episodic(200 + seed, 1.0, horizon=2)
        sol = solve(mdp, objective, initial_stock=1.0)
        ref = _brute_force(mdp, lambda v, p: float(risk.mean_cvar(v + 1.0, p, 0.25, 0.6)))
        assert sol.value == pytest.approx(ref, abs=1e-9)


def test_threshold_probability_equals_brute_force() -> None:
    for seed in range(4):
        mdp = _episodic(300 + seed, 1.0, horizon=2)
        sol = solve(mdp, ProbabilityOfThreshold(threshold=0.5))
        ref = _brute_force(mdp, lambda v, p: float(p[v >= 0.5].sum()))
        assert sol.value == pytest.approx(ref, abs=1e-12)


def test_exact_clipping_leaves_values_unchanged() -> None:
    """The same f with and without its affine tails declared (clipped vs fully enumerated)."""
    f = lambda x: 2.0 * x.clamp(max=0.0) - 0.5 * x.clamp(min=0.0)  # noqa: E731
    clipped = ExpectedUtility(f, 1.0, tails=Tails(0.0, 2.0, 0.0, -0.5))
    plain = ExpectedUtility(f, 1.0)
    for seed in range(6):
        mdp = _episodic(400 + seed, 0.9, horizon=4)
        for c0 in (-6.0, -1.0, 0.0, 2.0, 9.0):
            a, b = solve(mdp, clipped, c0), solve(mdp, plain, c0)
            assert a.value == pytest.approx(b.value, abs=1e-9)
            assert a.policy.finite.stocks[2].size <= b.policy.finite.stocks[2].size


def test_stock_resolution_approaches_the_exact_solution() -> None:
    """Snapping stocks to a lattice (for MDPs too large to enumerate) converges to the exact
    value as the lattice refines; the error is O(horizon * resolution)."""
    mdp = random_mdp(4, 2, num_outcomes=2, seed=3, gamma=1.0, horizon=4, terminal_prob=0.1)
    for objective in (CVaR(0.3), ReturnTargeting(1.0)):
        exact = solve(mdp, objective).value
        errors = [abs(solve(mdp, objective, stock_resolution=d).value - exact)
                  for d in (0.1, 0.002)]
        assert errors[-1] < 4 * 0.002 / 0.3 and errors[-1] < errors[0]


# -- the stock matters -------------------------------------------------------------------------
def _coin_then_choose() -> TabularMDP:
    """s0: a fair coin pays 0 or 2 and leads to s1; s1: action 0 pays 0, action 1 pays 2, then
    the episode ends. Targeting a return of 2 needs the coin's outcome, i.e. the stock."""
    nxt = torch.tensor([[[1, 1], [1, 1]], [[2, 2], [2, 2]], [[2, 2], [2, 2]]])
    reward = torch.tensor([[[0.0, 2.0], [0.0, 2.0]], [[0.0, 0.0], [2.0, 2.0]],
                           [[0.0, 0.0], [0.0, 0.0]]])
    prob = torch.tensor([[[0.5, 0.5], [0.5, 0.5]], [[1.0, 0.0], [1.0, 0.0]],
                         [[1.0, 0.0], [1.0, 0.0]]])
    terminal = torch.tensor([[[False, False], [False, False]], [[True, True], [True, True]],
                             [[True, True], [True, True]]])
    return TabularMDP(nxt, reward, prob, terminal, torch.tensor([1.0, 0.0, 0.0]), 1.0, 2)


def test_stock_aware_policy_beats_every_state_only_policy() -> None:
    mdp = _coin_then_choose()
    objective = ReturnTargeting(target=2.0)
    sol = solve(mdp, objective)
    assert sol.value == pytest.approx(0.0, abs=1e-12)
    assert sol.returns.tolist() == [2.0] and sol.probs.tolist() == [1.0]
    # The policy reads the stock: after the coin paid 0 it takes action 1, after 2 action 0.
    c1 = (sol.start_stock + torch.tensor([0.0, 2.0])).view(2, 1)  # gamma = 1
    assert sol.policy(torch.tensor([1, 1]), c1, 1).tolist() == [1, 0]
    # Every policy of (time, state) alone: E -|G - 2| = -1 (mixed ones too: E f is linear in
    # each state's action probabilities, so a deterministic one is optimal among them).
    best_markov = -math.inf
    for _a0, a1 in itertools.product(range(2), range(2)):
        g = torch.tensor([0.0 + 2.0 * a1, 2.0 + 2.0 * a1], dtype=torch.float64)
        best_markov = max(best_markov, objective.evaluate(g, torch.tensor([0.5, 0.5])))
    assert best_markov == pytest.approx(-1.0)
    assert sol.value > best_markov + 0.5


def test_return_targeting_through_the_initial_stock() -> None:
    """ExpectedUtility(-|x|) from c0 = -2 is ReturnTargeting(2) (the issue's example)."""
    mdp = _coin_then_choose()
    sol = solve(mdp, ExpectedUtility(lambda x: -x.abs()), initial_stock=-2.0)
    assert sol.value == pytest.approx(0.0) and sol.returns.tolist() == [2.0]


# -- vector rewards ------------------------------------------------------------------------------
def _homeostatic_reference(mdp: TabularMDP, vec: torch.Tensor, c0: torch.Tensor) -> float:
    """max E -||c0 + G|| by recursion on (t, s, vector stock), c' = (c + r) / gamma."""
    gamma = mdp.gamma

    def v(t: int, s: int, c: torch.Tensor) -> float:
        best = -math.inf
        for a in range(mdp.num_actions):
            total = 0.0
            for k in range(mdp.num_outcomes):
                p = float(mdp.prob[s, a, k])
                if p == 0:
                    continue
                x = c + vec[s, a, k]
                if bool(mdp.terminal[s, a, k]) or t == mdp.horizon - 1:
                    total += p * -float(x.norm())
                else:
                    total += p * gamma * v(t + 1, int(mdp.next_state[s, a, k]), x / gamma)
            best = max(best, total)
        return best

    return sum(float(mdp.initial[s]) * v(0, s, c0) for s in range(mdp.num_states))


def test_homeostatic_vector_stock_equals_reference() -> None:
    for seed in range(4):
        mdp = _episodic(500 + seed, 0.9, horizon=3)
        gen = torch.Generator().manual_seed(seed)
        vec = torch.randn(*mdp.reward.shape, 2, generator=gen, dtype=torch.float64)
        c0 = torch.tensor([0.5, -1.0], dtype=torch.float64)
        ref = _homeostatic_reference(mdp, vec, c0)
        sol = solve(mdp, Homeostatic(), initial_stock=c0, vector_reward=vec)
        assert sol.value == pytest.approx(ref, abs=1e-9)
        assert sol.returns.shape[1] == 2
        assert Homeostatic().evaluate(sol.returns, sol.probs, c0) == pytest.approx(ref, abs=1e-9)


# -- refusal and input errors ------------------------------------------------------------------
def test_non_scale_consistent_objective_is_refused_for_gamma_below_one() -> None:
    mdp = _episodic(0, 0.9, horizon=3)
    with pytest.raises(ValueError, match="scale consistent.*gamma=0.9"):
        solve(mdp, ExpectedUtility(lambda x: -(x - 1.0) ** 2))
    with pytest.raises(ValueError, match="not homogeneous of the declared degree"):
        solve(mdp, ExpectedUtility(lambda x: -(x - 1.0) ** 2, homogeneous_degree=2.0))
    # gamma = 1: any f is fine.
    sol = solve(_episodic(0, 1.0, horizon=3), ExpectedUtility(lambda x: -(x - 1.0) ** 2))
    assert math.isfinite(sol.value)


def test_bad_inputs_name_the_field() -> None:
    mdp = _episodic(0, 1.0, horizon=2)
    with pytest.raises(ValueError, match="method"):
        solve(mdp, Mean(), method="bogus")
    with pytest.raises(ValueError, match="level"):
        CVaR(0.0)
    with pytest.raises(ValueError, match="vector_reward"):
        solve(mdp, Homeostatic())


# -- discounted, categorical -------------------------------------------------------------------
def test_discounted_categorical_solver_matches_value_iteration_and_brute_force_bounds() -> None:
    mdp = random_mdp(3, 2, num_outcomes=2, seed=1, gamma=0.8, horizon=None, terminal_prob=0.2)
    v = torch.zeros(3, dtype=torch.float64)
    for _ in range(400):
        v = mdp.backup(v).max(-1).values
    exact = float((mdp.initial * v).sum())
    for method in ("value_iteration", "policy_iteration"):
        sol = solve(mdp, Mean(), method=method, num_stocks=21, num_atoms=51)
        assert sol.value == pytest.approx(exact, abs=1e-6)
    # CVaR: between the worst return bound and the mean, and the level-1 CVaR is the mean.
    sol = solve(mdp, CVaR(0.3), num_stocks=41, num_atoms=51)
    assert sol.value <= exact + 1e-6
    assert float(risk.cvar(sol.returns, sol.probs, 0.3)) == pytest.approx(sol.value, abs=1e-9)
    assert solve(mdp, CVaR(1.0), num_stocks=41, num_atoms=51).value == pytest.approx(exact,
                                                                                   abs=1e-5)


# -- the engine side: stock wrapper, CLI agent ------------------------------------------------
def test_stock_wrapper_tracks_the_stock_and_puts_the_post_reward_stock_in_final_obs() -> None:
    import rlsuite.envs as envs
    from rlsuite.envs.stock import StockAugmentedEnv

    env = envs.make("random_mdp", num_states=5, num_actions=2, gamma=0.9, max_episode_steps=4)
    wrapped = StockAugmentedEnv(env, 0.9, (-1.0, 1.0), include_time=True, dtype=torch.float64)
    params = wrapped.default_params(16)
    gen = wrapped.make_generator(0)
    obs, state = wrapped.reset(params, gen)
    c0 = obs[:, 5].clone()
    assert bool((c0 >= -1).all() and (c0 <= 1).all()) and c0.std() > 0
    disc = torch.zeros(16, dtype=torch.float64)
    for t in range(4):
        step = wrapped.step(state, torch.randint(0, 2, (16,), generator=gen), params, gen)
        disc += 0.9**t * step.reward.double()
        after = step.final_obs[:, 5]
        # gamma^(t+1) c_(t+1) = c_0 + discounted return so far (the stock identity)
        assert torch.allclose(0.9 ** (t + 1) * after, c0 + disc, atol=1e-9)
        assert torch.equal(step.final_obs[:, 6], torch.full((16,), t + 1.0, dtype=torch.float64))
        obs, state = step.obs, step.state
    assert bool(step.truncated.all())  # 4-step limit: every copy restarted with a new stock
    assert torch.equal(obs[:, 6], torch.zeros(16, dtype=torch.float64))
    assert not torch.allclose(obs[:, 5], c0)


def test_cli_agent_solves_frozenlake_and_rollouts_agree(tmp_path) -> None:
    from rlsuite.envs.tabular import frozen_lake
    from rlsuite.logging import read_metrics
    from rlsuite.runner import compose, run

    cfg = compose(["experiment=frozenlake_cvar_ddp", "agent.rollout_episodes=4000",
                   "progress=false", "device=cpu", f"run_dir={tmp_path}"])
    score = run(cfg)
    exact = solve(frozen_lake(gamma=1.0, horizon=100), CVaR(0.3)).value
    assert score == pytest.approx(exact, abs=1e-12)
    final = read_metrics(tmp_path)[-1]
    # CVaR_0.3 of a Bernoulli(p) return is (0.3 - (1 - p)) / 0.3: its standard error at 4000
    # episodes is about sqrt(p (1 - p) / 4000) / 0.3 = 0.023.
    assert final["eval/empirical_objective"] == pytest.approx(exact, abs=0.07)
    assert final["eval/mean_return"] == pytest.approx(0.7442, abs=0.03)


def test_cli_agent_rejects_an_unknown_objective() -> None:
    import rlsuite.envs as envs
    from rlsuite.agents.distributional_dp.agent import DistributionalDP, DistributionalDPConfig

    env = envs.make("frozenlake")
    with pytest.raises(ValueError, match="objective"):
        DistributionalDP(DistributionalDPConfig(objective="median"), env, env.default_params(1))


# -- DηN -----------------------------------------------------------------------------------------
class _FixedQuantiles(torch.nn.Module):
    """A stand-in network: the same quantiles for every observation, [B, A, N]."""

    def __init__(self, theta: torch.Tensor) -> None:
        super().__init__()
        self.theta = theta

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.theta.expand(obs.shape[0], -1, -1)


def test_deta_n_target_uses_the_greedy_action_of_the_objective_at_the_post_reward_stock() -> None:
    from rlsuite.agents.distributional_dp.deta_n import QuantileHead, deta_n_loss, greedy_by_objective
    from rlsuite.learners.buffers import Transitions

    # Action 0 returns 1 or 3 (mean 2); action 1 returns exactly 5 (the mean's choice).
    theta = torch.tensor([[[1.0, 3.0], [5.0, 5.0]]])
    net = _FixedQuantiles(theta)
    objective = ReturnTargeting()
    # Greedy at stock c: argmax_a mean_i -|c + theta_i|. c = -2 wants a return of 2: action 0.
    stocks = torch.tensor([-2.0, -5.0, 0.0])
    assert greedy_by_objective(objective, stocks, theta.expand(3, -1, -1)).tolist() == [0, 1, 0]
    # obs = (state feature, stock); next_obs holds the post-reward stock c' = (c + r) / gamma.
    obs = torch.tensor([[0.0, -3.0], [0.0, -6.0]])
    reward = torch.tensor([1.0, 1.0])
    gamma = 0.5
    next_obs = torch.stack([obs[:, 0], (obs[:, 1] + reward) / gamma], 1)  # c' = -4, -10
    batch = Transitions(obs=obs, action=torch.tensor([0, 0]), reward=reward, next_obs=next_obs,
                        terminated=torch.tensor([False, True]), truncated=torch.tensor([False, False]))
    # Zero loss exactly when the online quantiles equal the paper's target (mid-quantiles of a
    # 2-atom target are its atoms): row 0: c' = -4 -> action 1 (5 is nearer to 4 than 1 or 3):
    # 1 + 0.5 * [5, 5]; row 1 is terminal: [1, 1].
    goal = torch.tensor([[3.5, 3.5], [1.0, 1.0]])
    online = _OnlineFromGoal(goal)
    head = QuantileHead(2, 0.0, torch.device("cpu"))
    loss, _ = deta_n_loss(online, net, batch, objective, 1, gamma, head, time_in_obs=False)
    assert float(loss) == pytest.approx(0.0, abs=1e-7)
    wrong = _OnlineFromGoal(torch.tensor([[2.0, 2.0], [1.0, 1.0]]))  # the mean-greedy target
    loss_wrong, _ = deta_n_loss(wrong, net, batch, ReturnTargeting(), 1, gamma, head,
                                time_in_obs=False)
    assert float(loss_wrong) > 0.1


class _OnlineFromGoal(torch.nn.Module):
    """Online network whose chosen action (0) has the given per-row quantiles."""

    def __init__(self, goal: torch.Tensor) -> None:
        super().__init__()
        self.goal = goal

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.goal, self.goal + 100.0], 1)


def test_stock_grid_exact_optima() -> None:
    from rlsuite.envs.tabular.stock_grid import stock_grid

    det = stock_grid()
    assert solve(det, Mean()).value == pytest.approx(28.0)  # reach (0, 3) in 3 steps, stay 14
    for target in (2.0, 4.0, 5.0, 8.0):
        sol = solve(det, ReturnTargeting(target))
        assert sol.value == pytest.approx(0.0) and sol.returns.tolist() == [target]
    sto = stock_grid(stochastic=True)
    assert solve(sto, Mean()).value == pytest.approx(7.0)  # gamble 14 times at +0.5
    cvar = solve(sto, CVaR(0.25))
    assert solve(sto, CVaR(0.25)).value > 0.9 and cvar.mean < 7.0  # trades mean for CVaR


def test_deta_n_cli_run_deploys_at_c0_minus_target_and_checkpoints(tmp_path) -> None:
    from rlsuite import checkpoint
    from rlsuite.logging import read_metrics
    from rlsuite.runner import compose, run

    cfg = compose(["experiment=stockgrid_deta_n", "total_steps=512", "agent.learning_starts=256",
                   "agent.rollout_episodes=64", "agent.hidden_sizes=[16]", "progress=false",
                   "device=cpu", "tensorboard=false", f"run_dir={tmp_path}"])
    score = run(cfg)
    final = read_metrics(tmp_path)[-1]
    assert final["eval/deploy_stock"] == -4.0  # c0 - target, one network for every target
    assert final["eval/objective_ci_low"] <= score <= final["eval/objective_ci_high"]
    payload = checkpoint.load(tmp_path)
    assert payload["agent"]["global_step"] == 512 and "q_net" in payload["agent"]


def test_deta_n_cvar_preset_deploys_a_snapshot_chosen_by_episodes(tmp_path) -> None:
    from rlsuite import checkpoint
    from rlsuite.logging import read_metrics
    from rlsuite.runner import compose, run

    cfg = compose(["experiment=stockgrid_deta_n_cvar", "total_steps=512",
                   "agent.learning_starts=256", "agent.rollout_episodes=64",
                   "agent.hidden_sizes=[16]", "agent.deploy_episodes=64",
                   "agent.snapshot_interval=128", "progress=false", "device=cpu",
                   "tensorboard=false", f"run_dir={tmp_path}"])
    assert cfg.agent.deploy_snapshots == 5 and cfg.agent.deploy_shortlist == 5
    run(cfg)
    final = read_metrics(tmp_path)[-1]
    # Snapshots at 128, 256, 384 and 512 env steps compete; the stock is an integer of [-14, 4].
    assert final["eval/deploy_network_step"] in (128.0, 256.0, 384.0, 512.0)
    assert final["eval/deploy_stock"] in [float(x) for x in range(-14, 5)]
    payload = checkpoint.load(tmp_path)
    assert payload["agent"]["snapshots"]["steps"] == [128, 256, 384, 512]
