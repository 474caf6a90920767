"""An engine env as a numpy ``gymnasium.vector.VectorEnv``, so gymnasium's vector wrappers compose.

:class:`~rlsuite.engine.gym_export.TorchVectorEnv` speaks torch and autoresets in the same step;
gymnasium's vector wrappers (``gymnasium/wrappers/vector``) assume numpy arrays, and the
observation ones (``NormalizeObservation``, every ``VectorObservationWrapper``) accept only
``AutoresetMode.NEXT_STEP``. :class:`NumpyVectorEnv` gives them both:

* numpy in and out, with :class:`gymnasium.vector.SyncVectorEnv`'s dtypes (observations float32
  or int64, rewards float64, terminated / truncated bool);
* ``autoreset_mode="next_step"`` (the default, gymnasium's own): the step where an episode ends
  returns the observation it ended on; the next step returns that copy's new initial observation
  with reward 0, ignores its action and leaves its engine state where the reset put it (the
  engine has already reset it; that step's transition is undone for that copy);
* ``autoreset_mode="same_step"``: the engine's own mode; the returned observation is already the
  new episode's, and ``info["final_obs"]`` (an object array, ``None`` where no episode ended, as
  ``SyncVectorEnv`` gives it) holds the last one, masked by ``info["_final_obs"]``.

No ``info["episode"]`` is written: ``gymnasium.wrappers.vector.RecordEpisodeStatistics`` adds it
(it raises when the key is already there).

Which gymnasium 1.x vector wrappers take which mode (``gymnasium/wrappers/vector``, checked with
gymnasium 1.4): ``RecordEpisodeStatistics``, ``NormalizeReward``, ``DictInfoToList``, the reward
wrappers (``TransformReward``, ``ClipReward``) and the action wrappers (``ClipAction``,
``RescaleAction``, ``TransformAction``) take both; every observation wrapper
(``NormalizeObservation``, ``TransformObservation``, ``FlattenObservation``, ``DtypeObservation``...,
all subclasses of ``VectorObservationWrapper``) takes ``next_step`` only, which is why it is the
default here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from rlsuite.core import tree
from rlsuite.engine import _convert
from rlsuite.engine.gym_export import TorchVectorEnv

AUTORESET_MODES = {"next_step": AutoresetMode.NEXT_STEP, "same_step": AutoresetMode.SAME_STEP}


def _select(mask: torch.Tensor, new: Any, old: Any) -> Any:
    """The env state of ``old`` where ``mask`` ([B] bool), of ``new`` elsewhere.

    Only the state's own tensor fields are per copy (the engine's contract: they share the
    leading ``B``); nested dataclasses such as the shared pool of pre-drawn initial states
    (:class:`rlsuite.core.autoreset.ResetPool`, ``[F, P]``) are taken from ``new``, so states
    already drawn from it are never drawn again.
    """
    changes = {}
    for name, value in tree.tensor_items(new):
        if value.dim() > 0:
            keep = mask.reshape(mask.shape + (1,) * (value.dim() - 1))
            changes[name] = torch.where(keep, getattr(old, name), value)
    return dataclasses.replace(new, **changes)


class NumpyVectorEnv(VectorEnv):
    """B copies of an engine env behind gymnasium's vector API in numpy.

    Args:
        env: an engine env, or the registry name of one (``"cartpole"``).
        num_envs: B (defaults as in :class:`~rlsuite.engine.gym_export.TorchVectorEnv`).
        autoreset_mode: ``"next_step"`` (default) or ``"same_step"``, or the ``AutoresetMode``.
        params: per-copy params; ``reset(options={"params": p})`` swaps them.
        **env_kwargs: constructor kwargs for a named env (``max_episode_steps``...).

    Raises:
        ValueError: for an ``autoreset_mode`` other than next_step / same_step.
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(
        self,
        env: Any,
        num_envs: int | None = None,
        *,
        autoreset_mode: str | AutoresetMode = "next_step",
        params: Any = None,
        **env_kwargs: Any,
    ) -> None:
        mode = AUTORESET_MODES.get(autoreset_mode) if isinstance(autoreset_mode, str) else autoreset_mode
        if mode not in AUTORESET_MODES.values():
            raise ValueError(
                f"autoreset_mode={autoreset_mode!r}: expected one of {sorted(AUTORESET_MODES)}"
            )
        # The statistics are RecordEpisodeStatistics' job here (it refuses an existing key).
        self.torch_env = TorchVectorEnv(
            env, num_envs, params=params, record_episode_statistics=False, **env_kwargs
        )
        self.engine = self.torch_env.engine
        self.num_envs = self.torch_env.num_envs
        self.autoreset_mode = mode
        self.metadata = {**type(self).metadata, "autoreset_mode": mode}
        self.single_observation_space = self.torch_env.single_observation_space
        self.single_action_space = self.torch_env.single_action_space
        self.observation_space = self.torch_env.observation_space
        self.action_space = self.torch_env.action_space
        self._obs_dtype = _convert.numpy_dtype(self.engine.observation_space)
        # next_step bookkeeping: copies whose episode ended on the previous step, and the
        # observation of the new episode the engine already began for them.
        self._pending = torch.zeros(self.num_envs, dtype=torch.bool, device=self.torch_env.device)
        self._reset_obs: torch.Tensor | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode in every copy (``seed`` and ``options`` as for TorchVectorEnv)."""
        obs, info = self.torch_env.reset(seed=seed, options=options)
        self._pending.zero_()
        self._reset_obs = None
        return self._obs(obs), info

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every copy; an episode's end and its reset follow ``autoreset_mode``."""
        before = self.torch_env.state
        obs, reward, terminated, truncated, info = self.torch_env.step(actions)
        if self.autoreset_mode is AutoresetMode.SAME_STEP:
            done = _convert.to_numpy(terminated | truncated)
            out_info: dict[str, Any] = {}
            if done.any():  # SyncVectorEnv's shape: present only when some episode ended
                final = _convert.to_numpy(info["final_obs"])
                final_obs = np.full(self.num_envs, None, dtype=object)
                for i in np.flatnonzero(done):
                    final_obs[i] = np.array(final[i], dtype=self._obs_dtype, copy=True)
                out_info = {"final_obs": final_obs, "_final_obs": done,
                            "final_info": {}, "_final_info": done}
            return self._obs(obs), self._reward(reward), self._bool(terminated), \
                self._bool(truncated), out_info
        # next_step: copies that ended last step show their reset observation and keep their
        # reset state; the others report what the engine stepped to (the final obs at an end).
        pending = self._pending
        if bool(pending.any()):
            assert self._reset_obs is not None
            self.torch_env.state = _select(pending, self.torch_env.state, before)
            obs = torch.where(_expand(pending, obs), self._reset_obs, obs)
            info["final_obs"] = torch.where(_expand(pending, obs), self._reset_obs, info["final_obs"])
            reward = torch.where(pending, torch.zeros_like(reward), reward)
            terminated = terminated & ~pending
            truncated = truncated & ~pending
        done = terminated | truncated
        self._pending = done
        self._reset_obs = obs
        shown = torch.where(_expand(done, obs), info["final_obs"], obs)
        return self._obs(shown), self._reward(reward), self._bool(terminated), \
            self._bool(truncated), {}

    def _obs(self, obs: torch.Tensor) -> np.ndarray:
        return np.array(_convert.to_numpy(obs), dtype=self._obs_dtype, copy=True)

    @staticmethod
    def _reward(reward: torch.Tensor) -> np.ndarray:
        return np.array(_convert.to_numpy(reward), dtype=np.float64, copy=True)

    @staticmethod
    def _bool(flag: torch.Tensor) -> np.ndarray:
        return np.array(_convert.to_numpy(flag), dtype=bool, copy=True)

    def render(self) -> None:
        """rlsuite vector envs do not render; returns None."""
        return None

    def __repr__(self) -> str:
        name = self.spec.id if self.spec is not None else self.engine.name
        return (f"NumpyVectorEnv({name}, num_envs={self.num_envs}, "
                f"autoreset_mode={self.autoreset_mode.value})")


def _expand(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``mask [B]`` broadcastable against ``like [B, ...]``."""
    return mask.reshape(mask.shape + (1,) * (like.dim() - 1))
