"""Batched Pendulum with per-copy physics, equal to gymnasium's ``Pendulum-v1`` step for step.

The swing-up task of ``gymnasium/envs/classic_control/pendulum.py``: the torque is clipped to
``[-max_torque, max_torque]``, the cost ``angle_normalize(th)^2 + 0.1 thdot^2 + 0.001 u^2`` is paid
on the state *before* the update, the velocity is integrated first (semi-implicit Euler) and
clipped to ``max_speed``, the episode never terminates and truncates after 200 steps. What
gymnasium keeps as attributes (``max_speed``, ``max_torque``, ``dt``, ``g``, ``m``, ``l``) are
:class:`PendulumParams` here, one value per copy, under gymnasium's names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rlsuite.core import autoreset, spaces
from rlsuite.core.classic import ClassicControlEnv

MAX_SPEED = 8.0
MAX_TORQUE = 2.0
RESET_THETA = math.pi
"""Initial angle is uniform in ``[-pi, pi]`` (gymnasium's ``DEFAULT_X``)."""
RESET_THETA_DOT = 1.0
"""Initial angular velocity is uniform in ``[-1, 1]`` (gymnasium's ``DEFAULT_Y``)."""


@dataclass(frozen=True)
class PendulumParams:
    """Physical constants per copy, each ``[B]`` (defaults: gymnasium's)."""

    max_speed: torch.Tensor
    """Angular velocity is clipped to ``[-max_speed, max_speed]`` after every step."""
    max_torque: torch.Tensor
    """Actions are clipped to ``[-max_torque, max_torque]`` before they act and are costed."""
    dt: torch.Tensor
    """Seconds per step."""
    g: torch.Tensor
    """Gravity (gymnasium's default is 10.0, not 9.8)."""
    m: torch.Tensor
    """Mass of the pendulum."""
    l: torch.Tensor
    """Length of the pendulum."""


@dataclass(frozen=True)
class PendulumState:
    """State per copy: angle ``th`` (0 is upright, not wrapped) and angular velocity ``thdot``."""

    th: torch.Tensor
    thdot: torch.Tensor
    time: torch.Tensor
    """int32 steps taken in the current episode."""
    pool: autoreset.ResetPool


def angle_normalize(x: torch.Tensor) -> torch.Tensor:
    """Map an angle to ``[-pi, pi)``; ``torch.remainder`` has Python's (and numpy's) sign rule."""
    return torch.remainder(x + math.pi, 2 * math.pi) - math.pi


def pendulum_dynamics(
    th: torch.Tensor, thdot: torch.Tensor, u: torch.Tensor, params: PendulumParams
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step from ``(th, thdot)`` under torque ``u``: ``(new th, new thdot, reward)``.

    Follows gymnasium's order of operations so that float64 copies agree to rounding.
    """
    u = torch.minimum(torch.maximum(u, -params.max_torque), params.max_torque)
    costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2)
    g, m, l, dt = params.g, params.m, params.l, params.dt
    newthdot = thdot + (3 * g / (2 * l) * torch.sin(th) + 3.0 / (m * l**2) * u) * dt
    newthdot = torch.minimum(torch.maximum(newthdot, -params.max_speed), params.max_speed)
    newth = th + newthdot * dt
    return newth, newthdot, -costs


class Pendulum(ClassicControlEnv[PendulumState, PendulumParams]):
    """Pendulum-v1 for ``B`` copies at once; actions are float torques ``[B, 1]``.

    The declared spaces are those of the default params (gymnasium's): ``action_space`` is
    ``Box(-2, 2, (1,))`` and the observation's velocity lies in ``[-8, 8]``. A copy whose
    ``max_torque`` differs clips the action to its own ``[-max_torque, max_torque]``; a copy with
    ``max_speed > 8`` can leave the declared observation box.

    Args:
        device: where state, params and observations live.
        max_episode_steps: time limit (gymnasium's 200); the task never terminates.
        dtype: float dtype of the state (float32, ~2e-6 from gymnasium per step; float64
            follows gymnasium's trajectory to 1e-15).
        compile: fuse the step with ``torch.compile`` (first call compiles, ~1-3 s on CPU).
    """

    name = "pendulum"
    finite_params = ("g",)
    positive_params = ("dt", "m", "l")
    nonnegative_params = ("max_speed", "max_torque")  # 0: a pendulum that cannot move / act
    state_cls = PendulumState
    state_fields = ("th", "thdot")

    def __init__(
        self,
        device: torch.device | str = "cpu",
        max_episode_steps: int = 200,
        dtype: torch.dtype = torch.float32,
        compile: bool = False,
    ) -> None:
        super().__init__(device, max_episode_steps, dtype, compile)
        high = torch.tensor([1.0, 1.0, MAX_SPEED], dtype=torch.float32)
        self.observation_space = spaces.Box.make(-high, high, device=self.device)
        self.action_space = spaces.Box.make(-MAX_TORQUE, MAX_TORQUE, (1,), device=self.device)

    def default_params(self, batch_size: int = 1) -> PendulumParams:
        """gymnasium's constants for ``batch_size`` copies."""

        def full(value: float) -> torch.Tensor:
            return torch.full((batch_size,), value, dtype=self.dtype, device=self.device)

        return PendulumParams(
            max_speed=full(MAX_SPEED), max_torque=full(MAX_TORQUE), dt=full(0.05),
            g=full(10.0), m=full(1.0), l=full(1.0),
        )

    def _sample_initial(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``th ~ U[-pi, pi]``, ``thdot ~ U[-1, 1]``, like gymnasium's reset without options."""
        u = torch.rand((2, n), generator=generator, device=self.device, dtype=self.dtype)
        high = torch.tensor(
            [[RESET_THETA], [RESET_THETA_DOT]], dtype=self.dtype, device=self.device
        )
        return u * (2 * high) - high

    def _transition(
        self, fields: tuple[torch.Tensor, ...], action: torch.Tensor, params: PendulumParams
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
        th, thdot = fields
        newth, newthdot, reward = pendulum_dynamics(th, thdot, action[:, 0], params)
        return (newth, newthdot), reward, torch.zeros_like(th, dtype=torch.bool)

    def _observe(self, fields: tuple[torch.Tensor, ...]) -> torch.Tensor:
        th, thdot = fields
        # Same layout trick as CartPole: stack along dim 0 (contiguous), return the [B, 3] view.
        return torch.stack((torch.cos(th), torch.sin(th), thdot), dim=0).to(torch.float32).T

    def _prepare_action(self, action: torch.Tensor) -> torch.Tensor:
        if not action.is_floating_point():
            raise TypeError(f"Pendulum actions must be float torques [B, 1], got {action.dtype}")
        return action.to(self.dtype)
