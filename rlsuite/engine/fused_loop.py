"""Rollout and evaluation steps as one fused kernel each: policy, env step, reset, bookkeeping.

On the fast path a step used to be several calls: the fused policy kernel, the fused env step,
then eager episode statistics and one copy per rollout buffer, each call paying CPU dispatch
(~2-5 us an op, ~20-40 us a kernel call). Here a :class:`~rlsuite.engine.fastpath.FusedPolicy`
and a classic-control env whose CPU step is fused (``ClassicControlEnv._flat_step``) are traced
together into one program per step:

* collection: ``(weights, env state, obs, noise, episode statistics, t, rollout buffers) ->
  (next env state, next obs, episode statistics)``, writing the step's transition into row ``t``
  of the ``[T, B, ...]`` buffers in place;
* evaluation: ``(weights, env state, obs, returns, lengths, count, episode statistics) ->
  (next env state, next obs, count, episode statistics)``, filing finished episodes into
  ``returns`` / ``lengths`` in place.

What stays outside, per step: drawing the policy's noise (or one draw for the whole rollout where
:meth:`~rlsuite.engine.fastpath.Noise.splits_evenly` says that is the same stream), the reset
pool's refill check (:func:`rlsuite.core.autoreset.ensure_pool`, from the generator, as on every
other path) and the kernel call. The transitions, the generators' use and every value written are
those of the eager :func:`~rlsuite.engine.rollout.collect` / :func:`~rlsuite.engine.evaluate.evaluate`
(``tests/test_fastpath.py``: bit for bit in a float64 env).

Where the env has no fused CPU step (a non-classic env, CUDA, ``check_actions`` on) the callers
keep their step-by-step fast path.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any

import torch

from rlsuite.core import autoreset
from rlsuite.core.classic import ClassicControlEnv
from rlsuite.core.compiled import output_specs, signature
from rlsuite.engine.fastpath import FastKernel, FusedPolicy, fast_env

_KERNELS: weakref.WeakKeyDictionary[FusedPolicy, dict[tuple[str, int], FastKernel]] = (
    weakref.WeakKeyDictionary()
)
_INDICES: dict[tuple[int, torch.device], list[torch.Tensor]] = {}
Spec = tuple[torch.Size, torch.dtype]
_SPECS: weakref.WeakKeyDictionary[FusedPolicy, dict[Hashable, Any]] = weakref.WeakKeyDictionary()
KERNEL_OPTIONS: dict[str, Any] = {"cpp.use_decompose_tanh": True}
"""TorchInductor options of the fused steps. ``use_decompose_tanh``: tanh as ``2 / (1 + exp(-2x))
- 1`` (SLEEF's vectorised tanh cost ~3x the exp on this CPU: a 64x64 tanh layer 7 us against 2;
it differs from torch's tanh by ~1e-7)."""


def fusable(env: Any) -> ClassicControlEnv | None:
    """The fused twin of ``env`` if one rollout step of it can be one kernel, else None."""
    twin = fast_env(env)
    if isinstance(twin, ClassicControlEnv) and twin._fused_step and not twin.check_actions:
        return twin
    return None


def _indices(steps: int, device: torch.device) -> list[torch.Tensor]:
    """``[tensor([0]), ..., tensor([steps - 1])]``: the row index of each step, made once."""
    key = (steps, device)
    if key not in _INDICES:
        _INDICES[key] = list(torch.arange(steps, device=device).unsqueeze(1).unbind(0))
    return _INDICES[key]


def _kernel(policy: FusedPolicy, env: ClassicControlEnv, kind: str,
            make: Callable[[], Callable[..., tuple[torch.Tensor, ...]]]) -> FastKernel:
    """The fused ``kind`` step of ``policy`` on ``env`` (one per pair: the env's constants and
    the policy's functions are baked into the traced program)."""
    kernels = _KERNELS.setdefault(policy, {})
    key = (kind, id(env))
    if key not in kernels:
        name = getattr(env, "name", type(env).__name__)
        # The entry holds the env (its step closes over it), so its id is not reused meanwhile.
        kernels[key] = FastKernel(f"{policy.kernel.name} + {name} {kind} step", make(),
                                  KERNEL_OPTIONS)
    return kernels[key]


class _EnvArgs:
    """An env state as flat kernel arguments ``(*fields, time, cursor, pool values)`` and back.

    A fused step returns ``(*fields, time, cursor, ...)`` first: :meth:`take` keeps that output
    list as the state (nothing copied), and a loop passes its first :attr:`n_state` entries on as
    the next step's arguments.

    The reset pool's cursor stays a tensor, an output of one step fed to the next. The host reads
    it only when it must decide a refill: a step consumes at most ``B`` columns, so after a read
    the pool provably lasts ``(P - cursor) // B - 1`` more steps without a look, and
    :meth:`ensure_pool` then refills exactly where the env's own step does. The reads (and the one
    in :meth:`state`) are marked :func:`~rlsuite.engine.syncguard.host_sync_point`: on CPU they
    read a CPU scalar, about every ``P / B = 16`` steps.
    """

    def __init__(self, env: ClassicControlEnv, state: Any, params: Any) -> None:
        self.env = env
        self.n_fields = len(env.state_fields)
        self.n_state = self.n_fields + 2
        """How many leading outputs of a step are the env state: fields, time, cursor."""
        self.pool: autoreset.ResetPool = state.pool
        self._state: list[torch.Tensor] | tuple[torch.Tensor, ...] = [
            *[getattr(state, name) for name in env.state_fields], state.time,
            torch.full((), self.pool.cursor, dtype=torch.int64)]
        self.params, self.params_signature = env._param_tensors(params)
        self.batch = state.time.shape[0]
        self._unread = 0  # steps run since self.pool.cursor was exact

    @property
    def fields(self) -> tuple[torch.Tensor, ...]:
        return tuple(self._state[: self.n_fields])

    @property
    def time(self) -> torch.Tensor:
        return self._state[self.n_fields]

    @property
    def cursor(self) -> torch.Tensor:
        return self._state[self.n_fields + 1]

    def ensure_pool(self, generator: torch.Generator) -> bool:
        """Refill the reset pool exactly where the env's own step would (start of a step).
        True where the pool was refilled: :meth:`flat` then has a new pool and cursor."""
        pool = self.pool
        if pool.values.shape[1] - pool.cursor - self._unread * self.batch >= self.batch:
            return False  # enough columns left even if every copy reset since the last read
        if self._unread:
            pool = self._read_cursor()
        refilled = autoreset.ensure_pool(pool, self.batch, self.env._sample_initial, generator)
        self.pool = refilled
        if refilled is pool:
            return False
        self._state = [*self._state[: self.n_fields + 1],
                       torch.full((), refilled.cursor, dtype=torch.int64)]
        return True

    def _read_cursor(self) -> autoreset.ResetPool:
        from rlsuite.engine.syncguard import host_sync_point

        with host_sync_point():  # a CPU scalar; see the class docstring
            self.pool = autoreset.ResetPool(self.pool.values, int(self.cursor))
        self._unread = 0
        return self.pool

    def flat(self) -> list[torch.Tensor]:
        """``[*fields, time, cursor, pool values]``."""
        return [*self._state[: self.n_state], self.pool.values]

    def take(self, out: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> None:
        """A step's outputs ``(*fields, time, cursor, *rest)`` become the state."""
        self._state = out
        self._unread += 1

    def state(self) -> Any:
        """The env state to continue from (its pool cursor read once)."""
        pool = self._read_cursor() if self._unread else self.pool
        return self.env._make_state(self.fields, self.time, pool)

    def key(self) -> Hashable:
        return (self.env.max_episode_steps, self.params_signature,
                signature([*self.fields, self.time, self.pool.values]))


def _env_step(env: ClassicControlEnv, n_fields: int, n_params: int,
              flat: tuple[torch.Tensor, ...], action: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Trace-time helper: the env's fused CPU step on ``flat = (*fields, time, cursor, pool,
    *params)``; returns ``(*fields, time, reward, terminated, truncated, final_obs, obs, cursor)``."""
    fields, (time, cursor, pool) = flat[:n_fields], flat[n_fields : n_fields + 3]
    params = flat[n_fields + 3 : n_fields + 3 + n_params]
    return env._flat_step(*fields, env._prepare_action(action), time, pool, cursor, *params)


def _rollout_specs(policy: FusedPolicy, env: ClassicControlEnv, head: list[torch.Tensor],
                   env_args: _EnvArgs) -> tuple[Spec, list[Spec], list[Spec]]:
    """Shapes and dtypes of the rollout buffers: the policy's outputs (env action, extras) and
    the env step's reward, terminated, truncated and final observation (one eager run each)."""
    action_spec, *extra_specs = output_specs(policy.kernel.fn, head)
    if len(extra_specs) != len(policy.extras):
        raise ValueError(f"fused policy returns {len(extra_specs)} extras, names {policy.extras}")
    b = head[len(head) - (2 if policy.noise is not None else 1)].shape[0]
    expected = (b, *env.action_space.shape)
    if tuple(action_spec[0]) != expected:  # what env.step checks on every call
        raise ValueError(f"action has shape {tuple(action_spec[0])}; expected {expected}")
    n_f, n_p = len(env_args.fields), len(env_args.params)
    action = torch.zeros(action_spec[0], dtype=action_spec[1], device=head[-1].device)
    step_specs = output_specs(lambda *flat: _env_step(env, n_f, n_p, flat, action),
                              [*env_args.flat(), *env_args.params])
    return action_spec, extra_specs, step_specs[n_f + 1 : n_f + 5]


def collect_fused(
    env: Any,
    state: Any,
    params: Any,
    policy: FusedPolicy,
    num_steps: int,
    generator: torch.Generator,
) -> tuple[Any, Any] | None:
    """:func:`~rlsuite.engine.rollout.collect` with each step one fused kernel; None where the env
    cannot be fused (the caller then steps it the usual way). Same arguments and results."""
    from rlsuite.engine.rollout import EpisodeStats, Rollout, RolloutState

    twin = fusable(env)
    if twin is None:
        return None
    with torch.no_grad():
        env_args = _EnvArgs(twin, state.env_state, params)
        obs, episode = state.obs, state.episode
        weights, weights_signature = policy.weights_and_signature()
        n_w, n_f, n_p = len(weights), len(env_args.fields), len(env_args.params)
        stochastic = policy.noise is not None
        # One draw for the whole rollout where that is the same stream as T draws (and the env's
        # generator, drawn from between the policy's draws, is another generator).
        block = None
        if (stochastic and policy.generator is not generator
                and policy.noise.splits_evenly(obs.shape[0], obs.device)):  # type: ignore[union-attr]
            block = policy.draw(obs, num_steps)
        first_noise = (block[0] if block is not None else policy.draw(obs)) if stochastic else None
        head = [*weights, obs] + ([first_noise] if stochastic else [])
        specs_key = (weights_signature, signature(head[n_w:]), env_args.key())
        specs = _SPECS.setdefault(policy, {}).get((id(twin), specs_key))
        if specs is None:
            specs = _SPECS[policy][(id(twin), specs_key)] = _rollout_specs(
                policy, twin, head, env_args)
        action_spec, extra_specs, (reward_spec, term_spec, trunc_spec, final_spec) = specs

        def buffer(spec: Spec) -> torch.Tensor:
            return torch.empty((num_steps, *spec[0]), dtype=spec[1], device=obs.device)

        out = Rollout(
            obs=buffer((obs.shape, obs.dtype)), action=buffer(action_spec),
            reward=buffer(reward_spec), terminated=buffer(term_spec),
            truncated=buffer(trunc_spec), next_obs=buffer(final_spec),
            episode_return=buffer((episode.returns.shape, episode.returns.dtype)),
            episode_length=buffer((episode.lengths.shape, episode.lengths.dtype)),
            extras={k: buffer(s) for k, s in zip(policy.extras, extra_specs, strict=True)},
        )
        buffers = [out.obs, out.action, out.reward, out.terminated, out.truncated, out.next_obs,
                    out.episode_return, out.episode_length, *out.extras.values()]

        # The kernel's arguments: (*weights, *fields, time, cursor, pool values, *params,
        # [noise], t, obs, episode return, episode length, *buffers). Its outputs, (*fields, time,
        # cursor, obs, episode return, episode length), go back into this list in place: a step
        # of the loop below is two slice writes and the call.
        n_noise = 1 if stochastic else 0
        at_env, at_t = n_w, n_w + n_f + 3 + n_p + n_noise
        at_obs, n_state = at_t + 1, env_args.n_state

        def step(*flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
            weights, noise = flat[:n_w], flat[at_t - n_noise : at_t]
            t, obs, ep_return, ep_length = flat[at_t : at_obs + 3]
            buffers = flat[at_obs + 3 :]
            action, *extras = policy.kernel.fn(*weights, obs, *noise)
            (*fields, time, reward, terminated, truncated, final_obs, next_obs, cursor) = _env_step(
                twin, n_f, n_p, flat[at_env:], action)
            # EpisodeStats.update, op for op.
            done = terminated | truncated
            returns, lengths = ep_return + reward, ep_length + 1
            finished_return = torch.where(done, returns, torch.zeros_like(returns))
            finished_length = torch.where(done, lengths, torch.zeros_like(lengths))
            row = (obs, action, reward, terminated, truncated, final_obs, finished_return,
                   finished_length, *extras)
            for buf, value in zip(buffers, row, strict=True):
                buf.index_put_((t,), value.unsqueeze(0))
            return (*fields, time, cursor, next_obs, returns - finished_return,
                    lengths - finished_length)

        kernel = _kernel(policy, twin, "rollout", lambda: step)
        indices = _indices(num_steps, obs.device)
        # The noise of each step: views of the rollout's one draw, made at once.
        rows = list(block.unbind(0)) if block is not None else None
        args = [*weights, *env_args.flat(), *env_args.params,
                *([first_noise] if stochastic else []), indices[0], obs, episode.returns,
                episode.lengths, *buffers]
        for t in range(num_steps):
            if t:
                if stochastic:
                    args[at_t - 1] = rows[t] if rows is not None else policy.draw(args[at_obs])
                args[at_t] = indices[t]
            if env_args.ensure_pool(generator):
                args[at_env : at_env + n_state + 1] = env_args.flat()
            if t < 2:  # from the second step on, the state is the kernel's own output: the
                # signature of step 1 holds for every later step (step 0's state may have been
                # laid out by something else: a reset, the eager path, a checkpoint)
                key = ("rollout", weights_signature, env_args.key(),
                       signature(args[at_t - n_noise :]), num_steps)
                run = kernel.runner(args, key)
            result = run(args)
            env_args.take(result)
            args[at_env : at_env + n_state] = result[:n_state]
            args[at_obs : at_obs + 3] = result[n_state:]
        obs, ep_return, ep_length = args[at_obs : at_obs + 3]
    return out, RolloutState(obs, env_args.state(), EpisodeStats(ep_return, ep_length))


def evaluate_fused(
    policy: FusedPolicy,
    env: Any,
    params: Any,
    episodes: int,
    generator: torch.Generator,
    max_steps: int,
    check_every: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """The loop of :func:`~rlsuite.engine.evaluate.evaluate` with each step one fused kernel;
    None where the env cannot be fused. Returns ``(returns, lengths, count)``: ``[B, episodes + 1]``
    (the last column a sink for extra episodes) and ``[B]`` episodes finished per copy."""
    from rlsuite.engine.evaluate import _bookkeeping
    from rlsuite.engine.rollout import EpisodeStats
    from rlsuite.engine.syncguard import host_sync_point

    twin = fusable(env)
    if twin is None or policy.noise is not None:
        return None
    with torch.no_grad():
        obs, env_state = twin.reset(params, generator)
        env_args = _EnvArgs(twin, env_state, params)
        b, device = obs.shape[0], obs.device
        returns = torch.zeros(b, episodes + 1, dtype=torch.float32, device=device)
        lengths = torch.zeros(b, episodes + 1, dtype=torch.int64, device=device)
        count = torch.zeros(b, dtype=torch.int64, device=device)
        stats = EpisodeStats.zeros(b, device)
        weights, weights_signature = policy.weights_and_signature()
        n_w, n_f, n_p = len(weights), len(env_args.fields), len(env_args.params)

        def step(*flat: torch.Tensor) -> tuple[torch.Tensor, ...]:
            i = n_w + n_f + 3 + n_p
            weights, obs = flat[:n_w], flat[i]
            returns, lengths, count, ep_return, ep_length = flat[i + 1 : i + 6]
            action = policy.kernel.fn(*weights, obs)[0]
            (*fields, time, reward, terminated, truncated, _, next_obs, cursor) = _env_step(
                twin, n_f, n_p, flat[n_w:], action)
            rows = torch.arange(returns.shape[0], device=returns.device)
            # The eager loop's bookkeeping, writing into returns / lengths in place.
            _, _, count, stats = _bookkeeping(
                returns, lengths, count, EpisodeStats(ep_return, ep_length), reward,
                terminated | truncated, rows, returns.shape[1] - 1)
            return (*fields, time, cursor, next_obs, count, stats.returns, stats.lengths)

        kernel = _kernel(policy, twin, "evaluation", lambda: step)
        # The kernel's arguments, built once as in collect_fused: (*weights, *fields, time,
        # cursor, pool values, *params, obs, returns, lengths, count, episode return, episode
        # length). Its outputs (*fields, time, cursor, obs, count, episode return, episode
        # length) go back into this list in place: a step is three slice writes and the call.
        at_env, at_obs, n_state = n_w, n_w + n_f + 3 + n_p, env_args.n_state
        args = [*weights, *env_args.flat(), *env_args.params, obs, returns, lengths, count,
                stats.returns, stats.lengths]
        for t in range(max_steps):
            if env_args.ensure_pool(generator):
                args[at_env : at_env + n_state + 1] = env_args.flat()
            if t < 2:  # as in collect_fused: step 1's signature holds from then on
                key = ("evaluation", weights_signature, env_args.key(), signature(args[at_obs:]))
                run = kernel.runner(args, key)
            out = run(args)
            env_args.take(out)
            args[at_env : at_env + n_state] = out[:n_state]
            args[at_obs] = out[n_state]  # the next observation
            args[at_obs + 3 : at_obs + 6] = out[n_state + 1 :]  # count, episode statistics
            if (t + 1) % check_every == 0:
                with host_sync_point():  # the loop's one intended sync, every check_every steps
                    if bool((args[at_obs + 3] >= episodes).all()):
                        break
    return returns, lengths, args[at_obs + 3]
