"""Dynamics-shifted classic-control envs for cross-domain RL (VGDF's Pendulum-scale recipes).

Source and target domains are two params of one engine env. Physics shifts (mass, length,
gravity, pole mass...) are the envs' own per-copy params. What the stock envs cannot express, the
*kinematic-style* shifts that stand in for VGDF's "broken joints" (``docs/vgdf.md``,
"Target domains"), are three per-copy actuator params added here:

* ``action_gain``: the commanded action is multiplied by it (0.5: a weak motor);
* ``action_low`` / ``action_high``: the scaled action is then clipped to ``[low, high]``
  (``low = 0``: a one-sided, half-broken actuator; +-inf: no clip).

Pendulum's ``max_speed`` (the clipped joint velocity) is already a per-copy param.

:class:`ShiftedPendulum` and :class:`ShiftedContinuousCartPole` are the stock envs with the
actuator params appended to their params (flat dataclasses, so batching, indexing and
``torch.compile`` keep working). :class:`ContinuousCartPole` is CartPole with a Box action in
``[-1, 1]`` (force ``= force_mag * a``, the pole-balancing equations, reward and termination of
``CartPole-v1``), since VGDF's SAC needs continuous actions. :func:`shifted_env` maps an engine env
to its shift-capable twin and :func:`domain_params` builds the source and target params.

The paper's own MuJoCo targets (broken joints, morphology XMLs) are gymnasium envs, in
:mod:`rlsuite.envs.mujoco_shifts` (``mujoco`` extra).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from rlsuite.core import spaces
from rlsuite.core.env import BatchedEnv
from rlsuite.core.params import with_values
from rlsuite.envs.cartpole import CartPole, CartPoleParams, cartpole_dynamics
from rlsuite.envs.pendulum import Pendulum, PendulumParams, pendulum_dynamics

ACTUATOR_FIELDS = ("action_gain", "action_low", "action_high")


def actuate(action: torch.Tensor, gain: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``clip(gain * action, low, high)`` per copy: ``action [B]``, params ``[B]``."""
    return torch.minimum(torch.maximum(gain * action, low), high)


@dataclass(frozen=True)
class ShiftedPendulumParams(PendulumParams):
    """Pendulum's constants plus the actuator shift, each ``[B]``."""

    action_gain: torch.Tensor
    """The torque applied is ``action_gain * action`` (then clipped)."""
    action_low: torch.Tensor
    """Lower clip of the scaled torque (0: the actuator only pushes one way)."""
    action_high: torch.Tensor
    """Upper clip of the scaled torque."""


class ShiftedPendulum(Pendulum):
    """Pendulum-v1 whose actuator can be weakened or made one-sided per copy.

    The cost's ``0.001 u^2`` is paid on the torque that acts (the actuated one), as the stock env
    pays it on the clipped torque.
    """

    name = "pendulum_shift"

    def default_params(self, batch_size: int = 1) -> ShiftedPendulumParams:
        """gymnasium's constants and an intact actuator (gain 1, no clip)."""
        base = super().default_params(batch_size)
        return ShiftedPendulumParams(**_fields(base), **_intact(batch_size, self.dtype, self.device))

    def _transition(self, fields: tuple[torch.Tensor, ...], action: torch.Tensor,
                    params: ShiftedPendulumParams
                    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
        th, thdot = fields
        u = actuate(action[:, 0], params.action_gain, params.action_low, params.action_high)
        newth, newthdot, reward = pendulum_dynamics(th, thdot, u, params)
        return (newth, newthdot), reward, torch.zeros_like(th, dtype=torch.bool)


class ContinuousCartPole(CartPole):
    """CartPole-v1 with a continuous force: actions ``[B, 1]`` in ``[-1, 1]``, force
    ``force_mag * clip(a, -1, 1)``; dynamics, reward (1 per step) and termination as CartPole-v1."""

    name = "cartpole_continuous"

    def __init__(self, device: torch.device | str = "cpu", max_episode_steps: int = 500,
                 dtype: torch.dtype = torch.float32, compile: bool = False) -> None:
        super().__init__(device, max_episode_steps, dtype, compile)
        self.action_space = spaces.Box.make(-1.0, 1.0, (1,), device=self.device)

    def _force(self, action: torch.Tensor, params: Any) -> torch.Tensor:
        return params.force_mag * action[:, 0].clamp(-1.0, 1.0)

    def _transition(self, fields: tuple[torch.Tensor, ...], action: torch.Tensor,
                    params: Any) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, torch.Tensor]:
        x, x_dot, theta, theta_dot = cartpole_dynamics(*fields, self._force(action, params), params,
                                                       self._four_thirds)
        terminated = (x.abs() > self._x_limit) | (theta.abs() > self._theta_limit)
        return (x, x_dot, theta, theta_dot), torch.ones_like(x, dtype=torch.float32), terminated

    def _prepare_action(self, action: torch.Tensor) -> torch.Tensor:
        if not action.is_floating_point():
            raise TypeError(f"ContinuousCartPole actions must be floats [B, 1], got {action.dtype}")
        return action.to(self.dtype)


@dataclass(frozen=True)
class ShiftedCartPoleParams(CartPoleParams):
    """CartPole's constants plus the actuator shift, each ``[B]``."""

    action_gain: torch.Tensor
    """The force is ``force_mag * clip(action_gain * a, action_low, action_high)``."""
    action_low: torch.Tensor
    action_high: torch.Tensor


