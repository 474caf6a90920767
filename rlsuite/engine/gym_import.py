"""Any gymnasium env id as an engine env (on the CPU, through gymnasium's vector API).

:class:`GymnasiumEnv` runs ``num_envs`` copies of a registered gymnasium env (MuJoCo, toy-text,
classic control...) in a ``gymnasium.vector.SyncVectorEnv`` and speaks the engine contract:
``reset(params, generator) -> (obs, state)`` and ``step(state, action, params, generator) -> Step``
with torch tensors (float32 Box / int64 Discrete observations, float32 rewards, bool flags).

It is **stateful**, unlike the native engine envs: the simulators inside the gymnasium vector env
own their state, and cannot be rewound or copied. The :class:`GymnasiumState` it hands out is a
receipt for the live simulators' state (per-copy episode step counters and a tick), and ``step``
refuses any state but the latest, so code that branches or replays states fails loudly instead of
silently stepping the wrong state.

Checkpoints: :meth:`GymnasiumEnv.simulator_state` copies what the sub-envs hold into plain data
(MuJoCo's full integration state from ``mj_getState``, or a classic-control env's ``state``; each
sub-env's numpy generator and its ``TimeLimit`` step count), and
:meth:`GymnasiumEnv.load_simulator_state` writes it back, so a run resumed mid-episode steps on
exactly as the uninterrupted one (:class:`rlsuite.engine.interaction.Interaction` saves it with the
rollout state). Other sub-envs raise a ``TypeError`` naming the env instead.

Autoreset is gymnasium's ``SAME_STEP`` mode (``gymnasium/vector/sync_vector_env.py``): where an
episode ends, the sub-env is reset inside the same ``step`` and the observation it ended on comes
back in ``info["final_obs"]`` (masked by ``info["_final_obs"]``), which is exactly the engine's
``Step.final_obs``. Other info keys are dropped (the engine's ``Step`` has no info).

Randomness: the torch generator passed to :meth:`GymnasiumEnv.reset` draws one integer seed
(:func:`gymnasium_seed`), which seeds the vector env (sub-env ``i`` gets ``seed + i``, gymnasium's
rule); every later random draw, autoresets included, comes from the sub-envs' own numpy
generators. So the same torch seed gives the same trajectory, and the generator passed to
``step`` is not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import torch

from rlsuite.core import spaces
from rlsuite.core.env import BatchedEnv, Step
from rlsuite.core.params import validate_params
from rlsuite.engine import _convert

SEED_BOUND = 2**31 - 1
"""Seeds drawn for gymnasium lie in ``[0, SEED_BOUND)``; ``seed + i`` stays a valid numpy seed."""


@dataclass(frozen=True)
class GymnasiumState:
    """Receipt for the state held inside the gymnasium vector env."""

    time: torch.Tensor
    """``[B]`` int32 steps taken in each copy's current episode."""
    tick: int
    """How many resets and steps the live vector env had taken when this state was issued."""


@dataclass(frozen=True)
class GymnasiumParams:
    """A gymnasium env's constants are its constructor kwargs, fixed when the env is built.

    Nothing can vary per copy after construction, so the only field says which sub-env each copy
    is; it exists so that params keep the engine's ``[B]`` shape.
    """

    index: torch.Tensor
    """``[B]`` int64, ``index[i] == i``."""


def gymnasium_seed(generator: torch.Generator) -> int:
    """The seed handed to ``vector_env.reset(seed=...)``: one draw from ``generator``."""
    draw = torch.randint(0, SEED_BOUND, (1,), generator=generator, device=generator.device)
    return int(draw.item())


