"""DynLin-UCB (Mussi, Metelli, Restelli, "Dynamical Linear Bandits", ICML 2023), batched over trials.

The learner never sees the hidden state. It plays one arm for a whole epoch, long enough for the
state to approach the steady state of that arm, and regresses only the epoch's LAST reward on the
arm (P2 Algorithm 1; official code marcomussi/DLB ``dynlinucb/experimental/agents.py``,
``DynLinUCBAgent`` and ``LinearAgent(dynlinucb=True)``):

1. Epoch ``m`` lasts ``L_m = 1 + floor(ln m / ln(1 / rho_bar))`` rounds, so that
   ``rho_bar^(L_m - 1) <= 1/m``: the transient bias of the last reward is below ``1/m`` times a
   constant. With ``rho_bar < 1e-6`` every round is an epoch (then it is OFUL / LinUCB).
2. At the first round of an epoch choose ``u = argmax_k <h_hat, u_k> + beta_t ||u_k||_{V^{-1}}`` with
   ``beta_t = c1 sqrt(lam) + c2 / sqrt(lam) ln(e (t + 1)) + sqrt(2 sigma_bar^2 (ln(1/delta)
   + d/2 ln(1 + t U^2 / (d lam))))`` (``t`` the 0-based round; c2 is the price of the transients).
   The first epoch plays a uniformly random arm.
3. Ridge update with the epoch's last reward only: ``V += u u^T``, ``b += u y_last``,
   ``h_hat = V^{-1} b`` (Sherman-Morrison on ``V^{-1}``, no inverse).

Two regularisations are plotted in the paper: ``lam = ln T`` (``LinearAgent``) and ``lam = 1``
(``DynLinUCBAgent``); both use ``delta = 1/T``. An epoch's rounds are played by one closed-form
:meth:`BanditRun.hold`, so the Python loop runs once per epoch (137,206 times for rho_bar = 0.2 and
T = 1e6), for all ``B`` trials at once.

Official-code detail kept by default (``official_schedule``): its 0-based round counter makes the
first epoch one round longer than ``L_1`` (rounds 0 and 1), every later epoch has length ``L_m``.

Misspecification: ``rho_bar`` (and every other constant) may be set by hand; ``rho_bar`` above the
true spectral radius lengthens the epochs (more regret, still sublinear), below it leaves a bias
in the labels (on the synthetic system ``rho_bar -> 0`` is Lin-UCB on biased samples).

Logged tags: ``dynlin_ucb/cumulative_regret``, ``dynlin_ucb/realized_regret``, ``dynlin_ucb/arm``
(mean arm index played), ``dynlin_ucb/optimal_arm_fraction``, ``dynlin_ucb/confidence_width``
(``beta_t ||u||_{V^{-1}}`` of the chosen arm), ``dynlin_ucb/epochs``, ``rollout/reward_mean``,
``time/fps``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from rlsuite.agents.dynlin.confidence import (
    Constants,
    dynlin_coefficients,
    epoch_lengths,
    oful_radius,
    resolve_constants,
    sherman_morrison,
    ucb_scores,
)
from rlsuite.agents.dynlin.config import DynLinUCBConfig
from rlsuite.agents.dynlin.run import BanditRun
from rlsuite.envs.dynamical_bandit import DTYPE, DynamicalLinearBandit, DynLinParams
from rlsuite.training import TrainingDiverged, TrainingHooks


class DynLinUCB:
    """DynLin-UCB on ``B`` independent trials (one per params copy) of a dynamical linear bandit.

    Args:
        config: hyperparameters.
        env: a :class:`DynamicalLinearBandit` with a finite action set.
        params: one system per copy (the trials).
        seed: seeds the learner's generator (first random arm) and, with ``seed + 1``, the env noise.
        lams: optional per-copy lambda (``None`` entries: ln T) overriding ``config.lam``, so that both
            regularisations of the paper's figures share one loop (the epoch schedule is the same).
    """

    def __init__(
        self,
        config: DynLinUCBConfig,
        env: DynamicalLinearBandit,
        params: DynLinParams,
        seed: int = 0,
        lams: list[float | None] | None = None,
    ) -> None:
        if lams is not None and len(lams) != params.B.shape[0]:
            raise ValueError(f"lams must give one lambda per copy ({params.B.shape[0]}); got {len(lams)}")
        self.lams = None if lams is None else list(lams)
        self.config, self.env, self.params = config, env, params
        self.constants: Constants = resolve_constants(
            env,
            params,
            rho=config.rho_bar,
            phi=config.phi_bar,
            omega=config.omega_bar,
            theta=config.theta_bar,
            b=config.b_bar,
            u=config.u_bar,
            sigma=config.sigma,
        )
        # One epoch schedule for the whole batch: the largest bound is valid for every copy.
        self.rho_bar = float(self.constants.rho.max())
        self.generator = torch.Generator(device=env.device).manual_seed(int(seed))
        self.run = BanditRun(env, params, int(seed) + 1)
        self.arms = env.arms
        self.arms_t = env.arms.T.contiguous()
        self._last_width: tuple[torch.Tensor, ...] | None = None
        b, d = params.B.shape[0], params.B.shape[-1]
        self.d = d
        self.v_inv: torch.Tensor | None = None  # (lambda I)^{-1} once T (hence lambda) is fixed
        self.b_vec = torch.zeros(b, d, dtype=DTYPE, device=env.device)
        self.h_hat = torch.zeros(b, d, dtype=DTYPE, device=env.device)
        self.arm = torch.zeros(b, dtype=torch.int64, device=env.device)
        self.width = torch.zeros(b, dtype=DTYPE, device=env.device)
        self.horizon: int | None = config.horizon
        self.epoch = 0  # index of the current (or next) epoch
        self.epoch_left = 0  # rounds left in the current epoch
        self.updates = 0
        self.global_step = 0
        self.iteration = 0
        self._schedule: torch.Tensor | None = None
        if self.horizon is not None:
            self._setup(self.horizon)

    # -- setup ------------------------------------------------------------------------------------

    def _setup(self, horizon: int) -> None:
        """Fix T: lambda, delta, the epoch schedule and the radius at every epoch start."""
        self.horizon = int(horizon)
        cfg, c = self.config, self.constants
        T = self.horizon
        choices = self.lams if self.lams is not None else [cfg.lam] * self.run.num_copies
        lam_values = [math.log(T) if v is None else float(v) for v in choices]
        for lam_value in lam_values:
            if not lam_value > 0:
                raise ValueError(
                    f"lambda must be > 0; got {lam_value} (lam=None means ln T, so T must be > 1)"
                )
        delta = 1.0 / T if cfg.delta is None else float(cfg.delta)
        if not 0 < delta < 1:
            raise ValueError(f"delta must be in (0, 1); got {delta}")
        self.lam = torch.tensor(lam_values, dtype=DTYPE, device=c.rho.device)
        self.log_inv_delta = torch.full_like(c.rho, math.log(1.0 / delta))
        self.c1, self.c2, self.sigma_bar_sq = dynlin_coefficients(c)
        if not cfg.transient_term:
            self.c2 = torch.zeros_like(self.c2)
        if self.v_inv is None:
            eye = torch.eye(self.d, dtype=DTYPE, device=self.env.device)
            self.v_inv = eye / self.lam[:, None, None]
        self._extend_schedule(T)

    def _extend_schedule(self, rounds: int) -> None:
        lengths = epoch_lengths(self.rho_bar, max(rounds, 1), self.config.official_schedule)
        self._schedule = lengths
        self._starts = lengths.cumsum(0) - lengths  # 0-based round at which each epoch's arm is chosen
        self._beta = oful_radius(
            self._starts,
            self.lam,
            self.c1,
            self.c2,
            self.sigma_bar_sq,
            self.log_inv_delta,
            self.constants.u,
            self.d,
        )  # [M, B]

    @property
    def schedule(self) -> torch.Tensor:
        """Epoch lengths covering the horizon (int64 ``[M]``)."""
        if self._schedule is None:
            raise RuntimeError("the horizon is not fixed yet (set config.horizon or call learn)")
        return self._schedule

    # -- acting -----------------------------------------------------------------------------------

    def _choose(self) -> torch.Tensor:
        """The arm of the epoch that starts now: random for the first, optimistic afterwards."""
        if self.epoch == 0:
            return torch.randint(
                0,
                self.arms.shape[0],
                (self.run.num_copies,),
                generator=self.generator,
                device=self.env.device,
            )
        beta = self._beta.select(0, self.epoch)
        scores, width = ucb_scores(self.h_hat, self.v_inv, self.arms_t, beta)
        arm = scores.argmax(-1)
        self._last_width = (beta, width, arm)  # the confidence width is formed at log time only
        return arm

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """The arm each trial plays at the next round ``[B]`` (the current epoch's, or a new choice)."""
        if self.epoch_left > 0:
            return self.arm.clone()
        if self._schedule is None:
            self._setup(max(self.horizon or 2, 2))
        if self.epoch >= len(self.schedule):
            self._extend_schedule(2 * int(self.schedule.sum()))
        saved = self.generator.get_state()  # acting must not move the learner's random stream
        arm = self._choose()
        self.generator.set_state(saved)
        return arm

    def _update(self, u: torch.Tensor, reward: torch.Tensor) -> None:
        """Ridge update with one sample per copy, ``u [B, d]`` and the epoch's last reward (P2 Alg. 1)."""
        self.v_inv = sherman_morrison(self.v_inv, u)
        self.b_vec = torch.addcmul(self.b_vec, u, reward[:, None])
        self.h_hat = torch.bmm(self.v_inv, self.b_vec.unsqueeze(-1)).squeeze(-1)
        self.updates += 1

    # -- training ---------------------------------------------------------------------------------

    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> DynLinUCB:
        """Play until ``total_steps`` env steps summed over the ``B`` trials (round ``total_steps // B``),
        continuing from the rounds already played."""
        b = self.run.num_copies
        rounds = total_steps // b
        if self._schedule is None:
            self._setup(self.horizon or max(rounds, 2))
        target = rounds
        if target > int(self.schedule.sum()):
            self._extend_schedule(target)
        every = max(1, int(self.config.log_every))
        while self.run.t < target:
            start_t, start_reward, tic = self.run.t, self.run.reward_sum.clone(), time.perf_counter()
            stop = min(target, (self.run.t // every + 1) * every)
            while self.run.t < stop:
                if self.epoch_left == 0:
                    self.arm = self._choose()
                    self.epoch_left = int(self.schedule[self.epoch])
                n = min(self.epoch_left, stop - self.run.t)
                y, u = self.run.advance(self.arm, n)
                self.epoch_left -= n
                if self.epoch_left == 0:
                    self._update(u, y)
                    self.epoch += 1
            self.global_step = self.run.t * b
            self.iteration += 1
            metrics = self._metrics(start_t, start_reward, time.perf_counter() - tic)
            if not bool(torch.isfinite(self.h_hat).all()):
                raise TrainingDiverged(f"non-finite DynLin-UCB estimate at round {self.run.t}")
            if hooks is not None:
                hooks.on_iteration(self, self.global_step, metrics)
        return self

    def _metrics(self, start_t: int, start_reward: torch.Tensor, seconds: float) -> dict[str, float]:
        if self._last_width is not None:
            beta, width, arm = self._last_width
            self.width = beta * width.gather(1, arm[:, None])[:, 0]
        played = self.run.t - start_t
        rew = (self.run.reward_sum - start_reward).mean() / max(played, 1)
        return {
            "rollout/reward_mean": float(rew),
            "time/fps": played * self.run.num_copies / max(seconds, 1e-9),
            "dynlin_ucb/cumulative_regret": float(self.run.pseudo_regret.mean()),
            "dynlin_ucb/realized_regret": float(self.run.realized_regret().mean()),
            "dynlin_ucb/arm": float(self.arm.to(DTYPE).mean()),
            "dynlin_ucb/optimal_arm_fraction": float((self.arm == self.run.best_arm).to(DTYPE).mean()),
            "dynlin_ucb/confidence_width": float(self.width.mean()),
            "dynlin_ucb/epochs": float(self.epoch),
        }

    def final_metrics(self, env: Any = None, params: Any = None, generator: Any = None) -> dict[str, float]:
        """The run's regret (the trials played in ``learn``; nothing new is simulated)."""
        out = self.run.metrics("dynlin_ucb")
        out["dynlin_ucb/ridge_updates"] = float(self.updates)
        return out

    # -- persistence ------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Learner statistics, counters, generator states and the trials' state."""
        return {
            "v_inv": self.v_inv,
            "b_vec": self.b_vec,
            "h_hat": self.h_hat,
            "arm": self.arm,
            "width": self.width,
            "epoch": self.epoch,
            "epoch_left": self.epoch_left,
            "updates": self.updates,
            "global_step": self.global_step,
            "iteration": self.iteration,
            "horizon": self.horizon,
            "generator": self.generator.get_state(),
            "run": self.run.state_dict(),
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the schedule is rebuilt from the saved horizon)."""
        self.run.load_state_dict(data["run"])
        for key in ("v_inv", "b_vec", "h_hat", "arm", "width"):
            setattr(self, key, data[key])
        self.epoch, self.epoch_left, self.updates = (
            int(data["epoch"]),
            int(data["epoch_left"]),
            int(data["updates"]),
        )
        self.global_step, self.iteration = int(data["global_step"]), int(data["iteration"])
        self.generator.set_state(data["generator"])
        if data["horizon"] is not None:
            self._setup(int(data["horizon"]))
            if self.run.t > int(self.schedule.sum()) - 1:
                self._extend_schedule(2 * self.run.t)