class ShiftedContinuousCartPole(ContinuousCartPole):
    """:class:`ContinuousCartPole` whose actuator can be weakened or made one-sided per copy."""

    name = "cartpole_continuous_shift"

    def default_params(self, batch_size: int = 1) -> ShiftedCartPoleParams:
        """gymnasium's constants and an intact actuator."""
        base = super().default_params(batch_size)
        return ShiftedCartPoleParams(**_fields(base), **_intact(batch_size, self.dtype, self.device))

    def _force(self, action: torch.Tensor, params: Any) -> torch.Tensor:
        a = actuate(action[:, 0].clamp(-1.0, 1.0), params.action_gain, params.action_low,
                    params.action_high)
        return params.force_mag * a


def cartpole_terminal(obs: torch.Tensor) -> torch.Tensor:
    """CartPole's terminal predicate on observations ``[..., 4]`` (for model-predicted states)."""
    return (obs[..., 0].abs() > 2.4) | (obs[..., 2].abs() > 12 * 2 * math.pi / 360)


def pendulum_fields_from_obs(obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Pendulum's state ``(th, thdot)`` from observations ``[B, 3] = (cos th, sin th, thdot)``:
    ``th = atan2(sin, cos)`` is the angle modulo 2 pi, which the dynamics and cost do not see."""
    return torch.atan2(obs[:, 1], obs[:, 0]), obs[:, 2]


def cartpole_fields_from_obs(obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """CartPole's state ``(x, x_dot, theta, theta_dot)``: the observation is the state itself."""
    return tuple(obs[:, i] for i in range(4))


_SHIFTED: dict[type, type] = {Pendulum: ShiftedPendulum, ContinuousCartPole: ShiftedContinuousCartPole}
FIELDS_FROM_OBS = {ShiftedPendulum: pendulum_fields_from_obs,
                   ShiftedContinuousCartPole: cartpole_fields_from_obs}
"""Per shift-capable env, how to rebuild the physical state from an observation (the engine envs
are stateless, so a state rebuilt this way can be stepped under any params)."""


def step_from_obs(env: BatchedEnv, params: Any, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """The next observation ``[N, d]`` reached from observations ``obs [N, d]`` under ``action
    [N, k]`` and ``params`` (``N`` copies): the dynamics without time limit or reset, for comparing
    what two domains do from the same state. Raises a ValueError naming the env when it cannot
    rebuild a state from an observation (``FIELDS_FROM_OBS``)."""
    rebuild = FIELDS_FROM_OBS.get(type(env))
    if rebuild is None:
        raise ValueError(f"step_from_obs: {type(env).__name__} cannot rebuild a state from an "
                         f"observation; known: {sorted(c.__name__ for c in FIELDS_FROM_OBS)}")
    fields = tuple(f.to(env.dtype) for f in rebuild(obs.reshape(obs.shape[0], -1)))
    nxt, _, _ = env._transition(fields, env._prepare_action(action), params)  # type: ignore[attr-defined]
    return env._observe(nxt)  # type: ignore[attr-defined]
TERMINAL_FNS = {ShiftedPendulum: None, ShiftedContinuousCartPole: cartpole_terminal}
"""Hand-coded terminal predicates for model-predicted observations (VGDF ``env/env_utils.py``'s
role); None: never terminates."""


def shifted_env(env: BatchedEnv) -> BatchedEnv:
    """The shift-capable twin of ``env`` (same device, time limit and dtype); a twin is returned
    as is."""
    if type(env) in _SHIFTED.values():
        return env
    cls = _SHIFTED.get(type(env))
    if cls is None:
        raise ValueError(f"no dynamics-shift variant of {type(env).__name__}; known: "
                         f"{sorted(c.__name__ for c in _SHIFTED)}")
    return cls(env.device, env.max_episode_steps, env.dtype, env.compiled)  # type: ignore[attr-defined]


def _fields(params: Any) -> dict[str, torch.Tensor]:
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}


def _intact(b: int, dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
    def full(v: float) -> torch.Tensor:
        return torch.full((b,), v, dtype=dtype, device=device)

    return {"action_gain": full(1.0), "action_low": full(-math.inf), "action_high": full(math.inf)}


def parse_shift(spec: str) -> dict[str, float]:
    """``"m=1.5, action_low=0"`` -> ``{"m": 1.5, "action_low": 0.0}`` ("" -> no shift)."""
    out: dict[str, float] = {}
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"target_shift: cannot read {part!r} in {spec!r}; expected "
                             "'name=value' pairs separated by commas, e.g. 'm=1.5,g=12'") from None
    return out


def domain_params(env: BatchedEnv, base: Any, num_copies: int, shift: Mapping[str, float] | str) -> Any:
    """``num_copies`` copies of ``env``'s params (the shift-capable twin's) built from ``base``
    (copy 0's values of the plain env's params, or of the twin's) with the fields in ``shift``
    overridden, e.g. ``{"m": 1.5}``, ``{"action_low": 0.0}`` or ``"m=1.5"``; an unknown field
    raises a KeyError naming it."""
    shift = parse_shift(shift) if isinstance(shift, str) else shift
    twin = shifted_env(env)
    out = twin.default_params(num_copies)
    known = {f.name for f in dataclasses.fields(base)}
    copied = {name: getattr(base, name)[:1].expand(num_copies).clone() for name in known
              if name in _fields(out)}
    out = dataclasses.replace(out, **copied)
    return with_values(out, **dict(shift)) if shift else out
