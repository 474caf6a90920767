"""Every engine env as a gymnasium env: a torch vector env, a numpy single env, registered ids.

* :class:`TorchVectorEnv` is a ``gymnasium.vector.VectorEnv`` that holds an engine env's state,
  params and generator and speaks torch tensors on the env's device. It autoresets in the same
  step (``metadata["autoreset_mode"] = AutoresetMode.SAME_STEP``) and records episode statistics
  in torch, in the shape of ``gymnasium.wrappers.vector.RecordEpisodeStatistics``.
* :class:`TorchSingleEnv` is a ``gymnasium.Env`` over one copy, numpy in and out, that passes
  ``gymnasium.utils.env_checker.check_env``.
* :func:`register_gymnasium_envs` registers every env of :mod:`rlsuite.envs` as
  ``rlsuite/<Name>-v0``, so ``gymnasium.make_vec(id, num_envs=N, device=...)`` returns a
  :class:`TorchVectorEnv` (through the spec's ``vector_entry_point``) and ``gymnasium.make(id)``
  a :class:`TorchSingleEnv` (through its ``entry_point``); ``make_vec(id, num_envs=N,
  numpy=True)`` returns the numpy :class:`~rlsuite.engine.numpy_vector.NumpyVectorEnv`, on which
  gymnasium's vector wrappers (RecordEpisodeStatistics, NormalizeObservation...) compose.
  Importing :mod:`rlsuite.envs` registers them; ``gymnasium.make("rlsuite.envs:rlsuite/CartPole-v0")``
  does the import itself.

Two departures from gymnasium's numpy vector envs, both so that a step never waits on the host
(no ``.any()`` on a CUDA tensor to decide whether a key exists):

* ``info["final_obs"]`` is a dense ``[B, ...]`` tensor, valid where ``info["_final_obs"]`` is
  True (gymnasium's ``SyncVectorEnv`` adds the key only on steps where some episode ended, as an
  object array with ``None`` elsewhere);
* ``info["episode"]`` and ``info["_episode"]`` are present on every step, with zeros where no
  episode ended (gymnasium's wrapper adds them only when one did).
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from rlsuite.core.env import BatchedEnv
from rlsuite.core.tree import batch_size as params_batch_size
from rlsuite.engine import _convert
from rlsuite.engine.rollout import EpisodeStats

NAMESPACE = "rlsuite"
VERSION = 0
SEED_BOUND = 2**63 - 1
"""Upper bound of the seeds drawn from gymnasium's ``np_random`` when ``reset()`` gets none."""


def _build(env: str | BatchedEnv, env_kwargs: dict[str, Any]) -> BatchedEnv:
    if isinstance(env, BatchedEnv):
        if env_kwargs:
            raise TypeError(
                f"constructor kwargs {sorted(env_kwargs)} can only be given with an env name, "
                f"not with an already built {env!r}"
            )
        return env
    from rlsuite import envs

    return envs.make(env, **env_kwargs)


