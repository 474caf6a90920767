"""One of the paper's MuJoCo uncertainty sets as an engine env whose set parameters are per-copy
params (``mujoco`` extra), so the deep IWOCS loop, its grid / CMA-ES search and its baselines run
on MuJoCo unchanged: a grid of models is one batched rollout, as on Pendulum.

:class:`MujocoParamsEnv` keeps the engine's contract (state and params in tensors, randomness from
the torch generator) over gymnasium's own MuJoCo env, which it uses as the simulator of every copy:

* **step** (``simulator="gymnasium"``, the reference): for each copy, the copy's parameters are
  written into the compiled model (the fields of
  :func:`rlsuite.agents.iwocs.mujoco_sets.param_targets`: ``body_mass[body]`` or
  ``geom_friction[geoms, 0]``, as RRLS's ``_change_params`` does), the copy's full integration
  state (MuJoCo's ``mjSTATE_INTEGRATION``: time, qpos, qvel, actuator state, warm start, controls,
  applied forces) is loaded, gymnasium's ``step`` runs (its frame skip, reward, observation and
  termination), and the state is read back. The simulator never holds a copy's state between calls,
  so a checkpoint restores a run exactly and copies can branch (``GymnasiumEnv`` cannot: its
  simulators own the state).
* **step** (``simulator="batch"``, the default where supported: HalfCheetah, Hopper, Walker2d,
  InvertedPendulum): the same transition for all copies in one call of MuJoCo's batch stepping,
  with gymnasium's observation, reward and termination recomputed in numpy
  (:mod:`rlsuite.agents.iwocs.mujoco_batch`); bit-identical to the reference (tested), about 1.6x
  faster on the HalfCheetah grid. Ant and HumanoidStandup always use the reference.
* **reset**: copy ``i`` starts with gymnasium's ``reset(seed=s_i)``, ``s_i`` drawn from the torch
  generator: the same initial state gymnasium gives for that seed.
* **time limit**: the gymnasium registration's (1000 steps for HalfCheetah-v5), counted in the
  state; ``truncated`` when it is reached (both flags may be true, gymnasium's ``TimeLimit``).

The params class has one float64 ``[B]`` field per set parameter, named as in the set
(``worldfriction``, ``torsomass``, ``backthighmass``), defaults the v5 model's own values, so
:meth:`UncertaintyBox.params <rlsuite.agents.iwocs.boxes.UncertaintyBox.params>` builds per-copy
models of the box as it does for Pendulum.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np
import torch

from rlsuite.agents.iwocs.mujoco_batch import RULES, BatchStepper, batch_supported
from rlsuite.agents.iwocs.mujoco_sets import get_mujoco_box, param_targets
from rlsuite.core import tree
from rlsuite.core.env import BatchedEnv, Step
from rlsuite.validation import ConfigError

SEED_BOUND = 2**31 - 1
"""Reset seeds are drawn in ``[0, SEED_BOUND)``."""


@dataclasses.dataclass(frozen=True)
class MujocoState:
    """Per copy: MuJoCo's integration state and the steps taken in the episode."""

    physics: torch.Tensor
    """``[B, S]`` float64, ``mj_getState(..., mjSTATE_INTEGRATION)``."""
    time: torch.Tensor
    """``[B]`` int32 steps taken in the current episode."""


@functools.cache
def params_class(set_name: str) -> type:
    """The (cached, so one type per set) frozen params dataclass of ``set_name``: one float64 ``[B]``
    tensor field per parameter of the set."""
    mbox = get_mujoco_box(set_name)
    cls = dataclasses.make_dataclass(
        "".join(w.title() for w in set_name.split("_")) + "Params",
        [(p.name, torch.Tensor) for p in mbox.params], frozen=True)
    cls.__doc__ = f"Per-copy parameters of the {set_name} set ({mbox.env_id}), each [B] float64."
    cls.__module__ = __name__
    return cls


