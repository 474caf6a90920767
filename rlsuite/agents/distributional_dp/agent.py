"""The exact solver as a suite agent: ``rlsuite agent=distributional_dp env=frozenlake``.

``learn`` solves the env's MDP once (no env steps: the solver reads the MDP's tensors) and logs the
optimal objective; ``final_metrics`` reports that value first (the run's score), then the empirical
objective of ``rollout_episodes`` episodes of the stock-augmented policy on the engine env
(:class:`rlsuite.envs.stock.StockAugmentedEnv`, one episode per copy, all copies stepped at once).
``act`` takes the wrapper's observations with ``include_time`` (state one-hot, stock, time).
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import torch

from rlsuite.agents.distributional_dp import objectives as obj_lib
from rlsuite.agents.distributional_dp.config import OBJECTIVES, DistributionalDPConfig
from rlsuite.agents.distributional_dp.solver import Solution, solve
from rlsuite.core.env import BatchedEnv
from rlsuite.envs.stock import StockAugmentedEnv
from rlsuite.envs.tabular import TabularEnv, TabularMDP
from rlsuite.training import TrainingHooks, check_finite


def make_objective(config: DistributionalDPConfig) -> obj_lib.Objective:
    """The objective object a config names."""
    if config.objective == "mean":
        return obj_lib.Mean()
    if config.objective == "cvar":
        return obj_lib.CVaR(config.level)
    if config.objective == "mean_cvar":
        return obj_lib.MeanCVaR(config.level, config.mean_weight)
    if config.objective == "threshold":
        return obj_lib.ProbabilityOfThreshold(config.target)
    if config.objective == "target":
        return obj_lib.ReturnTargeting(config.target)
    raise ValueError(f"distributional_dp: objective = {config.objective!r} must be one of "
                     f"{OBJECTIVES}")


def _tabular(env: BatchedEnv) -> TabularEnv:
    inner = env.env if isinstance(env, StockAugmentedEnv) else env
    if not isinstance(inner, TabularEnv):
        raise ValueError(f"distributional_dp solves finite MDPs: env must be a TabularEnv (e.g. "
                         f"env=frozenlake), got {type(inner).__name__}")
    return inner


class DistributionalDP:
    """The exact solver behind the agent protocol (see the module docstring)."""

    def __init__(self, config: DistributionalDPConfig, env: BatchedEnv, params: Any,
                 seed: int = 0) -> None:
        tab = _tabular(env)
        self.config, self.env, self.seed = config, tab, seed
        self.objective = make_objective(config)
        gamma = tab.mdp.gamma if config.gamma is None else float(config.gamma)
        self.mdp: TabularMDP = dataclasses.replace(tab.mdp.to("cpu"), gamma=gamma,
                                                   horizon=tab.max_episode_steps)
        self.objective.check_gamma(gamma)  # refuse early, before any run directory fills up
        self.solution: Solution | None = None
        self.global_step = 0
        self.iteration = 0
        self.solve_seconds = 0.0

    def _solve(self) -> Solution:
        cfg = self.config
        tic = time.perf_counter()
        sol = solve(self.mdp, self.objective, cfg.initial_stock, cfg.method,
                    stock_resolution=cfg.stock_resolution, num_stocks=cfg.num_stocks,
                    num_atoms=cfg.num_atoms)
        self.solve_seconds = time.perf_counter() - tic
        return sol

    def learn(self, total_steps: int = 0, hooks: TrainingHooks | None = None) -> DistributionalDP:
        """Solve the MDP (once; a solved agent returns at once). ``total_steps`` is unused: exact
        DP takes no env steps."""
        hooks = hooks or TrainingHooks()
        if self.iteration > 0:
            return self
        self.solution = self._solve()
        self.iteration = 1
        sol = self.solution
        metrics = {
            "distributional_dp/objective": sol.value,
            "distributional_dp/mean_return": sol.mean,
            "distributional_dp/start_stock": float(sol.start_stock[0]),
            "distributional_dp/iterations": float(sol.iterations),
            "distributional_dp/solve_seconds": self.solve_seconds,
        }
        metrics = check_finite("distributional_dp", self.global_step, metrics)
        hooks.on_iteration(self, self.global_step, metrics)
        return self

    def _require(self) -> Solution:
        if self.solution is None:
            self.learn()
        assert self.solution is not None
        return self.solution

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Actions for observations of ``StockAugmentedEnv(env, gamma, include_time=True)``
        (``[B, S + 2]``: one-hot state, stock, time); the policy is deterministic."""
        sol = self._require()
        s_count = self.mdp.num_states
        if obs.dim() != 2 or obs.shape[1] != s_count + 2:
            raise ValueError(f"distributional_dp.act: obs must be [B, {s_count + 2}] (one-hot "
                             f"state, stock, time), got {tuple(obs.shape)}")
        states = obs[:, :s_count].argmax(1).cpu()
        stocks = obs[:, s_count].double().cpu()
        steps = obs[:, s_count + 1].round().long().cpu()
        return sol.policy(states, stocks, steps).to(obs.device)

    def rollout_returns(self, episodes: int, generator: torch.Generator,
                        initial_stock: float | None = None) -> torch.Tensor:
        """Discounted returns ``[episodes]`` of the stock-augmented policy, one episode per
        copy, all copies stepped together (so every copy shares the time step)."""
        sol = self._require()
        c0 = float(sol.start_stock[0]) if initial_stock is None else initial_stock
        wrapped = StockAugmentedEnv(self.env, self.mdp.gamma, c0, include_time=True,
                                    dtype=torch.float64)
        params = wrapped.default_params(episodes)
        obs, state = wrapped.reset(params, generator)
        returns = torch.zeros(episodes, dtype=torch.float64, device=wrapped.device)
        running = torch.ones(episodes, dtype=torch.bool, device=wrapped.device)
        limit = self.mdp.horizon or 10_000
        s_count = self.mdp.num_states
        for t in range(limit):
            # Every running copy is at step t (finished ones act but no longer count), so one
            # policy lookup at time t serves the whole batch.
            states = obs[:, :s_count].argmax(1).cpu()
            action = sol.policy(states, obs[:, s_count].cpu(), t).to(obs.device)
            step = wrapped.step(state, action, params, generator)
            returns += torch.where(running, self.mdp.gamma**t * step.reward.double(), 0.0)
            running &= ~(step.terminated | step.truncated)
            obs, state = step.obs, step.state
            if t % 16 == 15 and not bool(running.any()):
                break
        return returns.cpu()

    def final_metrics(self, env: BatchedEnv, params: Any, generator: torch.Generator
                      ) -> dict[str, float]:
        """The solver's objective (the score), then the empirical objective, mean and CVaR of
        ``rollout_episodes`` rollouts of the stock-augmented policy."""
        sol = self._require()
        g = self.rollout_returns(self.config.rollout_episodes, generator)
        n = g.shape[0]
        return {
            "distributional_dp/objective": sol.value,
            "eval/empirical_objective": self.objective.evaluate(g, None, self.config.initial_stock),
            "eval/mean_return": float(g.mean()),
            "eval/mean_return_se": float(g.std() / math.sqrt(n)),
            "eval/cvar": float(obj_lib.CVaR(self.config.level).evaluate(g)),
            "eval/episodes": float(n),
        }

    def state_dict(self) -> dict[str, Any]:
        """Counters and the value. The solution is a deterministic function of the MDP and the
        config, so :meth:`load_state_dict` re-solves rather than storing the tables."""
        return {"global_step": self.global_step, "iteration": self.iteration,
                "value": None if self.solution is None else self.solution.value}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore counters; re-solve if the saved agent had solved (and check the value)."""
        self.global_step = int(data["global_step"])
        if int(data["iteration"]) > 0:
            self.solution = self._solve()
            self.iteration = int(data["iteration"])
            saved = data.get("value")
            if saved is not None and abs(self.solution.value - float(saved)) > 1e-9:
                raise ValueError(f"distributional_dp: re-solved value {self.solution.value} != "
                                 f"checkpoint's {saved}; the MDP or config changed")
