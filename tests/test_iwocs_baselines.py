"""IWOCS's baselines (nominal / DR SAC as ``agent=iwocs`` methods), the grid evaluation every
method reports, and the tabular stall statistics (rlsuite.agents.iwocs.baselines, .evaluation,
.analysis)."""

import io

import pytest
import torch

import rlsuite.envs as envs
from rlsuite.agents.iwocs.analysis import TIE_BREAK_RULES, stall_statistics
from rlsuite.agents.iwocs.baselines import DR_SEED_OFFSET, DomainRandomizedSAC, SACBaseline
from rlsuite.agents.iwocs.boxes import get_box
from rlsuite.agents.iwocs.deep import IWOCS, IWOCSConfig, build, config_replace
from rlsuite.agents.iwocs.evaluation import grid_key, grid_metrics, read_grid, same_start
from rlsuite.agents.iwocs.search import score_models
from rlsuite.learners.sac import SACConfig

TINY_SAC = SACConfig(hidden_sizes=[16, 16], learning_starts=20, utd=0.25, buffer_size=1000, batch_size=16)


def _env():
    return envs.make("pendulum", max_episode_steps=20)  # short episodes: a fast test


def test_grid_metrics_keys_each_point_by_its_axis_indices():
    env, box = _env(), get_box("pendulum_mass_length")
    nominal = env.default_params(1)

    def policy(obs):  # torque proportional to the angular velocity: returns differ across models
        return -0.5 * obs[:, 2:3]

    gen = env.make_generator(3)
    metrics = grid_metrics(policy, env, box, nominal, 3, 2, same_start(gen))
    # the same rollout scored model by model, in box.grid's order (the last axis fastest)
    direct = score_models(policy, env, box, nominal, box.grid(3), 2, same_start(gen))
    grid = read_grid(metrics, "eval", 2, 3)
    assert grid.reshape(-1).tolist() == direct.tolist()
    assert metrics[grid_key("eval", (2, 0))] == direct[6].item()  # m = 1.5 (high), l = 0.5 (low)
    assert metrics["eval/worst_case_return"] == grid.min().item()
    assert metrics["eval/mean_return"] == pytest.approx(grid.mean().item(), rel=1e-12)
    worst = box.grid(3)[int(direct.argmin())].tolist()
    assert [metrics["eval/worst_m"], metrics["eval/worst_l"]] == worst
    assert not any("/grid/" in k for k in grid_metrics(policy, env, box, nominal, 2, 1, gen,
                                                        "eval/x", per_point=False))
    with pytest.raises(KeyError, match="eval/other/grid/0_0"):
        read_grid(metrics, "eval/other", 2, 3)


def test_domain_randomized_sac_trains_chunk_k_on_the_kth_draw_and_resumes_bit_for_bit():
    env, box = _env(), get_box("pendulum_mass_length")
    nominal = env.default_params(1)
    make = lambda: DomainRandomizedSAC(TINY_SAC, env, box, nominal, 2, seed=5, resample_steps=10)  # noqa: E731
    whole = make().learn(60)  # 3 chunks of 2 x 10 steps
    g = torch.Generator().manual_seed(5 + 31_337)
    draws = [box.sample(2, g) for _ in range(3)]
    assert whole.draws == 3 and torch.equal(whole.values, draws[2])
    assert torch.equal(whole.sac.params.m, draws[2][:, 0].to(whole.sac.params.m.dtype))
    # interrupted exactly at a chunk boundary (before the next draw), then resumed in a new object
    first = make().learn(40)
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    resumed = make()
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    resumed.learn(60)
    assert resumed.draws == 3 and torch.equal(resumed.values, whole.values)
    for a, b in zip(whole.sac.nets.parameters(), resumed.sac.nets.parameters(), strict=True):
        assert torch.equal(a, b)


def _cfg(**changes) -> IWOCSConfig:
    base = IWOCSConfig(dr_steps=80, model_steps=40, num_iterations=1, thresholds=[0.5],
                       search_points=2, search_episodes=1, eval_points=2, eval_episodes=1,
                       dr_resample_steps=10, sac=TINY_SAC, q_hidden_sizes=[8],
                       predictor_hidden_sizes=[8])
    return config_replace(base, **changes)


class _Recorder:
    """Hooks that record which agent each iteration reports."""

    def __init__(self) -> None:
        self.seen: list = []

    def on_iteration(self, who, step, metrics) -> None:
        self.seen.append(who)


def test_baselines_are_iwocs_methods_reporting_iwocs_evaluation_keys():
    env = _env()
    iwocs = build(_cfg(), env, env.default_params(2), 1).learn(10**6)
    assert isinstance(iwocs, IWOCS)
    gen = env.make_generator(4)
    ref = iwocs.final_metrics(env, None, same_start(gen))
    assert ref["eval/last/worst_case_return"] <= ref["eval/last/mean_return"]
    assert {"eval/fallback/worst_case_return", "eval/expert_1/mean_return"} <= set(ref)
    for method in ("nominal_sac", "dr_sac"):
        agent = build(_cfg(method=method), env, env.default_params(2), 1)
        assert isinstance(agent, SACBaseline)
        hooks = _Recorder()
        agent.learn(120, hooks)
        assert agent.global_step == 120 and hooks.seen and all(w is agent for w in hooks.seen)
        metrics = agent.final_metrics(env, None, same_start(gen))
        primary = {k for k in ref if k.count("/") == 1 or k.startswith("eval/grid/")}
        assert set(metrics) == primary - {"eval/fallback_fraction"}
        # a checkpoint round trip gives the same agent
        again = build(_cfg(method=method), env, env.default_params(2), 1)
        again.load_state_dict(agent.state_dict())
        assert again.final_metrics(env, None, same_start(gen)) == metrics
    # the DR baseline draws from its own stream: not IWOCS's fallback prolonged
    dr = build(_cfg(method="dr_sac"), env, env.default_params(2), 1)
    assert dr.dr is not None and torch.equal(
        dr.dr.values, get_box("pendulum_mass_length").sample(2, torch.Generator().manual_seed(
            1 + DR_SEED_OFFSET + 31_337)))
    with pytest.raises(ValueError, match="method='td3'"):
        IWOCSConfig(method="td3")


def test_stall_statistics_count_every_trial_once_and_never_converge_falsely():
    sizes = stall_statistics([(4, 2, 2, 3)], trials=6)
    counts = sizes[0]["counts"]
    assert list(counts) == list(TIE_BREAK_RULES) and sizes[0]["models"] == 8
    for d in counts.values():
        assert d["converged"] + d["stalled"] + d["max_iterations"] == 6
        assert d["false_convergence"] == 0  # on rectangular sets the criterion is a certificate
        assert d["robust_value"] >= d["converged"]
    assert stall_statistics([(4, 2, 2, 3)], trials=6) == sizes  # seeded
    with pytest.raises(ValueError, match="trials = 0"):
        stall_statistics([(4, 2, 2, 3)], trials=0)
