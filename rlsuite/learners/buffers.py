"""Transition storage on the env's device: a replay ring buffer and an offline dataset.

Both hold :class:`Transitions`: ``obs, action, reward, next_obs, terminated, truncated`` plus
optional named extras, every tensor ``[N, ...]``. ``next_obs`` is the observation the transition
reached *before* any autoreset (``Rollout.next_obs``), and ``terminated`` / ``truncated`` stay
separate, so a learner bootstraps through time limits (gymnasium's ``TimeLimit`` semantics).

Writes and samples are whole-tensor operations (at most two slice copies per field per write, one
gather per field per sample): no Python loop over transitions and no host sync.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from rlsuite.checkpoint import atomic_save
from rlsuite.core.env import BatchedEnv
from rlsuite.engine.rollout import Rollout

CORE_FIELDS = ("obs", "action", "reward", "next_obs", "terminated", "truncated")
"""The fields every transition has, in storage order."""

FieldSpec = tuple[tuple[int, ...], torch.dtype]
"""Event shape (without the leading N) and dtype of one stored field."""


@dataclass(frozen=True)
class Transitions:
    """A batch of ``N`` transitions; every tensor has leading dim ``N`` (also the sample type)."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    """``[N]`` float."""
    next_obs: torch.Tensor
    """The observation reached, before any autoreset."""
    terminated: torch.Tensor
    """``[N]`` bool: ``next_obs`` is terminal, do not bootstrap."""
    truncated: torch.Tensor
    """``[N]`` bool: the episode hit its time limit after this transition (still bootstrap)."""
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    """Optional named fields (log-probs, episode ids, domain labels...)."""

    def items(self) -> list[tuple[str, torch.Tensor]]:
        """``(name, tensor)`` for the core fields, then the extras."""
        return [(n, getattr(self, n)) for n in CORE_FIELDS] + list(self.extras.items())

    def __len__(self) -> int:
        return self.reward.shape[0]

    def map(self, fn: Any) -> Transitions:
        """Apply ``fn`` to every tensor (core fields and extras)."""
        core = {n: fn(getattr(self, n)) for n in CORE_FIELDS}
        return Transitions(**core, extras={k: fn(v) for k, v in self.extras.items()})

    def index(self, idx: torch.Tensor | slice) -> Transitions:
        """Select rows (an index tensor gathers, a slice views)."""
        return self.map(lambda x: x[idx])

    def to(self, device: torch.device | str) -> Transitions:
        """Move every tensor to ``device``."""
        return self.map(lambda x: x.to(device))

    @staticmethod
    def from_rollout(
        rollout: Rollout, extras: Sequence[str] = (), env_major: bool = False
    ) -> Transitions:
        """Flatten a ``[T, B, ...]`` rollout into ``T * B`` transitions.

        Args:
            rollout: from :func:`rlsuite.engine.rollout.collect`.
            extras: names of ``rollout.extras`` to keep (a missing name is a KeyError naming it).
            env_major: order rows copy by copy (each copy's steps contiguous) instead of step by
                step (all copies of step 0, then step 1, ...).
        """
        missing = [k for k in extras if k not in rollout.extras]
        if missing:
            raise KeyError(f"rollout has no extras {missing}; it has {sorted(rollout.extras)}")

        def flat(x: torch.Tensor) -> torch.Tensor:
            x = x.transpose(0, 1) if env_major else x
            return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])

        return Transitions(
            obs=flat(rollout.obs), action=flat(rollout.action), reward=flat(rollout.reward),
            next_obs=flat(rollout.next_obs), terminated=flat(rollout.terminated),
            truncated=flat(rollout.truncated), extras={k: flat(rollout.extras[k]) for k in extras},
        )


def _check_fields(where: str, data: Transitions, spec: Mapping[str, FieldSpec]) -> int:
    """Check ``data`` against ``spec``; return N. Errors name the offending field."""
    unknown = sorted(set(data.extras) - set(spec))
    if unknown:
        raise ValueError(f"{where}: unknown extra fields {unknown}; stored fields: {list(spec)}")
    n = data.obs.shape[0] if data.obs.dim() else 0  # a 0-d obs fails the shape check below
    for name, (shape, dtype) in spec.items():
        value = getattr(data, name) if name in CORE_FIELDS else data.extras.get(name)
        if value is None:
            raise ValueError(f"{where}: field {name!r} is missing")
        if tuple(value.shape) != (n, *shape):
            raise ValueError(f"{where}: field {name!r} has shape {tuple(value.shape)}, expected "
                             f"{(n, *shape)} (N = {n} transitions, event shape {shape})")
        kinds = (value.dtype == torch.bool, value.is_floating_point())
        if kinds != (dtype == torch.bool, dtype.is_floating_point):
            raise ValueError(f"{where}: field {name!r} has dtype {value.dtype}, "
                             f"which cannot be stored as {dtype}")
    return n


class ReplayBuffer:
    """A preallocated ring buffer of transitions on one device.

    Holds the last ``capacity`` transitions added, in the order added. Counters are Python ints
    derived from the number of rows written, so no write or sample reads a tensor on the host.

    Args:
        capacity: transitions kept.
        obs_shape, action_shape: event shapes of one observation / action.
        obs_dtype, action_dtype, reward_dtype: storage dtypes (inputs are cast).
        extras: ``{name: (event shape, dtype)}`` of optional fields to store.
        device: where the storage lives (the env's device).
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: Sequence[int],
        action_shape: Sequence[int],
        *,
        obs_dtype: torch.dtype = torch.float32,
        action_dtype: torch.dtype = torch.float32,
        reward_dtype: torch.dtype = torch.float32,
        extras: Mapping[str, FieldSpec] | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        if capacity < 1:
            raise ValueError(f"ReplayBuffer: capacity must be >= 1, got {capacity}")
        clash = sorted(set(extras or {}) & set(CORE_FIELDS))
        if clash:
            raise ValueError(f"ReplayBuffer: extras {clash} clash with the core fields")
        obs_shape, action_shape = tuple(obs_shape), tuple(action_shape)
        self.spec: dict[str, FieldSpec] = {
            "obs": (obs_shape, obs_dtype), "action": (action_shape, action_dtype),
            "reward": ((), reward_dtype), "next_obs": (obs_shape, obs_dtype),
            "terminated": ((), torch.bool), "truncated": ((), torch.bool),
            **{k: (tuple(s), d) for k, (s, d) in (extras or {}).items()},
        }
        self.capacity = int(capacity)
        self.device = torch.device(device)
        self.storage = {
            name: torch.zeros((self.capacity, *shape), dtype=dtype, device=self.device)
            for name, (shape, dtype) in self.spec.items()
        }
        self.pos = 0
        """Row the next transition goes to."""
        self.size = 0
        """Rows filled (``<= capacity``)."""

    @classmethod
    def for_env(
        cls, env: BatchedEnv, capacity: int, extras: Mapping[str, FieldSpec] | None = None
    ) -> ReplayBuffer:
        """A buffer shaped for ``env``'s spaces, on ``env.device``."""
        obs, act = env.observation_space, env.action_space
        return cls(capacity, obs.shape, act.shape, obs_dtype=obs.dtype, action_dtype=act.dtype,
                   extras=extras, device=env.device)

    def __len__(self) -> int:
        return self.size

    def add(self, data: Transitions) -> None:
        """Append ``N`` transitions; once full, the oldest are overwritten (ring order)."""
        n = _check_fields("ReplayBuffer.add", data, self.spec)
        # Writing row i to (pos + i) % capacity one by one would leave only the last `capacity`
        # rows; skip the others and write the rest as at most two contiguous slices.
        skip = max(0, n - self.capacity)
        m = n - skip
        start = (self.pos + skip) % self.capacity
        first = min(m, self.capacity - start)
        for name, value in data.items():
            dest = self.storage[name]
            dest[start : start + first] = value[skip : skip + first]
            if first < m:
                dest[: m - first] = value[skip + first :]
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def add_rollout(self, rollout: Rollout) -> None:
        """Append a ``[T, B]`` rollout step by step (all copies of step 0 first); the buffer's
        extra fields are read from ``rollout.extras``."""
        extras = [k for k in self.spec if k not in CORE_FIELDS]
        self.add(Transitions.from_rollout(rollout, extras))

    def sample(self, batch_size: int, generator: torch.Generator) -> Transitions:
        """``batch_size`` transitions drawn uniformly with replacement (the generator's device
        must be the buffer's)."""
        if self.size == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty")
        idx = torch.randint(self.size, (batch_size,), generator=generator, device=self.device)
        return self._rows(idx)

    def ordered(self) -> Transitions:
        """Every stored transition, oldest first (a copy)."""
        start = self.pos if self.size == self.capacity else 0
        idx = (torch.arange(self.size, device=self.device) + start) % self.capacity
        return self._rows(idx)

    def _rows(self, idx: torch.Tensor) -> Transitions:
        rows = {name: t.index_select(0, idx) for name, t in self.storage.items()}
        core = {n: rows.pop(n) for n in CORE_FIELDS}
        return Transitions(**core, extras=rows)

    def state_dict(self) -> dict[str, Any]:
        """Counters and the filled rows (cloned tensors; weights-only loadable)."""
        return {"capacity": self.capacity, "pos": self.pos, "size": self.size,
                "data": {k: v[: self.size].clone() for k, v in self.storage.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state_dict` (same capacity and fields; tensors moved to device)."""
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"ReplayBuffer: saved capacity {state['capacity']} != {self.capacity}")
        size, data = int(state["size"]), state["data"]
        if sorted(data) != sorted(self.storage):
            raise ValueError(f"ReplayBuffer: saved fields {sorted(data)} != {sorted(self.storage)}")
        for name, dest in self.storage.items():
            value = data[name]
            if tuple(value.shape) != (size, *dest.shape[1:]) or value.dtype != dest.dtype:
                raise ValueError(f"ReplayBuffer: saved field {name!r} is {value.dtype} "
                                 f"{tuple(value.shape)}, expected {dest.dtype} "
                                 f"{(size, *dest.shape[1:])}")
        for name, dest in self.storage.items():
            dest[:size] = data[name].to(self.device)
        self.pos, self.size = int(state["pos"]), size


DATASET_FORMAT = "rlsuite.offline_dataset"
DATASET_VERSION = 1
_PLAIN = (str, int, float, bool, type(None))


def _check_plain(value: Any, key: str) -> None:
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{key}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_plain(v, f"{key}.{k}")
    elif not isinstance(value, _PLAIN):
        raise TypeError(f"OfflineDataset metadata {key!r} is a {type(value).__name__}; "
                        "only str, int, float, bool, None, lists and dicts of them are saved")


class OfflineDataset:
    """A fixed set of transitions with a small metadata dict, saved and loaded as plain tensors.

    ``extras`` may hold ``episode_id`` and ``timestep`` (int64 ``[N]``), which
    :meth:`from_rollouts` fills in. The file is one ``torch.save`` of tensors and plain data,
    written atomically and read with ``weights_only=True`` (nothing in it runs).
    """

    def __init__(self, data: Transitions, metadata: Mapping[str, Any] | None = None) -> None:
        obs_spec = (tuple(data.obs.shape[1:]), data.obs.dtype)
        spec = {name: (tuple(t.shape[1:]), t.dtype) for name, t in data.items()}
        spec |= {"reward": ((), data.reward.dtype), "next_obs": obs_spec,
                 "terminated": ((), torch.bool), "truncated": ((), torch.bool)}
        _check_fields("OfflineDataset", data, spec)
        for name in ("episode_id", "timestep"):
            if name in data.extras and data.extras[name].dtype != torch.int64:
                raise ValueError(f"OfflineDataset: field {name!r} must be int64, "
                                 f"got {data.extras[name].dtype}")
        self.data = data
        self.metadata = dict(metadata or {})
        _check_plain(self.metadata, "metadata")

    def __len__(self) -> int:
        return len(self.data)

    @property
    def device(self) -> torch.device:
        """Where the tensors live."""
        return self.data.reward.device

    def to(self, device: torch.device | str) -> OfflineDataset:
        """The same dataset on ``device``."""
        return OfflineDataset(self.data.to(device), self.metadata)

    def sample(self, batch_size: int, generator: torch.Generator) -> Transitions:
        """``batch_size`` transitions drawn uniformly with replacement."""
        if len(self) == 0:
            raise ValueError("OfflineDataset.sample: the dataset is empty")
        idx = torch.randint(len(self), (batch_size,), generator=generator, device=self.device)
        return self.data.map(lambda x: x.index_select(0, idx))

    @classmethod
    def from_rollouts(
        cls,
        rollouts: Rollout | Sequence[Rollout],
        start_lengths: torch.Tensor | None = None,
        extras: Sequence[str] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> OfflineDataset:
        """Transitions of consecutive rollouts of the same ``B`` copies, with episode ids.

        Rows are ordered copy by copy, so each episode's steps are contiguous. ``episode_id``
        numbers the episodes (a copy's episodes, then the next copy's); ``timestep`` counts steps
        since the episode's reset.

        Args:
            rollouts: one rollout, or several collected one after another (joined in time).
            start_lengths: ``[B]`` steps each copy's episode had already taken before the first
                rollout (``RolloutState.episode.lengths``); zeros when omitted.
            extras: names of ``rollout.extras`` to keep.
            metadata: plain data saved with the dataset (env name, policy, seed...).
        """
        parts = [rollouts] if isinstance(rollouts, Rollout) else list(rollouts)
        if not parts:
            raise ValueError("OfflineDataset.from_rollouts needs at least one rollout")
        joined = Rollout(**{
            name: torch.cat([getattr(r, name) for r in parts]) for name in
            ("obs", "action", "reward", "terminated", "truncated", "next_obs",
             "episode_return", "episode_length")
        }, extras={k: torch.cat([r.extras[k] for r in parts]) for k in extras})
        done = joined.done
        t_len, b = done.shape
        steps = torch.arange(t_len, device=done.device).unsqueeze(1).expand(t_len, b)
        is_start = torch.cat([torch.ones_like(done[:1]), done[:-1]])
        segment = torch.cumsum(is_start.long(), 0) - 1  # episode index within each copy
        counts = segment[-1] + 1
        base = torch.cumsum(counts, 0) - counts
        start = torch.cummax(torch.where(is_start, steps, torch.zeros_like(steps)), 0).values
        offset = torch.zeros(b, dtype=torch.int64, device=done.device)
        if start_lengths is not None:
            if tuple(start_lengths.shape) != (b,):
                raise ValueError(f"start_lengths has shape {tuple(start_lengths.shape)}, "
                                 f"expected ({b},)")
            offset = start_lengths.to(done.device, torch.int64)
        timestep = steps - start + torch.where(segment == 0, offset, torch.zeros_like(offset))
        joined.extras["episode_id"] = base + segment
        joined.extras["timestep"] = timestep
        data = Transitions.from_rollout(joined, [*extras, "episode_id", "timestep"], env_major=True)
        return cls(data, metadata)

    def save(self, path: str | Path) -> Path:
        """Write the dataset atomically (temp file + fsync + rename)."""
        core = {n: getattr(self.data, n) for n in CORE_FIELDS}
        payload = {"format": DATASET_FORMAT, "version": DATASET_VERSION, "fields": core,
                   "extras": dict(self.data.extras), "metadata": self.metadata}
        return atomic_save(path, payload)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> OfflineDataset:
        """Read a dataset written by :meth:`save` onto ``device``.

        Raises:
            FileNotFoundError: naming the path.
            ValueError: when the file is unreadable, not a dataset, or its fields disagree
                (the message names the field).
        """
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no offline dataset at {path}")
        try:
            payload = torch.load(path, map_location=device, weights_only=True)
        except (RuntimeError, EOFError, pickle.UnpicklingError, ValueError) as err:
            raise ValueError(f"{path} is not a readable offline dataset "
                             f"({type(err).__name__}: {err})") from err
        if not isinstance(payload, dict) or payload.get("format") != DATASET_FORMAT:
            raise ValueError(f"{path} is not an rlsuite offline dataset")
        if payload.get("version") != DATASET_VERSION:
            raise ValueError(f"{path}: dataset version {payload.get('version')} is not the "
                             f"supported {DATASET_VERSION}")
        fields, extras = payload.get("fields", {}), payload.get("extras", {})
        for name in CORE_FIELDS:
            if not isinstance(fields.get(name), torch.Tensor):
                raise ValueError(f"{path}: field {name!r} is missing or not a tensor")
        try:
            return cls(Transitions(**{n: fields[n] for n in CORE_FIELDS}, extras=dict(extras)),
                       payload.get("metadata", {}))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err


def concat(parts: Sequence[Transitions]) -> Transitions:
    """Join transition batches row-wise (they must have the same extras)."""
    if not parts:
        raise ValueError("concat needs at least one batch")
    keys = set(parts[0].extras)
    for i, p in enumerate(parts):
        if set(p.extras) != keys:
            raise ValueError(f"concat: batch {i} has extras {sorted(p.extras)}, "
                             f"batch 0 has {sorted(keys)}")
    return replace(
        parts[0], **{n: torch.cat([getattr(p, n) for p in parts]) for n in CORE_FIELDS},
        extras={k: torch.cat([p.extras[k] for p in parts]) for k in keys},
    )
