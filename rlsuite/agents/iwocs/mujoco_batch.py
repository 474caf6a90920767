"""The fast simulator of :class:`~rlsuite.agents.iwocs.mujoco_env.MujocoParamsEnv`: every copy
stepped by MuJoCo's own :class:`mujoco.batch.Batch` (one C call per env step for the whole batch)
with gymnasium's ``*-v5`` observation, reward and termination recomputed in numpy, bit for bit.

Why it is bit-identical to the per-copy gymnasium path (``tests/test_iwocs_mujoco_batch.py``
checks it, resets and time limits included):

* **Physics.** A batch simulation is its ``mjSTATE_INTEGRATION`` row, the env's state; a step
  loads the row, runs ``mj_step`` ``frame_skip`` times and saves the row, as the gymnasium path's
  ``mj_setState`` / ``do_simulation`` / ``mj_getState`` do (MuJoCo documents the batch as
  bit-identical to a loop over one MjData per simulation). Each copy's parameters are written
  into the batch's per-simulation model fields (``expand``) at the same indices the gymnasium path
  writes in its shared model, and, as there, ``mj_setConst`` is not run. The controls are the
  float32 actions widened to float64, as ``data.ctrl[:] = action`` does.
* **mj_rnePostConstraint**, which gymnasium runs after the frame skip, only fills ``cacc``,
  ``cfrc_int`` and ``cfrc_ext``: no part of the state, and none of the supported envs'
  observation, reward or termination reads them (Ant-v5's and HumanoidStandup-v5's do, so those
  stay on the gymnasium path).
* **Observation, reward, termination.** The rules below are gymnasium 1.x's ``step`` of each
  supported env written over ``[B]`` arrays with the same float operations in the same order and
  the same dtypes: the control cost is a float32 sum of float32 squares (gymnasium squares the
  float32 action), the forward reward float64, and their difference float64.

Ant-v5 and HumanoidStandup-v5 are not supported (their observations include ``cfrc_ext`` or
other derived fields computed by ``mj_rnePostConstraint`` after the frame skip).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import numpy as np

Rule = Callable[[Any, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                tuple[np.ndarray, np.ndarray, np.ndarray]]
"""``(sim, qpos [B, nq], qvel [B, nv], x_before [B], action [B, nu] float32) -> (obs [B, d]
float64, reward [B] float64, terminated [B] bool)``: gymnasium's step after the frame skip."""


def _control_cost(sim: Any, action: np.ndarray) -> np.ndarray:
    # gymnasium: self._ctrl_cost_weight * np.sum(np.square(action)) on the float32 action, a
    # float32 result (NEP 50: a Python float times float32 stays float32)
    return sim._ctrl_cost_weight * np.sum(np.square(action), axis=1)


def _x_velocity(sim: Any, qpos: np.ndarray, x_before: np.ndarray) -> np.ndarray:
    return (qpos[:, 0] - x_before) / sim.dt