class GymnasiumEnv(BatchedEnv[GymnasiumState, GymnasiumParams]):
    """``num_envs`` copies of the gymnasium env ``env_id`` behind the engine contract.

    Args:
        env_id: a registered gymnasium id (``"CartPole-v1"``, ``"HalfCheetah-v5"``, ...).
        num_envs: B, fixed for the life of the env.
        device: where the returned tensors live (the simulation itself runs on the CPU).
        **kwargs: passed to ``gymnasium.make_vec`` and from there to every sub-env
            (``max_episode_steps=...``, env constructor kwargs such as ``g=9.81``).
    """

    def __init__(
        self, env_id: str, num_envs: int, device: torch.device | str = "cpu", **kwargs: Any
    ) -> None:
        super().__init__(device)
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.name = env_id
        self.num_envs = num_envs
        self.vector_env = gymnasium.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
            **kwargs,
        )
        self._gym_action_space = self.vector_env.single_action_space
        self.observation_space = _convert.space_from_gymnasium(
            self.vector_env.single_observation_space, self.device
        )
        self.action_space = _convert.space_from_gymnasium(self._gym_action_space, self.device)
        spec = self.vector_env.spec
        self.max_episode_steps = kwargs.get(
            "max_episode_steps", spec.max_episode_steps if spec is not None else None
        )
        self._tick = 0

    def default_params(self, batch_size: int | None = None) -> GymnasiumParams:
        """Params for ``batch_size`` copies (``num_envs`` by default; only that many can step)."""
        n = self.num_envs if batch_size is None else batch_size
        return GymnasiumParams(torch.arange(n, dtype=torch.int64, device=self.device))

    def check_params(self, params: GymnasiumParams, batch_size: int | None = None) -> None:
        """Raise unless ``params`` is a :class:`GymnasiumParams` for exactly ``num_envs`` copies."""
        validate_params(params, self.default_params(1), batch_size)
        if params.index.shape[0] != self.num_envs:
            raise ValueError(
                f"params.index has batch size {params.index.shape[0]}; this GymnasiumEnv was "
                f"built with num_envs={self.num_envs}"
            )

    def reset(
        self, params: GymnasiumParams, generator: torch.Generator
    ) -> tuple[torch.Tensor, GymnasiumState]:
        """Reset every sub-env with a seed drawn from ``generator``."""
        self.check_params(params)
        obs, _ = self.vector_env.reset(seed=gymnasium_seed(generator))
        self._tick += 1
        time = torch.zeros(self.num_envs, dtype=torch.int32, device=self.device)
        return self._obs(obs), GymnasiumState(time, self._tick)

    def step(
        self,
        state: GymnasiumState,
        action: torch.Tensor,
        params: GymnasiumParams,
        generator: torch.Generator,
    ) -> Step[GymnasiumState]:
        """Step every sub-env; ``generator`` is unused (the sub-envs own their randomness)."""
        if state.tick != self._tick:
            raise RuntimeError(
                f"GymnasiumEnv is stateful: step() needs the state returned by the latest reset() "
                f"or step() (tick {self._tick}), got a state from tick {state.tick}"
            )
        a = _convert.to_torch(action, self.action_space, self.num_envs, torch.device("cpu"))
        a_np = a.numpy().astype(self._gym_action_space.dtype, copy=False)
        obs, reward, terminated, truncated, info = self.vector_env.step(a_np)
        self._tick += 1
        final = obs
        if "_final_obs" in info:
            # SyncVectorEnv stores each ended sub-env's last observation in an object array, None
            # elsewhere; where no episode ended, the final observation is the observation.
            final = np.array(obs, copy=True)
            for i in np.flatnonzero(info["_final_obs"]):
                final[i] = info["final_obs"][i]
        term = torch.as_tensor(terminated, dtype=torch.bool, device=self.device)
        trunc = torch.as_tensor(truncated, dtype=torch.bool, device=self.device)
        time = torch.where(term | trunc, torch.zeros_like(state.time), state.time + 1)
        return Step(
            obs=self._obs(obs),
            state=GymnasiumState(time, self._tick),
            reward=torch.as_tensor(reward, dtype=torch.float32, device=self.device),
            terminated=term,
            truncated=trunc,
            final_obs=self._obs(final),
        )

    def simulator_state(self) -> dict[str, Any]:
        """What the live sub-envs hold, as plain data for a checkpoint (see the module doc)."""
        return {"tick": self._tick, "envs": [_sub_env_state(env, self.name) for env in self.vector_env.envs]}

    def load_simulator_state(self, saved: dict[str, Any]) -> None:
        """Write back :meth:`simulator_state` (of an env built the same way, reset at least
        once); the states issued before the save are the latest again."""
        envs = self.vector_env.envs
        if len(saved["envs"]) != len(envs):
            raise ValueError(f"simulator state of {len(saved['envs'])} copies for a GymnasiumEnv of "
                             f"{len(envs)} ({self.name})")
        for env, data in zip(envs, saved["envs"], strict=True):
            _load_sub_env_state(env, data, self.name)
        self._tick = int(saved["tick"])

    def _obs(self, obs: np.ndarray) -> torch.Tensor:
        dtype = torch.float32 if isinstance(self.observation_space, spaces.Box) else torch.int64
        return torch.tensor(np.asarray(obs), dtype=dtype, device=self.device)

    def close(self) -> None:
        """Close the gymnasium vector env (and its sub-envs)."""
        self.vector_env.close()

    def __repr__(self) -> str:
        return f"GymnasiumEnv({self.name!r}, num_envs={self.num_envs}, device={self.device})"


