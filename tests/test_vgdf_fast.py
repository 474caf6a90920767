"""VGDF's update on SAC's compiled kernels (``agent.sac.fast_path``) against the eager autograd
step it replaces (:func:`rlsuite.agents.vgdf.update.vgdf_update`, the reference): from the same
warm agent state and on the same batches, both paths must give the same parameters (critics,
targets, actor, exploration actor, ``log_alpha``), gradients, Adam moments and statistics up to
rounding, and leave the agent's generator in the same state."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from test_conformance import assert_same

from rlsuite.agents.vgdf.agent import VGDF
from rlsuite.agents.vgdf.config import VGDFConfig
from rlsuite.engine import fastpath
from rlsuite.envs.pendulum import Pendulum
from rlsuite.learners import sac_fast
from rlsuite.learners.flat import FlatOptimizer

SAC = {"hidden_sizes": [16, 16], "batch_size": 32, "utd": 0.5}
"""Two domains x 32 = sac_fast.COMPILE_MIN_ROWS rows: the update takes the fast path."""
TINY = dict(ensemble_size=3, num_elites=2, model_hidden=[16], model_weight_decay=[1e-5, 1e-5],
            model_train_freq=100, model_max_epochs=3, model_batch_size=32, warmup_steps=100,
            darc_warmup=0, random_steps=50, gamma_ratio=2, eval_every=10**9)
"""Filtering (a fitted model, past the warm-up) from source step 100 on."""
WARM = 200
TOL = 2e-5


def _agent(fast: bool, sac: dict[str, Any] | None = None, **kw: Any) -> VGDF:
    env = Pendulum(max_episode_steps=50)
    config = VGDFConfig(**(TINY | kw), sac=SAC | (sac or {}) | {"fast_path": fast})
    return VGDF(config, env, env.default_params(10), 0)


def _parity(variant: str, updates: int = 4, **kw: Any) -> dict[bool, tuple[VGDF, list[dict]]]:
    """A warm eager agent's state and ``updates`` of its batches (with the filter's or the
    variant's weights); both paths from that state on those batches: ``{fast: (agent, stats)}``."""
    torch.set_num_threads(1)
    warm = _agent(False, variant=variant, **kw)
    warm.learn(WARM)
    state = warm.state_dict()
    batches = [warm.sample_batch()[:2] for _ in range(updates)]
    runs = {}
    for fast in (False, True):
        agent = _agent(fast, variant=variant, **kw)
        agent.load_state_dict(state)  # one state for both: a load copies what it keeps
        runs[fast] = (agent, [agent.update_on(batch, weight) for batch, weight in batches])
    fast_agent = runs[True][0]
    step = sac_fast._STEPS.get(fast_agent.nets)
    assert step is not None and step[1] is not None  # the compiled step ran
    assert isinstance(fast_agent.explore_opt, FlatOptimizer)
    assert runs[False][0].nets not in sac_fast._STEPS  # the eager agent compiled nothing
    return runs


def _grad_norm(params: list[torch.nn.Parameter]) -> float:
    return float(torch.linalg.vector_norm(torch.cat([p.grad.reshape(-1) for p in params])))


