"""Batched Acrobot with per-copy physics, equal to gymnasium's ``Acrobot-v1`` step for step.

The two-link swing-up of ``gymnasium/envs/classic_control/acrobot.py`` with its default ("book")
dynamics: Sutton & Barto's equations (Reinforcement Learning: An Introduction, and Sutton 1996,
NeurIPS 8) integrated by one fourth-order Runge-Kutta step of ``dt`` seconds, the angles wrapped to
``[-pi, pi]`` and the velocities clipped after the step. Actions ``0, 1, 2`` apply torque
``-1, 0, +1`` at the joint; every step pays -1 except the terminating one, which pays 0; the episode
terminates once the tip is above the bar (``-cos(t1) - cos(t1 + t2) > 1``) and truncates after 500.

What gymnasium keeps as class constants are :class:`AcrobotParams` here, one value per copy.
Two of gymnasium's knobs are left out: ``LINK_LENGTH_2`` enters neither the dynamics nor the
termination test there (only the drawing), and ``torque_noise_max`` is 0 in ``Acrobot-v1``; the
"nips" dynamics variant is not offered.

Precision: gymnasium integrates in float64. With ``dtype=torch.float64`` one step from the same
state agrees with gymnasium's to 1e-15 (the operations are gymnasium's, in its order; only
torch's and numpy's cos/sin differ, in the last bit for ~0.1% of arguments). With float32 (the
default) one step agrees to ~1e-6. The swing is chaotic, though, so any difference grows ~10x
every 5 steps: a float64 run stays on gymnasium's trajectory only until a last-bit difference
has grown (one measured run: 4e-16 at step 109, 2.5e-10 at step 160), and a float32 run is
radians off within ~170 steps. So compare with gymnasium one step at a time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rlsuite.core import autoreset, spaces
from rlsuite.core.classic import ClassicControlEnv

MAX_VEL_1 = 4 * math.pi
MAX_VEL_2 = 9 * math.pi
RESET_BOUND = 0.1
"""Each state field starts uniform in ``[-0.1, 0.1]``."""
GRAVITY = 9.8


@dataclass(frozen=True)
class AcrobotParams:
    """Physical constants per copy, each ``[B]`` (defaults: gymnasium's class constants)."""

    link_length_1: torch.Tensor
    """Length of the first link [m] (``LINK_LENGTH_1``)."""
    link_mass_1: torch.Tensor
    """Mass of the first link [kg] (``LINK_MASS_1``)."""
    link_mass_2: torch.Tensor
    """Mass of the second link [kg] (``LINK_MASS_2``)."""
    link_com_pos_1: torch.Tensor
    """Distance from the first joint to the first link's centre of mass (``LINK_COM_POS_1``)."""
    link_com_pos_2: torch.Tensor
    """Distance from the second joint to the second link's centre of mass (``LINK_COM_POS_2``)."""
    link_moi_1: torch.Tensor
    """Moment of inertia of the first link (gymnasium's ``LINK_MOI`` sets both links)."""
    link_moi_2: torch.Tensor
    """Moment of inertia of the second link."""
    max_vel_1: torch.Tensor
    """``dtheta1`` is clipped to ``[-max_vel_1, max_vel_1]`` after each step (``MAX_VEL_1``)."""
    max_vel_2: torch.Tensor
    """``dtheta2`` is clipped to ``[-max_vel_2, max_vel_2]`` after each step (``MAX_VEL_2``)."""
    gravity: torch.Tensor
    """Gravity (fixed at 9.8 inside gymnasium's ``_dsdt``)."""
    dt: torch.Tensor
    """Seconds per step, integrated by one RK4 step."""


@dataclass(frozen=True)
class AcrobotState:
    """State per copy: link angles (``theta2`` relative to link 1) and their velocities."""

    theta1: torch.Tensor
    theta2: torch.Tensor
    dtheta1: torch.Tensor
    dtheta2: torch.Tensor
    time: torch.Tensor
    """int32 steps taken in the current episode."""
    pool: autoreset.ResetPool


@dataclass(frozen=True)
class AcrobotCoefficients:
    """The products of params that the dynamics use, each ``[B]``: computed once per step.

    Each is a leading sub-expression of gymnasium's ``_dsdt`` (same operands, same order), so
    hoisting it out of the four RK4 stages changes no rounding.
    """

    m1_lc1_sq: torch.Tensor
    l1_sq_plus_lc2_sq: torch.Tensor
    two_l1_lc2: torch.Tensor
    lc2_sq: torch.Tensor
    l1_lc2: torch.Tensor
    neg_m2_l1_lc2: torch.Tensor
    two_m2_l1_lc2: torch.Tensor
    m2_l1_lc2: torch.Tensor
    weight_1: torch.Tensor
    """``(m1 lc1 + m2 l1) g``: gravity's torque arm on the first joint."""
    weight_2: torch.Tensor
    """``m2 lc2 g``: gravity's torque arm on the second joint."""
    inertia_2: torch.Tensor
    """``m2 lc2^2 + I2``."""

    @staticmethod
    def of(p: AcrobotParams) -> AcrobotCoefficients:
        """The coefficients of ``p`` (written as gymnasium writes them)."""
        m1, m2, l1 = p.link_mass_1, p.link_mass_2, p.link_length_1
        lc1, lc2, g = p.link_com_pos_1, p.link_com_pos_2, p.gravity
        return AcrobotCoefficients(
            m1_lc1_sq=m1 * lc1**2,
            l1_sq_plus_lc2_sq=l1**2 + lc2**2,
            two_l1_lc2=2 * l1 * lc2,
            lc2_sq=lc2**2,
            l1_lc2=l1 * lc2,
            neg_m2_l1_lc2=-m2 * l1 * lc2,
            two_m2_l1_lc2=2 * m2 * l1 * lc2,
            m2_l1_lc2=m2 * l1 * lc2,
            weight_1=(m1 * lc1 + m2 * l1) * g,
            weight_2=m2 * lc2 * g,
            inertia_2=m2 * lc2**2 + p.link_moi_2,
        )


def acrobot_derivatives(
    s: torch.Tensor, torque: torch.Tensor, p: AcrobotParams, c: AcrobotCoefficients
) -> torch.Tensor:
    """Time derivative ``[4, B]`` of ``s = (theta1, theta2, dtheta1, dtheta2)`` (``[4, B]``).

    The book dynamics in gymnasium's ``_dsdt`` order of operations, so float64 copies agree with
    it to the last bit wherever torch's and numpy's cos/sin do.
    """
    theta1, theta2, dtheta1, dtheta2 = s.unbind(0)
    m2, i1, i2 = p.link_mass_2, p.link_moi_1, p.link_moi_2
    cos2, sin2 = torch.cos(theta2), torch.sin(theta2)
    d1 = c.m1_lc1_sq + m2 * (c.l1_sq_plus_lc2_sq + c.two_l1_lc2 * cos2) + i1 + i2
    d2 = m2 * (c.lc2_sq + c.l1_lc2 * cos2) + i2
    phi2 = c.weight_2 * torch.cos(theta1 + theta2 - math.pi / 2.0)
    phi1 = (
        c.neg_m2_l1_lc2 * dtheta2**2 * sin2
        - c.two_m2_l1_lc2 * dtheta2 * dtheta1 * sin2
        + c.weight_1 * torch.cos(theta1 - math.pi / 2)
        + phi2
    )
    # The "book" line (gymnasium's default): it keeps the dtheta1^2 term the NeurIPS paper drops.
    ddtheta2 = (torque + d2 / d1 * phi1 - c.m2_l1_lc2 * dtheta1**2 * sin2 - phi2) / (
        c.inertia_2 - d2**2 / d1
    )
    ddtheta1 = -(d2 * ddtheta2 + phi1) / d1
    return torch.stack((dtheta1, dtheta2, ddtheta1, ddtheta2))


def rk4_step(s: torch.Tensor, torque: torch.Tensor, params: AcrobotParams) -> torch.Tensor:
    """One classical Runge-Kutta step of ``params.dt`` on ``s [4, B]`` (gymnasium's ``rk4``)."""
    c = AcrobotCoefficients.of(params)
    dt = params.dt
    dt2 = dt / 2.0
    k1 = acrobot_derivatives(s, torque, params, c)
    k2 = acrobot_derivatives(s + dt2 * k1, torque, params, c)
    k3 = acrobot_derivatives(s + dt2 * k2, torque, params, c)
    k4 = acrobot_derivatives(s + dt * k3, torque, params, c)
    return s + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


def wrap(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """Shift ``x`` by whole periods ``high - low`` into ``[low, high]`` (gymnasium's ``wrap``).

    gymnasium subtracts the period in a loop while ``x > high``; subtracting ``ceil`` periods at
    once gives the same number when one period suffices (always, from a wrapped state).
    """
    period = high - low
    x = torch.where(x > high, x - period * torch.ceil((x - high) / period), x)
    return torch.where(x < low, x + period * torch.ceil((low - x) / period), x)


class Acrobot(ClassicControlEnv[AcrobotState, AcrobotParams]):
    """Acrobot-v1 for ``B`` copies at once; actions are int64 ``[B]`` in ``{0, 1, 2}``.

    The declared observation space bounds the velocities by the default ``max_vel_1`` (4 pi) and
    ``max_vel_2`` (9 pi); a copy with larger limits can leave it. Action values are not range
    checked (that would need a host sync): action ``a`` applies torque ``a - 1``.

    Args:
        device: where state, params and observations live.
        max_episode_steps: time limit (gymnasium's 500).
        dtype: float dtype of the state. gymnasium integrates in float64: ``torch.float64``
            matches it to 1e-15 per step, float32 to ~1e-6 per step (see the module docstring).
        compile: fuse the step with ``torch.compile`` (first call compiles, a few s on CPU).
    """

    name = "acrobot"
    positive_params = ("link_length_1", "link_mass_1", "link_mass_2", "link_com_pos_1",
                       "link_com_pos_2", "link_moi_1", "link_moi_2")
    nonnegative_params = ("max_vel_1", "max_vel_2")
    state_cls = AcrobotState
    state_fields = ("theta1", "theta2", "dtheta1", "dtheta2")

    def __init__(
        self,
        device: torch.device | str = "cpu",
        max_episode_steps: int = 500,
        dtype: torch.dtype = torch.float32,
        compile: bool = False,
    ) -> None:
        super().__init__(device, max_episode_steps, dtype, compile)
        high = torch.tensor([1.0, 1.0, 1.0, 1.0, MAX_VEL_1, MAX_VEL_2], dtype=torch.float32)
        self.observation_space = spaces.Box.make(-high, high, device=self.device)
        self.action_space = spaces.Discrete(3, device=self.device)

    def default_params(self, batch_size: int = 1) -> AcrobotParams:
        """gymnasium's constants for ``batch_size`` copies."""

        def full(value: float) -> torch.Tensor:
            return torch.full((batch_size,), value, dtype=self.dtype, device=self.device)

        return AcrobotParams(
            link_length_1=full(1.0), link_mass_1=full(1.0), link_mass_2=full(1.0),
            link_com_pos_1=full(0.5), link_com_pos_2=full(0.5),
            link_moi_1=full(1.0), link_moi_2=full(1.0),
            max_vel_1=full(MAX_VEL_1), max_vel_2=full(MAX_VEL_2),
            gravity=full(GRAVITY), dt=full(0.2),
        )

    def _sample_initial(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Uniform in ``[-0.1, 0.1]^4``, drawn in float32 as gymnasium does (it casts its draw)."""
        u = torch.rand((4, n), generator=generator, device=self.device, dtype=torch.float32)
        return (u * (2 * RESET_BOUND) - RESET_BOUND).to(self.dtype)

    def _transition(
        self, fields: tuple[torch.Tensor, ...], action: torch.Tensor, params: AcrobotParams
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
        # Actions 0, 1, 2 are gymnasium's AVAIL_TORQUE = [-1, 0, +1].
        torque = action.to(fields[0].dtype) - 1.0
        # The four fields as one [4, B] tensor: RK4's vector arithmetic is then 1 op, not 4.
        nxt = rk4_step(torch.stack(fields), torque, params)
        theta1, theta2 = wrap(nxt[:2], -math.pi, math.pi).unbind(0)
        dtheta1, dtheta2 = nxt[2], nxt[3]
        dtheta1 = torch.minimum(torch.maximum(dtheta1, -params.max_vel_1), params.max_vel_1)
        dtheta2 = torch.minimum(torch.maximum(dtheta2, -params.max_vel_2), params.max_vel_2)
        terminated = -torch.cos(theta1) - torch.cos(theta2 + theta1) > 1.0
        # -1 per step, 0 on the step that reaches the goal.
        reward = terminated.to(theta1.dtype) - 1.0
        return (theta1, theta2, dtheta1, dtheta2), reward, terminated

    def _observe(self, fields: tuple[torch.Tensor, ...]) -> torch.Tensor:
        theta1, theta2, dtheta1, dtheta2 = fields
        rows = (
            torch.cos(theta1), torch.sin(theta1), torch.cos(theta2), torch.sin(theta2),
            dtheta1, dtheta2,
        )
        return torch.stack(rows, dim=0).to(torch.float32).T

    def _prepare_action(self, action: torch.Tensor) -> torch.Tensor:
        if action.is_floating_point():
            raise TypeError(f"Acrobot actions must be integers in {{0, 1, 2}}, got {action.dtype}")
        return action
