"""The baselines of "Dynamical Linear Bandits" (Mussi et al., ICML 2023), as the official code runs them.

Every learner plays ``B`` independent trials at once (one per params copy; copies may hold
different systems, e.g. the three synthetic noise levels side by side) through a
:class:`~rlsuite.agents.dynlin_common.BanditRun`. Sources: marcomussi/DLB
``dynlinucb/experimental/agents.py`` (the classes named below) and ``scripts/main.py`` (their
arguments). Per-round learners loop over rounds in Python with every copy in one tensor op.

* :class:`LinUCB` - four variants on raw rewards, updated every round (official labels):

  - ``linucb_log`` (``LinearAgent(linucb=True)``): lambda = ln T, delta = 1/T,
    ``beta_t = c1 sqrt(lam) + sqrt(2 sigma_bar^2 (ln(1/delta) + d/2 ln(1 + t U^2/(d lam))))``.
  - ``linucb_one`` (``LinUCBAgent``): lambda = 1, constant
    ``beta = Theta sqrt(lam) + sqrt(2 ln T + d ln((d lam + T budget^2)/(d lam)))`` (no sigma factor;
    ``budget`` = 1.5, the daily budget used as the action-norm bound).
  - ``dlinucb_log`` (``LinearAgent(dlinucb=True)``): NO discounting in the update; only the log
    term of the ``linucb_log`` radius is multiplied by ``(1 - gamma^{2t})/(1 - gamma^2)``, gamma = 0.999999.
  - ``dlinucb_one`` (``DLinUCBAgent``, Russac et al. 2019): gamma = 0.999999999,
    ``lam_t = gamma^-t lam``, ``V = gamma V + u u^T + (1 - gamma) lam_t I``,
    ``V~ = gamma^2 V~ + u u^T + (1 - gamma^2) lam_t I``, ``b = gamma b + u y``; bonus
    ``sqrt(u^T V^-1 V~ V^-1 u)``; ``beta_t = Theta sqrt(lam_t) + sigma sqrt(2 ln T + d ln(1 +
    budget^2 (1 - gamma^{2t}) / (d lam_t (1 - gamma^2))))``.

  The undiscounted variants update ``V^-1`` by Sherman-Morrison; the discounted one adds a multiple
  of the identity every round (not a rank-one change), so it inverts its 3x3 ``V`` every round,
  batched over copies (the official code inverts every round for all four).
* :class:`Exp3` (``Exp3Agent``): K arms, ``gamma = min(1, sqrt(K ln K / ((e - 1) 2T/3)))``,
  ``eta = gamma / K``, reward mapped to ``(y + 2M) / (4M)`` with ``M = (Theta + Omega B / (1 - rho)) U``,
  ``G_a += r / p_a``, ``p = (1 - gamma) softmax(eta G) + gamma / K``.
* :class:`BatchExp3` (``BatchExp3Agent``): one arm per batch of ``ceil(ln M_T / ln(1/rho))`` rounds
  (``M_T`` = DynLin-UCB's epoch count in T), Exp3 on the batch-mean reward with T/batch rounds.
  Official detail kept: its update fires at the SECOND round of each batch, crediting the new arm
  with the mean of the previous batch's last ``batch - 2`` rewards and its own first two.
* :class:`AR2` (``AR2Agent``, Chen, Golrezaei, Bouneffouf 2023): round-robin start, then the
  triggering rule with ``alpha = rho``, ``c1 = 24 c0``; once an arm is triggered it stays so (the
  official code clears triggers only in an unreachable branch), so odd rounds explore the earliest
  triggered arms uniformly and even rounds exploit.
* :class:`FixedPolicy`: the clairvoyant arm ``argmax <h, u>``, the myopic arm ``argmax <theta, u>``,
  or the expert allocation of the real-data config (a fixed budget split outside the arm set).

Deliberate difference from the official code: rho = max |eig(A)| everywhere. The official script
passes ``max(np.linalg.eigvals(A))``; for the real-data system that is complex, and Exp3's reward
scale, Batch-Exp3's batch length and AR2's alpha then silently use real parts of complex
expressions (notes B7). On the synthetic systems (real eigenvalues) nothing changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from rlsuite.agents.dynlin_common import (
    BanditRun,
    dynlin_coefficients,
    learn_loop,
    oful_radius,
    resolve_constants,
)
from rlsuite.agents.dynlin_ucb import epoch_lengths
from rlsuite.envs.dynamical_bandit import (
    BUDGET,
    DTYPE,
    DynamicalLinearBandit,
    DynLinParams,
    expert_allocation,
)
from rlsuite.training import TrainingHooks

LINUCB_VARIANTS = ("linucb_log", "linucb_one", "dlinucb_log", "dlinucb_one")
BLOCK = 4096  # rounds whose radii / uniforms are prepared at once by the per-round learners


@dataclass
class LinUCBConfig:
    """Lin-UCB / D-Lin-UCB on raw rewards (official variants; see the module docstring)."""

    name: str = "lin_ucb"
    """Registry name of the agent."""
    variant: str = "linucb_log"
    """One of linucb_log, linucb_one, dlinucb_log, dlinucb_one."""
    horizon: int | None = None
    """T in lambda = ln T, delta = 1/T and the radii; None: the rounds of the first ``learn`` call."""
    rho_bar: float | None = None
    """Bound on rho(A) used by the radius constants; None: true."""
    sigma: float | None = None
    """Noise std assumed; None: the env's state-noise std."""
    budget: float = BUDGET["total"]
    """Action-norm bound of the ``*_one`` radii (official: the daily budget 1.5)."""
    log_every: int = 10_000
    """Rounds per iteration."""