class MujocoParamsEnv(BatchedEnv[MujocoState, Any]):
    """The set ``set_name``'s gymnasium env with its parameters per copy (module docstring).

    Args:
        set_name: a key of :data:`rlsuite.agents.iwocs.mujoco_sets.MUJOCO_BOXES`.
        device: where the returned tensors live (the simulation runs on the CPU).
        max_episode_steps: time limit; None keeps the gymnasium registration's.
        friction: the friction convention of :func:`~rlsuite.agents.iwocs.mujoco_sets.set_params`.
        ant_leg: the Ant leg convention of the same.
        simulator: ``"batch"`` (:mod:`.mujoco_batch`: MuJoCo's batch stepping, bit-identical to
            the gymnasium path and faster; HalfCheetah, Hopper, Walker2d, InvertedPendulum),
            ``"gymnasium"`` (per copy, gymnasium's ``step``: the reference), or ``"auto"``
            (batch where supported).
        threads: threads of the batch simulator (its results do not depend on it).
    """

    def __init__(self, set_name: str, device: torch.device | str = "cpu",
                 max_episode_steps: int | None = None, friction: str = "floor_and_feet",
                 ant_leg: str = "m2td3", simulator: str = "auto", threads: int = 1) -> None:
        import gymnasium
        import mujoco

        from rlsuite.engine import _convert

        super().__init__(device)
        self.set_name = set_name
        self.mbox = get_mujoco_box(set_name)
        self.name = self.mbox.env_id  # what the set's UncertaintyBox names as its env
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps = {max_episode_steps} must be >= 1")
        if simulator not in ("auto", "batch", "gymnasium"):
            raise ValueError(f"simulator = {simulator!r}: expected 'auto', 'batch' or 'gymnasium'")
        if threads < 1:
            raise ValueError(f"threads = {threads} must be >= 1")
        if simulator == "batch" and not batch_supported(self.mbox.env_id):
            raise ValueError(f"simulator = 'batch' does not support {set_name} ({self.mbox.env_id}); "
                             f"supported: {sorted(RULES)} with mujoco.batch (MuJoCo >= 4.0)")
        spec = gymnasium.spec(self.mbox.env_id)
        self.max_episode_steps = max_episode_steps or spec.max_episode_steps
        self.sim = gymnasium.make(self.mbox.env_id).unwrapped  # no wrappers: the raw simulator
        self.model, self.data = self.sim.model, self.sim.data
        self._mujoco = mujoco
        self._spec = mujoco.mjtState.mjSTATE_INTEGRATION
        self._state_size = mujoco.mj_stateSize(self.model, self._spec)
        self._targets = [(p.kind, param_targets(self.model, self.mbox.env_id, p, friction, ant_leg))
                         for p in self.mbox.params]
        # The v5 model's own values (the first target of each parameter) are the defaults.
        self._nominal = [float(self.model.body_mass[idx[0]] if kind == "mass"
                               else self.model.geom_friction[idx[0], 0])
                         for kind, idx in self._targets]
        self._written: tuple[float, ...] | None = None
        use_batch = simulator == "batch" or (simulator == "auto" and batch_supported(self.mbox.env_id))
        # made before any write into self.model: the batch keeps a copy of the nominal model
        self._batch = BatchStepper(self.sim, self.mbox.env_id, self._targets, threads) if use_batch else None
        self.simulator = "batch" if use_batch else "gymnasium"
        self.params_cls = params_class(set_name)
        self.positive_params = tuple(p.name for p in self.mbox.params)  # masses and frictions
        self.observation_space = _convert.space_from_gymnasium(self.sim.observation_space, self.device)
        self.action_space = _convert.space_from_gymnasium(self.sim.action_space, self.device)
        self._action_dtype = self.sim.action_space.dtype

    def default_params(self, batch_size: int = 1) -> Any:
        """The v5 model's values of the set's parameters for ``batch_size`` copies."""
        return self.params_cls(**{
            p.name: torch.full((batch_size,), v, dtype=torch.float64, device=self.device)
            for p, v in zip(self.mbox.params, self._nominal, strict=True)})

    def write(self, values: tuple[float, ...]) -> None:
        """Write one copy's parameter values into the shared model (skipped when they are those
        written last: copies of one model, the usual training case, cost nothing)."""
        if values == self._written:
            return
        for (kind, idx), v in zip(self._targets, values, strict=True):
            if kind == "mass":
                self.model.body_mass[idx] = v
            else:
                self.model.geom_friction[idx, 0] = v
        self._written = values

    def _values(self, params: Any) -> list[tuple[float, ...]]:
        cols = torch.stack([getattr(params, p.name) for p in self.mbox.params], 1)
        return [tuple(row) for row in cols.to("cpu", torch.float64).tolist()]

    def _reset_copy(self, values: tuple[float, ...], seed: int, physics: np.ndarray) -> np.ndarray:
        self.write(values)
        obs, _ = self.sim.reset(seed=seed)
        self._mujoco.mj_getState(self.model, self.data, physics, self._spec)
        return obs

    def _seeds(self, n: int, generator: torch.Generator) -> list[int]:
        return torch.randint(0, SEED_BOUND, (n,), generator=generator,
                             device=generator.device).tolist()

    def reset(self, params: Any, generator: torch.Generator) -> tuple[torch.Tensor, MujocoState]:
        """Start an episode in every copy (gymnasium's reset with a seed drawn per copy)."""
        self.check_params(params)
        values = self._values(params)
        physics = np.empty((len(values), self._state_size), dtype=np.float64)
        obs = np.stack([self._reset_copy(v, s, physics[i]) for i, (v, s)
                        in enumerate(zip(values, self._seeds(len(values), generator), strict=True))])
        time = torch.zeros(len(values), dtype=torch.int32, device=self.device)
        return self._obs(obs), MujocoState(torch.from_numpy(physics).to(self.device), time)

    def step(self, state: MujocoState, action: torch.Tensor, params: Any,
             generator: torch.Generator) -> Step[MujocoState]:
        """Step every copy from its own state and parameters; reset the copies whose episode ended."""
        n = state.physics.shape[0]
        if tree.batch_size(params) != n:
            raise ValueError(f"params batch size {tree.batch_size(params)} != state batch size {n}")
        actions = action.detach().reshape(n, -1).to("cpu").numpy().astype(self._action_dtype)
        physics = state.physics.to("cpu").numpy().copy()
        if self._batch is not None:
            cols = torch.stack([getattr(params, p.name) for p in self.mbox.params], 1)
            physics, obs, reward, terminated = self._batch.step(
                physics, np.ascontiguousarray(actions), cols.to("cpu", torch.float64).numpy())
            values = None  # only the copies that reset need them (below)
        else:
            values = self._values(params)
            obs, reward, terminated = self._step_gymnasium(physics, actions, values)
        time = state.time.to("cpu") + 1
        truncated = (time >= self.max_episode_steps).numpy()
        final_obs = self._obs(obs)
        done = np.flatnonzero(terminated | truncated)
        if done.size:
            if values is None:
                values = self._values(params)
            for i, seed in zip(done.tolist(), self._seeds(done.size, generator), strict=True):
                obs[i] = self._reset_copy(values[i], seed, physics[i])
            time[torch.from_numpy(done)] = 0
        dev = self.device
        return Step(obs=self._obs(obs),
                    state=MujocoState(torch.from_numpy(physics).to(dev), time.to(dev)),
                    reward=torch.as_tensor(reward, dtype=torch.float32, device=dev),
                    terminated=torch.as_tensor(terminated, device=dev),
                    truncated=torch.as_tensor(truncated, device=dev), final_obs=final_obs)

    def _step_gymnasium(self, physics: np.ndarray, actions: np.ndarray,
                        values: list[tuple[float, ...]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The reference simulator: per copy, write its parameters, load its state into the shared
        MjData, run gymnasium's ``step`` and read the state back into ``physics`` (in place)."""
        n = len(values)
        obs, reward, terminated = [], np.empty(n), np.zeros(n, dtype=bool)
        mj = self._mujoco
        for i in range(n):
            self.write(values[i])
            mj.mj_setState(self.model, self.data, physics[i], self._spec)
            o, r, term, _, _ = self.sim.step(actions[i])
            mj.mj_getState(self.model, self.data, physics[i], self._spec)
            obs.append(o)
            reward[i], terminated[i] = r, term
        return np.stack(obs), reward, terminated

    def _obs(self, obs: np.ndarray) -> torch.Tensor:
        # a copy even where no cast is needed: final_obs must not alias the array resets write
        return torch.tensor(obs, dtype=torch.float32, device=self.device)

    def close(self) -> None:
        """Close the simulator."""
        self.sim.close()

    def __repr__(self) -> str:
        return f"MujocoParamsEnv({self.set_name!r}, device={self.device}, simulator={self.simulator!r})"


def for_box(box_name: str, env: BatchedEnv, params: Any, max_episode_steps: int | None
            ) -> tuple[BatchedEnv, Any]:
    """The env and per-copy params an IWOCS run of ``box_name`` steps: for a MuJoCo set, a
    :class:`MujocoParamsEnv` with as many nominal copies as the run's ``params`` (the run's own env,
    the preset's placeholder, is not stepped); otherwise the run's env and params unchanged."""
    from rlsuite.agents.iwocs.mujoco_sets import MUJOCO_BOXES

    if box_name not in MUJOCO_BOXES:
        return env, params
    try:
        import mujoco  # noqa: F401
    except ImportError:
        raise ConfigError("box", box_name, "a MuJoCo set needs the mujoco extra "
                          "(pip install -e '.[mujoco]')") from None
    own = MujocoParamsEnv(box_name, env.device, max_episode_steps)
    return own, own.default_params(tree.batch_size(params))
