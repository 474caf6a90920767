"""Deep IWOCS (rlsuite.agents.iwocs: critic, composite, deep) on the batched Pendulum."""

import io
from types import SimpleNamespace

import pytest
import torch

import rlsuite.envs as envs
from rlsuite.agents.iwocs.boxes import get_box
from rlsuite.agents.iwocs.composite import CompositePolicy, Expert, composite_action
from rlsuite.agents.iwocs.critic import ExpertHeads, predictor_loss, unregularized_q_loss
from rlsuite.agents.iwocs.deep import IWOCS, IWOCSConfig, config_replace
from rlsuite.engine.rollout import collect, start
from rlsuite.learners.buffers import Transitions
from rlsuite.learners.sac import SACConfig, SACNetworks


def test_composite_action_picks_the_most_pessimistic_trusted_expert():
    q = torch.tensor([[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 2.0, 0.0]])  # [J=2, B=4]
    trusted = torch.tensor([[True, True, False, False], [True, True, True, False]])
    actions = torch.tensor([[[10.0], [10.0], [10.0], [10.0]], [[20.0], [20.0], [20.0], [20.0]]])
    fallback = torch.full((4, 1), -1.0)
    action, chosen = composite_action(q, trusted, actions, fallback)
    # copy 0: min(1, 3) -> expert 0; copy 1: min(5, 4) -> expert 1; copy 2: only expert 1 is
    # trusted (even though expert 0's Q is lower); copy 3: nobody trusted -> fallback
    assert action.flatten().tolist() == [10.0, 20.0, 20.0, -1.0]
    assert chosen.tolist() == [0, 1, 1, -1]
    # ties go to the lowest index; no experts at all -> fallback everywhere
    a2, c2 = composite_action(torch.zeros(2, 1), torch.ones(2, 1, dtype=torch.bool), actions[:, :1],
                              fallback[:1])
    assert c2.tolist() == [0] and a2.tolist() == [[10.0]]
    a3, c3 = composite_action(torch.zeros(0, 4), torch.zeros(0, 4, dtype=torch.bool), actions[:0],
                              fallback)
    assert c3.tolist() == [-1] * 4 and torch.equal(a3, fallback)


