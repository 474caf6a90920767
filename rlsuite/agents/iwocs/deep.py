"""Deep IWOCS on the batched engine (paper §4-5, App. F-H; ``docs/iwocs.md``), scaled for CPU minutes.

Phases, each one static RL problem solved by the shared SAC learner::

    phase 0   pi_0 = SAC trained with domain randomization over the box (the fallback policy)
              its worst case is searched (the composite with no expert, a candidate to keep)
              T_1  = the initial model: the nominal (reference) model (``initial_model="nominal"``,
                     Algorithm 1's T_0, solved before any search), or the fallback's worst case
                     (``initial_model="fallback_worst_case"``, another reading of §5)
    phase i   expert i = fresh SAC on the static model T_i, with the extra heads of App. F
              (unregularized Q, next-state predictor) trained alongside through the SAC's hook
              threshold sweep: for each rho in ``thresholds`` build the composite policy (experts
              1..i, rho for expert i, frozen rhos for the older ones, fallback pi_0), search its
              worst case; keep the rho with the highest worst case (App. G, Algorithm 2)
              T_{i+1} = that search's worst model
    stop after ``num_iterations`` experts, or when T_{i+1} re-finds a model already solved
    ("stalled": the next expert would repeat one, paper §4)
    the policy kept is the composite of the phase whose searched worst case was best (the
    fallback alone for phase 0): as in the tabular version, the result is the best *evaluated*
    worst case over iterations, since adding an expert can make the composite worse

Why the nominal model first (the default): the composite acts with the trusted expert whose own
value is lowest, so an expert that failed to learn its model (low value *because* its policy is
poor) is chosen exactly where it fails; an expert trained on the fallback's worst case inherits
the fallback's accidents (a poorly trained DR SAC fails on arbitrary mid-box models, and the next
expert is spent there). Algorithm 1 starts from an initial model T_0 and the reference model is
the natural one; measured on Pendulum in ``results/iwocs.md``.

Differences from the paper, mostly for a CPU budget of minutes (``docs/iwocs.md``): SAC with 64-64
nets and a few thousand steps per model instead of 0.8 M; CMA-ES populations of 8 instead of 100
(the grid search uses the 10 x 10 evaluation grid, as IWOCS* did); the kept composite is the best
searched one, not the last; no early stop on ``|worst case - Q estimate| <= eps`` (the estimate,
a discounted value, and the undiscounted worst-case return have different scales; both are
logged in the trace).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch

from rlsuite.agents.iwocs.baselines import (
    BASELINES,
    SACBaseline,
    check_box_env,
    greedy_policy,
    train_domain_randomized,
)
from rlsuite.agents.iwocs.boxes import get_box
from rlsuite.agents.iwocs.composite import CompositePolicy, Expert, mean_action
from rlsuite.agents.iwocs.config import IWOCSConfig
from rlsuite.agents.iwocs.critic import ExpertHeads, HeadsTrainer
from rlsuite.agents.iwocs.evaluation import grid_metrics, same_start
from rlsuite.agents.iwocs.mujoco_env import for_box
from rlsuite.agents.iwocs.paper_scores import add_normalized
from rlsuite.agents.iwocs.search import SearchResult, cmaes_search, grid_search
from rlsuite.core import tree
from rlsuite.core.env import BatchedEnv
from rlsuite.learners.nets import flat_dim
from rlsuite.learners.sac import SAC, SACNetworks
from rlsuite.training import TrainingHooks


class _PhaseHooks(TrainingHooks):
    """A phase's sub-agent hooks: keep the last metrics it reported (for IWOCS's per-phase log)
    and pass each of its iterations to the run's hooks as an interrupt point (a phase has no
    checkpoint of its own, so a preemption signal stops the run there and the resumed run
    repeats the phase)."""

    def __init__(self, run_hooks: TrainingHooks) -> None:
        # a caller's own hooks object may define on_iteration alone (duck typing): no interrupts
        self.interrupt_point = getattr(run_hooks, "interrupt_point", _no_interrupt)
        self.metrics: dict[str, float] = {}

    def on_iteration(self, agent: Any, step: int, metrics: dict[str, float]) -> None:
        self.metrics = metrics
        self.interrupt_point()


def _no_interrupt() -> None:
    """The interrupt point of hooks that have none."""


class IWOCS:
    """Deep IWOCS agent (see the module docstring).

    Args:
        config: hyperparameters.
        env: the batched env (Box actions; its name must match the box's env).
        params: per-copy params; copy 0 is the nominal model, the batch size is the number of
            copies each phase's SAC steps.
        seed: seeds every phase (phase ``k`` uses ``seed + 101 k``) and the searches.
    """

    def __init__(self, config: IWOCSConfig, env: BatchedEnv, params: Any, seed: int = 0) -> None:
        self.config = config
        self.box = get_box(config.box)
        env, params = for_box(config.box, env, params, config.episode_steps)  # a MuJoCo set's env
        check_box_env(config.box, self.box, env, "IWOCS")
        self.env, self.seed = env, seed
        self.num_envs = tree.batch_size(params)
        self.nominal = tree.index(params, slice(0, 1))
        obs_dim = flat_dim(env.observation_space.shape)
        self.act_dim = flat_dim(env.action_space.shape)
        self.obs_dim = obs_dim
        self.search_generator = env.make_generator(seed + 7919)
        self.fallback: SACNetworks | None = None
        self.experts: list[Expert] = []
        self.trace: list[dict[str, Any]] = []
        """Per search: phase, model trained, rho, worst-case params and return, Q estimate."""
        self.pending: list[float] | None = None
        """``T_{i+1}``: the worst case found for the current composite, next to be solved."""
        self.stop_reason: str | None = None
        self.global_step = 0
        self.iteration = 0
        """Phases completed (0: nothing; 1: the DR fallback; 1 + i: expert i)."""
        self.best_experts = 0
        """Experts in the kept composite (the phase with the best searched worst case)."""
        self.best_worst = -float("inf")
        """That phase's searched worst-case return."""
        self._policy: CompositePolicy | None = None

    # -- policies ---------------------------------------------------------------------------
    def composite(self, rhos: list[float] | None = None, experts: list[Expert] | None = None
                  ) -> CompositePolicy:
        """The composite policy over ``experts`` (default: the kept ones, the first
        ``best_experts``) with the DR fallback."""
        if self.fallback is None:
            raise RuntimeError("IWOCS: no policy yet (learn() has not trained the fallback)")
        chosen = self.experts[: self.best_experts] if experts is None else experts
        return CompositePolicy(chosen, self.fallback, rhos)

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """The composite policy's action (always deterministic: the experts act with their
        means). Stateful across calls; a new batch size starts a new memory."""
        if self._policy is None:
            self._policy = self.composite()
        return self._policy(obs)

    # -- search -----------------------------------------------------------------------------
    def search_worst_case(self, policy: Any, tag: int) -> SearchResult:
        """Worst case of ``policy`` over the box by the configured search."""
        cfg = self.config
        if cfg.search == "grid":
            return grid_search(policy, self.env, self.box, self.nominal, cfg.search_points,
                               cfg.search_episodes, self.search_generator)
        return cmaes_search(policy, self.env, self.box, self.nominal, cfg.cmaes_generations,
                            cfg.cmaes_population, cfg.search_episodes, self.search_generator,
                            seed=self.seed * 1000 + tag)

    @torch.no_grad()
    def q_estimate(self, experts: list[Expert], n: int = 256) -> float:
        """Mean over initial observations of ``min_j Q_j(s0, pi_j(s0))`` (all experts trusted at
        t = 0): the deep analogue of the tabular robust-Q estimate (discounted)."""
        if not experts:
            return float("nan")
        obs, _ = self.env.reset(tree.repeat(self.nominal, n), self.env.make_generator(self.seed))
        qs = [e.heads.value(obs, mean_action(e.nets, obs)) for e in experts]
        return float(torch.stack(qs).min(0).values.mean())

    # -- learning ---------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """All phases are done (or the search re-found a solved model)."""
        return self.stop_reason is not None

    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> IWOCS:
        """Run phases until ``total_steps`` env steps are used or the loop ends.

        One ``hooks.on_iteration`` call per phase. Phases run whole: a phase started below
        ``total_steps`` finishes even if it overshoots. Within a phase, every SAC iteration and
        every threshold's search is a ``hooks.interrupt_point``.
        """
        hooks = hooks or TrainingHooks()
        while self.global_step < total_steps and not self.finished:
            tic = time.perf_counter()
            steps_before = self.global_step
            metrics = self._dr_phase(hooks) if self.fallback is None else self._expert_phase(hooks)
            self.iteration += 1
            self._policy = None
            metrics["time/fps"] = (self.global_step - steps_before) / (time.perf_counter() - tic)
            hooks.on_iteration(self, self.global_step, metrics)
        return self

    def _record_search(self, phase: int, result: SearchResult, rho: float | None,
                       trained_on: list[float] | None) -> dict[str, float]:
        worst = result.worst_values.tolist()
        self.pending = worst
        if result.worst_return > self.best_worst:  # keep the best evaluated composite
            self.best_worst, self.best_experts = result.worst_return, len(self.experts)
        self.trace.append({
            "phase": phase, "trained_on": trained_on, "rho": rho,
            "worst_params": self.box.describe(result.worst_values),
            "worst_return": result.worst_return, "searched_mean_return": result.mean_return,
            "q_estimate": self.q_estimate(self.experts), "kept_experts": self.best_experts,
        })
        out = {"iwocs/worst_case_return": result.worst_return,
               "iwocs/searched_mean_return": result.mean_return,
               "iwocs/num_experts": float(len(self.experts)),
               "iwocs/kept_experts": float(self.best_experts)}
        if self.experts:  # no estimate without an expert (phase 0)
            out["iwocs/q_estimate"] = self.trace[-1]["q_estimate"]
        out |= {f"iwocs/worst_{k}": v for k, v in self.box.describe(result.worst_values).items()}
        if trained_on is not None:  # the phase's model, so a page can show the trace from the log
            out |= {f"iwocs/trained_{k}": v
                    for k, v in self.box.describe(torch.tensor(trained_on)).items()}
        return out

    def _dr_phase(self, hooks: TrainingHooks) -> dict[str, float]:
        cfg = self.config
        last = _PhaseHooks(hooks)
        agent = train_domain_randomized(cfg.sac, self.env, self.box, self.nominal, self.num_envs,
                                        cfg.dr_steps, self.seed, cfg.dr_resample_steps, last)
        self.global_step += agent.global_step
        self.fallback = agent.nets
        metrics = dict(last.metrics)
        metrics |= self._record_search(0, self.search_worst_case(self.composite(), 0), None, None)
        if cfg.initial_model == "nominal":  # Algorithm 1: T_0 is given, solved before any search
            self.pending = self.box.nominal_values(self.nominal).tolist()
        if cfg.num_iterations == 0:
            self.stop_reason = "max_iterations"
        return metrics

    def _is_solved(self, model: list[float]) -> bool:
        point = self.box.normalize(torch.tensor([model]))
        for e in self.experts:
            other = self.box.normalize(torch.tensor([e.model]))
            if float((point - other).norm()) <= self.config.repeat_tol:
                return True
        return False

    def _expert_phase(self, hooks: TrainingHooks) -> dict[str, float]:
        cfg = self.config
        phase = len(self.experts) + 1
        assert self.pending is not None
        model = self.pending
        if self._is_solved(model):
            self.stop_reason = "stalled"  # Q would not change: the loop cannot progress
            return {"iwocs/stalled": 1.0}
        seed = self.seed + 101 * phase
        params = self.box.params(self.nominal, torch.tensor([model] * self.num_envs))
        agent = SAC(cfg.sac, self.env, params, seed)
        heads = ExpertHeads(self.obs_dim, self.act_dim, cfg.q_hidden_sizes,
                            cfg.predictor_hidden_sizes).to(self.env.device)
        last = _PhaseHooks(hooks)
        trainer = HeadsTrainer(heads, cfg.heads_learning_rate, cfg.sac.gamma, cfg.sac.tau,
                               cfg.sac.batch_size, torch.Generator(device=self.env.device)
                               .manual_seed(seed + 17), forward=last)
        agent.learn(cfg.model_steps, trainer)
        self.global_step += agent.global_step
        # Threshold sweep (App. G, Algorithm 2): keep the rho whose composite's worst case is best.
        candidate = Expert(agent.nets, heads, cfg.thresholds[0], model)
        best: tuple[float, float, SearchResult] | None = None
        frozen = [e.rho for e in self.experts]
        for rho in cfg.thresholds:
            last.interrupt_point()  # each search is a 10^6 copy-step grid on MuJoCo
            policy = self.composite(frozen + [rho], self.experts + [candidate])
            result = self.search_worst_case(policy, phase)
            if best is None or result.worst_return > best[1]:
                best = (rho, result.worst_return, result)
        assert best is not None
        candidate.rho = best[0]
        self.experts.append(candidate)
        metrics = dict(last.metrics) | {"iwocs/rho": best[0]}
        metrics |= self._record_search(phase, best[2], best[0], model)
        if len(self.experts) >= cfg.num_iterations:
            self.stop_reason = "max_iterations"
        return metrics

    # -- evaluation -------------------------------------------------------------------------
    def final_metrics(self, env: BatchedEnv, params: Any, generator: torch.Generator
                      ) -> dict[str, float]:
        """The kept composite's worst case (the score), mean and every point's mean return over
        the ``eval_points``-per-dimension grid, ``eval_episodes`` episodes per point
        (:func:`~rlsuite.agents.iwocs.evaluation.grid_metrics`, the keys the baselines report),
        and the share of its steps the fallback acted; then, from the same initial states, the
        same for the composite of the last phase (``eval/last/``: no choice of the kept phase)
        and the worst case and mean of IWOCS's components alone (``eval/fallback/``,
        ``eval/expert_<i>/``: diagnostics). For a set with published references
        (:mod:`.paper_scores`), each worst case gets the paper's normalized score beside it
        (``<prefix>/normalized_worst_case``)."""
        cfg = self.config
        env = self.env  # the env the agent steps: a MuJoCo set's own, else the run's (the same)
        start = same_start(generator)

        def grid(policy: Any, prefix: str, per_point: bool) -> dict[str, float]:
            g = generator if prefix == "eval" else same_start(start)
            return grid_metrics(policy, env, self.box, self.nominal, cfg.eval_points,
                                cfg.eval_episodes, g, prefix, per_point)

        kept = self.composite()
        out = grid(kept, "eval", True)
        out["eval/fallback_fraction"] = kept.fallback_fraction()
        out |= grid(self.composite(experts=self.experts), "eval/last", True)
        assert self.fallback is not None
        out |= grid(greedy_policy(self.fallback), "eval/fallback", False)
        for i, expert in enumerate(self.experts, 1):
            out |= grid(greedy_policy(expert.nets), f"eval/expert_{i}", False)
        return add_normalized(cfg.box, out)  # the paper's score, for a set with references

    # -- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Networks, thresholds, models, trace and counters at the last phase boundary (a phase
        interrupted midway is rerun on resume), and :meth:`act`'s memory of the previous transition
        (so a loaded agent continues an episode with the same trusted experts)."""
        memory = self._policy
        acting = None if memory is None or memory.prev_obs is None else {
            "prev_obs": memory.prev_obs, "prev_action": memory.prev_action}
        return {
            "fallback": None if self.fallback is None else self.fallback.state_dict(),
            "experts": [{"nets": e.nets.state_dict(), "heads": e.heads.state_dict(),
                         "rho": e.rho, "model": list(e.model)} for e in self.experts],
            "trace": [dict(t) for t in self.trace],
            "pending": self.pending, "stop_reason": self.stop_reason,
            "global_step": self.global_step, "iteration": self.iteration,
            "best_experts": self.best_experts, "best_worst": self.best_worst,
            "search_generator": self.search_generator.get_state(),
            "acting": acting,
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`."""
        cfg = self.config

        def nets(state: dict[str, Any]) -> SACNetworks:
            n = SACNetworks(self.env.observation_space, self.env.action_space, cfg.sac)
            n.load_state_dict(state)
            return n.to(self.env.device)

        self.fallback = None if data["fallback"] is None else nets(data["fallback"])
        self.experts = []
        for e in data["experts"]:
            heads = ExpertHeads(self.obs_dim, self.act_dim, cfg.q_hidden_sizes,
                                cfg.predictor_hidden_sizes)
            heads.load_state_dict(e["heads"])
            self.experts.append(Expert(nets(e["nets"]), heads.to(self.env.device), float(e["rho"]),
                                       [float(v) for v in e["model"]]))
        self.trace = [dict(t) for t in data["trace"]]
        self.pending = data["pending"]
        self.stop_reason = data["stop_reason"]
        self.global_step = int(data["global_step"])
        self.iteration = int(data["iteration"])
        self.best_experts = int(data["best_experts"])
        self.best_worst = float(data["best_worst"])
        self.search_generator.set_state(data["search_generator"])
        self._policy = None
        acting = data.get("acting")  # absent in checkpoints written before it was saved
        if acting is not None and self.fallback is not None:
            self._policy = self.composite()
            self._policy.prev_obs, self._policy.prev_action = acting["prev_obs"], acting["prev_action"]


def config_replace(config: IWOCSConfig, **changes: Any) -> IWOCSConfig:
    """``dataclasses.replace`` that also accepts ``sac={...}`` field changes."""
    sac = changes.pop("sac", None)
    out = dataclasses.replace(config, **changes)
    if sac is not None:
        out.sac = dataclasses.replace(out.sac, **sac)
    return out


def build(config: IWOCSConfig, env: BatchedEnv, params: Any, seed: int = 0) -> IWOCS | SACBaseline:
    """The agent of an ``agent=iwocs`` run: IWOCS, or the baseline ``config.method`` names."""
    if config.method in BASELINES:
        return SACBaseline(config, env, params, seed)
    return IWOCS(config, env, params, seed)


__all__ = ["IWOCS", "IWOCSConfig", "build", "config_replace"]
