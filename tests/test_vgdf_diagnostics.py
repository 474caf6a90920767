"""VGDF's diagnostics (:mod:`rlsuite.agents.vgdf.diagnostics`): each on a hand-built batch with a
known answer, the dynamics-difference count on Pendulum's one-sided motor, the state-rebuild hook
against the env's own step, and a short run that logs every ``vgdf/`` diagnostic, finite, without
changing the run's numbers."""

from __future__ import annotations

import math

import pytest
import torch

from rlsuite.agents.vgdf import diagnostics as diag
from rlsuite.agents.vgdf import filter as vfilter
from rlsuite.agents.vgdf.agent import VGDF
from rlsuite.agents.vgdf.config import VGDFConfig
from rlsuite.agents.vgdf.domains import ShiftDomains
from rlsuite.envs.pendulum import Pendulum
from rlsuite.envs.shifts import ContinuousCartPole, shifted_env, step_from_obs

TINY = dict(sac={"hidden_sizes": [16, 16], "batch_size": 32, "utd": 0.25}, ensemble_size=3,
            num_elites=2, model_hidden=[16],
            model_weight_decay=[1e-5, 1e-5], model_train_freq=100, model_max_epochs=3,
            model_batch_size=32,
            warmup_steps=200, darc_warmup=200, random_steps=50, eval_every=200, eval_episodes=2)
DIAGNOSTIC_KEYS = ("vgdf/accept_ratio", "vgdf/fvp_std", "vgdf/fvp_iqr", "vgdf/fvp_min",
                   "vgdf/fvp_median", "vgdf/fvp_max", "vgdf/value_kept", "vgdf/value_rejected",
                   "vgdf/model_fresh_mse", "vgdf/dyn_diff_kept", "vgdf/dyn_diff_rejected")


# -- the pure functions on hand-built tensors ------------------------------------------------------
def test_fvp_spread_known_batch() -> None:
    out = diag.fvp_spread(torch.tensor([5.0, 1.0, 4.0, 2.0, 3.0]))
    assert out["std"].item() == pytest.approx(math.sqrt(2.5))  # unbiased: sum of squares 10 / 4
    assert out["iqr"].item() == pytest.approx(2.0)  # quantiles 0.25 -> 2, 0.75 -> 4
    assert (out["min"].item(), out["median"].item(), out["max"].item()) == (1.0, 3.0, 5.0)
    # Interpolated quantiles: [0, 1, 2, 10] -> q25 = 0.75, q50 = 1.5, q75 = 4.
    out = diag.fvp_spread(torch.tensor([0.0, 1.0, 2.0, 10.0]))
    assert out["iqr"].item() == pytest.approx(3.25) and out["median"].item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match="N >= 2"):
        diag.fvp_spread(torch.tensor([1.0]))


