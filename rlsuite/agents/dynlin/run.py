"""What the dynamical-linear-bandit learners share: trials, regret accounting, checkpoints.

Every learner (DynLin-UCB and the baselines of Mussi et al., ICML 2023) runs ``B`` independent
trials at once on a :class:`rlsuite.envs.dynamical_bandit.DynamicalLinearBandit`: it owns a
:class:`BanditRun` that holds the hidden state of every trial, draws the env noise from its own
generator and books regret. Two ways to play: :meth:`BanditRun.advance` plays one arm per copy for
``L`` rounds in closed form (epoch learners, torch on the run's device), and :class:`RoundKernel`
plays blocks of single rounds (or short holds) in numpy on the host for the learners that decide
every round, then books the block into the run.

Regret is booked both as the paper plots it (steady-state pseudo-regret ``J* - <h, u_t>`` of the
played arm, official scripts/main.py) and realized (``t J* - sum_t y_t``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from rlsuite.envs.dynamical_bandit import (
    DTYPE,
    DynamicalLinearBandit,
    DynLinParams,
    arm_values,
)


class BanditCheckpoint:
    """The checkpoint logic every per-round bandit learner shares (mixin).

    A learner lists its own statistics in ``STATE_KEYS``; the counters (``global_step``,
    ``iteration``), its ``generator`` (if it has one), its ``horizon`` (if it has one: ``_setup`` is
    re-run with it before the statistics are restored) and the trials (``run``) are handled here. A
    statistic saved as None (not yet built) is left as the fresh learner has it.
    """

    STATE_KEYS: tuple[str, ...] = ()

    def state_dict(self) -> dict[str, Any]:
        """Statistics, counters, generator state and the trials' state (weights-only loadable)."""
        out: dict[str, Any] = {k: getattr(self, k, None) for k in self.STATE_KEYS}
        out |= {"global_step": self.global_step, "iteration": self.iteration, "run": self.run.state_dict()}
        if hasattr(self, "horizon"):
            out["horizon"] = self.horizon
        if hasattr(self, "generator"):
            out["generator"] = self.generator.get_state()
        return out

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        if data.get("horizon") is not None:
            self._setup(int(data["horizon"]))
        for key in self.STATE_KEYS:
            if data.get(key) is not None:
                setattr(self, key, data[key])
        self.global_step, self.iteration = int(data["global_step"]), int(data["iteration"])
        if "generator" in data:
            self.generator.set_state(data["generator"])
        self.run.load_state_dict(data["run"])


REGRET_MARKS = (1_000, 10_000, 100_000)
"""Rounds at which :meth:`BanditRun.metrics` also reports the cumulative pseudo-regret."""


