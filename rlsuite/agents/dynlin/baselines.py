"""The baselines of "Dynamical Linear Bandits" (Mussi et al., ICML 2023), as the official code runs them.

Every learner plays ``B`` independent trials at once (one per params copy; copies may hold
different systems, e.g. the three synthetic noise levels side by side) through a
:class:`~rlsuite.agents.dynlin.run.BanditRun`. Sources: marcomussi/DLB
``dynlinucb/experimental/agents.py`` (the classes named below) and ``scripts/main.py`` (their
arguments). Per-round learners (Lin-UCB family, Exp3, Batch-Exp3, AR2) loop over rounds in Python
with every copy in one numpy op on the host (:class:`~rlsuite.agents.dynlin.run.RoundKernel`:
a numpy op on a few hundred numbers costs under 1 us, a torch op several); their state is handed
back as torch tensors at the end of every ``learn`` iteration.

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
  of the identity every round (not a rank-one change), so it inverts its 3x3 ``V`` every round in
  closed form (adjugate), batched over copies (the official code inverts every round for all four).
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
  or the expert allocation of the real-data config (``ExpertAgent``: a fixed budget split that is
  not a vertex; the official runner plays the vector itself). The env declares it as an extra arm
  (``extra_arms=["expert"]``, arm 6 after the 6 vertices), so the expert's action is an index of
  the env's action space; the optimum over the arms is unchanged (see
  :class:`~rlsuite.envs.dynamical_bandit.DynamicalLinearBandit`).

Deliberate difference from the official code: rho = max |eig(A)| everywhere. The official script
passes ``max(np.linalg.eigvals(A))``; for the real-data system that is complex, and Exp3's reward
scale, Batch-Exp3's batch length and AR2's alpha then silently use real parts of complex
expressions. On the synthetic systems (real eigenvalues) nothing changes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from rlsuite import validation as rules
from rlsuite.agents.dynlin.confidence import (
    dynlin_coefficients,
    epoch_lengths,
    oful_radius,
    resolve_constants,
)
from rlsuite.agents.dynlin.config import (
    LINUCB_VARIANTS,
    AR2Config,
    Exp3Config,
    FixedPolicyConfig,
    LinUCBConfig,
)
from rlsuite.agents.dynlin.run import BanditCheckpoint, BanditRun, RoundKernel, learn_loop
from rlsuite.envs.dynamical_bandit import (
    DTYPE,
    DynamicalLinearBandit,
    DynLinParams,
    expert_allocation,
)
from rlsuite.training import TrainingHooks

BLOCK = 4096  # rounds whose radii / uniforms are prepared at once by the per-round learners


def _seed_gen(env: DynamicalLinearBandit, seed: int) -> torch.Generator:
    return torch.Generator(device=env.device).manual_seed(int(seed))


class LinUCB(BanditCheckpoint):
    """The Lin-UCB family on ``B`` trials; ``variants`` (one per copy) overrides ``config.variant``
    so that several variants share one loop."""

    STATE_KEYS = ("V", "V_tilde", "v_inv", "b_vec", "h_hat", "arm", "Q", "c_arm")

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
        eye = torch.eye(d, dtype=DTYPE)
        self.V = self.lam[:, None, None] * eye  # the discounted path keeps V, V~ and inverts V
        self.V_tilde = self.V.clone()
        self.v_inv = eye / self.lam[:, None, None]
        self.b_vec = torch.zeros(b, d, dtype=DTYPE)
        self.h_hat = torch.zeros(b, d, dtype=DTYPE)
        # The undiscounted path works in arm space (see _play_arm_space).
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

    def _first_arms(self) -> np.ndarray:
        """Round 0: a uniformly random arm per copy (official: ``np.random.uniform`` index)."""
        b, K = self.run.num_copies, self.arms.shape[0]
        return torch.randint(0, K, (b,), generator=self.generator).numpy()

    def _play(self, stop: int) -> None:
        if self.discounted:
            self._play_discounted(stop)
        else:
            self._play_arm_space(stop)

    def _play_arm_space(self, stop: int) -> None:
        """Undiscounted variants, numpy on the host (see :class:`RoundKernel`), in arm space:
        ``Q = U V^-1 U^T [B, K, K]`` and the per-arm reward sums ``c [B, K]`` (``b = U^T c``), so the
        means are ``m = Q c`` and the widths ``sqrt(diag Q)``; the Sherman-Morrison update of
        ``V^-1`` by ``u_a`` is ``Q -= Q[:, a] Q[a, :] / (1 + Q_aa)``, and ``m`` follows the matching
        rank-one recursion ``m += Q[:, a] (y - m_a) / (1 + Q_aa)`` (recomputed exactly at every
        block start). Same arms as the torch arm-space loop it replaced, bit for bit, on the
        script's four configs (checked at T = 1e4 and 1e5)."""
        run, K = self.run, self.arms.shape[0]
        b = run.num_copies
        kern = RoundKernel(run)
        Q = self.Q.detach().cpu().numpy().copy()  # [B, K, K]
        c = self.c_arm.detach().cpu().numpy().copy()  # [B, K]
        q_rows, c_flat = Q.reshape(b * K, K), c.reshape(-1)
        diag = Q.reshape(b, K * K)[:, :: K + 1]  # a view: follows the in-place updates of Q
        arm = self.arm.detach().cpu().numpy()
        while run.t < stop:
            n = min(BLOCK, stop - run.t)
            betas = self.radius(torch.arange(run.t, run.t + n)).cpu().numpy()[:, :, None]  # [n, B, 1]
            m = np.einsum("bij,bj->bi", Q, c)
            m_flat = m.reshape(-1)
            first = run.t
            kern.begin(n)
            for j in range(n):
                if first + j == 0:
                    arm = self._first_arms()
                else:
                    arm = (m + betas[j] * np.sqrt(diag)).argmax(1)
                y, idx = kern.step(arm)
                col = q_rows.take(idx, 0)  # Q[:, a, :] = Q[:, :, a] (symmetric)
                denom = col.reshape(-1).take(idx) + 1.0  # 1 + Q_aa (col is [B, K], idx = copy * K + a)
                m += col * ((y - m_flat.take(idx)) / denom)[:, None]
                Q -= (col / denom[:, None])[:, :, None] * col[:, None, :]
                c_flat[idx] += y
            kern.end()
            self._beta_last = torch.from_numpy(betas[n - 1, :, 0].copy())
        self.Q, self.c_arm = torch.from_numpy(Q), torch.from_numpy(c)
        self.arm = torch.from_numpy(np.asarray(arm, dtype=np.int64).copy())

    def _play_discounted(self, stop: int) -> None:
        """Official DLinUCBAgent (and, with gamma = 1, the other variants) in numpy, every copy's
        symmetric 3x3 matrices as 6 rows ``(00, 11, 22, 01, 02, 12)`` with the copies along the last
        axis. Per round, as the official code: ``V^-1`` fresh from ``V`` (closed-form adjugate, about
        ten vector ops for all copies), ``h = V^-1 b``, bonus ``sqrt(u^T V^-1 V~ V^-1 u)``; after the
        round ``V = g V + u u^T + (1 - g) lam_t I``, ``V~`` with ``g^2``, ``b = g b + u y`` with
        ``lam_t = g^-t lam`` and ``t`` the 0-based round."""
        run, d = self.run, self.d
        if d != 3:
            raise ValueError(f"the discounted Lin-UCB path is written for d = 3 actions; got d = {d}")
        kern = RoundKernel(run)
        U = self.arms.detach().cpu().numpy()  # [K, 3]
        UT = np.ascontiguousarray(U.T)
        ii, jj = np.array([0, 1, 2, 0, 0, 1]), np.array([0, 1, 2, 1, 2, 2])
        uu6 = np.ascontiguousarray((U[:, ii] * U[:, jj]).T)  # [6, K]
        uu9 = np.einsum("ki,kj->kij", U, U).reshape(-1, 9)  # [K, 9]
        full9 = np.array([0, 3, 4, 3, 1, 5, 4, 5, 2])  # 6-form -> row-major 3x3
        # cofactors: C = V[lhs_a] V[lhs_b] - V[rhs_a] V[rhs_b] for (00, 11, 22, 01, 02, 12)
        cof_a = np.array([1, 0, 0, 4, 3, 3, 5, 4, 3, 3, 4, 0])
        cof_b = np.array([2, 2, 1, 5, 5, 4, 5, 4, 3, 2, 1, 5])
        first_row = np.array([0, 3, 4])  # V00, V01, V02 with cofactors C00, C01, C02
        V = self.V.detach().cpu().numpy().reshape(-1, 9)[:, [0, 4, 8, 1, 2, 5]].T.copy()  # [6, B]
        Vt = self.V_tilde.detach().cpu().numpy().reshape(-1, 9)[:, [0, 4, 8, 1, 2, 5]].T.copy()
        bvec = self.b_vec.detach().cpu().numpy().T.copy()  # [3, B]
        g = self.discount.numpy()
        g2 = g**2
        lam = self.lam.numpy()
        arm = self.arm.detach().cpu().numpy()
        while run.t < stop:
            n = min(BLOCK, stop - run.t)
            tt = np.arange(run.t, run.t + n, dtype=np.float64)[:, None]
            lam_t = g ** (-tt) * lam  # [n, B]
            add_v, add_vt = (1 - g) * lam_t, (1 - g2) * lam_t
            betas = self.radius(torch.arange(run.t, run.t + n)).cpu().numpy()  # [n, B]
            first = run.t
            kern.begin(n)
            for j in range(n):
                if first + j == 0:
                    arm = self._first_arms()
                else:
                    prod = V.take(cof_a, 0) * V.take(cof_b, 0)
                    cof = prod[:6] - prod[6:]
                    vi = cof / (V.take(first_row, 0) * cof.take(first_row, 0)).sum(0)  # V^-1, 6-form
                    vi9 = vi.take(full9, 0).reshape(3, 3, -1)
                    h = (vi9 * bvec[None]).sum(1)  # [3, B]
                    vt9 = Vt.take(full9, 0).reshape(3, 3, -1)
                    left = (vi9[:, :, None] * vt9[None]).sum(1)  # V^-1 V~
                    mid = (left[:, :, None] * vi9[None]).sum(1).reshape(9, -1)  # V^-1 V~ V^-1
                    width = np.sqrt(np.maximum(uu9 @ mid, 0.0))  # [K, B]
                    arm = (U @ h + betas[j] * width).argmax(0)
                y, _ = kern.step(arm)
                V *= g
                V += uu6.take(arm, 1)
                V[:3] += add_v[j]
                Vt *= g2
                Vt += uu6.take(arm, 1)
                Vt[:3] += add_vt[j]
                bvec *= g
                bvec += UT.take(arm, 1) * y
            kern.end()
            self._beta_last = torch.from_numpy(betas[n - 1].copy())
        to9 = [0, 3, 4, 3, 1, 5, 4, 5, 2]
        self.V = torch.from_numpy(V[to9].T.reshape(-1, 3, 3).copy())
        self.V_tilde = torch.from_numpy(Vt[to9].T.reshape(-1, 3, 3).copy())
        self.b_vec = torch.from_numpy(bvec.T.copy())
        self.v_inv = torch.linalg.inv(self.V)
        self.h_hat = torch.bmm(self.v_inv, self.b_vec.unsqueeze(-1)).squeeze(-1)
        self.arm = torch.from_numpy(np.asarray(arm, dtype=np.int64).copy())

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


