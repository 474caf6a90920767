"""``check_env``: does an engine env keep the batched-env contract?

The contract is the one in :mod:`rlsuite.core.env`. The checker runs the env with random actions
and raises :class:`EnvCheckError` naming the first thing that breaks it:

* shapes (``[B, *space.shape]``), dtypes (float32 Box observations, float32 rewards, bool flags)
  and devices of everything ``reset`` and ``step`` return, the state included;
* observations inside the declared observation space;
* ``final_obs == obs`` where no episode ended, the time counter restarting where one did, and
  ``final_obs`` being the observation the transition reached, not the next episode's first one;
* a declared time limit truncating exactly at ``max_episode_steps`` (gymnasium's ``TimeLimit``:
  ``truncated`` on the step that reaches the limit, whatever ``terminated`` says);
* determinism: one seed gives a bit-identical run, another seed a different one;
* bad input rejected: params of the wrong shape, dtype or batch size by ``reset`` with a
  ``ValueError`` naming the field, actions of the wrong shape by ``step``.

SB3's ``common/env_checker.py`` and gymnasium's ``utils/env_checker.py`` do this job for
single, stateful envs; this is the same idea for stateless batched ones.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from rlsuite.core import spaces, tree
from rlsuite.core.env import BatchedEnv, Step


class EnvCheckError(AssertionError):
    """An engine env breaks the batched-env contract; the message says where and how."""


@dataclass(frozen=True)
class CheckReport:
    """What a passing :func:`check_env` run covered."""

    steps: int
    """Steps taken in the main run."""
    episodes_ended: int
    """Copy-episodes that ended (terminated or truncated) during the main run."""
    truncations: int
    """Copy-episodes that hit the time limit during the main run."""


def check_env(
    env: BatchedEnv,
    batch_size: int = 4,
    seed: int = 0,
    num_steps: int | None = None,
    params: Any = None,
    randomized: bool = True,
) -> CheckReport:
    """Check that ``env`` keeps the batched-env contract; raise :class:`EnvCheckError` if not.

    Args:
        env: the engine env to check.
        batch_size: copies to run (ignored when ``params`` is given: its batch size is used).
        seed: seed of the env generator; the action generator uses ``seed + 1``.
        num_steps: steps of the main run; default ``max_episode_steps + 1`` (so every copy that
            survives meets the time limit) or 1000 without a time limit.
        params: params to run with (default ``env.default_params(batch_size)``).
        randomized: the env draws random initial states or transitions, so a different seed
            must give a different run; pass False for an env without randomness.

    Returns:
        A :class:`CheckReport`. A warning is issued when no episode ended within ``num_steps``
        (autoreset was then not exercised).
    """
    if params is None:
        params = env.default_params(batch_size)
    b = tree.batch_size(params)
    if num_steps is None:
        num_steps = env.max_episode_steps + 1 if env.max_episode_steps is not None else 1000
    _check_spaces(env)
    _check_params_rejected(env, params)

    run = _run(env, params, seed, num_steps)
    _check_determinism(env, params, seed, num_steps, run, randomized)
    _check_actions_rejected(env, params, seed)
    _check_action_values_rejected(env, params, seed)
    _check_time_limit_by_injection(env, params, seed)
    _check_final_obs_is_pre_reset(env, params, seed)

    ended = sum(int(s.done.sum()) for s in run.steps)
    truncations = sum(int(s.truncated.sum()) for s in run.steps)
    if ended == 0:
        warnings.warn(
            f"check_env({env!r}): no episode ended in {num_steps} steps of {b} copies, so "
            "autoreset was not exercised; raise num_steps",
            stacklevel=2,
        )
    return CheckReport(steps=num_steps, episodes_ended=ended, truncations=truncations)


# -- one run, checked step by step ----------------------------------------------------------------


@dataclass
class _Run:
    reset_obs: torch.Tensor
    reset_state: Any
    steps: list[Step]
    actions: list[torch.Tensor]


def _run(env: BatchedEnv, params: Any, seed: int, num_steps: int, check: bool = True) -> _Run:
    """Reset, then step ``num_steps`` times with random actions; check every output if ``check``."""
    b = tree.batch_size(params)
    generator = env.make_generator(seed)
    action_gen = torch.Generator(device=env.device).manual_seed(seed + 1)
    action_space = env.action_space.batched(b)
    obs, state = env.reset(params, generator)
    if check:
        _check_obs(env, obs, b, "reset() obs")
        _check_state(env, state, b, "reset() state")
        time = _time_of(state)
        if time is not None and bool((time != 0).any()):
            raise EnvCheckError(f"reset() state.time must be all 0, got {time.tolist()}")
    run = _Run(obs, state, [], [])
    episode_len = torch.zeros(b, dtype=torch.int64, device=env.device)
    for t in range(num_steps):
        action = action_space.sample(action_gen)
        step = env.step(state, action, params, generator)
        run.steps.append(step)
        run.actions.append(action)
        if check:
            episode_len = _check_step(env, state, step, b, t, episode_len)
        state = step.state
    return run


def _check_step(
    env: BatchedEnv, prev_state: Any, step: Step, b: int, t: int, episode_len: torch.Tensor
) -> torch.Tensor:
    where = f"step() call {t}"
    if not isinstance(step, Step):
        raise EnvCheckError(
            f"{where} returned {type(step).__name__}; expected rlsuite.core.env.Step"
        )
    _check_obs(env, step.obs, b, f"{where} obs")
    _check_obs(env, step.final_obs, b, f"{where} final_obs")
    _check_tensor(env, step.reward, (b,), torch.float32, f"{where} reward")
    if not bool(torch.isfinite(step.reward).all()):
        raise EnvCheckError(f"{where} reward is not finite: {step.reward.tolist()}")
    _check_tensor(env, step.terminated, (b,), torch.bool, f"{where} terminated")
    _check_tensor(env, step.truncated, (b,), torch.bool, f"{where} truncated")
    _check_state(env, step.state, b, f"{where} state")
    if type(step.state) is not type(prev_state):
        raise EnvCheckError(
            f"{where} state is {type(step.state).__name__}; "
            f"reset() gave {type(prev_state).__name__}"
        )

    done = step.done
    running = ~done
    if not torch.equal(step.obs[running], step.final_obs[running]):
        bad = (step.obs != step.final_obs).reshape(b, -1).any(1) & running
        raise EnvCheckError(
            f"{where}: final_obs differs from obs in copies {_idx(bad)} where no episode ended; "
            "final_obs must equal obs there"
        )

    # Episode lengths as gymnasium's TimeLimit counts them: truncated exactly at the limit.
    episode_len = episode_len + 1
    limit = env.max_episode_steps
    expected = (
        torch.zeros_like(step.truncated) if limit is None else episode_len >= limit
    )
    if not torch.equal(step.truncated, expected):
        wrong = step.truncated != expected
        raise EnvCheckError(
            f"{where}: truncated is {step.truncated.tolist()} after episodes of length "
            f"{episode_len.tolist()}; with max_episode_steps={limit} it must be "
            f"{expected.tolist()} (copies {_idx(wrong)} wrong)"
        )

    time, prev_time = _time_of(step.state), _time_of(prev_state)
    if time is not None and prev_time is not None:
        want = torch.where(done, torch.zeros_like(prev_time), prev_time + 1)
        if not torch.equal(time, want):
            raise EnvCheckError(
                f"{where}: state.time is {time.tolist()}; after {prev_time.tolist()} with done "
                f"{done.tolist()} it must be {want.tolist()} (0 where an episode ended: autoreset)"
            )
    return torch.where(done, torch.zeros_like(episode_len), episode_len)


# -- the pieces ---------------------------------------------------------------------------------


def _same_device(device: torch.device, env_device: torch.device) -> bool:
    if device.type != env_device.type:
        return False
    return env_device.index is None or device.index in (None, env_device.index)


def _check_spaces(env: BatchedEnv) -> None:
    for name in ("observation_space", "action_space"):
        space = getattr(env, name, None)
        if not isinstance(space, (spaces.Box, spaces.Discrete)):
            raise EnvCheckError(
                f"env.{name} must be a rlsuite.core.spaces Box or Discrete, got {space!r}"
            )
        if space.batch_shape != ():
            raise EnvCheckError(
                f"env.{name} must describe one copy (batch_shape ()), got {space.batch_shape}"
            )
        if not _same_device(space.device, env.device):
            raise EnvCheckError(f"env.{name} is on {space.device}; the env runs on {env.device}")
    obs_space = env.observation_space
    if isinstance(obs_space, spaces.Box) and obs_space.dtype != torch.float32:
        raise EnvCheckError(f"a Box observation space must be float32, got {obs_space.dtype}")
    limit = env.max_episode_steps
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise EnvCheckError(f"env.max_episode_steps must be a positive int or None, got {limit!r}")


def _check_tensor(
    env: BatchedEnv, x: Any, shape: tuple[int, ...], dtype: torch.dtype, what: str
) -> None:
    if not isinstance(x, torch.Tensor):
        raise EnvCheckError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape) != shape:
        raise EnvCheckError(f"{what} has shape {tuple(x.shape)}; expected {shape}")
    if x.dtype != dtype:
        raise EnvCheckError(f"{what} has dtype {x.dtype}; expected {dtype}")
    if not _same_device(x.device, env.device):
        raise EnvCheckError(f"{what} is on {x.device}; the env runs on {env.device}")


def _check_obs(env: BatchedEnv, obs: Any, b: int, what: str) -> None:
    space = env.observation_space
    _check_tensor(env, obs, (b, *space.shape), space.dtype, what)
    if not space.batched(b).contains(obs):
        raise EnvCheckError(f"{what} is outside env.observation_space: {_outside(space, obs)}")


def _outside(space: spaces.Space, obs: torch.Tensor) -> str:
    if isinstance(space, spaces.Box):
        bad = (obs < space.low) | (obs > space.high) | torch.isnan(obs)
        first = bad.nonzero()[0].tolist()
        return (
            f"obs{first} = {obs[tuple(first)].item()} not in "
            f"[{space.low[tuple(first[1:])].item()}, {space.high[tuple(first[1:])].item()}]"
        )
    bad = (obs < 0) | (obs >= space.n)
    return f"values {obs[bad].tolist()} not in [0, {space.n})"


def _check_state(env: BatchedEnv, state: Any, b: int, what: str) -> None:
    if not dataclasses.is_dataclass(state):
        raise EnvCheckError(f"{what} must be a dataclass of tensors, got {type(state).__name__}")
    for key, value in tree.flatten(state).items():
        if not isinstance(value, torch.Tensor):
            continue
        if not _same_device(value.device, env.device):
            raise EnvCheckError(f"{what}.{key} is on {value.device}; the env runs on {env.device}")
    for key, value in tree.tensor_items(state):
        if value.dim() == 0 or value.shape[0] != b:
            raise EnvCheckError(f"{what}.{key} has shape {tuple(value.shape)}; expected ({b}, ...)")


def _time_of(state: Any) -> torch.Tensor | None:
    time = getattr(state, "time", None)
    return time if isinstance(time, torch.Tensor) else None


def _idx(mask: torch.Tensor) -> list[int]:
    return mask.nonzero().flatten().tolist()


def _equal_trees(a: Any, b: Any) -> str | None:
    """Name of the first leaf where two outputs differ (bitwise for tensors), or None."""
    fa, fb = tree.flatten(a), tree.flatten(b)
    for key, va in fa.items():
        vb = fb[key]
        if isinstance(va, torch.Tensor):
            if not (va.shape == vb.shape and va.dtype == vb.dtype and torch.equal(va, vb)):
                return key
        elif va != vb:
            return key
    return None


def _check_determinism(
    env: BatchedEnv, params: Any, seed: int, num_steps: int, first: _Run, randomized: bool
) -> None:
    again = _run(env, params, seed, num_steps, check=False)
    if not torch.equal(first.reset_obs, again.reset_obs):
        raise EnvCheckError(
            f"not deterministic: two reset() calls with generators seeded {seed} give different "
            "obs; draw all randomness from the generator passed in"
        )
    leaf = _equal_trees(first.reset_state, again.reset_state)
    if leaf is not None:
        raise EnvCheckError(
            f"not deterministic: two reset() calls with seed {seed} differ in state.{leaf}"
        )
    for t, (sa, sb) in enumerate(zip(first.steps, again.steps, strict=True)):
        leaf = _equal_trees(sa, sb)
        if leaf is not None:
            raise EnvCheckError(
                f"not deterministic: two runs with seed {seed} and the same actions differ at "
                f"step() call {t} in {leaf}; draw all randomness from the generator passed in"
            )
    if not randomized:
        return
    other = _run(env, params, seed + 1000, min(num_steps, 50), check=False)
    same = torch.equal(first.reset_obs, other.reset_obs) and all(
        _equal_trees(sa, sb) is None for sa, sb in zip(first.steps, other.steps, strict=False)
    )
    if same:
        raise EnvCheckError(
            f"seeds {seed} and {seed + 1000} give the same run: the env ignores its generator "
            "(pass randomized=False for an env without randomness)"
        )


def _bad_params(params: Any) -> list[tuple[str, str, Any, set[str]]]:
    """``(field, what is wrong, params, names the error may blame)`` for each field and mistake.

    A wrong shape or dtype must be blamed on its field. When one field's batch size disagrees
    with the others', any field may be blamed: ``reset`` has no separate batch size, so which
    field is the reference is the env's choice (``validate_params`` takes the first field, the
    tabular env the last).
    """
    out = []
    b = tree.batch_size(params)
    fields = tree.tensor_items(params)
    every = {name for name, _ in fields}
    for name, value in fields:
        wrong_dtype = torch.float64 if value.dtype != torch.float64 else torch.float32
        variants = [
            (f"shape {(b, *value.shape[1:], 1)}", value.unsqueeze(-1), {name}),
            (f"dtype {wrong_dtype}", value.to(wrong_dtype), {name}),
        ]
        if len(fields) > 1:
            variants.append((f"batch size {b + 1}", torch.cat([value, value[:1]]), every))
        for what, bad, blame in variants:
            out.append((name, what, dataclasses.replace(params, **{name: bad}), blame))
    return out


def _check_params_rejected(env: BatchedEnv, params: Any) -> None:
    for name, what, bad, blame in _bad_params(params):
        try:
            env.reset(bad, env.make_generator(0))
        except ValueError as err:
            if not any(re.search(rf"\b{re.escape(n)}\b", str(err)) for n in blame):
                raise EnvCheckError(
                    f"reset() rejected params.{name} with {what}, but its ValueError does not "
                    f"name the field: {err!r}"
                ) from err
            continue
        except Exception as err:
            raise EnvCheckError(
                f"reset() with params.{name} of {what} raised {type(err).__name__} ({err}); "
                f"expected a ValueError naming {name!r} (use env.check_params)"
            ) from err
        raise EnvCheckError(
            f"reset() accepted params.{name} with {what}; it must raise a ValueError naming "
            f"the field (call env.check_params / rlsuite.core.params.validate_params)"
        )


def _check_actions_rejected(env: BatchedEnv, params: Any, seed: int) -> None:
    b = tree.batch_size(params)
    generator = env.make_generator(seed)
    _, state = env.reset(params, generator)
    good = env.action_space.batched(b).sample(torch.Generator(device=env.device).manual_seed(0))
    shape = tuple(env.action_space.shape)
    wrong = {
        "a trailing extra dim": good.unsqueeze(-1),
        f"batch size {b + 1}": torch.cat([good, good[:1]]),
    }
    if shape:
        wrong["no event dim"] = good.reshape(b, -1)[:, 0]
    for what, action in wrong.items():
        try:
            env.step(state, action, params, generator)
        except (ValueError, TypeError) as err:
            if "action" not in str(err):
                raise EnvCheckError(
                    f"step() rejected an action of shape {tuple(action.shape)} ({what}) but its "
                    f"error does not say it is the action: {err!r}"
                ) from err
            continue
        except Exception as err:
            raise EnvCheckError(
                f"step() with an action of shape {tuple(action.shape)} ({what}; expected "
                f"{(b, *shape)}) raised {type(err).__name__} ({err}); expected a ValueError"
            ) from err
        raise EnvCheckError(
            f"step() accepted an action of shape {tuple(action.shape)} ({what}); expected "
            f"{(b, *shape)}: it must raise a ValueError"
        )


def _check_action_values_rejected(env: BatchedEnv, params: Any, seed: int) -> None:
    """With ``env.check_actions`` on (the debug switch), an action value outside the space (a
    Discrete index ``n``, a NaN in a Box) must raise a ValueError that says it is the action."""
    b = tree.batch_size(params)
    generator = env.make_generator(seed)
    _, state = env.reset(params, generator)
    action = env.action_space.batched(b).sample(torch.Generator(device=env.device).manual_seed(0))
    if isinstance(env.action_space, spaces.Discrete):
        action[0] = env.action_space.n
        what = f"index {env.action_space.n}"
    else:
        action = action.clone()
        action.reshape(b, -1)[0, 0] = math.nan
        what = "a NaN entry"
    previous = env.check_actions
    env.check_actions = True
    try:
        env.step(state, action, params, generator)
    except ValueError as err:
        if "action" not in str(err):
            raise EnvCheckError(f"step() rejected an action with {what} but its error does not "
                                f"say it is the action: {err!r}") from err
        return
    finally:
        env.check_actions = previous
    raise EnvCheckError(f"step() with check_actions=True accepted an action with {what}; call "
                        f"self.check_action_values(action) in step when self.check_actions is set")


def _at_time(state: Any, value: int) -> Any:
    time = _time_of(state)
    assert time is not None
    return dataclasses.replace(state, time=torch.full_like(time, value))


def _check_time_limit_by_injection(env: BatchedEnv, params: Any, seed: int) -> None:
    """With a ``time`` counter in the state: a step from ``limit - 1`` truncates every copy."""
    limit = env.max_episode_steps
    b = tree.batch_size(params)
    _, state = env.reset(params, env.make_generator(seed))
    if limit is None or _time_of(state) is None:
        return
    action = env.action_space.batched(b).sample(torch.Generator(device=env.device).manual_seed(0))
    if limit >= 2:
        step = env.step(_at_time(state, limit - 2), action, params, env.make_generator(seed))
        if bool(step.truncated.any()):
            raise EnvCheckError(
                f"a step from state.time = {limit - 2} truncated copies {_idx(step.truncated)}; "
                f"with max_episode_steps={limit} only the step from {limit - 1} may"
            )
    step = env.step(_at_time(state, limit - 1), action, params, env.make_generator(seed))
    if not bool(step.truncated.all()):
        raise EnvCheckError(
            f"a step from state.time = {limit - 1} did not truncate copies "
            f"{_idx(~step.truncated)}; with max_episode_steps={limit} every copy must "
            "(terminated or not: gymnasium's TimeLimit)"
        )


def _check_final_obs_is_pre_reset(env: BatchedEnv, params: Any, seed: int) -> None:
    """``final_obs`` must not be the next episode's first observation.

    With a ``time`` counter and a time limit: one step from ``limit - 1`` (every copy truncates
    and resets) and the same step from ``limit - 2`` (no truncation) must reach the same
    observation, given the same generator seed, in the copies that do not terminate. This
    assumes the transition does not depend on the time counter. Without a counter: over a run,
    ``final_obs`` must differ from ``obs`` in some copy that reset (Box observations only).
    """
    limit = env.max_episode_steps
    b = tree.batch_size(params)
    _, state = env.reset(params, env.make_generator(seed))
    if limit is not None and limit >= 2 and _time_of(state) is not None:
        action = env.action_space.batched(b).sample(
            torch.Generator(device=env.device).manual_seed(0)
        )
        ended = env.step(_at_time(state, limit - 1), action, params, env.make_generator(seed))
        going = env.step(_at_time(state, limit - 2), action, params, env.make_generator(seed))
        keep = ~going.terminated
        if not torch.equal(ended.final_obs[keep], going.obs[keep]):
            bad = (ended.final_obs != going.obs).reshape(b, -1).any(1) & keep
            raise EnvCheckError(
                f"final_obs is not the observation the transition reached: in copies {_idx(bad)} "
                "the step that truncates (and resets) reports a different final_obs than the same "
                "step without a reset reports as obs; final_obs must be taken before the reset"
            )
        return
    if not isinstance(env.observation_space, spaces.Box):
        return
    run = _run(env, params, seed, 200, check=False)
    resets = [(s.final_obs[s.done], s.obs[s.done]) for s in run.steps]
    resets = [(f, o) for f, o in resets if f.numel()]
    if resets and all(torch.equal(f, o) for f, o in resets):
        raise EnvCheckError(
            "final_obs equals the post-reset obs in every copy that reset: final_obs must be the "
            "observation the episode ended on, taken before the reset"
        )