def test_kept_and_rejected_values_under_a_linear_critic() -> None:
    # V(s') = Q(s', mu(s')) with Q(s, a) = s0 + 2 s1 + 3 a and mu(s) = -s0: V = -2 s0 + 2 s1.
    def value(obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        return obs[:, 0] + 2 * obs[:, 1] + 3 * action[:, 0]

    next_obs = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    v = diag.next_state_values(value, lambda o: -o[:, :1], next_obs)
    assert torch.equal(v, torch.tensor([-2.0, 2.0, 0.0, -4.0]))
    mask = torch.tensor([True, True, False, False])
    # Two batches pooled: batch 1 kept {-2, 2}, rejected {0, -4}; batch 2 keeps all of [1, 1, 1, 1].
    stats = [diag.pooled("vgdf/value_kept", v, mask) | diag.pooled("vgdf/value_rejected", v, ~mask),
             diag.pooled("vgdf/value_kept", torch.ones(4), torch.ones(4, dtype=torch.bool))
             | diag.pooled("vgdf/value_rejected", torch.ones(4), torch.zeros(4, dtype=torch.bool))]
    # As LossTotals averages them: every sum and count divided by the number of updates (2).
    averaged = {k: float(stats[0][k] + stats[1][k]) / 2 for k in stats[0]}
    out = diag.pool_means(averaged | {"vgdf/accept_ratio": 0.75})
    assert out == {"vgdf/accept_ratio": 0.75, "vgdf/value_kept": pytest.approx(4.0 / 6),
                   "vgdf/value_rejected": pytest.approx(-2.0)}
    # Nothing rejected in any update: the key is left out, not NaN.
    only_kept = {k: float(v) for k, v in stats[1].items()}
    assert diag.pool_means(only_kept) == {"vgdf/value_kept": 1.0}


def test_ensemble_next_state_mse_of_the_members_mean() -> None:
    obs = torch.tensor([[0.0, 0.0], [1.0, -1.0]])
    action = torch.zeros(2, 1)
    # Two members predicting delta +1 and +3 everywhere (reward column first): mean delta +2.
    mean = torch.stack([torch.tensor([[9.0, 1.0, 1.0]] * 2), torch.tensor([[9.0, 3.0, 3.0]] * 2)])

    def predict(o: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mean, torch.full_like(mean, 5.0)  # the variances play no part

    next_obs = torch.tensor([[2.0, 2.0], [3.0, 3.0]])  # errors (0, 0) and (0, 2)
    assert diag.ensemble_next_state_mse(predict, obs, action, next_obs).item() == pytest.approx(1.0)


def test_dynamics_differ_uses_the_largest_coordinate_and_the_tolerance() -> None:
    a = torch.zeros(4, 3)
    b = torch.tensor([[0.0, 0.0, 0.0], [0.0, 5e-5, 0.0], [0.0, 0.0, -2e-4], [1.0, 1.0, 1.0]])
    assert diag.dynamics_differ(a, b).tolist() == [False, False, True, True]
    assert diag.dynamics_differ(a, b, tol=1e-5).tolist() == [False, True, True, True]
    with pytest.raises(ValueError, match="shapes differ"):
        diag.dynamics_differ(a, b[:, :2])


# -- the target-dynamics hook ------------------------------------------------------------------------
def _obs(th: torch.Tensor, thdot: torch.Tensor) -> torch.Tensor:
    return torch.stack([torch.cos(th), torch.sin(th), thdot], dim=1)


def test_one_sided_motor_positive_torque_same_negative_different() -> None:
    env = Pendulum()
    domains = ShiftDomains(env, env.default_params(6), 1, "action_low=0")
    th = torch.tensor([0.3, -2.0, 1.0, 3.0, -0.5, 2.5])
    thdot = torch.tensor([0.5, -1.0, 2.0, 0.0, -3.0, 1.0])
    action = torch.tensor([[1.5], [0.7], [0.0], [-0.4], [-1.0], [-2.0]])
    obs = _obs(th, thdot)
    # The source transitions: the intact motor from the same states.
    next_source = step_from_obs(domains.env, domains.source_params, obs, action)
    differ = diag.dynamics_differ(next_source, domains.target_next_obs(obs, action))
    assert differ.tolist() == [False, False, False, True, True, True]
    kept = torch.tensor([True, True, False, True, False, False])  # 1 of 3 kept differs
    stats = diag.pooled("k", differ.float(), kept) | diag.pooled("r", differ.float(), ~kept)
    out = diag.pool_means({k: float(v) for k, v in stats.items()})
    assert out == {"k": pytest.approx(1 / 3), "r": pytest.approx(2 / 3)}


@pytest.mark.parametrize("make", [Pendulum, ContinuousCartPole])
def test_step_from_obs_matches_the_envs_own_step(make) -> None:
    env = shifted_env(make())
    params = env.default_params(8)
    gen = env.make_generator(3)
    obs, state = env.reset(params, gen)
    low, high = env.action_space.low, env.action_space.high
    action = low + (high - low) * torch.rand((8, *env.action_space.shape), generator=gen)
    step = env.step(state, action, params, gen)
    assert torch.allclose(step_from_obs(env, params, obs, action), step.final_obs, atol=1e-5)


def test_step_from_obs_names_an_env_it_cannot_rebuild() -> None:
    env = Pendulum()  # the plain env, not the shift twin the hook knows
    with pytest.raises(ValueError, match="Pendulum cannot rebuild a state"):
        step_from_obs(env, env.default_params(1), torch.zeros(1, 3), torch.zeros(1, 1))


def test_agent_warns_when_the_dynamics_difference_cannot_be_computed() -> None:
    env = Pendulum(max_episode_steps=50)
    domains = ShiftDomains(env, env.default_params(10), 1, "action_low=0")
    domains.target_step_unavailable = "no simulator state"
    with pytest.warns(UserWarning, match="dyn_diff_kept.*no simulator state"):
        agent = VGDF(VGDFConfig(**TINY), domains=domains)
    assert agent._target_next_obs is None


# -- a short run ---------------------------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[int, dict[str, float]]] = []

    def on_iteration(self, agent, step: int, metrics: dict[str, float]) -> None:
        self.rows.append((step, dict(metrics)))


def _run(diagnostics: bool) -> tuple[VGDF, Recorder]:
    torch.set_num_threads(1)
    env = Pendulum(max_episode_steps=50)
    agent, rec = VGDF(VGDFConfig(**TINY, diagnostics=diagnostics), env, env.default_params(10), 0), Recorder()
    agent.learn(600, rec)  # fits at 400, 500, 600: filtering from 400, fresh-data error from 500
    return agent, rec


def test_short_run_logs_every_diagnostic_finite_and_changes_nothing() -> None:
    agent, rec = _run(True)
    for key in DIAGNOSTIC_KEYS:
        values = [m[key] for _, m in rec.rows if key in m]
        assert values and all(math.isfinite(v) for v in values), key
    assert [s for s, m in rec.rows if "vgdf/model_fresh_mse" in m] == [500, 600]
    assert all(0.0 <= m[k] <= 1.0 for _, m in rec.rows for k in m if "dyn_diff" in k)
    assert not any(k.startswith(diag.POOL) for _, m in rec.rows for k in m)
    # The same run without the diagnostics: the same weights and the same losses, step for step.
    plain, plain_rec = _run(False)
    for (name, p), (_, q) in zip(agent.nets.state_dict().items(), plain.nets.state_dict().items(),
                                 strict=True):
        assert torch.equal(p, q), name
    for (_, m), (_, n) in zip(rec.rows, plain_rec.rows, strict=True):
        shared = {k: v for k, v in n.items() if k != "time/fps"}
        assert {k: m[k] for k in shared} == shared
    assert not any(k in m for _, m in plain_rec.rows for k in DIAGNOSTIC_KEYS[1:])


def test_mean_ci_is_the_student_t_interval() -> None:
    from rlsuite.agents.vgdf.analysis import mean_ci, mean_ci_text

    m, h = mean_ci([1.0, 2.0, 3.0])  # sd 1, n 3: 4.303 / sqrt(3)
    assert m == 2.0 and h == pytest.approx(4.303 / math.sqrt(3))
    m, h = mean_ci([5.0])
    assert m == 5.0 and math.isnan(h)
    assert mean_ci_text([1.0, 2.0, 3.0]) == "2 ± 2.48" and mean_ci_text([5.0]) == "5"
    assert mean_ci_text([]) == "-"
    with pytest.raises(ValueError, match="no values"):
        mean_ci([])


def test_mean_after_averages_only_the_points_after_the_warmup() -> None:
    from rlsuite.agents.vgdf.analysis import mean_after

    assert mean_after([(100, 1.0), (200, 2.0), (300, 4.0)], 100) == 3.0
    assert math.isnan(mean_after([(100, 1.0)], 100))


def test_random_ranking_keeps_the_same_fraction_blind_to_value() -> None:
    """``filter_ranking="random"`` (the control) draws the fictitious targets exactly as the FVP
    filter does, then keeps the samples whose uniform draw is above the ``1 - xi`` quantile."""
    torch.set_num_threads(1)
    env = Pendulum(max_episode_steps=50)
    agent = VGDF(VGDFConfig(**TINY), env, env.default_params(10), 0)
    agent.learn(400, Recorder())  # the ensemble is fitted at 400: the filter is active
    assert agent._filter_active()
    src = agent.src_buffer.sample(64, agent.generator)
    start = agent.generator.get_state()
    w_fvp, stats_fvp, _ = agent.filter_batch(src)
    after_fvp_targets = agent.generator.get_state()
    agent.config.filter_ranking = "random"
    agent.generator.set_state(start)
    w_random, stats_random, _ = agent.filter_batch(src)
    draws = torch.Generator().set_state(after_fvp_targets)
    expected = vfilter.select(torch.rand(64, generator=draws), agent.config.keep_fraction, True).mask
    assert torch.equal(w_random > 0, expected)
    assert int((w_random > 0).sum()) == int((w_fvp > 0).sum()) == 16  # xi = 25 % of 64
    assert not torch.equal(w_random > 0, w_fvp > 0)
    assert stats_random["fvp_mean"] == stats_fvp["fvp_mean"]  # the same FVP, logged either way


def test_filter_ranking_is_checked() -> None:
    with pytest.raises(ValueError, match="filter_ranking.*value"):
        VGDFConfig(**TINY, filter_ranking="value")
