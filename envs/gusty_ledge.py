"""GustyLedge: a continuous-state walk along a ledge with rare, catastrophic gusts.

Our design (the ECRM paper's neural experiment is unknown), for the neural ECRM variant: the
continuous analogue of stochastic CliffWalking, where low is fast and a rare gust can blow the
walker off the edge.

* State ``(x, y)``: progress ``x`` from 0 to 1 and height ``y`` above the edge (``y < 0``: fallen).
  Start ``(0, start_height)``; observation ``(x, y)``, float32.
* Actions (3): step down / level / up, ``dy = -climb, 0, +climb``; every step also advances
  ``x`` by ``1 / num_steps``. With ``continuous=True`` the action is a Box ``[-1, 1]`` (shape
  ``(1,)``, clipped) and ``dy = climb * action``: the same task for Gaussian policies.
* Dynamics: ``y' = y + dy + noise * N(0, 1)``, and with probability ``gust_prob`` a gust pushes
  ``y'`` down by a further ``gust_size``; ``y'`` is clipped to ``max_height``.
* Reward per step: ``-(1 + height_cost * y')`` (low is cheap); a fall (``y' < 0``) pays
  ``-fall_cost`` instead and terminates; reaching ``x >= 1`` terminates (after ``num_steps``
  steps).

Why the defaults separate risk-neutral and risk-averse behaviour (per-step expected rewards):
walking low (y ~ 0.05, a gust means a fall) earns about -(1.1) - 0.02 * 19 = -1.48, walking above
the gust (y ~ 0.35) earns -1.7, so the mean prefers low; the one-step CVaR at alpha = 0.1 of the
low walk is (0.02 * -20 + 0.08 * -1.1) / 0.1 = -4.9, so lam = 1 (or 0.5) prefers high.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlsuite.core import spaces
from rlsuite.core.env import BatchedEnv, Step
from rlsuite.validation import ConfigError


@dataclass(frozen=True)
class GustyLedgeParams:
    """Per-copy constants, each ``[B]`` float32."""

    start_height: torch.Tensor
    climb: torch.Tensor
    noise: torch.Tensor
    gust_prob: torch.Tensor
    gust_size: torch.Tensor
    height_cost: torch.Tensor
    fall_cost: torch.Tensor
    max_height: torch.Tensor


@dataclass(frozen=True)
class GustyLedgeState:
    """Per-copy state."""

    x: torch.Tensor
    """``[B]`` float32 progress in steps / num_steps."""
    y: torch.Tensor
    """``[B]`` float32 height."""
    time: torch.Tensor
    """``[B]`` int32 steps taken."""


class GustyLedge(BatchedEnv[GustyLedgeState, GustyLedgeParams]):
    """The GustyLedge env (module docstring).

    Args:
        device: where everything lives.
        num_steps: steps from start to goal (the episode length when nothing falls). Every episode
            *terminates* by then, so by default there is no time limit.
        max_episode_steps: an optional time limit (``truncated`` at that many steps; ``None``:
            none), for wrappers that impose one.
        continuous: Box actions in ``[-1, 1]`` (``dy = climb * action``) instead of 3 discrete ones.
    """

    name = "gusty_ledge"
    # Checked at reset and by the runner (BatchedEnv.check_param_values), naming field and value.
    finite_params = ("start_height", "height_cost")
    nonnegative_params = ("climb", "noise", "gust_size", "fall_cost", "max_height")
    unit_params = ("gust_prob",)

    def __init__(self, device: torch.device | str = "cpu", num_steps: int = 10,
                 max_episode_steps: int | None = None, continuous: bool = False) -> None:
        super().__init__(device)
        if not (isinstance(num_steps, int) and num_steps >= 1):
            raise ConfigError("num_steps", num_steps, "must be a positive integer")
        self.num_steps = num_steps
        self.max_episode_steps = max_episode_steps
        self.observation_space = spaces.Box.make(
            torch.tensor([0.0, -1.0]), torch.tensor([1.0, 2.0]), device=self.device)
        self.continuous = continuous
        if continuous:  # dy = climb * clip(action, -1, 1)
            self.action_space = spaces.Box.make(torch.tensor([-1.0]), torch.tensor([1.0]), device=self.device)
        else:
            self.action_space = spaces.Discrete(3, device=self.device)
        # A fall pays -fall_cost (20 by default); an ordinary step at most -(1 + 2 * 1) = -3, so
        # -10 separates the two under the default params (read by the ECRM agent's failure rate).
        self.failure_reward = -10.0

    def default_params(self, batch_size: int = 1) -> GustyLedgeParams:
        """Defaults: start 0.5, climb 0.1, noise 0.02, gust on 2 % of steps pushing 0.3 down,
        height cost 2, fall cost 20, ceiling 1."""
        def full(v: float) -> torch.Tensor:
            return torch.full((batch_size,), v, dtype=torch.float32, device=self.device)

        return GustyLedgeParams(full(0.5), full(0.1), full(0.02), full(0.02), full(0.3), full(2.0),
                                full(20.0), full(1.0))

    def episode_metrics(self, obs: torch.Tensor, valid: torch.Tensor) -> dict[str, float]:
        """Summaries of walked paths (``obs`` ``[T, B, 2]``, ``valid`` ``[T, B]`` marks their
        steps): ``mean_height``, the mean height ``y`` over every visited step (how far above the
        gusts the paths keep)."""
        return {"mean_height": float(obs[..., 1][valid].mean())}

    def _obs(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.stack([x, y], -1)

    def reset(self, params: GustyLedgeParams, generator: torch.Generator
              ) -> tuple[torch.Tensor, GustyLedgeState]:
        """Every copy at ``(0, start_height)``."""
        self.check_params(params)
        b = params.climb.shape[0]
        x = torch.zeros(b, device=self.device)
        y = params.start_height.clone()
        return self._obs(x, y), GustyLedgeState(x, y, torch.zeros(b, dtype=torch.int32, device=self.device))

    def step(self, state: GustyLedgeState, action: torch.Tensor, params: GustyLedgeParams,
             generator: torch.Generator) -> Step[GustyLedgeState]:
        """One step for every copy; fallen or arrived copies restart at once."""
        b = state.y.shape[0]
        if self.check_actions:  # opt-in (a host sync): see BatchedEnv.check_actions
            self.check_action_values(action)
        if self.continuous:
            dy = action.to(torch.float32).reshape(b, -1)[:, 0].clamp(-1.0, 1.0) * params.climb
        else:
            dy = (action.to(torch.float32) - 1.0) * params.climb
        noise = torch.randn(b, generator=generator, device=self.device) * params.noise
        gust = torch.rand(b, generator=generator, device=self.device) < params.gust_prob
        y = torch.minimum(state.y + dy + noise - gust.float() * params.gust_size, params.max_height)
        time = state.time + 1
        x = time.float() / self.num_steps
        fell = y < 0
        arrived = time >= self.num_steps
        reward = torch.where(fell, -params.fall_cost, -(1.0 + params.height_cost * y))
        terminated = fell | arrived
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = time >= self.max_episode_steps
        done = terminated | truncated
        final_obs = self._obs(x, y)
        x0 = torch.zeros_like(x)
        nx = torch.where(done, x0, x)
        ny = torch.where(done, params.start_height, y)
        ntime = torch.where(done, torch.zeros_like(time), time)
        return Step(self._obs(nx, ny), GustyLedgeState(nx, ny, ntime), reward, terminated, truncated,
                    final_obs)