def _time_limit(env: gymnasium.Env) -> gymnasium.Wrapper | None:
    """The ``TimeLimit`` wrapper in ``env``'s wrapper chain (None if there is none)."""
    while isinstance(env, gymnasium.Wrapper):
        if isinstance(env, gymnasium.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def _sub_env_state(env: gymnasium.Env, name: str) -> dict[str, Any]:
    """One sub-env's state: its simulator, numpy generator and time-limit step count."""
    raw = env.unwrapped
    if hasattr(raw, "model") and hasattr(raw, "data"):  # gymnasium's MujocoEnv
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION  # everything mj_step reads, warm start included
        sim = np.empty(mujoco.mj_stateSize(raw.model, spec), dtype=np.float64)
        mujoco.mj_getState(raw.model, raw.data, sim, spec)
        simulator = {"mujoco": torch.from_numpy(sim)}
    elif hasattr(raw, "state"):  # classic control: the whole dynamic state is one array
        simulator = {"state": None if raw.state is None else torch.from_numpy(np.array(raw.state))}
        if hasattr(raw, "steps_beyond_terminated"):
            simulator["steps_beyond_terminated"] = raw.steps_beyond_terminated
    else:
        raise TypeError(f"GymnasiumEnv({name!r}): cannot save the state of {type(raw).__name__} "
                        f"for a checkpoint (MuJoCo and classic-control envs only), so a run on it "
                        f"cannot resume mid-episode")
    limit = _time_limit(env)
    return {"simulator": simulator, "np_random": raw.np_random.bit_generator.state,
            "elapsed_steps": None if limit is None else limit._elapsed_steps}


def _load_sub_env_state(env: gymnasium.Env, data: dict[str, Any], name: str) -> None:
    """Write :func:`_sub_env_state` back into ``env``."""
    raw = env.unwrapped
    simulator = data["simulator"]
    if "mujoco" in simulator:
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        mujoco.mj_setState(raw.model, raw.data, simulator["mujoco"].numpy(), spec)
        mujoco.mj_forward(raw.model, raw.data)  # derived quantities (positions of bodies, ...)
    elif "state" in simulator:
        state = simulator["state"]
        raw.state = None if state is None else state.numpy().copy()
        if "steps_beyond_terminated" in simulator:
            raw.steps_beyond_terminated = simulator["steps_beyond_terminated"]
    else:
        raise ValueError(f"GymnasiumEnv({name!r}): unknown simulator state {sorted(simulator)}")
    raw.np_random.bit_generator.state = data["np_random"]
    limit = _time_limit(env)
    if limit is not None:
        limit._elapsed_steps = data["elapsed_steps"]
