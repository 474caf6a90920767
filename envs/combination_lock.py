"""The continuous combination lock of HNPG (Zhou et al. 2023, arXiv 2311.08384, sec. 6.1 / App. E.1)
as a batched engine env (HNPG's epsilon-greedy offline data is
:mod:`rlsuite.agents.hnpg.offline_data`).

Latent structure (Misra et al. 2020's lock, as in the official HNPG code ``lock_continuous.py``):

* steps ``h = 0 .. H-1``; three latent states per step: 0 = A, 1 = B (good), 2 = C (dead, absorbing);
* reset: ``h = 0``, A with probability ``p_switch`` (1/2), else B;
* two secret combinations ``combos[0, h]`` (for A) and ``combos[1, h]`` (for B), uniform on
  ``{0 .. A-1}``, drawn from the env's ``seed`` (the official code draws them from numpy's global
  RNG, so there too the lock depends on the seed);
* the agent's action is a continuous vector ``a in R^A``; the latent action is drawn from
  ``softmax(a / temperature)`` (temperature 0.1 in the code; the paper's text omits it);
* from a good state the correct latent action moves to A or B (switching with probability
  ``p_switch``); any other action moves to C; C stays C; the episode terminates after ``H`` steps;
* reward (``reward_mode="final"``, the official code): only the last step pays: 1 for the correct
  final action from A/B, otherwise ``anti_reward`` (0.1) with probability ``anti_reward_prob``
  (1/2), also for episodes that died earlier; so a uniform policy earns about 0.05.
  ``reward_mode="transition"`` (paper App. E.1, Hy-Q/BRIEE code): the anti-reward is paid on the
  good-to-dead transition instead (at whatever step it happens) and never from C.
  ``dense=True`` (Hy-Q/BRIEE's dense lock) adds 0.1 for every correct non-final step and removes
  the anti-reward. In every mode a success pays exactly 1 at the last step and a failure pays
  less than 1 there, so ``reward[last step] >= 1`` is the success indicator;
* observation: ``D = 2^ceil(log2(H + 4))`` (16 for H=5, 32 for H=15, 64 for H=50, 128 for H=100);
  ``v = zeros(D)``, ``v[:H+3] += N(0, noise_std^2)`` (fresh each call), ``v[latent] += 1``,
  ``v[3 + h] += 1`` (``h`` up to ``H`` on the terminal observation); the observation is
  ``Hadamard(D) @ v`` with the unnormalised Sylvester Hadamard matrix (entries +-1), so
  ``Hadamard^T obs / D`` recovers ``v``.

Declared spaces are honest: observations and actions are unbounded Boxes (the official code
declares ``Box(0, 1)`` for both, which neither respects).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rlsuite.core import spaces
from rlsuite.core.env import BatchedEnv, Step
from rlsuite.validation import ConfigError

NUM_LATENT_STATES = 3
"""A, B (good) and C (dead)."""
REWARD_MODES = ("final", "transition")
DENSE_STEP_REWARD = 0.1
"""Reward of a correct non-final step with ``dense=True`` (Hy-Q/BRIEE's ``step_reward``)."""


def observation_dim(horizon: int) -> int:
    """``2^ceil(log2(H + 4))``: the official observation length."""
    return 2 ** int(math.ceil(math.log2(horizon + 4)))


def hadamard(n: int, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> torch.Tensor:
    """Sylvester's ``n x n`` Hadamard matrix with +-1 entries (``scipy.linalg.hadamard``)."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"hadamard: n must be a power of 2, got {n}")
    h = torch.ones(1, 1, dtype=dtype, device=device)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


@dataclass(frozen=True)
class CombinationLockParams:
    """Per-copy constants, each ``[B, ...]``."""

    combos: torch.Tensor
    """``[B, 2, H]`` int64: the correct latent action at each step from A (row 0) and B (row 1)."""
    p_switch: torch.Tensor
    """``[B]`` probability that a correct action swaps A and B (and that a reset starts in A)."""
    anti_reward: torch.Tensor
    """``[B]`` the anti-shaped reward (0.1)."""
    anti_reward_prob: torch.Tensor
    """``[B]`` probability that a failure pays ``anti_reward``."""
    noise_std: torch.Tensor
    """``[B]`` std of the Gaussian noise on the first ``H + 3`` un-rotated coordinates."""
    temperature: torch.Tensor
    """``[B]`` temperature of the softmax that maps the action vector to a latent action."""


@dataclass(frozen=True)
class CombinationLockState:
    """``latent`` in {0, 1, 2} and step ``h`` (steps taken in this episode), both int64 ``[B]``."""

    latent: torch.Tensor
    h: torch.Tensor


class CombinationLock(BatchedEnv[CombinationLockState, CombinationLockParams]):
    """``B`` continuous combination locks stepped at once (see the module docstring).

    Args:
        horizon: H, actions per episode.
        seed: draws the secret combinations of :meth:`default_params`.
        num_latent_actions: A (10); also the action vector's length.
        reward_mode: ``"final"`` (official code) or ``"transition"`` (paper text, Hy-Q).
        dense: pay 0.1 per correct step and no anti-reward.
        p_switch, anti_reward, anti_reward_prob, noise_std, temperature: defaults of the params.
        max_episode_steps: optional extra time limit (truncation); None: episodes end by
            termination after H steps.
        device: where everything lives.
    """

    name = "comblock"
    # Checked at reset and by the runner (BatchedEnv.check_param_values), naming field and value.
    finite_params = ("anti_reward",)
    positive_params = ("temperature",)
    nonnegative_params = ("noise_std",)
    unit_params = ("p_switch", "anti_reward_prob")

    def __init__(
        self,
        horizon: int = 5,
        seed: int = 0,
        num_latent_actions: int = 10,
        reward_mode: str = "final",
        dense: bool = False,
        p_switch: float = 0.5,
        anti_reward: float = 0.1,
        anti_reward_prob: float = 0.5,
        noise_std: float = 0.1,
        temperature: float = 0.1,
        max_episode_steps: int | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        super().__init__(device)
        # ConfigErrors name the field and the value (``p_switch=1.5: must be in [0, 1]``); the
        # runner reports them under ``env.``. NaN fails every comparison, so each test is "ok".
        checks = [
            ("horizon", horizon, int(horizon) >= 1, "must be a positive integer"),
            ("num_latent_actions", num_latent_actions, int(num_latent_actions) >= 2, "must be >= 2"),
            ("reward_mode", reward_mode, reward_mode in REWARD_MODES,
             f"must be one of {', '.join(map(repr, REWARD_MODES))}"),
            ("p_switch", p_switch, 0.0 <= p_switch <= 1.0, "must be in [0, 1]"),
            ("anti_reward", anti_reward, math.isfinite(anti_reward), "must be finite"),
            ("anti_reward_prob", anti_reward_prob, 0.0 <= anti_reward_prob <= 1.0, "must be in [0, 1]"),
            ("noise_std", noise_std, 0.0 <= noise_std < math.inf, "must be non-negative and finite"),
            ("temperature", temperature, 0.0 < temperature < math.inf, "must be positive and finite"),
            ("max_episode_steps", max_episode_steps,
             max_episode_steps is None or int(max_episode_steps) >= 1, "must be a positive integer"),
        ]
        for name, value, ok, requirement in checks:
            if not ok:
                raise ConfigError(name, value, requirement)
        self.horizon = int(horizon)
        self.seed = int(seed)
        self.num_actions = int(num_latent_actions)
        self.reward_mode = reward_mode
        self.dense = bool(dense)
        self.defaults = dict(
            p_switch=p_switch,
            anti_reward=anti_reward,
            anti_reward_prob=anti_reward_prob,
            noise_std=noise_std,
            temperature=temperature,
        )
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        self.obs_dim = observation_dim(self.horizon)
        self.rotation = hadamard(self.obs_dim, device=self.device)
        inf = float("inf")
        self.observation_space = spaces.Box.make(-inf, inf, (self.obs_dim,), device=self.device)
        self.action_space = spaces.Box.make(-inf, inf, (self.num_actions,), device=self.device)
        gen = torch.Generator().manual_seed(self.seed)
        self.combos = torch.randint(0, self.num_actions, (2, self.horizon), generator=gen).to(self.device)

    # -- params ---------------------------------------------------------------------------------
    def default_params(self, batch_size: int = 1) -> CombinationLockParams:
        """The seed's lock with the constructor's constants, repeated for ``batch_size`` copies."""

        def full(value: float) -> torch.Tensor:
            return torch.full((batch_size,), float(value), dtype=torch.float32, device=self.device)

        return CombinationLockParams(
            combos=self.combos.unsqueeze(0).expand(batch_size, 2, self.horizon).clone(),
            **{k: full(v) for k, v in self.defaults.items()},
        )

    # -- observations ---------------------------------------------------------------------------
    def observe(
        self, latent: torch.Tensor, h: torch.Tensor, noise_std: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """``Hadamard @ (noise + onehot(latent) + onehot(3 + h))``, ``[B, D]`` float32."""
        k = self.horizon + NUM_LATENT_STATES
        noise = torch.randn((latent.shape[0], k), generator=generator, device=self.device)
        rot = self.rotation
        # Hadamard is symmetric, so row i of it is the rotated unit vector e_i.
        return (noise * noise_std[:, None]) @ rot[:k] + rot[latent] + rot[NUM_LATENT_STATES + h]

    def decode(self, obs: torch.Tensor) -> torch.Tensor:
        """Un-rotate observations: ``Hadamard^T obs / D`` (the noisy one-hot vector ``v``)."""
        return obs @ self.rotation / self.obs_dim

    def decode_latent_and_step(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent state and step read off observations (argmax of the un-rotated blocks).

        Exact without noise; with the default noise a wrong read needs a ~7-sigma event.
        """
        v = self.decode(obs)
        latent = v[:, :NUM_LATENT_STATES].argmax(-1)
        h = v[:, NUM_LATENT_STATES : NUM_LATENT_STATES + self.horizon + 1].argmax(-1)
        return latent, h

    # -- dynamics -------------------------------------------------------------------------------
    def _initial(
        self, params: CombinationLockParams, generator: torch.Generator
    ) -> tuple[torch.Tensor, CombinationLockState]:
        b = params.p_switch.shape[0]
        u = torch.rand(b, generator=generator, device=self.device)
        # Official reset: ber ~ Bernoulli(p_switch); A if ber else B.
        latent = torch.where(u < params.p_switch, 0, 1).to(torch.int64)
        h = torch.zeros(b, dtype=torch.int64, device=self.device)
        return self.observe(latent, h, params.noise_std, generator), CombinationLockState(latent, h)

    def reset(
        self, params: CombinationLockParams, generator: torch.Generator
    ) -> tuple[torch.Tensor, CombinationLockState]:
        """Start an episode in every copy: ``(obs [B, D], state)``."""
        self.check_params(params)
        return self._initial(params, generator)

    def check_params(self, params: CombinationLockParams, batch_size: int | None = None) -> None:
        """Field shapes/dtypes and the values (naming field, value and copy), and combination
        indices in range."""
        super().check_params(params, batch_size)
        bad = ((params.combos < 0) | (params.combos >= self.num_actions)).reshape(
            params.combos.shape[0], -1).any(-1)
        if bool(bad.any()):
            copy = int(bad.nonzero()[0, 0])
            raise ConfigError("params.combos", params.combos[copy].tolist(),
                              f"must be latent actions in [0, {self.num_actions}) (copy {copy})")

    def latent_action(
        self, action: torch.Tensor, params: CombinationLockParams, generator: torch.Generator
    ) -> torch.Tensor:
        """Latent actions ``[B]`` drawn from ``softmax(action / temperature)`` (inverse CDF)."""
        probs = torch.softmax(action.to(torch.float32) / params.temperature[:, None], dim=-1)
        u = torch.rand((action.shape[0], 1), generator=generator, device=self.device)
        idx = (probs.cumsum(-1) < u).sum(-1)
        return idx.clamp_max(self.num_actions - 1)

    def correct_action(self, state: CombinationLockState, params: CombinationLockParams) -> torch.Tensor:
        """The correct latent action for each copy (B's combination in C, as the official
        behaviour policy does: ``opt_a`` if the state is A, else ``opt_b``)."""
        row = (state.latent != 0).to(torch.int64)
        h = state.h.clamp_max(self.horizon - 1)
        return params.combos[torch.arange(row.shape[0], device=self.device), row, h]

    def step(
        self,
        state: CombinationLockState,
        action: torch.Tensor,
        params: CombinationLockParams,
        generator: torch.Generator,
    ) -> Step[CombinationLockState]:
        """One transition for every copy, autoresetting the copies whose episode ended."""
        b = state.latent.shape[0]
        if not isinstance(action, torch.Tensor) or not action.is_floating_point():
            raise TypeError(f"CombinationLock actions must be float tensors [B, {self.num_actions}]")
        if tuple(action.shape) != (b, self.num_actions):
            raise ValueError(
                f"CombinationLock action has shape {tuple(action.shape)}; expected ({b}, {self.num_actions})"
            )
        if self.check_actions:  # opt-in (a host sync): see BatchedEnv.check_actions
            self.check_action_values(action)
        s, h = state.latent, state.h
        chosen = self.latent_action(action, params, generator)
        u = torch.rand((2, b), generator=generator, device=self.device)
        switch, anti = u[0] < params.p_switch, u[1] < params.anti_reward_prob
        good = s < 2
        correct = good & (chosen == self.correct_action(state, params))
        last = h == self.horizon - 1
        # Correct from A/B: swap with probability p_switch; the last correct step keeps the state
        # (lock_continuous.py: next_state = state on a success); anything else falls into C.
        moved = torch.where(switch & ~last, 1 - s, s)
        latent = torch.where(correct, moved, torch.full_like(s, 2))
        zero = torch.zeros(b, dtype=torch.float32, device=self.device)
        anti_r = torch.where(anti, params.anti_reward, zero)
        success = correct & last
        if self.dense:
            reward = torch.where(correct & ~last, DENSE_STEP_REWARD, zero)
        elif self.reward_mode == "final":
            reward = torch.where(last & ~success, anti_r, zero)
        else:
            reward = torch.where(good & ~correct, anti_r, zero)
        reward = torch.where(success, torch.ones_like(reward), reward)
        h_next = h + 1
        final_obs = self.observe(latent, h_next, params.noise_std, generator)
        terminated = h_next >= self.horizon
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = h_next >= self.max_episode_steps
        done = terminated | truncated
        obs0, start = self._initial(params, generator)
        obs = torch.where(done[:, None], obs0, final_obs)
        new_state = CombinationLockState(
            torch.where(done, start.latent, latent), torch.where(done, start.h, h_next)
        )
        return Step(obs, new_state, reward, terminated, truncated, final_obs)
