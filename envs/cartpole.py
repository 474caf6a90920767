"""Batched CartPole with per-copy physics, equal to gymnasium's ``CartPole-v1`` step for step.

The equations, thresholds, reward (1 on every step, the terminating one included) and the 500-step
time limit are gymnasium's (``gymnasium/envs/classic_control/cartpole.py``, Euler integrator).
What gymnasium keeps as attributes (gravity, masses, pole half-length, force, time step) are
:class:`CartPoleParams` here, one value per copy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rlsuite.core import autoreset, spaces
from rlsuite.core.classic import ClassicControlEnv

X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * math.pi / 360
RESET_BOUND = 0.05
FOUR_THIRDS = 4.0 / 3.0


@dataclass(frozen=True)
class CartPoleParams:
    """Physical constants per copy, each ``[B]`` (defaults: gymnasium's)."""

    gravity: torch.Tensor
    masscart: torch.Tensor
    masspole: torch.Tensor
    length: torch.Tensor
    """Half the pole's length, as in gymnasium."""
    force_mag: torch.Tensor
    tau: torch.Tensor
    """Seconds per step."""


@dataclass(frozen=True)
class CartPoleState:
    """State per copy (structure of arrays: one ``[B]`` tensor per field)."""

    x: torch.Tensor
    x_dot: torch.Tensor
    theta: torch.Tensor
    theta_dot: torch.Tensor
    time: torch.Tensor
    """int32 steps taken in the current episode."""
    pool: autoreset.ResetPool


def cartpole_dynamics(
    x: torch.Tensor,
    x_dot: torch.Tensor,
    theta: torch.Tensor,
    theta_dot: torch.Tensor,
    force: torch.Tensor,
    params: CartPoleParams,
    four_thirds: float | torch.Tensor = FOUR_THIRDS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One Euler step of the cart-pole equations under ``force`` (gymnasium's order of operations).

    Every product and quotient is grouped as gymnasium groups it (``np.square`` included), so
    float64 copies agree with gymnasium to the last bit wherever torch's and numpy's cos/sin do.
    ``four_thirds`` may be passed as a 0-dim tensor of the state's dtype (the env does: ``4/3 - t``
    with a Python float is ~4x the cost of the same op on two tensors at small ``B``).
    """
    total_mass = params.masspole + params.masscart
    polemass_length = params.masspole * params.length
    costheta = torch.cos(theta)
    sintheta = torch.sin(theta)
    temp = (force + polemass_length * (theta_dot * theta_dot) * sintheta) / total_mass
    thetaacc = (params.gravity * sintheta - costheta * temp) / (
        params.length * (four_thirds - params.masspole * (costheta * costheta) / total_mass)
    )
    xacc = temp - polemass_length * thetaacc * costheta / total_mass
    tau = params.tau
    return x + tau * x_dot, x_dot + tau * xacc, theta + tau * theta_dot, theta_dot + tau * thetaacc


class CartPole(ClassicControlEnv[CartPoleState, CartPoleParams]):
    """CartPole-v1 for ``B`` copies at once; actions are integers ``[B]`` in ``{0, 1}``.

    Action values are not range checked (that would need a host sync); values other than 0 and 1
    give forces other than +-force_mag.

    Args:
        device: where state, params and observations live.
        max_episode_steps: time limit (gymnasium's 500); ``truncated`` is set when it is reached.
        dtype: float dtype of the state (float32; float64 reproduces gymnasium to ~1e-12).
        compile: fuse the step with TorchInductor (:mod:`rlsuite.core.classic`); each new batch
            size compiles once, ~1-4 s on CPU.
    """

    name = "cartpole"
    finite_params = ("gravity", "force_mag")
    positive_params = ("masscart", "masspole", "length", "tau")
    state_cls = CartPoleState
    state_fields = ("x", "x_dot", "theta", "theta_dot")

    def __init__(
        self,
        device: torch.device | str = "cpu",
        max_episode_steps: int = 500,
        dtype: torch.dtype = torch.float32,
        compile: bool = False,
    ) -> None:
        super().__init__(device, max_episode_steps, dtype, compile)
        # The thresholds as 0-dim tensors of the state's dtype: comparing with a Python float
        # costs ~2 us more per call, and the dtype keeps float64 comparisons exact.
        self._x_limit = torch.tensor(X_THRESHOLD, dtype=dtype, device=self.device)
        self._theta_limit = torch.tensor(THETA_THRESHOLD, dtype=dtype, device=self.device)
        self._four_thirds = torch.tensor(FOUR_THIRDS, dtype=dtype, device=self.device)
        high = torch.tensor(
            [X_THRESHOLD * 2, math.inf, THETA_THRESHOLD * 2, math.inf], dtype=torch.float32
        )
        self.observation_space = spaces.Box.make(-high, high, device=self.device)
        self.action_space = spaces.Discrete(2, device=self.device)

    def default_params(self, batch_size: int = 1) -> CartPoleParams:
        """gymnasium's constants for ``batch_size`` copies."""

        def full(value: float) -> torch.Tensor:
            return torch.full((batch_size,), value, dtype=self.dtype, device=self.device)

        return CartPoleParams(
            gravity=full(9.8), masscart=full(1.0), masspole=full(0.1), length=full(0.5),
            force_mag=full(10.0), tau=full(0.02),
        )

    def _sample_initial(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Uniform in ``[-0.05, 0.05]^4``, like gymnasium."""
        u = torch.rand((4, n), generator=generator, device=self.device, dtype=self.dtype)
        return u * (2 * RESET_BOUND) - RESET_BOUND

    def _transition(
        self, fields: tuple[torch.Tensor, ...], action: torch.Tensor, params: CartPoleParams
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
        x = fields[0]
        # force = force_mag if action == 1 else -force_mag, as float arithmetic: lerp with a 0/1
        # weight returns its end points exactly, and costs ~4x less than where on CPU.
        force = torch.lerp(-params.force_mag, params.force_mag, action.to(x.dtype))
        x, x_dot, theta, theta_dot = cartpole_dynamics(*fields, force, params, self._four_thirds)
        # |x| > t is exactly (x < -t) | (x > t), in fewer ops.
        terminated = (x.abs() > self._x_limit) | (theta.abs() > self._theta_limit)
        # gymnasium pays 1 on every step, the one that terminates included.
        return (x, x_dot, theta, theta_dot), torch.ones_like(x, dtype=torch.float32), terminated

    def _observe(self, fields: tuple[torch.Tensor, ...]) -> torch.Tensor:
        # Stacking along dim 0 is a contiguous copy; the [B, 4] result is its transposed view.
        # Interleaving into a contiguous [B, 4] costs ~8x more on CPU (an eager step's largest op).
        stacked = torch.stack(fields, dim=0)
        if stacked.dtype != torch.float32:  # a no-op .to() still costs a dispatch (~1-2 us)
            stacked = stacked.to(torch.float32)
        return stacked.T

    def _prepare_action(self, action: torch.Tensor) -> torch.Tensor:
        if action.is_floating_point():
            raise TypeError(f"CartPole actions must be integers in {{0, 1}}, got {action.dtype}")
        return action
