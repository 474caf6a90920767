"""An engine env as a stable-baselines3 ``VecEnv``: numpy in and out, SB3's conventions.

SB3 speaks its own vector API (``stable_baselines3/common/vec_env/base_vec_env.py``): ``reset()``
returns observations only, ``step_async`` / ``step_wait`` return ``(obs, rewards, dones, infos)``
with one merged ``dones`` and a list of per-env info dicts. This adapter follows what
``DummyVecEnv.step_wait`` puts in those dicts:

* ``"TimeLimit.truncated"`` on every step: ``truncated and not terminated`` (gymnasium 0.26's
  split folded back into SB3's key, as ``dummy_vec_env.py`` does);
* ``"terminal_observation"`` where an episode ended: the observation it ended on (the engine's
  ``final_obs``), which SB3's on-policy and off-policy loops use to bootstrap truncated episodes;
* ``"episode"`` where an episode ended: ``{"r", "l", "t"}`` as SB3's ``Monitor`` writes it
  (``stable_baselines3/common/monitor.py``: ``t`` is seconds since the monitor started, not
  since the episode did), so ``rollout/ep_rew_mean`` is logged and ``evaluate_policy`` reads
  true episode returns. ``env_is_wrapped(Monitor)`` answers True for that reason.

The state, params, generator and the episode statistics live in a
:class:`~rlsuite.engine.gym_export.TorchVectorEnv` on the env's device; this class converts at
the border and builds the info dicts, which costs a host sync per step (SB3 needs numpy anyway).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium
import numpy as np
import torch
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

from rlsuite.core import tree
from rlsuite.core.env import BatchedEnv
from rlsuite.engine import _convert
from rlsuite.engine.gym_export import TorchVectorEnv


class SB3VecEnv(VecEnv):
    """``B`` copies of an engine env as one SB3 ``VecEnv`` (``num_envs == B``).

    Args:
        env: an engine env, or the registry name of one.
        params: per-copy params; their batch size is ``num_envs``. ``set_options({"params": p})``
            swaps them at the next ``reset()``, and ``set_attr(field, value, indices)`` edits one
            params field for some copies.
        num_envs: B when ``params`` is not given (default 1).
        seed: seeds the first ``reset()`` (``seed()`` does the same for a later one).
        **env_kwargs: constructor kwargs for a named env (``device``, ``max_episode_steps``...).
    """

    def __init__(
        self,
        env: str | BatchedEnv,
        params: Any = None,
        num_envs: int | None = None,
        seed: int | None = None,
        **env_kwargs: Any,
    ) -> None:
        self.vector = TorchVectorEnv(env, num_envs, params=params, **env_kwargs)
        self.engine = self.vector.engine
        super().__init__(
            self.vector.num_envs, self.vector.single_observation_space,
            self.vector.single_action_space,
        )
        if seed is not None:
            self.seed(seed)
        self._obs_space = self.engine.observation_space
        self._actions: torch.Tensor | None = None
        self._t_start = time.time()

    # -- the VecEnv protocol ------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        """Reset every copy; uses (then forgets) the seed and options set since the last reset.

        One torch generator drives all copies, so only the first copy's seed (``seed()`` sets
        ``seed + i`` for copy ``i``, SB3's convention) and the first copy's options are used.
        """
        seed = self._seeds[0]
        options = self._options[0] or None
        obs, _ = self.vector.reset(seed=seed, options=options)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return _convert.to_numpy(obs, copy=True)

    def step_async(self, actions: np.ndarray) -> None:
        """Record the actions (checked and moved to the env's device) for :meth:`step_wait`."""
        self._actions = _convert.to_torch(
            actions, self.engine.action_space, self.num_envs, self.vector.device
        )

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Step every copy with the recorded actions; see the module docstring for the infos."""
        if self._actions is None:
            raise RuntimeError("step_wait() called without a pending step_async()")
        obs, reward, terminated, truncated, info = self.vector.step(self._actions)
        self._actions = None
        term = _convert.to_numpy(terminated)
        trunc = _convert.to_numpy(truncated)
        dones = term | trunc
        infos: list[dict[str, Any]] = [
            {"TimeLimit.truncated": bool(trunc[i] and not term[i])} for i in range(self.num_envs)
        ]
        ended = np.flatnonzero(dones)
        if ended.size:
            final = _convert.to_numpy(info["final_obs"])
            ep = info["episode"]
            ep_r, ep_l = _convert.to_numpy(ep["r"]), _convert.to_numpy(ep["l"])
            t = round(time.time() - self._t_start, 6)
            for i in ended:
                infos[i]["terminal_observation"] = np.array(final[i], copy=True)
                infos[i]["episode"] = {"r": round(float(ep_r[i]), 6), "l": int(ep_l[i]), "t": t}
        rewards = np.array(_convert.to_numpy(reward), dtype=np.float32, copy=True)
        return _convert.to_numpy(obs, copy=True), rewards, dones, infos

    def close(self) -> None:
        """Nothing to release: the engine env holds no resources."""

    # -- attributes and methods, per copy -----------------------------------------------------
    def _params_field(self, name: str) -> torch.Tensor | None:
        fields = dict(tree.tensor_items(self.vector.params))
        return fields.get(name)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """One value per requested copy.

        A params field (``"masspole"``) gives each copy's own value; ``"render_mode"`` is None;
        any other name is an attribute of the engine env, shared by all copies.
        """
        idx = list(self._get_indices(indices))
        field = self._params_field(attr_name)
        if field is not None:
            values = _convert.to_numpy(field)
            return [values[i].item() if values.ndim == 1 else values[i].copy() for i in idx]
        if attr_name == "render_mode":
            return [None] * len(idx)
        value = getattr(self.engine, attr_name)
        return [value] * len(idx)

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set a params field for the requested copies (from the next step on), or an engine
        attribute shared by all copies.

        Raises:
            ValueError: for a shared attribute with ``indices`` that leave out some copies.
        """
        idx = list(self._get_indices(indices))
        field = self._params_field(attr_name)
        if field is not None:
            new = field.clone()
            new[torch.as_tensor(idx, dtype=torch.long, device=new.device)] = torch.as_tensor(
                value, dtype=new.dtype, device=new.device
            )
            params = dataclasses.replace(self.vector.params, **{attr_name: new})
            self.engine.check_params(params, self.num_envs)
            self.vector.params = params
            return
        if sorted(idx) != list(range(self.num_envs)):
            raise ValueError(
                f"{attr_name!r} is an attribute of the engine env, shared by all {self.num_envs} "
                f"copies; it cannot be set for indices {idx} alone"
            )
        setattr(self.engine, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call a method of the engine env once (it serves all copies); the result is repeated
        for each requested copy."""
        idx = list(self._get_indices(indices))
        result = getattr(self.engine, method_name)(*method_args, **method_kwargs)
        return [result] * len(idx)

    def env_is_wrapped(
        self, wrapper_class: type[gymnasium.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """True for SB3's ``Monitor`` only: this adapter writes Monitor's ``info["episode"]``."""
        idx = list(self._get_indices(indices))
        return [wrapper_class is Monitor] * len(idx)

    def get_images(self) -> Sequence[np.ndarray | None]:
        """rlsuite envs do not render: one None per copy."""
        return [None] * self.num_envs

    def _get_indices(self, indices: VecEnvIndices) -> Iterable[int]:
        idx = list(super()._get_indices(indices))
        for i in idx:
            if not 0 <= i < self.num_envs:
                raise IndexError(f"env index {i} out of range for num_envs={self.num_envs}")
        return idx