class BanditRun:
    """The trials' side of a run: hidden states, env noise, and regret books, for ``B`` copies.

    The system is linear, so the state splits into an action-driven part ``x^u`` (deterministic given
    the arms) and a noise-driven part (independent of the arms). The noise part of the reward,
    ``y^n_t = <omega, x^n_t> + eta_t``, is computed ahead in blocks of ``block`` rounds from noise
    drawn with :meth:`DynamicalLinearBandit.draw_noise`; the action part of ``L`` rounds of one arm is
    one batched product with a per-length table (``[x^u_{s+L}; y^u_{s+L-1}; sum_j y^u_{s+j}] =
    G_L [x^u_s; u]``). So playing an epoch costs a few tensor ops whatever its length, and the
    rewards are exactly those of :meth:`DynamicalLinearBandit.step` driven by the same noise.

    Args:
        env: a dynamical linear bandit with a finite action set.
        params: one system per copy.
        seed: seeds the env-noise generator (the learner keeps its own for its decisions).
        max_hold: longest single :meth:`advance` (grown on demand).
        block: rounds of noise response computed at once.
    """

    SUB = 64  # sub-block length of the noise-response computation

    def __init__(
        self,
        env: DynamicalLinearBandit,
        params: DynLinParams,
        seed: int,
        max_hold: int = 64,
        block: int = 1 << 14,
    ) -> None:
        if env.arms is None:
            raise ValueError("the dynamical-bandit learners need a finite action set (env arms)")
        env.check_params(params)
        self.env, self.params = env, params
        self.arms = env.arms
        self.generator = env.make_generator(seed)
        b, n = params.x0.shape
        self.n = n
        values = arm_values(params, self.arms)  # [B, K]
        self.best_arm = values.argmax(-1)
        self.optimum = values.max(-1).values
        self.gaps = self.optimum[:, None] - values  # [B, K] steady-state regret per round of each arm
        self.block = max(int(block) // self.SUB, 1) * self.SUB
        self._noise_tables = env.hold_tables(params, self.SUB)
        self._build_action_tables(max_hold)
        self.t = 0
        zeros = torch.zeros(b, 2, dtype=DTYPE, device=env.device)
        self._s = torch.cat([params.x0, zeros], 1)  # [x^u; y_last; y_sum] (x0 is deterministic)
        self.xn = torch.zeros_like(params.x0)  # noise-driven state at the end of the computed noise
        self._yn = torch.zeros(0, b, dtype=DTYPE, device=env.device)  # noise rewards [rounds, B] ...
        self._yn_start = self._yn_end = 0  # ... of rounds _yn_start .. _yn_end - 1
        self._noise_done = torch.zeros(b, dtype=DTYPE, device=env.device)  # noise rewards before _yn_start
        self.segments: list[tuple[torch.Tensor, torch.Tensor]] = []  # (arms [S, B] int8, lengths [S])
        self._regret_done = torch.zeros(b, dtype=DTYPE, device=env.device)
        self._arms: list[torch.Tensor] = []
        self._lens: list[int] = []
        self.arange = torch.arange(b, device=env.device)

    @property
    def num_copies(self) -> int:
        """B."""
        return self.xu.shape[0]

    def _build_action_tables(self, max_len: int) -> None:
        tab = self.env.hold_tables(self.params, max_len)
        P, sb = tab.powers, tab.sb  # [B, L+1, n, n], [B, L+1, n, d]
        wx, wu = tab.wx, tab.wu  # [B, L, n], [B, L, d]
        w_last = torch.cat([wx, wu], -1)  # row L-1 is the reward of the L-th round
        w_sum = w_last.cumsum(1)
        rows = torch.cat([P[:, 1:], sb[:, 1:]], -1)  # [B, L, n, n + d]
        g = torch.cat([rows, w_last[:, :, None], w_sum[:, :, None]], 2)  # [B, L, n + 2, n + d]
        # Act on s = [x^u; y_last; y_sum; u]: the y_last column is 0, the y_sum column carries the
        # running sum of the action parts of the rewards, so one bmm per epoch does all the books.
        b, L, n = g.shape[0], g.shape[1], self.n
        full = torch.zeros(b, L, n + 2, n + 2 + g.shape[-1] - n, dtype=DTYPE, device=g.device)
        full[..., :n] = g[..., :n]
        full[..., n + 2 :] = g[..., n:]
        full[:, :, n + 1, n + 1] = 1.0
        self._g = [None] + [full[:, i].contiguous() for i in range(L)]  # indexed by hold length
        self.max_hold = max_len
        # One round of arm k: s' = G1x s + G1u u_k, with the per-arm columns G1u u_k as rows of a table
        # indexed by copy * K + k (so a round needs no gather of action vectors).
        g1 = self._g[1]
        k = self.arms.shape[0]
        self._g1x = g1[:, :, : n + 2].contiguous()
        self._gu_rows = (g1[:, :, n + 2 :] @ self.arms.T).transpose(1, 2).reshape(b * k, n + 2).contiguous()
        self._arm_offsets = torch.arange(b, device=g.device) * k

    def _noise_rewards(self, rounds: int) -> torch.Tensor:
        """Noise part of the next ``rounds`` rewards (from the state ``self.xn``), ``[B, rounds]``."""
        c, tab = self.SUB, self._noise_tables
        eps, eta = self.env.draw_noise(self.params, rounds, self.generator)
        b, n = self.xn.shape
        k = rounds // c
        eps = eps.view(b, k, c, n)
        local_y = torch.einsum("bjim,bkim->bkj", tab.wn, eps)  # zero-initial-state response
        local_x = torch.einsum("binm,bkim->bkn", tab.powers[:, :c].flip(1), eps)  # sum A^{c-1-i} eps_i
        a_c = tab.powers[:, c]
        starts = []
        x = self.xn
        for j in range(k):
            starts.append(x)
            x = (a_c @ x.unsqueeze(-1)).squeeze(-1) + local_x[:, j]
        self.xn = x
        xs = torch.stack(starts, 1)  # [B, k, n]
        y = local_y + torch.einsum("bjn,bkn->bkj", tab.wx, xs)
        return y.reshape(b, rounds) + eta

    def _ensure_noise(self, last: int) -> None:
        """Make the noise rewards cover round ``last``; drop the consumed head."""
        while last >= self._yn_end:
            used = self.t - self._yn_start
            self._noise_done += self._yn[:used].sum(0)
            self._yn = torch.cat([self._yn[used:], self._noise_rewards(self.block).T], 0).contiguous()
            self._yn_start = self.t
            self._yn_end = self._yn_start + self._yn.shape[0]

    def advance(self, arm: torch.Tensor, rounds: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Play ``arm [B]`` for ``rounds`` rounds: ``(last round's reward [B], action vectors [B, d])``."""
        if rounds > self.max_hold:
            self._build_action_tables(max(rounds, 2 * self.max_hold))
        last = self.t + rounds - 1
        if last >= self._yn_end:
            self._ensure_noise(last)
        u = torch.index_select(self.arms, 0, arm)
        self._s = torch.bmm(self._g[rounds], torch.cat([self._s, u], 1).unsqueeze(-1)).squeeze(-1)
        y = self._s.select(1, self.n) + self._yn.select(0, last - self._yn_start)
        self.t += rounds
        self._arms.append(arm)
        self._lens.append(rounds)
        if len(self._lens) >= 4096:
            self._flush()
        return y, u

    def step_arm(self, arm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One round of ``arm [B]`` (the per-round learners' hot path): ``(reward [B], row index [B])``
        where ``row = copy * K + arm`` indexes per-copy-per-arm tables."""
        if self.t >= self._yn_end:
            self._ensure_noise(self.t)
        idx = self._arm_offsets + arm
        row = self._gu_rows.index_select(0, idx)
        self._s = torch.baddbmm(row.unsqueeze(2), self._g1x, self._s.unsqueeze(2)).squeeze(2)
        y = self._s.select(1, self.n) + self._yn.select(0, self.t - self._yn_start)
        self.t += 1
        self._arms.append(arm)
        self._lens.append(1)
        if len(self._lens) >= 4096:
            self._flush()
        return y, idx

    def advance_sum(self, arm: torch.Tensor, rounds: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As :meth:`advance`, also returning the sum of the ``rounds`` rewards: ``(last, sum, u)``."""
        before = self._s.select(1, self.n + 1)
        y, u = self.advance(arm, rounds)
        first = self.t - rounds - self._yn_start
        total = self._s.select(1, self.n + 1) - before + self._yn[first : first + rounds].sum(0)
        return y, total, u

    @property
    def xu(self) -> torch.Tensor:
        """Action-driven part of the hidden state ``[B, n]``."""
        return self._s[:, : self.n]

    @property
    def action_reward(self) -> torch.Tensor:
        """Sum of the action-driven parts of the rewards so far ``[B]``."""
        return self._s[:, self.n + 1]

    def _flush(self) -> None:
        """Move the plays recorded since the last flush into an int8 chunk and book their regret."""
        if self._lens:
            arms = torch.stack(self._arms)
            lengths = torch.tensor(self._lens, dtype=torch.int64)
            self.segments.append((arms.to(torch.int8), lengths))
            self._regret_done = self._regret_done + (
                torch.gather(self.gaps, 1, arms.T) * lengths.to(DTYPE)
            ).sum(-1)
            self._arms, self._lens = [], []

    @property
    def pseudo_regret(self) -> torch.Tensor:
        """Cumulative steady-state pseudo-regret ``sum_t J* - <h, u_t>`` per copy ``[B]``."""
        self._flush()
        return self._regret_done.clone()

    @property
    def reward_sum(self) -> torch.Tensor:
        """Sum of the rewards observed so far per copy ``[B]``."""
        return self.action_reward + self._noise_done + self._yn[: self.t - self._yn_start].sum(0)

    def realized_regret(self) -> torch.Tensor:
        """``t J* - sum_t y_t`` per copy (includes transients and noise)."""
        return self.t * self.optimum - self.reward_sum

    def regret_curve(self, times: torch.Tensor) -> torch.Tensor:
        """Cumulative pseudo-regret after ``times`` rounds (``[P]`` ints in ``[0, t]``): ``[P, B]``.

        Walks the recorded chunks one at a time, so memory stays at one chunk whatever the horizon.
        """
        self._flush()
        times = torch.as_tensor(times, dtype=torch.int64).clamp(0, self.t)
        out = torch.zeros(len(times), self.num_copies, dtype=DTYPE)
        offset, base = 0, torch.zeros(self.num_copies, dtype=DTYPE)
        for arms8, lengths in self.segments:
            per_seg = torch.gather(self.gaps, 1, arms8.T.long()).T  # [S, B] regret per round
            ends = lengths.cumsum(0) + offset
            starts = ends - lengths
            cum = torch.cat([base[None], base + (per_seg * lengths[:, None]).cumsum(0)])
            inside = (times >= offset) & (times <= ends[-1])
            if bool(inside.any()):
                tt = times[inside]
                seg = torch.searchsorted(ends, tt, right=True).clamp(max=len(lengths) - 1)
                out[inside] = cum[seg] + (tt - starts[seg]).clamp(min=0).to(DTYPE)[:, None] * per_seg[seg]
            offset, base = int(ends[-1]), cum[-1]
        return out

    def played(self) -> torch.Tensor:
        """Arm played at every round so far ``[t, B]`` (int64; for tests and short runs)."""
        self._flush()
        return torch.cat([a.long().repeat_interleave(n, dim=0) for a, n in self.segments])

    def metrics(self, prefix: str) -> dict[str, float]:
        """Final metrics, the score (mean cumulative pseudo-regret) first."""
        b = self.num_copies

        def stderr(values: torch.Tensor) -> float:
            return float(values.std() / math.sqrt(b)) if b > 1 else 0.0

        reg, realized = self.pseudo_regret, self.realized_regret()
        out = {
            f"{prefix}/cumulative_regret": float(reg.mean()),
            f"{prefix}/cumulative_regret_stderr": stderr(reg),
            f"{prefix}/realized_regret": float(realized.mean()),
            f"{prefix}/realized_regret_stderr": stderr(realized),
            f"{prefix}/rounds": float(self.t),
            f"{prefix}/optimum": float(self.optimum.mean()),
        }
        # the regret after REGRET_MARKS rounds (those before the end), for regret-growth tables
        marks = [m for m in REGRET_MARKS if m < self.t]
        if marks:
            for mark, row in zip(marks, self.regret_curve(torch.tensor(marks)), strict=True):
                out[f"{prefix}/regret_at_{mark}"] = float(row.mean())
                out[f"{prefix}/regret_at_{mark}_stderr"] = stderr(row)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain data only (torch.load with weights_only=True)."""
        self._flush()
        return {
            "s": self._s,
            "xn": self.xn,
            "t": self.t,
            "yn": self._yn,
            "yn_start": self._yn_start,
            "noise_done": self._noise_done,
            "segment_arms": [a for a, _ in self.segments],
            "segment_lengths": [n for _, n in self.segments],
            "regret_done": self._regret_done,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self._s, self.xn, self.t = data["s"], data["xn"], int(data["t"])
        self._yn, self._yn_start = data["yn"], int(data["yn_start"])
        self._yn_end = self._yn_start + self._yn.shape[0]
        self._noise_done = data["noise_done"]
        self._arms, self._lens = [], []
        self.segments = list(zip(data["segment_arms"], data["segment_lengths"], strict=True))
        self._regret_done = data["regret_done"]
        self.generator.set_state(data["generator"])


class RoundKernel:
    """One round of every copy in a handful of numpy ops, for the learners that decide every round.

    Why numpy: a per-round loop over ``[B, 3]``-sized arrays is all per-op overhead, about 0.6 us for
    a numpy op against 2-10 us for a torch op (measured on this 2-core box), so the per-round
    learners (Lin-UCB family, Exp3, AR2) run their inner loop on host numpy arrays and hand the
    books back to the :class:`BanditRun` once per block. Rewards are the run's: the same
    noise-driven part (drawn by the run's generator in the same blocks) plus the action-driven part,
    here advanced one round at a time. Copies that share a system (A, B, omega, theta) share one
    2-D product: ``[A; omega^T] x^u`` for every distinct system at once, then each copy's rows are
    picked out (one take), so one round costs the same few ops whatever ``B``.

    Use: ``yn = kernel.begin(n)``; then ``y, idx = kernel.step(arm)`` (one round of ``arm [B]``
    int64; ``idx = copy * K + arm`` indexes per-copy-per-arm tables) or ``kernel.hold(arm, L)``
    (``L`` rounds of one arm in closed form, from the run's per-length tables) until ``n`` rounds
    are played; ``kernel.end()`` books the block (state, reward sums, played arms, regret) into the
    run, which then reads as if it had played those rounds with :meth:`BanditRun.advance`.
    """

    def __init__(self, run: BanditRun) -> None:
        self.run = run
        p = run.params
        A, Bm, om, th = (t.detach().cpu().numpy() for t in (p.A, p.B, p.omega, p.theta))
        b, n = om.shape
        self.arms = run.arms.detach().cpu().numpy()
        K = self.arms.shape[0]
        self.b, self.n, self.K = b, n, K
        key = np.concatenate([A.reshape(b, -1), Bm.reshape(b, -1), om, th], 1)
        _, first, gid = np.unique(key, axis=0, return_index=True, return_inverse=True)
        self._first, self._gid = first, gid.reshape(-1)
        W = np.concatenate([A[first], om[first][:, None, :]], 1)  # [G, n + 1, n]
        self.W = np.ascontiguousarray(W.reshape(-1, n))
        self.pick = self._picker(n + 1)
        bu = np.einsum("bnd,kd->bkn", Bm, self.arms)  # B u_k  [B, K, n]
        tu = np.einsum("bd,kd->bk", th, self.arms)  # <theta, u_k>  [B, K]
        self.rows = np.ascontiguousarray(np.concatenate([bu, tu[..., None]], 2).reshape(b * K, n + 1).T)
        self.offsets = np.arange(b) * K
        self.gaps = run.gaps.detach().cpu().numpy()
        self._holds: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
        self.x = np.ascontiguousarray(run.xu.detach().cpu().numpy().T)  # x^u  [n, B]
        self.j = 0

    def _picker(self, rows: int) -> np.ndarray | None:
        """Flat positions of copy c's ``rows`` rows in a ``[G * rows, B]`` product (None: one system)."""
        if len(self._first) == 1:
            return None
        b = self.b
        return (self._gid[None, :] * rows * b + np.arange(rows)[:, None] * b + np.arange(b)[None, :]).ravel()

    def _hold_tables(self, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """``L`` rounds of one arm as one product: rows ``[x_{t+L}; y^u of the last round; sum of the
        L rounds' y^u]`` from the run's closed-form table ``G_L`` (see :class:`BanditRun`)."""
        if length not in self._holds:
            run, n, b, K = self.run, self.n, self.b, self.K
            if length > run.max_hold:
                run._build_action_tables(max(length, 2 * run.max_hold))
            g = run._g[length].detach().cpu().numpy()  # [B, n + 2, n + 2 + d]
            W = np.ascontiguousarray(g[self._first, :, :n].reshape(-1, n))
            arm_part = g[:, :, n + 2 :] @ self.arms.T  # [B, n + 2, K]
            rows = np.ascontiguousarray(arm_part.transpose(0, 2, 1).reshape(b * K, n + 2).T)
            self._holds[length] = (W, rows, self._picker(n + 2))
        return self._holds[length]

    def begin(self, rounds: int) -> np.ndarray:
        """Start a block of ``rounds`` rounds; returns their noise rewards ``[rounds, B]`` (read-only)."""
        run = self.run
        if run.t + rounds - 1 >= run._yn_end:
            run._ensure_noise(run.t + rounds - 1)
        start = run.t - run._yn_start
        self._yn = run._yn[start : start + rounds].detach().cpu().numpy()
        self._arms = np.empty((rounds, self.b), dtype=np.int64)
        self._ysum = np.zeros(self.b)  # action parts of the block's rewards, summed
        self._ylast = np.zeros(self.b)
        self.x = np.ascontiguousarray(run.xu.detach().cpu().numpy().T)
        self.j = 0
        return self._yn

    def step(self, arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Play ``arm [B]`` for one round: ``(reward [B], idx = copy * K + arm [B])``."""
        idx = self.offsets + arm
        m = self.W @ self.x  # [A; omega^T] x^u of every distinct system
        if self.pick is not None:
            m = m.take(self.pick).reshape(self.n + 1, self.b)
        out = m + self.rows.take(idx, 1)  # [A x + B u; <omega, x> + <theta, u>]
        self.x = out[: self.n]
        j = self.j
        self._arms[j] = arm
        yu = out[self.n]
        self._ysum += yu
        self._ylast = yu
        self.j = j + 1
        return yu + self._yn[j], idx

    def hold(self, arm: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Play ``arm [B]`` for ``length`` rounds: ``(last round's reward [B], sum of the rewards [B])``."""
        W, rows, pick = self._hold_tables(length)
        n, j = self.n, self.j
        m = W @ self.x
        if pick is not None:
            m = m.take(pick).reshape(n + 2, self.b)
        out = m + rows.take(self.offsets + arm, 1)
        self.x = out[:n]
        self._arms[j : j + length] = arm
        self._ysum += out[n + 1]
        self._ylast = out[n]
        yn = self._yn[j : j + length]
        self.j = j + length
        return out[n] + yn[-1], out[n + 1] + yn.sum(0)

    def end(self) -> None:
        """Book the rounds played since :meth:`begin` into the run."""
        run, j = self.run, self.j
        if j == 0:
            return
        run._flush()
        dev = run._s.device
        s = run._s.clone()
        s[:, : self.n] = torch.from_numpy(self.x.T.copy()).to(dev)
        s[:, self.n] = torch.from_numpy(np.array(self._ylast)).to(dev)
        s[:, self.n + 1] += torch.from_numpy(self._ysum).to(dev)
        run._s = s
        arms = self._arms[:j]
        run.segments.append(
            (torch.from_numpy(arms.astype(np.int8)).to(dev), torch.ones(j, dtype=torch.int64))
        )
        regret = np.take_along_axis(self.gaps, arms.T, 1).sum(1)
        run._regret_done = run._regret_done + torch.from_numpy(regret).to(dev)
        run.t += j
        self.j = 0


def concat_params(parts: list[DynLinParams]) -> DynLinParams:
    """Stack the copies of several params (e.g. the three synthetic noise levels) into one batch."""
    fields = DynLinParams.__dataclass_fields__
    return DynLinParams(**{k: torch.cat([getattr(p, k) for p in parts]) for k in fields})


def learn_loop(agent: Any, total_steps: int, hooks: Any, prefix: str) -> None:
    """The iteration loop every dynamical-bandit learner shares: ``agent._play(stop_round)`` plays
    up to a round, then one metrics dict per ``agent.config.log_every`` rounds goes to the hooks.

    ``total_steps`` is the run's whole budget, as for every agent: play until round
    ``total_steps // B``, continuing from the rounds already played (a resumed run stops where the
    uninterrupted one does)."""
    import time

    from rlsuite.training import check_finite

    run: BanditRun = agent.run
    b = run.num_copies
    target = total_steps // b
    every = max(1, int(agent.config.log_every))
    while run.t < target:
        start_t, start_reward, tic = run.t, run.reward_sum.clone(), time.perf_counter()
        agent._play(min(target, (run.t // every + 1) * every))
        agent.global_step = run.t * b
        agent.iteration += 1
        played = run.t - start_t
        metrics = {
            "rollout/reward_mean": float((run.reward_sum - start_reward).mean() / max(played, 1)),
            "time/fps": played * b / max(time.perf_counter() - tic, 1e-9),
            f"{prefix}/cumulative_regret": float(run.pseudo_regret.mean()),
            f"{prefix}/realized_regret": float(run.realized_regret().mean()),
        }
        metrics.update(agent._extra_metrics())
        metrics = check_finite(prefix, agent.global_step, metrics)
        if hooks is not None:
            hooks.on_iteration(agent, agent.global_step, metrics)