def _seed_gen(env: DynamicalLinearBandit, seed: int) -> torch.Generator:
    return torch.Generator(device=env.device).manual_seed(int(seed))


class LinUCB:
    """The Lin-UCB family on ``B`` trials; ``variants`` (one per copy) overrides ``config.variant``
    so that several variants share one loop."""

    def __init__(
        self,
        config: LinUCBConfig,
        env: DynamicalLinearBandit,
        params: DynLinParams,
        seed: int = 0,
        variants: list[str] | None = None,
    ) -> None:
        b = params.x0.shape[0]
        variants = variants or [config.variant] * b
        bad = [v for v in variants if v not in LINUCB_VARIANTS]
        if bad or len(variants) != b:
            raise ValueError(f"variants must be {b} of {LINUCB_VARIANTS}; got {variants}")
        self.config, self.env, self.variants = config, env, list(variants)
        self.run = BanditRun(env, params, int(seed) + 1)
        self.generator = _seed_gen(env, seed)
        self.c = resolve_constants(env, params, rho=config.rho_bar, sigma=config.sigma)
        self.arms, self.arms_t = env.arms, env.arms.T.contiguous()
        self.d = env.arms.shape[1]
        self.global_step = self.iteration = 0
        self.horizon = config.horizon
        self.arm = torch.zeros(b, dtype=torch.int64)
        self.width = torch.zeros(b, dtype=DTYPE)
        self.v_inv: torch.Tensor | None = None

    def _setup(self, horizon: int) -> None:
        T, d, b = int(horizon), self.d, self.run.num_copies
        self.horizon = T
        one = [v.endswith("_one") for v in self.variants]
        self.kind = torch.tensor([LINUCB_VARIANTS.index(v) for v in self.variants])
        self.lam = torch.tensor([1.0 if o else math.log(T) for o in one], dtype=DTYPE)
        self.discount = torch.tensor(
            [0.999999999 if v == "dlinucb_one" else 1.0 for v in self.variants], dtype=DTYPE
        )
        self.discounted = bool((self.discount < 1).any())
        self._eye = torch.eye(d, dtype=DTYPE)
        same = bool((self.discount == self.discount[0]).all() and (self.lam == self.lam[0]).all())
        self._shared = (float(self.discount[0]), float(self.lam[0])) if same else None
        eye = torch.eye(d, dtype=DTYPE)
        self.V = self.lam[:, None, None] * eye  # the discounted path keeps V, V~ and inverts V
        self.V_tilde = self.V.clone()
        self.v_inv = eye / self.lam[:, None, None]
        self.b_vec = torch.zeros(b, d, dtype=DTYPE)
        self.h_hat = torch.zeros(b, d, dtype=DTYPE)
        # The undiscounted path works in arm space: Q = U V^{-1} U^T [B, K, K] and the per-arm reward
        # sums c [B, K] (b = U^T c), so the means are Q c and the widths sqrt(diag Q); the
        # Sherman-Morrison update of V^{-1} by u_a becomes Q -= Q[:, a] Q[a, :] / (1 + Q[a, a]).
        U = self.arms
        self.Q = (U @ U.T).expand(b, -1, -1) / self.lam[:, None, None]
        self.c_arm = torch.zeros(b, U.shape[0], dtype=DTYPE)
        c1, _, sbar2 = dynlin_coefficients(self.c)
        self._rad = (c1, sbar2)

    def radius(self, t: torch.Tensor) -> torch.Tensor:
        """``beta_t`` of every copy at rounds ``t [L]``: ``[L, B]`` (official formulas per variant)."""
        T, d, budget = self.horizon, self.d, self.config.budget
        c1, sbar2 = self._rad
        zero = torch.zeros_like(c1)
        log_t = torch.full_like(c1, math.log(T))
        lin = oful_radius(t, self.lam, c1, zero, sbar2, log_t, self.c.u, d)
        dlin = oful_radius(t, self.lam, c1, zero, sbar2, log_t, self.c.u, d, gamma=0.999999)
        one = (
            self.c.theta * self.lam.sqrt()
            + torch.sqrt(2 * math.log(T) + d * torch.log((d * self.lam + T * budget**2) / (d * self.lam)))
        ).expand_as(lin)
        g = 0.999999999
        tt = t.to(DTYPE)[:, None]
        lam_t = g ** (-tt) * self.lam
        done = self.c.theta * lam_t.sqrt() + self.c.sigma * torch.sqrt(
            2 * math.log(T) + d * torch.log(1 + budget**2 * (1 - g ** (2 * tt)) / (d * lam_t * (1 - g**2)))
        )
        table = torch.stack([lin, one, dlin, done], 0)  # [4, L, B]
        return table.gather(0, self.kind.expand(1, len(t), -1))[0]

    def _scores(self, beta: torch.Tensor) -> torch.Tensor:
        """UCB indices ``[B, K]`` for radii ``beta [B, 1]``."""
        if self.discounted:
            m = self.v_inv @ self.V_tilde @ self.v_inv
            width = ((m @ self.arms_t) * self.arms_t).sum(-2).clamp(min=0).sqrt()
            return torch.addcmul(self.h_hat @ self.arms_t, beta, width)
        mean = torch.bmm(self.Q, self.c_arm.unsqueeze(2)).squeeze(2)
        return torch.addcmul(mean, beta, self.Q.diagonal(0, 1, 2).sqrt())

    def _update_discounted(self, t: int, arm: torch.Tensor, y: torch.Tensor) -> None:
        """Official DLinUCBAgent.update: ``V = g V + u u^T + (1 - g) lam_t I`` (and ``g^2`` for V~),
        ``b = g b + u y``, ``lam_t = g^-t lam`` with ``t`` before the increment; then one batched
        3x3 inverse (the identity term is not a rank-one change)."""
        u = self.arms.index_select(0, arm)
        uu = u.unsqueeze(2)
        if self._shared is not None:  # every copy has the same (gamma, lambda): scalars, fewer ops
            g, lam = self._shared
            lam_t = g ** (-t) * lam
            self.V = torch.baddbmm(self.V * g + self._eye * ((1 - g) * lam_t), uu, uu.transpose(1, 2))
            self.V_tilde = torch.baddbmm(
                self.V_tilde * g**2 + self._eye * ((1 - g**2) * lam_t), uu, uu.transpose(1, 2)
            )
            self.b_vec = torch.addcmul(self.b_vec * g, u, y.unsqueeze(1))
        else:
            g = self.discount[:, None, None]
            lam_t = (self.discount ** (-t) * self.lam)[:, None, None]
            self.V = torch.baddbmm(g * self.V + (1 - g) * lam_t * self._eye, uu, uu.transpose(1, 2))
            self.V_tilde = torch.baddbmm(
                g**2 * self.V_tilde + (1 - g**2) * lam_t * self._eye, uu, uu.transpose(1, 2)
            )
            self.b_vec = torch.addcmul(g[:, :, 0] * self.b_vec, u, y.unsqueeze(1))
        self.v_inv = torch.linalg.inv(self.V)
        self.h_hat = torch.bmm(self.v_inv, self.b_vec.unsqueeze(-1)).squeeze(-1)

    def _play(self, stop: int) -> None:
        run, b, K = self.run, self.run.num_copies, self.arms.shape[0]
        while run.t < stop:
            n = min(BLOCK, stop - run.t)
            betas = self.radius(torch.arange(run.t, run.t + n)).unsqueeze(2)  # [n, B, 1]
            for j in range(n):
                t = run.t
                if t == 0:
                    arm = torch.randint(0, K, (b,), generator=self.generator)
                else:
                    arm = self._scores(betas[j]).argmax(1)
                y, idx = run.step_arm(arm)
                if self.discounted:
                    self._update_discounted(t, arm, y)
                    continue
                col = self.Q.view(b * K, K).index_select(0, idx)  # Q[:, a, :] = Q[:, :, a] (symmetric)
                qaa = col.gather(1, arm.unsqueeze(1))
                self.Q = torch.baddbmm(self.Q, (col / (qaa + 1.0)).unsqueeze(2), col.unsqueeze(1), alpha=-1.0)
                self.c_arm = self.c_arm.scatter_add(1, arm.unsqueeze(1), y.unsqueeze(1))
            self.arm = arm
            self._beta_last = betas[n - 1, :, 0]

    def _extra_metrics(self) -> dict[str, float]:
        if self.discounted:
            width = ((self.v_inv @ self.arms_t) * self.arms_t).sum(-2).clamp(min=0).sqrt()
        else:
            width = self.Q.diagonal(0, 1, 2).sqrt()
        w = self._beta_last * width.gather(1, self.arm[:, None])[:, 0]
        return {
            "lin_ucb/arm": float(self.arm.to(DTYPE).mean()),
            "lin_ucb/optimal_arm_fraction": float((self.arm == self.run.best_arm).to(DTYPE).mean()),
            "lin_ucb/confidence_width": float(w.mean()),
        }

    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> LinUCB:
        """Play ``total_steps // B`` rounds in every trial."""
        if self.v_inv is None:
            self._setup(self.horizon or max(total_steps // self.run.num_copies, 2))
        learn_loop(self, total_steps, hooks, "lin_ucb")
        return self

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """The arm each trial plays next ``[B]``."""
        if self.v_inv is None:
            self._setup(max(self.horizon or 2, 2))
        if self.run.t == 0:  # a copy of the generator: acting must not move the learner's stream
            g = torch.Generator().manual_seed(0)
            g.set_state(self.generator.get_state())
            return torch.randint(0, self.arms.shape[0], (self.run.num_copies,), generator=g)
        return self._scores(self.radius(torch.tensor([self.run.t]))[0].unsqueeze(1)).argmax(1)

    def final_metrics(self, env: Any = None, params: Any = None, generator: Any = None) -> dict[str, float]:
        """The run's regret, score first."""
        return self.run.metrics("lin_ucb")

    def state_dict(self) -> dict[str, Any]:
        """Statistics, counters, generators, trials."""
        keys = ("V", "V_tilde", "v_inv", "b_vec", "h_hat", "arm", "Q", "c_arm")
        return {
            **{k: getattr(self, k, None) for k in keys},
            "horizon": self.horizon,
            "global_step": self.global_step,
            "iteration": self.iteration,
            "generator": self.generator.get_state(),
            "run": self.run.state_dict(),
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if data["horizon"] is not None:
            self._setup(int(data["horizon"]))
        for k in ("V", "V_tilde", "v_inv", "b_vec", "h_hat", "arm", "Q", "c_arm"):
            if data.get(k) is not None:
                setattr(self, k, data[k])
        self.global_step, self.iteration = int(data["global_step"]), int(data["iteration"])
        self.generator.set_state(data["generator"])
        self.run.load_state_dict(data["run"])


# -- Exp3 and Batch-Exp3 ------------------------------------------------------------------------------


@dataclass
class Exp3Config:
    """Exp3 / Batch-Exp3 as the official script configures them."""

    name: str = "exp3"
    """Registry name (``exp3`` or ``batch_exp3``)."""
    batched: bool = False
    """Batch-Exp3: one arm per batch of ceil(ln M_T / ln(1/rho)) rounds."""
    horizon: int | None = None
    """T of the learning rates; None: the rounds of the first ``learn`` call."""
    rho_bar: float | None = None
    """rho used in the reward scale and the batch length; None: max |eig(A)|."""
    log_every: int = 10_000
    """Rounds per iteration."""


class Exp3:
    """Exp3 (``batched=False``) or Batch-Exp3 on ``B`` trials."""

    def __init__(
        self, config: Exp3Config, env: DynamicalLinearBandit, params: DynLinParams, seed: int = 0
    ) -> None:
        self.config, self.env = config, env
        self.run = BanditRun(env, params, int(seed) + 1)
        self.generator = _seed_gen(env, seed)
        self.c = resolve_constants(env, params, rho=config.rho_bar)
        self.K = env.arms.shape[0]
        b = params.x0.shape[0]
        self.G = torch.zeros(b, self.K, dtype=DTYPE)
        self.p = torch.full((b, self.K), 1.0 / self.K, dtype=DTYPE)
        self.arm = torch.zeros(b, dtype=torch.int64)
        self.carry = torch.zeros(b, dtype=DTYPE)  # Batch-Exp3: rewards accumulated for the next credit
        self.horizon = config.horizon
        self.global_step = self.iteration = 0
        self.gamma: float | None = None
        # official M = (Theta + Omega B / (1 - rho)) U: rewards mapped to (y + 2M) / (4M)
        self.M = (self.c.theta + self.c.omega * self.c.b / (1 - self.c.rho)) * self.c.u
        self.prefix = "batch_exp3" if config.batched else "exp3"
        if self.horizon is not None:
            self._setup(self.horizon)

    def _setup(self, horizon: int) -> None:
        T, K = int(horizon), self.K
        self.horizon = T
        rounds = T
        if self.config.batched:
            rho = float(self.c.rho.max())
            m_t = len(epoch_lengths(rho, T, official=False))  # official: DynLin-UCB's epochs in T
            self.batch = max(1, math.ceil(math.log(m_t) / math.log(1 / rho)))
            rounds = T / self.batch
        self.gamma = min(1.0, math.sqrt(K * math.log(K) / ((math.e - 1) * 2 * rounds / 3)))
        self.eta = self.gamma / K

    def _sample(self, u: torch.Tensor) -> torch.Tensor:
        return (self.p.cumsum(1) <= u.unsqueeze(1)).sum(1).clamp(max=self.K - 1)

    def _credit(self, reward: torch.Tensor) -> None:
        r = (reward + 2 * self.M) / (4 * self.M)
        pa = self.p.gather(1, self.arm.unsqueeze(1))
        self.G = self.G.scatter_add(1, self.arm.unsqueeze(1), r.unsqueeze(1) / pa)
        self.p = (1 - self.gamma) * torch.softmax(self.eta * self.G, 1) + self.gamma / self.K

    def _play(self, stop: int) -> None:
        run = self.run
        if not self.config.batched:
            while run.t < stop:
                n = min(BLOCK, stop - run.t)
                uniforms = torch.rand(n, run.num_copies, generator=self.generator, dtype=DTYPE)
                for j in range(n):
                    self.arm = self._sample(uniforms[j])
                    y, _ = run.step_arm(self.arm)
                    self._credit(y)
            return
        bs = self.batch
        if run.t % bs:
            raise RuntimeError(
                f"Batch-Exp3 stops only at batch boundaries; log_every must be a multiple of {bs}"
            )
        stop = run.t + max(bs, (stop - run.t) // bs * bs)
        while run.t < stop:
            self.arm = self._sample(torch.rand(run.num_copies, generator=self.generator, dtype=DTYPE))
            if bs == 1:
                _, s, _ = run.advance_sum(self.arm, 1)
                self._credit((self.carry + s) / bs)
                self.carry = torch.zeros_like(self.carry)
                continue
            # official alignment: the credit fires at the batch's second round
            _, s2, _ = run.advance_sum(self.arm, 2)
            self._credit((self.carry + s2) / bs)
            if bs > 2:
                _, self.carry, _ = run.advance_sum(self.arm, bs - 2)
            else:
                self.carry = torch.zeros_like(self.carry)

    def _extra_metrics(self) -> dict[str, float]:
        return {
            f"{self.prefix}/arm": float(self.arm.to(DTYPE).mean()),
            f"{self.prefix}/optimal_arm_probability": float(
                self.p.gather(1, self.run.best_arm[:, None]).mean()
            ),
        }

    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> Exp3:
        """Play ``total_steps // B`` rounds in every trial."""
        if self.gamma is None:
            self._setup(self.horizon or max(total_steps // self.run.num_copies, 2))
        learn_loop(self, total_steps, hooks, self.prefix)
        return self

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """A draw from the current arm probabilities ``[B]`` (the most likely arm if deterministic)."""
        if deterministic:
            return self.p.argmax(1)
        return self._sample(torch.rand(self.run.num_copies, generator=self.generator, dtype=DTYPE))

    def final_metrics(self, env: Any = None, params: Any = None, generator: Any = None) -> dict[str, float]:
        """The run's regret, score first."""
        return self.run.metrics(self.prefix)

    def state_dict(self) -> dict[str, Any]:
        """Weights, probabilities, counters, generators, trials."""
        return {
            "G": self.G,
            "p": self.p,
            "arm": self.arm,
            "carry": self.carry,
            "horizon": self.horizon,
            "global_step": self.global_step,
            "iteration": self.iteration,
            "generator": self.generator.get_state(),
            "run": self.run.state_dict(),
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if data["horizon"] is not None:
            self._setup(int(data["horizon"]))
        self.G, self.p, self.arm, self.carry = data["G"], data["p"], data["arm"], data["carry"]
        self.global_step, self.iteration = int(data["global_step"]), int(data["iteration"])
        self.generator.set_state(data["generator"])
        self.run.load_state_dict(data["run"])


# -- AR2 ---------------------------------------------------------------------------------------------


@dataclass
class AR2Config:
    """AR2 (Chen, Golrezaei, Bouneffouf 2023) with the official script's constants."""

    name: str = "ar2"
    """Registry name of the agent."""
    rho_bar: float | None = None
    """alpha (the AR coefficient); None: max |eig(A)|."""
    sigma: float | None = None
    """Noise std; None: the env's state-noise std."""
    log_every: int = 10_000
    """Rounds per iteration."""


class AR2:
    """AR2 on ``B`` trials (official ``AR2Agent``; see the module docstring)."""

    def __init__(
        self, config: AR2Config, env: DynamicalLinearBandit, params: DynLinParams, seed: int = 0
    ) -> None:
        self.config, self.env = config, env
        self.run = BanditRun(env, params, int(seed) + 1)
        self.generator = _seed_gen(env, seed)
        c = resolve_constants(env, params, rho=config.rho_bar, sigma=config.sigma)
        K = self.K = env.arms.shape[0]
        b = params.x0.shape[0]
        alpha, sigma = c.rho, c.sigma
        if bool((alpha <= 0).any()) or bool((sigma <= 0).any()):
            raise ValueError("AR2 needs alpha = rho > 0 and sigma > 0")
        self.alpha = alpha
        epochs = torch.ceil(K * alpha**-3 * sigma**-3)  # official epoch_size
        c0 = torch.sqrt(4 * torch.log(1 / (alpha * sigma)) + 4 * torch.log(epochs) + 2 * math.log(4 * K))
        self.epoch_size = epochs
        self.trigger_scale = 24 * c0 * sigma  # c1 sigma
        inf = torch.full((b, K), math.inf, dtype=DTYPE)
        self.est, self.tau, self.tau_trig = inf.clone(), inf.clone(), inf.clone()
        self.triggered = torch.zeros(b, K, dtype=torch.bool)
        self.last = torch.zeros(b, dtype=torch.int64)
        self.last_last = torch.zeros(b, dtype=torch.int64)
        self.s = torch.ones(b, dtype=DTYPE)  # official epoch counter
        self.global_step = self.iteration = 0
        self.karange = torch.arange(K)

    def _play(self, stop: int) -> None:
        run, K = self.run, self.K
        a = self.alpha
        a2 = a**2
        while run.t < stop:
            # short blocks until every arm is triggered, so the fast path starts early
            n = min(BLOCK if bool(self.triggered.all()) else 64, stop - run.t)
            uniforms = torch.rand(n, run.num_copies, generator=self.generator, dtype=DTYPE)
            if self._fast_ok(run.t + 1, n):
                self._play_fast(n, uniforms)
                continue
            for j in range(n):
                t0 = run.t + 1  # official 1-based counter
                init_end = K + (self.s - 1) * self.epoch_size  # [B]
                in_init = t0 <= init_end
                # exploit/explore rule (official pull_arm, else-branch)
                e_last = self.est.gather(1, self.last[:, None])[:, 0]
                e_ll = self.est.gather(1, self.last_last[:, None])[:, 0]
                i_sup = torch.where(e_last >= e_ll, self.last, self.last_last)
                e_sup = self.est.gather(1, i_sup[:, None])
                bound = self.trigger_scale[:, None] * torch.sqrt(
                    (a2[:, None] - a[:, None] ** (2 * (t0 - self.tau + 1))) / (1 - a2[:, None])
                )
                new = (
                    (self.karange != i_sup[:, None])
                    & ~self.triggered
                    & (e_sup - self.est <= bound)
                    & ~in_init[:, None]
                )
                self.triggered |= new
                self.tau_trig = torch.where(new, float(t0), self.tau_trig)
                earliest = self.tau_trig == self.tau_trig.min(1, keepdim=True).values
                count = earliest.sum(1)
                pick = (uniforms[j] * count).long().clamp(max=K - 1)  # uniform among the earliest
                explore = torch.searchsorted(earliest.long().cumsum(1), pick[:, None], right=True)[:, 0]
                explore = explore.clamp(max=K - 1)
                use_explore = self.triggered.any(1) & (t0 % 2 == 1)
                arm = torch.where(use_explore, explore, i_sup)
                arm = torch.where(in_init, (init_end - t0).long().clamp(0, K - 1), arm)
                self.last_last, self.last = self.last, arm
                y, _ = run.step_arm(arm)
                # official update(X)
                self.tau = self.tau.scatter(1, arm[:, None], float(t0))
                before_end = (t0 < init_end)[:, None]
                played = self.karange == arm[:, None]
                init_val = a[:, None] ** (K - 1) * y[:, None]
                self.est = torch.where(
                    played,
                    torch.where(before_end, init_val, a[:, None] * y[:, None]),
                    torch.where(before_end, self.est, self.est * a[:, None]),
                )
                self.s = self.s + ((t0 >= init_end) & (t0 % self.epoch_size == 0)).to(DTYPE)

    def _fast_ok(self, t0: int, n: int) -> bool:
        """Whether rounds ``t0 .. t0 + n - 1`` can take the fast path: every arm of every copy is
        triggered (then the trigger rule can change nothing: triggers are never cleared), no copy is
        in its round-robin phase, and no epoch ends (the official epochs exceed any T used here)."""
        if not bool(self.triggered.all()):
            return False
        init_end = self.K + (self.s - 1) * self.epoch_size
        if bool((t0 <= init_end).any()):
            return False
        first_end = torch.ceil(t0 / self.epoch_size) * self.epoch_size
        return not bool((first_end <= t0 + n - 1).any())

    def _play_fast(self, n: int, uniforms: torch.Tensor) -> None:
        """The same rule with the fixed parts hoisted: the explore draws of the block are one
        vectorized search, and the triggering tests (which cannot fire any more) are skipped."""
        run, K = self.run, self.K
        a = self.alpha
        earliest = self.tau_trig == self.tau_trig.min(1, keepdim=True).values
        count = earliest.sum(1)
        pick = (uniforms * count).long().clamp(max=K - 1)  # [n, B]
        cum = earliest.long().cumsum(1)
        explore = torch.searchsorted(cum, pick.T.contiguous(), right=True).T.clamp(max=K - 1)
        t_first = run.t + 1
        played = []
        for j in range(n):
            t0 = t_first + j
            if t0 % 2 == 1:
                arm = explore[j]
            else:
                e_last = self.est.gather(1, self.last.unsqueeze(1))
                e_ll = self.est.gather(1, self.last_last.unsqueeze(1))
                arm = torch.where((e_last >= e_ll).squeeze(1), self.last, self.last_last)
            self.last_last, self.last = self.last, arm
            y, _ = run.step_arm(arm)
            self.est = (self.est * a.unsqueeze(1)).scatter(1, arm.unsqueeze(1), (a * y).unsqueeze(1))
            played.append(arm)
        # tau (each arm's last pull) only feeds the trigger bounds; book it once for the block
        hit = torch.stack(played).unsqueeze(2) == self.karange  # [n, B, K]
        when = torch.arange(t_first, t_first + n, dtype=DTYPE)[:, None, None]
        last_pull = torch.where(hit, when, -math.inf).amax(0)
        self.tau = torch.where(hit.any(0), last_pull, self.tau)

    def _extra_metrics(self) -> dict[str, float]:
        return {
            "ar2/arm": float(self.last.to(DTYPE).mean()),
            "ar2/triggered_fraction": float(self.triggered.to(DTYPE).mean()),
        }

    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> AR2:
        """Play ``total_steps // B`` rounds in every trial."""
        learn_loop(self, total_steps, hooks, "ar2")
        return self

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """The exploiting arm (the better of the last two pulls) ``[B]``."""
        e_last = self.est.gather(1, self.last[:, None])[:, 0]
        e_ll = self.est.gather(1, self.last_last[:, None])[:, 0]
        return torch.where(e_last >= e_ll, self.last, self.last_last)

    def final_metrics(self, env: Any = None, params: Any = None, generator: Any = None) -> dict[str, float]:
        """The run's regret, score first."""
        return self.run.metrics("ar2")

    def state_dict(self) -> dict[str, Any]:
        """Estimates, triggers, counters, generators, trials."""
        return {
            "est": self.est,
            "tau": self.tau,
            "tau_trig": self.tau_trig,
            "triggered": self.triggered,
            "last": self.last,
            "last_last": self.last_last,
            "s": self.s,
            "global_step": self.global_step,
            "iteration": self.iteration,
            "generator": self.generator.get_state(),
            "run": self.run.state_dict(),
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        for k in ("est", "tau", "tau_trig", "triggered", "last", "last_last", "s"):
            setattr(self, k, data[k])
        self.global_step, self.iteration = int(data["global_step"]), int(data["iteration"])
        self.generator.set_state(data["generator"])
        self.run.load_state_dict(data["run"])


# -- fixed policies ----------------------------------------------------------------------------------


@dataclass
class FixedPolicyConfig:
    """A constant action: ``clairvoyant`` (argmax <h, u>), ``myopic`` (argmax <theta, u>) or
    ``expert`` (the real-data config's historical budget split)."""

    name: str = "clairvoyant"
    """Registry name of the agent."""
    policy: str = "clairvoyant"
    """clairvoyant, myopic or expert."""
    log_every: int = 10_000
    """Rounds per iteration."""


class FixedPolicy:
    """A constant action on ``B`` trials, played in long closed-form holds."""

    HOLD = 1000

    def __init__(
        self, config: FixedPolicyConfig, env: DynamicalLinearBandit, params: DynLinParams, seed: int = 0
    ) -> None:
        if config.policy not in ("clairvoyant", "myopic", "expert"):
            raise ValueError(f"policy must be clairvoyant, myopic or expert; got {config.policy!r}")
        self.config, self.env = config, env
        b = params.x0.shape[0]
        if config.policy == "expert":
            # The expert split is not one of the arms: play it as an extra arm (the optimum, taken over
            # all arms, is unchanged because the expert is never better than the best vertex there).
            arms = torch.cat([env.arms, expert_allocation().to(env.arms)[None]])
            env = DynamicalLinearBandit(env.system, env.sigma, arms=arms, device=env.device)
            self.fixed = torch.full((b,), arms.shape[0] - 1, dtype=torch.int64)
        self.run = BanditRun(env, params, int(seed) + 1, max_hold=self.HOLD)
        if config.policy == "clairvoyant":
            self.fixed = self.run.best_arm.clone()
        elif config.policy == "myopic":
            self.fixed = (params.theta @ env.arms.T).argmax(-1)
        self.global_step = self.iteration = 0

    def _play(self, stop: int) -> None:
        while self.run.t < stop:
            self.run.advance(self.fixed, min(self.HOLD, stop - self.run.t))

    def _extra_metrics(self) -> dict[str, float]:
        return {f"{self.config.name}/arm": float(self.fixed.to(DTYPE).mean())}

    def learn(self, total_steps: int, hooks: TrainingHooks | None = None) -> FixedPolicy:
        """Play ``total_steps // B`` rounds in every trial."""
        learn_loop(self, total_steps, hooks, self.config.name)
        return self

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """The fixed arm ``[B]``."""
        return self.fixed.clone()

    def final_metrics(self, env: Any = None, params: Any = None, generator: Any = None) -> dict[str, float]:
        """The run's regret, score first."""
        return self.run.metrics(self.config.name)

    def state_dict(self) -> dict[str, Any]:
        """Counters and trials."""
        return {"global_step": self.global_step, "iteration": self.iteration, "run": self.run.state_dict()}

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.global_step, self.iteration = int(data["global_step"]), int(data["iteration"])
        self.run.load_state_dict(data["run"])