class _Const(torch.nn.Module):
    """A fake SAC actor whose deterministic action is ``value``: ``4 tanh(atanh(value / 4))``."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value
        self.scale, self.bias = torch.full((1,), 4.0), torch.zeros(1)

    def forward(self, obs):
        mean = torch.full((obs.shape[0], 1), self.value / 4).atanh()
        return mean, torch.zeros_like(mean)


def _fake_expert(action: float, q: float, errors: list[float]) -> Expert:
    """An expert whose action, value and (per-copy) prediction error are constants."""
    err = torch.tensor(errors)
    heads = SimpleNamespace(value=lambda obs, a: torch.full((obs.shape[0],), q),
                            predictor=SimpleNamespace(error=lambda o, a, n: err))
    return Expert(SimpleNamespace(actor=_Const(action)), heads, rho=0.1, model=[1.0, 1.0])


def test_composite_policy_trusts_by_prediction_error_after_the_first_step():
    e0 = _fake_expert(1.0, q=-5.0, errors=[0.5, 0.05, 0.5])   # the pessimistic one
    e1 = _fake_expert(2.0, q=-1.0, errors=[0.05, 0.05, 0.5])
    policy = CompositePolicy([e0, e1], SimpleNamespace(actor=_Const(-2.0)))
    obs = torch.zeros(3, 3)
    # t = 0: no previous transition, every expert is trusted -> the lowest Q (expert 0) acts
    assert policy(obs).flatten().tolist() == pytest.approx([1.0, 1.0, 1.0])
    # t = 1: copy 0 trusts only expert 1, copy 1 both (-> expert 0), copy 2 none (-> fallback)
    assert policy(obs).flatten().tolist() == pytest.approx([2.0, 1.0, -2.0])
    assert policy.fallback_fraction() == pytest.approx(1 / 6)
    policy.reset()
    assert policy(obs).flatten().tolist() == pytest.approx([1.0, 1.0, 1.0])
    # thresholds can be overridden (the rho sweep): with rho = 1 everything is trusted
    loose = CompositePolicy([e0, e1], SimpleNamespace(actor=_Const(-2.0)), rhos=[1.0, 1.0])
    loose(obs)
    assert loose(obs).flatten().tolist() == pytest.approx([1.0, 1.0, 1.0])


def _pendulum_transitions(m: float, l: float, seed: int, copies: int = 64, steps: int = 40):
    env = envs.make("pendulum")
    params = get_box("pendulum_mass_length").params(env.default_params(1),
                                                    torch.tensor([[m, l]] * copies))
    g, pg = env.make_generator(seed), torch.Generator().manual_seed(seed)
    rollout, _ = collect(env, start(env, params, g), params,
                         lambda o: torch.rand(o.shape[0], 1, generator=pg) * 4 - 2, steps, g)
    return Transitions.from_rollout(rollout)


def test_predictor_error_separates_the_training_model_from_a_different_one():
    """docs/iwocs.md: T_hat trained on m = l = 1 data predicts it well and the heavy-long corner
    (m = 2, l = 1.5) badly; rho = 0.1 separates them."""
    torch.manual_seed(0)
    heads = ExpertHeads(3, 1, [16], [64, 64])
    opt = torch.optim.Adam(heads.predictor.parameters(), lr=3e-3)
    data = _pendulum_transitions(1.0, 1.0, 0)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        loss = predictor_loss(heads, data.index(torch.randint(len(data), (256,), generator=g)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        same = _pendulum_transitions(1.0, 1.0, 7)
        other = _pendulum_transitions(2.0, 1.5, 7)
        err_same = heads.predictor.error(same.obs, same.action, same.next_obs).mean()
        err_other = heads.predictor.error(other.obs, other.action, other.next_obs).mean()
    assert float(err_same) < 0.06 < 0.1 < float(err_other)


def test_unregularized_q_loss_matches_a_hand_written_target():
    env = envs.make("pendulum")
    torch.manual_seed(1)
    nets = SACNetworks(env.observation_space, env.action_space, SACConfig(hidden_sizes=[8]))
    heads = ExpertHeads(3, 1, [8, 8], [8])
    batch = _pendulum_transitions(1.0, 1.0, 3, copies=4, steps=3)
    batch = Transitions(batch.obs, batch.action, batch.reward, batch.next_obs,
                        torch.tensor([False, True] * 6), batch.truncated)
    loss = unregularized_q_loss(heads, nets, batch, 0.9, torch.Generator().manual_seed(5))
    with torch.no_grad():
        a_next, _ = nets.actor.sample(batch.next_obs, torch.Generator().manual_seed(5))
        t1, t2 = heads.q_target(batch.next_obs, a_next)
        y = batch.reward + 0.9 * torch.where(batch.terminated, 0.0, torch.minimum(t1, t2))
        q1, q2 = heads.q(batch.obs, batch.action)
        ref = 0.5 * ((q1 - y) ** 2 + (q2 - y) ** 2).mean()  # no entropy term anywhere
    torch.testing.assert_close(loss.detach(), ref)


def _tiny(**changes) -> IWOCSConfig:
    base = IWOCSConfig(dr_steps=400, model_steps=200, num_iterations=2, thresholds=[0.2, 0.6],
                       search_points=2, search_episodes=1, eval_points=2, eval_episodes=1,
                       sac=SACConfig(hidden_sizes=[16, 16], learning_starts=100, utd=0.25,
                                     buffer_size=1000),
                       q_hidden_sizes=[16], predictor_hidden_sizes=[16])
    return config_replace(base, **changes)


@pytest.mark.slow
def test_iwocs_phases_trace_and_checkpoint_round_trip():
    env = envs.make("pendulum", max_episode_steps=50)  # short episodes: a faster test
    # CMA-ES search (continuous: it does not re-find a solved model exactly); the first expert on
    # the fallback's worst case (the nominal start is tested below)
    cfg = _tiny(search="cmaes", cmaes_generations=1, cmaes_population=4,
                initial_model="fallback_worst_case")
    agent = IWOCS(cfg, env, env.default_params(2), seed=0)
    logged = []
    agent.learn(10**6, SimpleNamespace(on_iteration=lambda a, s, m: logged.append((s, m))))
    assert agent.stop_reason == "max_iterations" and len(agent.experts) == 2
    assert agent.global_step == 400 + 2 * 200 and agent.iteration == 3 and len(logged) == 3
    assert [t["phase"] for t in agent.trace] == [0, 1, 2]
    # each expert is trained on the worst case found by the previous search
    assert agent.trace[1]["trained_on"] == agent.experts[0].model
    assert agent.experts[0].model == list(agent.trace[0]["worst_params"].values())
    assert agent.experts[1].model == list(agent.trace[1]["worst_params"].values())
    assert all(e.rho in (0.2, 0.6) for e in agent.experts)
    # the kept composite is the phase with the best searched worst case (phase i has i experts)
    searched = [t["worst_return"] for t in agent.trace]
    assert agent.best_experts == searched.index(max(searched)) == agent.trace[-1]["kept_experts"]
    assert len(agent.composite().experts) == agent.best_experts
    assert "iwocs/worst_case_return" in logged[0][1] and "iwocs/rho" in logged[1][1]
    metrics = agent.final_metrics(env, None, env.make_generator(9))
    assert list(metrics)[:2] == ["eval/worst_case_return", "eval/mean_return"]
    assert metrics["eval/worst_case_return"] <= metrics["eval/mean_return"]
    buf = io.BytesIO()
    torch.save(agent.state_dict(), buf)
    buf.seek(0)
    again = IWOCS(cfg, env, env.default_params(2), seed=0)
    again.load_state_dict(torch.load(buf, weights_only=True))
    assert again.final_metrics(env, None, env.make_generator(9)) == metrics
    assert again.finished and again.learn(10**6).global_step == agent.global_step


@pytest.mark.slow  # 7-25 s; CI's slow tier runs it (default-tier budget)
def test_refinding_a_solved_model_stops_as_stalled():
    """A one-point search grid always returns the box's low corner: the first expert is trained
    on the nominal model (Algorithm 1's T_0, whatever the fallback's worst case), the second on
    the corner; the next search re-finds the corner, so the loop stops instead of training a
    duplicate."""
    env = envs.make("pendulum", max_episode_steps=50)
    agent = IWOCS(_tiny(search_points=1, num_iterations=5), env, env.default_params(2), seed=0)
    agent.learn(10**6)
    assert agent.config.initial_model == "nominal"  # the default
    assert agent.stop_reason == "stalled" and len(agent.experts) == 2
    assert [e.model for e in agent.experts] == [[1.0, 1.0], [0.5, 0.5]]
    assert agent.trace[0]["worst_params"] == {"m": 0.5, "l": 0.5}  # the fallback's, not used
    assert agent.trace[1]["trained_on"] == [1.0, 1.0]
    assert agent.global_step == 400 + 2 * 200
    # with the fallback's worst case first, the corner is solved first and re-found at once
    other = IWOCS(_tiny(search_points=1, num_iterations=5, initial_model="fallback_worst_case"),
                  env, env.default_params(2), seed=0).learn(10**6)
    assert other.stop_reason == "stalled" and [e.model for e in other.experts] == [[0.5, 0.5]]


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="search='random'"):
        IWOCSConfig(search="random")
    with pytest.raises(ValueError, match="thresholds"):
        IWOCSConfig(thresholds=[])
    with pytest.raises(ValueError, match="initial_model='worst'"):
        IWOCSConfig(initial_model="worst")
    cart = envs.make("cartpole")
    with pytest.raises(ValueError, match="box 'pendulum_mass_length' is for env 'pendulum'"):
        IWOCS(IWOCSConfig(), cart, cart.default_params(2))
    with pytest.raises(ValueError, match="needs a Box action space"):
        IWOCS(IWOCSConfig(box="cartpole_masspole_length"), cart, cart.default_params(2))
    cfg = IWOCSConfig(sac={"hidden_sizes": [8], "utd": 0.1})  # Hydra hands the group as a dict
    assert isinstance(cfg.sac, SACConfig) and cfg.sac.utd == 0.1


@pytest.mark.slow
def test_a_preemption_signal_inside_a_phase_stops_the_run_at_once_and_resume_repeats_the_phase(
        tmp_path, monkeypatch):
    """SIGUSR2 arriving in the middle of an expert phase: the run stops at that SAC iteration
    (an interrupt point), not at the phase's end an hour later on MuJoCo; it records
    ``preempted`` and leaves the DR phase's checkpoint standing; ``resume=auto`` repeats the
    phase and ends with the uninterrupted run's final metrics."""
    import json
    import os
    import signal

    from rlsuite import checkpoint, jobs
    from rlsuite.agents.iwocs import deep
    from rlsuite.runner import compose, run

    common = ["experiment=pendulum_iwocs_smoke", "checkpoint_every=1", "progress=false",
              "tensorboard=false"]  # a checkpoint at every phase boundary, as halfcheetah_iwocs
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    score = run(compose([*common, f"run_dir={whole}"]))
    original = deep._PhaseHooks.on_iteration
    learners, calls_after_signal = [], []

    def on_iteration(self, agent, step, metrics):
        if not learners or learners[-1] is not agent:
            learners.append(agent)  # the DR phase's SAC, then the first expert's
        if len(learners) == 2 and calls_after_signal == [] and agent.global_step > 0:
            calls_after_signal.append(0)
            os.kill(os.getpid(), signal.SIGUSR2)  # mid-phase: the expert has trained a little
        elif calls_after_signal:
            calls_after_signal[0] += 1
        original(self, agent, step, metrics)

    monkeypatch.setattr(deep._PhaseHooks, "on_iteration", on_iteration)
    with pytest.raises(jobs.PreemptionExit):
        run(compose([*common, f"run_dir={killed}"]))
    assert calls_after_signal == [0]  # stopped in the iteration the signal arrived in
    assert len(learners) == 2 and 0 < learners[1].global_step < 300  # inside phase 1 (300 steps)
    record = jobs.read_result(killed)
    assert record["status"] == "preempted" and "SIGUSR2" in record["signal"]
    assert checkpoint.load(killed)["agent"]["global_step"] == 600  # the DR phase's boundary
    monkeypatch.undo()
    assert run(compose([*common, f"run_dir={killed}", "resume=auto"])) == score
    final = json.loads((killed / "result.json").read_text())
    assert final["metrics"] == json.loads((whole / "result.json").read_text())["metrics"]