class TorchVectorEnv(gymnasium.vector.VectorEnv):
    """B copies of an engine env behind gymnasium's vector API, in torch on the env's device.

    ``reset`` and ``step`` return torch tensors: ``obs [B, ...]`` (float32 or int64), ``reward
    [B]`` float32, ``terminated`` / ``truncated`` ``[B]`` bool. ``step`` accepts a tensor, a numpy
    array or a list of actions. The info of every step holds:

    * ``"final_obs"``: ``[B, ...]`` the observation each transition reached before any reset, with
      the mask ``"_final_obs"`` (``terminated | truncated``); ``"final_info"`` is ``{}`` with the
      same mask ``"_final_info"``, as gymnasium's ``SyncVectorEnv`` gives for sub-envs without info;
    * ``"episode"``: ``{"r": [B] float32 return, "l": [B] int64 length, "t": [B] float32 seconds
      since the episode began}``, zero where no episode ended, with the mask ``"_episode"``
      (unless ``record_episode_statistics=False``).

    Args:
        env: an engine env, or the registry name of one (``"cartpole"``).
        num_envs: B; defaults to the batch size of ``params``, else 1.
        params: per-copy params (defaults to ``env.default_params(num_envs)``); a later
            ``reset(options={"params": p})`` swaps them, RRLS-style.
        record_episode_statistics: add ``info["episode"]`` / ``info["_episode"]``.
        **env_kwargs: constructor kwargs for a named env (``device``, ``max_episode_steps``...).
    """

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        env: str | BatchedEnv,
        num_envs: int | None = None,
        *,
        params: Any = None,
        record_episode_statistics: bool = True,
        **env_kwargs: Any,
    ) -> None:
        self.engine = _build(env, env_kwargs)
        self.device = self.engine.device
        if num_envs is None:
            num_envs = 1 if params is None else params_batch_size(params)
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.params = self.engine.default_params(num_envs) if params is None else params
        self.engine.check_params(self.params, num_envs)
        self.record_episode_statistics = record_episode_statistics
        self.metadata = dict(type(self).metadata)

        self.single_observation_space = self.engine.observation_space.to_gymnasium()
        self.single_action_space = self.engine.action_space.to_gymnasium()
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

        self.generator: torch.Generator | None = None
        self.state: Any = None
        self._t0 = time.perf_counter()
        self._stats = EpisodeStats.zeros(num_envs, self.device)
        self._episode_start = torch.zeros(num_envs, dtype=torch.float32, device=self.device)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Start a new episode in every copy.

        Args:
            seed: reseeds the env's torch generator; ``None`` continues the current one (the first
                reset without a seed draws one from gymnasium's ``np_random``).
            options: ``{"params": p}`` replaces the per-copy params (``B == num_envs``) from this
                episode on; no other key is understood.

        Raises:
            ValueError: for an unknown option key or params that do not fit.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        params = options.pop("params", None)
        if options:
            raise ValueError(
                f"unknown reset option(s) {sorted(options)}; only 'params' is supported"
            )
        if params is not None:
            self.engine.check_params(params, self.num_envs)
            self.params = params
        if seed is not None:
            self.generator = self.engine.make_generator(seed)
        elif self.generator is None:
            self.generator = self.engine.make_generator(
                int(self.np_random.integers(0, SEED_BOUND))
            )
        obs, self.state = self.engine.reset(self.params, self.generator)
        self._stats = EpisodeStats.zeros(self.num_envs, self.device)
        self._episode_start = torch.full(
            (self.num_envs,), self._now(), dtype=torch.float32, device=self.device
        )
        return obs, {}

    def step(
        self, actions: torch.Tensor | np.ndarray
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Step every copy; copies whose episode ends are reset within this call."""
        if self.state is None:
            raise RuntimeError("TorchVectorEnv.step() called before reset()")
        assert self.generator is not None
        action = _convert.to_torch(actions, self.engine.action_space, self.num_envs, self.device)
        step = self.engine.step(self.state, action, self.params, self.generator)
        self.state = step.state
        done = step.done
        info: dict[str, Any] = {
            "final_obs": step.final_obs,
            "_final_obs": done,
            "final_info": {},
            "_final_info": done,
        }
        if self.record_episode_statistics:
            self._stats, ep_return, ep_length = self._stats.update(step.reward, done)
            now = self._now()
            zero = torch.zeros_like(self._episode_start)
            ep_time = torch.where(done, now - self._episode_start, zero)
            self._episode_start = torch.where(done, zero + now, self._episode_start)
            info["episode"] = {"r": ep_return, "l": ep_length, "t": ep_time}
            info["_episode"] = done
        return step.obs, step.reward, step.terminated, step.truncated, info

    def _now(self) -> float:
        # Seconds since construction: small enough for float32 tensors on any device.
        return time.perf_counter() - self._t0

    def render(self) -> None:
        """rlsuite envs do not render; returns None."""
        return None

    def __repr__(self) -> str:
        name = self.spec.id if self.spec is not None else self.engine.name
        return f"TorchVectorEnv({name}, num_envs={self.num_envs}, device={self.device})"


class TorchSingleEnv(gymnasium.Env):
    """One copy of an engine env as a plain ``gymnasium.Env``: numpy observations, Python scalars.

    Where an episode ends, ``step`` returns the observation it ended on, as gymnasium's single envs
    do; call ``reset()`` next (the engine has already begun a new episode internally, which a
    ``step`` without ``reset`` would continue from an initial state the caller never saw).

    Args:
        env: an engine env, or the registry name of one.
        params: params for one copy (``B == 1``); ``reset(options={"params": p})`` swaps them.
        render_mode: None, or a mode of ``metadata["render_modes"]`` (``"rgb_array"`` for the
            envs :mod:`rlsuite.engine.render` draws: cartpole, its continuous variant,
            pendulum, acrobot).
        **env_kwargs: constructor kwargs for a named env.

    Raises:
        TypeError: for a ``render_mode`` this env does not have. TypeError, not ValueError, is
            what Python raises for a keyword a constructor does not take, and it is the error
            SB3's ``make_vec_env`` / ``PPO("MlpPolicy", id)`` (and so RL Zoo) catch to retry
            without their default ``render_mode="rgb_array"``: such an env is then built, and
            only a video recorder finds that it has no frames.
    """

    metadata: dict[str, Any] = {"render_modes": [], "render_fps": None}

    def __init__(
        self,
        env: str | BatchedEnv,
        *,
        params: Any = None,
        render_mode: str | None = None,
        **env_kwargs: Any,
    ) -> None:
        self.vector = TorchVectorEnv(
            env, 1, params=params, record_episode_statistics=False, **env_kwargs
        )
        from rlsuite.engine import render

        self._renderer = render.renderer_for(self.vector.engine)
        self.metadata = dict(type(self).metadata)
        if self._renderer is not None:
            self.metadata.update(render_modes=["rgb_array"], render_fps=self._renderer.fps)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise TypeError(
                f"render_mode={render_mode!r} is not a render mode of {self.vector.engine.name!r} "
                f"(its render_modes: {self.metadata['render_modes']})"
            )
        self.render_mode = render_mode
        self.observation_space = self.vector.single_observation_space
        self.action_space = self.vector.single_action_space
        self._obs_space = self.vector.engine.observation_space
        self._act_space = self.vector.engine.action_space

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray | int, dict[str, Any]]:
        """Start an episode; ``seed`` reseeds, ``options={"params": p}`` swaps the dynamics."""
        super().reset(seed=seed)
        if seed is None and self.vector.generator is None:
            # Derive the torch seed from gymnasium's np_random so that seeding np_random seeds all.
            seed = int(self.np_random.integers(0, SEED_BOUND))
        obs, _ = self.vector.reset(seed=seed, options=options)
        return _convert.single_to_numpy(obs, self._obs_space), {}

    def step(self, action: Any) -> tuple[np.ndarray | int, float, bool, bool, dict[str, Any]]:
        """One transition; returns ``(obs, reward, terminated, truncated, {})``."""
        batch = _convert.to_torch(
            np.asarray(action)[None], self._act_space, 1, self.vector.device
        )
        _, reward, terminated, truncated, info = self.vector.step(batch)
        obs = _convert.single_to_numpy(info["final_obs"], self._obs_space)
        return obs, float(reward[0]), bool(terminated[0]), bool(truncated[0]), {}

    def render(self) -> np.ndarray | None:
        """An ``[H, W, 3]`` uint8 frame of the current state with ``render_mode="rgb_array"``;
        None without a render mode (gymnasium's convention)."""
        if self.render_mode is None:
            return None
        if self.vector.state is None:
            raise RuntimeError("TorchSingleEnv.render() called before reset()")
        assert self._renderer is not None
        return self._renderer.draw(self.vector.state, self.vector.params)


# -- registration ---------------------------------------------------------------------------------


def _accepts(factory: Callable[..., Any], name: str) -> inspect.Parameter | None:
    try:
        return inspect.signature(factory).parameters.get(name)
    except (TypeError, ValueError):  # builtins or C callables without a signature
        return None


def gymnasium_id(name: str) -> str:
    """The gymnasium id of the rlsuite env registered as ``name`` (``"cartpole"`` ->
    ``"rlsuite/CartPole-v0"``).

    The name part is the factory's ``gymnasium_name`` attribute where it sets one (a factory
    function can say ``"FrozenLake"``), else the factory's class name, else ``name`` in
    CamelCase (``"random_mdp"`` -> ``"RandomMdp"``).
    """
    from rlsuite import envs

    factory = envs.factory(name)
    camel = getattr(factory, "gymnasium_name", None)
    if camel is None and inspect.isclass(factory):
        camel = factory.__name__
    if camel is None:
        camel = "".join(part[:1].upper() + part[1:] for part in name.replace("-", "_").split("_"))
    return f"{NAMESPACE}/{camel}-v{VERSION}"


def make_single_env(env: str, **kwargs: Any) -> TorchSingleEnv:
    """``gymnasium.make``'s entry point for the registered ids.

    ``gymnasium.make`` wraps the env in ``TimeLimit(spec.max_episode_steps)``, so where the env's
    constructor takes ``max_episode_steps`` the engine's own limit is switched off and gymnasium's
    wrapper owns it (as for gymnasium's own ``CartPole-v1``); ``make(id, max_episode_steps=n)``
    then works in both directions.
    """
    from rlsuite import envs

    if _accepts(envs.factory(env), "max_episode_steps") is not None:
        kwargs.setdefault("max_episode_steps", None)
    return TorchSingleEnv(env, **kwargs)


def register_gymnasium_envs() -> list[str]:
    """Register every env of :mod:`rlsuite.envs` with gymnasium; return their ids.

    Idempotent: an id already registered by this function is left alone (so calling it again
    after registering more rlsuite envs adds just those).

    Raises:
        ValueError: when an id is already taken by a different gymnasium registration.
    """
    from rlsuite import envs

    ids = []
    for name in envs.names():
        env_id = gymnasium_id(name)
        ids.append(env_id)
        existing = gymnasium.registry.get(env_id)
        if existing is not None:
            if existing.kwargs.get("env") != name or existing.vector_entry_point != _VECTOR_ENTRY:
                raise ValueError(
                    f"gymnasium id {env_id!r} is already registered by {existing.entry_point!r}"
                )
            continue
        limit = _accepts(envs.factory(name), "max_episode_steps")
        default = limit.default if limit is not None else None
        gymnasium.register(
            id=env_id,
            entry_point=_SINGLE_ENTRY,
            vector_entry_point=_VECTOR_ENTRY,
            # Only where the constructor takes it: make_vec passes it on as a kwarg.
            max_episode_steps=default if isinstance(default, int) else None,
            kwargs={"env": name},
        )
    return ids


def make_vector_env(
    env: str | BatchedEnv, num_envs: int | None = None, *, numpy: bool = False, **kwargs: Any
) -> gymnasium.vector.VectorEnv:
    """``gymnasium.make_vec``'s entry point for the registered ids.

    ``numpy=False`` (default): a :class:`TorchVectorEnv` (torch tensors, same-step autoreset).
    ``numpy=True``: a :class:`~rlsuite.engine.numpy_vector.NumpyVectorEnv` (numpy arrays, next-step
    autoreset unless ``autoreset_mode="same_step"``), which gymnasium's vector wrappers accept.
    """
    if numpy:
        from rlsuite.engine.numpy_vector import NumpyVectorEnv

        return NumpyVectorEnv(env, num_envs, **kwargs)
    return TorchVectorEnv(env, num_envs, **kwargs)


_SINGLE_ENTRY = f"{__name__}:make_single_env"
_VECTOR_ENTRY = f"{__name__}:make_vector_env"