def _half_cheetah(sim: Any, qpos: np.ndarray, qvel: np.ndarray, x_before: np.ndarray,
                  action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HalfCheetah-v5: forward reward minus control cost, never terminated."""
    obs = np.concatenate((qpos[:, 1:], qvel), axis=1)
    reward = sim._forward_reward_weight * _x_velocity(sim, qpos, x_before) - _control_cost(sim, action)
    return obs, reward, np.zeros(len(qpos), dtype=bool)


def _hopper_healthy(sim: Any, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
    state = np.concatenate((qpos, qvel), axis=1)[:, 2:]  # state_vector()[2:]
    min_state, max_state = sim._healthy_state_range
    healthy_state = np.all(np.logical_and(min_state < state, state < max_state), axis=1)
    return healthy_state & _z_angle_healthy(sim, qpos)


def _z_angle_healthy(sim: Any, qpos: np.ndarray) -> np.ndarray:
    z, angle = qpos[:, 1], qpos[:, 2]
    (min_z, max_z), (min_angle, max_angle) = sim._healthy_z_range, sim._healthy_angle_range
    return (min_z < z) & (z < max_z) & (min_angle < angle) & (angle < max_angle)


def _legged(healthy: Callable[[Any, np.ndarray, np.ndarray], np.ndarray]) -> Rule:
    """Hopper-v5 / Walker2d-v5: (forward + healthy reward) - control cost, clipped velocities,
    terminated when unhealthy."""

    def rule(sim: Any, qpos: np.ndarray, qvel: np.ndarray, x_before: np.ndarray,
             action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        obs = np.concatenate((qpos[:, 1:], np.clip(qvel, -10, 10)), axis=1)
        is_healthy = healthy(sim, qpos, qvel)
        forward = sim._forward_reward_weight * _x_velocity(sim, qpos, x_before)
        reward = (forward + is_healthy * sim._healthy_reward) - _control_cost(sim, action)
        terminated = ~is_healthy & bool(sim._terminate_when_unhealthy)
        return obs, reward, terminated

    return rule


def _inverted_pendulum(sim: Any, qpos: np.ndarray, qvel: np.ndarray, x_before: np.ndarray,
                       action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """InvertedPendulum-v5: reward 1 while the pole is within 0.2 rad (and the state finite)."""
    obs = np.concatenate((qpos, qvel), axis=1)
    terminated = ~np.isfinite(obs).all(axis=1) | (np.abs(obs[:, 1]) > 0.2)
    return obs, (~terminated).astype(np.float64), terminated


RULES: dict[str, Rule] = {
    "HalfCheetah-v5": _half_cheetah,
    "Hopper-v5": _legged(_hopper_healthy),
    "Walker2d-v5": _legged(lambda sim, qpos, qvel: _z_angle_healthy(sim, qpos)),
    "InvertedPendulum-v5": _inverted_pendulum,
}
"""The envs the batch simulator supports, by gymnasium id."""


def batch_supported(env_id: str) -> bool:
    """Whether ``env_id`` has a batch rule and this MuJoCo has :mod:`mujoco.batch`."""
    if env_id not in RULES:
        return False
    try:
        from mujoco import batch  # noqa: F401  (MuJoCo >= 4.0)
    except ImportError:
        return False
    return True


class BatchStepper:
    """Steps ``[B]`` copies of gymnasium's env ``sim`` (unwrapped, default arguments) with per-copy
    parameters on :class:`mujoco.batch.Batch` (one batch per batch size, made on first use).

    Args:
        sim: the unwrapped gymnasium env, before any parameter was written into its model.
        env_id: its gymnasium id, a key of :data:`RULES`.
        targets: ``(kind, indices)`` per set parameter, ``kind`` ``"mass"`` (``body_mass``) or
            ``"friction"`` (``geom_friction[:, 0]``).
        threads: threads of each batch (results do not depend on it).
    """

    def __init__(self, sim: Any, env_id: str, targets: list[tuple[str, list[int]]],
                 threads: int = 1) -> None:
        if env_id not in RULES:
            raise ValueError(f"env {env_id!r} has no batch rule; supported: {sorted(RULES)}")
        if not getattr(sim, "_exclude_current_positions_from_observation", True):
            raise ValueError("the batch rules assume exclude_current_positions_from_observation")
        if threads < 1:
            raise ValueError(f"threads = {threads} must be >= 1")
        self._sim, self._rule, self._targets, self._threads = sim, RULES[env_id], targets, threads
        # the batch copies this model; its parameter fields are overwritten at every step, the
        # copy keeps the batch independent of later writes into the gymnasium model
        self._model = copy.copy(sim.model)
        self._batches: dict[int, tuple[Any, dict[str, np.ndarray]]] = {}

    def _batch(self, n: int) -> tuple[Any, dict[str, np.ndarray]]:
        if n not in self._batches:
            from mujoco import batch

            b = batch.Batch(self._model, n, self._threads)
            fields = {name: b.bind(name) for name in ("qpos", "qvel", "ctrl")}
            kinds = {kind for kind, _ in self._targets}
            if "mass" in kinds:
                fields["body_mass"] = b.expand("body_mass")
            if "friction" in kinds:
                fields["geom_friction"] = b.expand("geom_friction")
            self._batches[n] = (b, fields)
        return self._batches[n]

    def step(self, physics: np.ndarray, action: np.ndarray, values: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One env step of every copy.

        Args:
            physics: ``[B, S]`` float64 integration states.
            action: ``[B, nu]`` float32 actions.
            values: ``[B, P]`` float64 parameter values, in the set's order.

        Returns:
            The new ``[B, S]`` states, ``[B, d]`` float64 observations, ``[B]`` float64 rewards
            and ``[B]`` bool terminations (before any reset).
        """
        n = len(physics)
        b, f = self._batch(n)
        for k, (kind, idx) in enumerate(self._targets):
            if kind == "mass":
                f["body_mass"][:, idx] = values[:, k, None]
            else:
                f["geom_friction"][:, idx, 0] = values[:, k, None]
        b.state[:] = physics
        f["ctrl"][:] = action
        x_before = f["qpos"][:, 0].copy()
        b.step(nstep=self._sim.frame_skip)
        obs, reward, terminated = self._rule(self._sim, f["qpos"], f["qvel"], x_before, action)
        return b.state.copy(), obs, reward, terminated