def _assert_same(runs: dict[bool, tuple[VGDF, list[dict]]], tol: float = TOL) -> None:
    (eager, se), (fast, sf) = runs[False], runs[True]
    assert torch.equal(eager.generator.get_state(), fast.generator.get_state())
    for a, b in zip(se, sf, strict=True):
        assert list(a) == list(b)  # the same statistics, in the same order
        for key in a:
            assert b[key].shape == a[key].shape and not b[key].requires_grad
            torch.testing.assert_close(b[key], a[key], rtol=tol, atol=tol, msg=key)
    # Parameters (critics, their targets, actor, log_alpha), then the last step's gradients.
    for (name, p), q in zip(eager.nets.named_parameters(), fast.nets.parameters(), strict=True):
        torch.testing.assert_close(q, p, rtol=tol, atol=tol, msg=name)
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=tol, atol=tol, msg=f"grad {name}")
    for (name, p), q in zip(eager.explore_actor.named_parameters(), fast.explore_actor.parameters(),
                            strict=True):
        torch.testing.assert_close(q, p, rtol=tol, atol=tol, msg=f"explore {name}")
        if p.grad is not None:
            torch.testing.assert_close(q.grad, p.grad, rtol=tol, atol=tol, msg=f"explore grad {name}")
    saved_e, saved_f = eager.state_dict(), fast.state_dict()
    for part in ("actor", "critic", "alpha"):
        for key, state in saved_e["optimizers"].get(part, {"state": {}})["state"].items():
            other = saved_f["optimizers"][part]["state"][key]
            for field in ("step", "exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(other[field], state[field], rtol=tol, atol=1e-8)
    for key, state in saved_e["explore_opt"]["state"].items():
        for field in ("step", "exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(saved_f["explore_opt"]["state"][key][field], state[field],
                                       rtol=tol, atol=1e-8)


CASES = {
    "vgdf": ("vgdf", {}),  # the filter's weights, optimistic exploration, policy_delay 2
    "vgdf_no_explore": ("vgdf", {"optimistic_exploration": False}),
    "vgdf_delay1": ("vgdf", {"policy_delay": 1}),
    "vgdf_delay3": ("vgdf", {"policy_delay": 3}),
    "vgdf_tuned_alpha": ("vgdf", {"sac": {"alpha": None}}),  # the temperature's step too
    "mix": ("mix", {}),  # weights all 2 (ones, doubled)
    "darc": ("darc", {}),  # weights all 2, corrected source rewards
    "zero_shot": ("zero_shot", {"sac": {"batch_size": 64}}),  # no weights
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fast_update_equals_eager_update(case: str) -> None:
    variant, kw = CASES[case]
    runs = _parity(variant, **kw)
    _assert_same(runs)
    eager, stats = runs[False]
    policy = ["actor_loss" in s for s in stats]
    delay = eager.config.policy_delay
    assert any(policy) and (all(policy) if delay == 1 else not all(policy))
    explore = eager.config.optimistic_exploration and variant != "target_only"
    assert all(("explore_actor_loss" in s) == (p and explore) for s, p in zip(stats, policy, strict=True))


def test_one_update_equals_eager_update() -> None:
    """A single update (critics, actor, exploration actor): its gradients to float rounding."""
    runs = _parity("vgdf", updates=1, policy_delay=1)
    _assert_same(runs, tol=1e-5)
    assert set(runs[True][1][0]) == {"critic_loss", "q_mean", "actor_loss", "entropy",
                                      "explore_actor_loss", "ent_coef"}


def test_filter_weights_reach_the_fast_update() -> None:
    """The vgdf case's batches carry the filter's weights (some source samples dropped), mix's
    and DARC's all ones (doubled)."""
    torch.set_num_threads(1)
    for variant, dropped in (("vgdf", True), ("mix", False), ("darc", False)):
        agent = _agent(False, variant=variant)
        agent.learn(WARM)
        weight = agent.sample_batch()[1]
        assert weight is not None and bool((weight == 0).any()) == dropped
        if not dropped:
            assert torch.equal(weight, torch.full_like(weight, 2.0))


@pytest.mark.parametrize("clip", [1e-3, 1e6])
def test_gradient_clipping_binding_or_not(clip: float) -> None:
    """A tiny ``grad_clip`` scales every gradient (critic, actor, exploration actor) to that norm
    on both paths; a huge one leaves them alone; either way the paths agree."""
    runs = _parity("vgdf", updates=3, grad_clip=clip, policy_delay=1)
    _assert_same(runs)
    for agent, _ in runs.values():
        for params in (list(agent.nets.critic.parameters()), list(agent.nets.actor.parameters()),
                       list(agent.explore_actor.parameters())):
            norm = _grad_norm(params)
            if clip < 1:
                assert norm == pytest.approx(clip, rel=1e-4)  # clip * norm / (norm + 1e-6)
            else:
                assert 0 < norm < clip


def test_agent_updates_with_the_filter_agree() -> None:
    """Whole updates of two agents (their own batches, filter and diagnostics) from one state."""
    torch.set_num_threads(1)
    warm = _agent(False)
    warm.learn(WARM)
    state = warm.state_dict()
    agents = {fast: _agent(fast) for fast in (False, True)}
    stats: dict[bool, list[dict]] = {}
    for fast, agent in agents.items():
        agent.load_state_dict(state)
        stats[fast] = [agent._update(i == 2)[0] for i in range(3)]
    assert stats[False][0]["vgdf/accept_ratio"] == 0.25  # filtering
    _assert_same({fast: (agents[fast], stats[fast]) for fast in agents})


def test_fast_agent_resumes_exactly() -> None:
    """A VGDF agent on the fast path continues from its state dict bit for bit."""
    torch.set_num_threads(1)
    first = _agent(True)
    first.learn(WARM)
    assert sac_fast._STEPS[first.nets][1] is not None and first.num_updates > 0
    restored = _agent(True)
    restored.load_state_dict(first.state_dict())
    for agent in (first, restored):
        agent.learn(WARM + 60)
    for a, b in ((first.nets, restored.nets), (first.explore_actor, restored.explore_actor)):
        for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
            assert torch.equal(p, q), name
    assert torch.equal(first.generator.get_state(), restored.generator.get_state())


def test_fast_path_off_compiles_nothing() -> None:
    torch.set_num_threads(1)
    before = fastpath.compile_seconds()
    agent = _agent(False)
    agent.learn(WARM)
    assert agent.num_updates > 0
    assert fastpath.compile_seconds() == before
    assert agent.nets not in sac_fast._STEPS and agent.explore_actor not in sac_fast._EXPLORERS
    assert type(agent.explore_opt) is torch.optim.Adam  # torch's per-tensor Adam, as before


def test_small_batches_take_the_eager_update() -> None:
    """Below sac_fast.COMPILE_MIN_ROWS (one domain's 32 rows) the fast-path agent steps eagerly."""
    torch.set_num_threads(1)
    agent = _agent(True, variant="zero_shot")
    agent.learn(WARM)
    assert agent.num_updates > 0 and agent.nets not in sac_fast._STEPS


def test_an_eager_agent_loaded_from_a_live_one_leaves_it_untouched() -> None:
    """The eager update's exploration actor steps torch's per-tensor Adam, which keeps loaded
    tensors of the parameter's dtype and device: without the copy on load, the loaded agent's
    training advanced the source agent's exploration moments and step counts too."""
    torch.set_num_threads(1)
    source = _agent(False)
    source.learn(WARM)
    assert isinstance(source.explore_opt, torch.optim.Adam)
    before = copy.deepcopy(source.state_dict())
    loaded = _agent(False)
    loaded.load_state_dict(source.state_dict())
    loaded.learn(WARM + 50)
    assert_same(before, source.state_dict())