# -- Exp3 and Batch-Exp3 ------------------------------------------------------------------------------




class Exp3(BanditCheckpoint):
    """Exp3 (``batched=False``) or Batch-Exp3 on ``B`` trials."""

    STATE_KEYS = ("G", "p", "arm", "carry")

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

    def _play(self, stop: int) -> None:
        run = self.run
        bs = self.batch if self.config.batched else 1
        if self.config.batched:
            if run.t % bs:
                raise RuntimeError(
                    f"Batch-Exp3 stops only at batch boundaries; log_every must be a multiple of {bs}"
                )
            stop = run.t + max(bs, (stop - run.t) // bs * bs)
        self._play_numpy(stop, bs)

    def _play_numpy(self, stop: int, bs: int) -> None:
        """Exp3 (``bs = 1``) and Batch-Exp3, numpy on the host (see :class:`RoundKernel`).

        A draw by inversion of the cumulative probabilities; the credit ``G_a += r / p_a`` and
        ``p = (1 - gamma) softmax(eta G) + gamma / K``, the softmax shifted by the running max of
        ``G`` (= max(G) while the mapped rewards are >= 0, then bit-identical to torch.softmax;
        otherwise still exact up to rounding). Batch-Exp3 plays each batch as two closed-form holds
        (its first 2 rounds, which fire the official credit, and the other ``bs - 2``).
        """
        run, K = self.run, self.K
        kern = RoundKernel(run)
        G = self.G.detach().cpu().numpy().copy()
        g_flat = G.reshape(-1)
        g_max = G.max(1)
        p = self.p.detach().cpu().numpy().copy()
        carry = self.carry.detach().cpu().numpy().copy()
        m2, m4 = (2 * self.M).cpu().numpy(), (4 * self.M).cpu().numpy()
        keep, floor, eta = 1 - self.gamma, self.gamma / K, self.eta
        cum = p.cumsum(1)
        cum[:, -1] = np.inf  # the draw's clamp to K - 1
        arm = self.arm.detach().cpu().numpy()
        off = kern.offsets
        while run.t < stop:
            if bs == 1:
                n = min(BLOCK, stop - run.t)
                uniforms = torch.rand(n, run.num_copies, generator=self.generator, dtype=DTYPE).numpy()
            else:
                n = min(max(1, BLOCK // bs), (stop - run.t) // bs) * bs
            kern.begin(n)
            for j in range(n // bs):
                if bs == 1:
                    u = uniforms[j]
                else:  # one draw per batch, as the torch generator streamed it before
                    u = torch.rand(run.num_copies, generator=self.generator, dtype=DTYPE).numpy()
                arm = (cum > u[:, None]).argmax(1)
                idx = off + arm
                if bs == 1:
                    reward, _ = kern.step(arm)
                else:  # official alignment: the credit fires at the batch's second round
                    _, first_two = kern.hold(arm, 2)
                    reward = (carry + first_two) / bs
                g_flat[idx] += ((reward + m2) / m4) / p.reshape(-1).take(idx)
                g_max = np.maximum(g_max, g_flat.take(idx))
                e = np.exp(eta * G - (eta * g_max)[:, None])
                p = keep * (e / e.sum(1, keepdims=True)) + floor
                cum = p.cumsum(1)
                cum[:, -1] = np.inf
                if bs > 1:  # the batch's last bs - 2 rewards are credited with the next batch
                    carry = kern.hold(arm, bs - 2)[1] if bs > 2 else np.zeros_like(carry)
            kern.end()
        self.G, self.p = torch.from_numpy(G), torch.from_numpy(p)
        self.carry = torch.from_numpy(np.zeros_like(carry) if bs <= 2 else np.asarray(carry).copy())
        self.arm = torch.from_numpy(np.asarray(arm, dtype=np.int64).copy())

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


# -- AR2 ---------------------------------------------------------------------------------------------




class AR2(BanditCheckpoint):
    """AR2 on ``B`` trials (official ``AR2Agent``; see the module docstring)."""

    STATE_KEYS = ("est", "tau", "tau_trig", "triggered", "last", "last_last", "s")

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

    def _play(self, stop: int) -> None:
        """The official rule, numpy on the host (see :class:`RoundKernel`), all copies per op.

        Two kinds of rounds: a general one (every clause of the official ``pull_arm``/``update``,
        per copy) for the rare rounds where some copy is in its round-robin phase or an epoch of
        some copy ends, and a lean one otherwise, which skips the round-robin clauses and tests the
        trigger rule only while some arm of some copy is still untriggered (triggers are never
        cleared). Both are the same rule; the explore draw ("uniform among the earliest triggered
        arms") reads a per-copy table rebuilt only when a trigger fires.
        """
        run, K = self.run, self.K
        b = run.num_copies
        kern = RoundKernel(run)
        off = kern.offsets
        est = self.est.detach().cpu().numpy().copy()
        est_flat = est.reshape(-1)
        tau2 = 2.0 * self.tau.detach().cpu().numpy()  # 2 tau: the bound's exponent is 2 (t0 + 1) - 2 tau
        tau2_flat = tau2.reshape(-1)
        tau_trig = self.tau_trig.detach().cpu().numpy().copy()
        trig = self.triggered.detach().cpu().numpy().copy()
        last = self.last.detach().cpu().numpy().copy()
        last_last = self.last_last.detach().cpu().numpy().copy()
        s = self.s.detach().cpu().numpy().copy()
        a = self.alpha.detach().cpu().numpy()
        a_col, a2_col = a[:, None], (a**2)[:, None]
        den_col = 1 - a2_col
        scale_col = self.trigger_scale.detach().cpu().numpy()[:, None]
        size = self.epoch_size.detach().cpu().numpy()
        karange = np.arange(K)
        init_val_scale = a ** (K - 1)

        def tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            """(count [B], flat table of the earliest-triggered arms in index order, any trigger [B])."""
            earliest = tau_trig == tau_trig.min(1, keepdims=True)
            order = np.argsort(~earliest, axis=1, kind="stable")  # True entries first, in order
            return earliest.sum(1), order.reshape(-1), trig.any(1)

        def boundaries(t0: int) -> tuple[float, float]:
            """(last round-robin round of any copy, first round >= t0 that ends an epoch of a copy)."""
            init_end = K + (s - 1) * size
            return float(init_end.max()), float((np.ceil(t0 / size) * size).min())

        count, table, has_trig = tables()
        untrig, all_trig, any_trig = ~trig, bool(trig.all()), bool(trig.any())
        init_max, next_end = boundaries(run.t + 1)
        # never-pulled arms give inf - inf and sqrt(-inf) in the trigger test (False, as official)
        with np.errstate(invalid="ignore"):
            while run.t < stop:
                n = min(BLOCK, stop - run.t)
                uniforms = torch.rand(n, b, generator=self.generator, dtype=DTYPE).numpy()
                kern.begin(n)
                t_first = run.t + 1  # official 1-based counter
                for j in range(n):
                    t0 = t_first + j
                    general = t0 <= init_max or t0 >= next_end
                    e_last, e_ll = est_flat.take(off + last), est_flat.take(off + last_last)
                    better = e_last >= e_ll
                    i_sup = np.where(better, last, last_last)
                    if general:
                        init_end = K + (s - 1) * size
                        in_init = t0 <= init_end
                    if general or not all_trig:
                        e_sup = np.where(better, e_last, e_ll)
                        bound = scale_col * np.sqrt((a2_col - a_col ** (2.0 * (t0 + 1) - tau2)) / den_col)
                        new = (e_sup[:, None] - est <= bound) & untrig & (karange != i_sup[:, None])
                        if general:
                            new &= ~in_init[:, None]
                        if new.any():
                            trig |= new
                            tau_trig[new] = float(t0)
                            count, table, has_trig = tables()
                            untrig, all_trig, any_trig = ~trig, bool(trig.all()), True
                    arm = i_sup
                    if any_trig and t0 % 2 == 1:
                        pick = np.minimum((uniforms[j] * count).astype(np.int64), K - 1)
                        arm = np.where(has_trig, table.take(off + pick), i_sup)
                    if general:
                        robin = np.clip((init_end - t0).astype(np.int64), 0, K - 1)
                        arm = np.where(in_init, robin, arm)
                    last_last, last = last, arm
                    y, idx = kern.step(arm)
                    tau2_flat[idx] = 2.0 * t0
                    if general:  # official update(X), every clause
                        before = (t0 < init_end)[:, None]
                        played = karange == arm[:, None]
                        est[:] = np.where(
                            played,
                            np.where(before, (init_val_scale * y)[:, None], (a * y)[:, None]),
                            np.where(before, est, est * a_col),
                        )
                        s += (t0 >= init_end) & (t0 % size == 0)
                        init_max, next_end = boundaries(t0 + 1)
                    else:
                        est *= a_col
                        est_flat[idx] = a * y
                kern.end()
        self.est, self.tau = torch.from_numpy(est), torch.from_numpy(tau2 / 2)
        self.tau_trig, self.triggered = torch.from_numpy(tau_trig), torch.from_numpy(trig)
        self.last, self.last_last = torch.from_numpy(last.copy()), torch.from_numpy(last_last.copy())
        self.s = torch.from_numpy(s)

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


# -- fixed policies ----------------------------------------------------------------------------------




def expert_arm(env: DynamicalLinearBandit) -> int:
    """Index of the expert allocation among ``env``'s arms. The official ExpertAgent plays that
    vector, which is not a vertex of the budget polytope, so the env must declare it as an arm
    (``extra_arms=["expert"]``) for the action to lie in the env's action space.

    Raises:
        ConfigError: naming ``env.extra_arms`` when the env has no such arm.
    """
    if env.arms is not None:
        match = (env.arms == expert_allocation().to(env.arms)).all(-1).nonzero().flatten()
        if len(match):
            return int(match[0])
    extra = env.extra_arms.tolist() if isinstance(env.extra_arms, torch.Tensor) else list(env.extra_arms)
    raise rules.ConfigError(
        "env.extra_arms", extra,
        "the expert policy plays the expert allocation, which must be one of the env's arms: "
        "add it with env.extra_arms=[expert] (Python: extra_arms=['expert'])",
    )


class FixedPolicy(BanditCheckpoint):
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
            self.fixed = torch.full((b,), expert_arm(env), dtype=torch.int64)
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
