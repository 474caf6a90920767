"""Run identity: when two runs are the same experiment, and may share a run directory.

A run is keyed by

- its resolved config, minus :data:`NON_IDENTITY_KEYS` (where output goes, how progress is shown,
  threads and device: keys that do not change what the run computes), and
- the code version: the package version (``rlsuite.__version__``).

The git commit of the code and whether the tree had uncommitted changes are *recorded* beside the
key (``code``: ``version``, ``commit``, ``dirty``; ``commit`` is None outside a git checkout) but
not compared: a requeued job must be able to resume after an unrelated commit, and a dirty tree
has no name that could be compared anyway. A change that alters results should bump the version.

The key (a hash) and the keyed config travel in ``identity.json`` (written when a run claims its
directory), in ``result.json`` and in every checkpoint, so a mismatch can be shown key by key.
``resume=auto`` continues a run, or returns its recorded score, only when the keys agree; of the
keyed config only the resumable keys (:func:`resumable_keys`) may differ, anything else is refused
with an error naming the keys and both values. A run directory belongs to one identity: a run of
another identity (a second sweep job given the same ``run_dir``) is refused there.

Resumable keys, and what a change to one means
----------------------------------------------
A resume may change the budget and the final evaluation (:data:`RESUMABLE_KEYS`), and the keys an
agent's config class lists in its ``RESUMABLE`` class attribute: its learning rates and its
evaluation settings (PPO's ``learning_rate``; RLPD's ``actor_lr``, ``critic_lr``, ``alpha_lr``;
IWOCS's nested ``sac.learning_rate``, ...). So a run that diverged can go on from its last good
checkpoint at a smaller learning rate. A run resumed with a changed key is no longer the run that
was keyed before:

- its identity becomes the config it now trains with (the key of the new values), so the command
  that resumed it finds it again (a requeue continues it, a rerun after completion returns its
  score), and the original command no longer does;
- the change is recorded: ``resumed_with``, a list of ``{step, key, old, new}`` (the step of the
  checkpoint it continued from), travels in every later checkpoint, in ``identity.json`` and in
  ``result.json``. Two runs are the same experiment when their keys *and* their ``resumed_with``
  lists agree; ``resume=auto`` compares keys only, so the command that made a change can continue;
- a change needs a checkpoint to continue from: a fresh start in a directory claimed by another
  run may differ from it only in ``total_steps``;
- a run holds :class:`RunLock` on its directory while it trains, so a second process cannot
  continue the same checkpoint at another learning rate at the same time (:class:`RunInUse`);
- a completed run takes a change only with steps left to train (``total_steps`` above the one it
  completed with); without them only ``total_steps`` and ``eval_episodes`` may change (the latter
  re-evaluates the final policy). A learning rate that would apply to no step is refused, so a
  sweep over learning rates that shares one ``run_dir`` cannot hand one job another job's score.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlsuite.core.atomic_file import write_text_atomically

IDENTITY_FILE = "identity.json"

NON_IDENTITY_KEYS = ("run_dir", "resume", "progress", "threads", "checkpoint_every", "device",
                     "tensorboard", "time_limit_s", "env.compile")
"""Dotted config keys outside the identity: output location, resume mode, progress bar, CPU
threads, checkpoint cadence, device, TensorBoard, the wall-clock limit of one process, and fusing
the env with ``torch.compile``. They
never change the experiment (device and compile change float rounding, not the experiment), so
a resume takes them from the command that resumes."""

RESUMABLE_KEYS = ("total_steps", "eval_episodes")
"""Top-level keyed settings a resume may change: the budget (so a finished run can be extended)
and the number of final evaluation episodes. The agent's own are in :func:`resumable_keys`."""

FINISHED_KEYS = ("total_steps", "eval_episodes")
"""What a completed run may change without a larger budget: a learning rate (or an evaluation
setting used during training) would apply to no step."""


class RunMismatch(ValueError):
    """A run directory holds another run (its identity differs in the keys named)."""


class IncompatibleRecord(RunMismatch):
    """A record (checkpoint, ``identity.json``, ``result.json``) whose config no longer fits the
    current schemas: a key it holds was removed or retyped since it was written. It cannot be
    continued as any run of this code."""


class RunInUse(RunMismatch):
    """Another process is training in the run directory now (it holds :class:`RunLock`)."""


LOCK_FILE = ".rlsuite.lock"


class RunLock:
    """An exclusive lock on a run directory while a run trains there (``flock`` on
    ``<run_dir>/.rlsuite.lock``, holding the owner's pid).

    A resume may change a run's learning rate (:func:`resumable_keys`), so two jobs of a sweep
    over learning rates that share one ``run_dir`` would otherwise both continue the first one's
    checkpoint at once. The second is refused instead (:class:`RunInUse`, naming the pid). The
    kernel drops the lock when its process ends, ``kill -9`` included, so a killed run never
    leaves a stale lock. Without ``fcntl`` (not POSIX) the lock does nothing.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.fd: int | None = None

    def acquire(self) -> None:
        """Take the lock (once; the directory must exist), or raise :class:`RunInUse`."""
        try:
            import fcntl
        except ImportError:  # not POSIX: nothing to lock with
            return
        if self.fd is not None:
            return
        path = self.run_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunInUse(f"{self.run_dir} is in use: another run (pid {owner}) is training "
                           f"there now. Give this run a run_dir of its own (in a sweep: leave "
                           f"run_dir unset, or make it depend on the swept keys)") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd

    def release(self) -> None:
        """Drop the lock (closing the file releases it)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@dataclass(frozen=True)
class RunIdentity:
    """The key of a run, the keyed config it hashes, and the code that ran it."""

    key: str
    config: dict[str, Any]
    code: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``result.json``, ``identity.json`` and checkpoints."""
        return {"key": self.key, "config": copy.deepcopy(self.config), "code": dict(self.code)}

    @classmethod
    def from_dict(cls, data: Any, where: str = "record") -> RunIdentity:
        """Read a stored identity, checking that its key is the hash of what it holds."""
        if not (isinstance(data, Mapping) and isinstance(data.get("config"), Mapping)
                and isinstance(data.get("code"), Mapping) and isinstance(data.get("key"), str)):
            raise ValueError(f"{where}: malformed run identity {data!r:.200}")
        made = make(data["config"], data["code"])
        if made.key != data["key"]:
            raise ValueError(f"{where}: identity key {data['key']} is not the hash of its config "
                             f"({made.key}); the record was edited")
        return made


def keyed_config(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """``resolved`` without :data:`NON_IDENTITY_KEYS` (a deep copy)."""
    out = copy.deepcopy(dict(resolved))
    for dotted in NON_IDENTITY_KEYS:
        *parents, last = dotted.split(".")
        node: Any = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return out


CODE_PATHS = ("rlsuite", "envs", "conf")
"""The repository's directories whose content shapes a run's numbers: ``dirty`` looks only at
them (a results page rewritten by ``scripts/reproduce.py`` between runs is not a code change)."""


@functools.lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """``{version, commit, dirty}`` of the running rlsuite; commit/dirty None outside git.
    ``dirty``: uncommitted changes to tracked files under :data:`CODE_PATHS`."""
    import rlsuite

    here = Path(rlsuite.__file__).resolve().parent
    commit: str | None = None
    dirty: bool | None = None
    try:
        git = ["git", "-C", str(here)]
        env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # read-only: never touch the index
        commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True, env=env).stdout.strip() or None
        status = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no", "--",
                                 *(f":/{path}" for path in CODE_PATHS)],
                                capture_output=True, text=True, timeout=10, check=True, env=env)
        dirty = bool(status.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass  # an installed wheel, or no git: only the version identifies the code
    return {"version": rlsuite.__version__, "commit": commit, "dirty": dirty}


def make(resolved: Mapping[str, Any], code: Mapping[str, Any] | None = None) -> RunIdentity:
    """The identity of a run with resolved config ``resolved`` (run by ``code``, default: this
    code). The key hashes the keyed config and the code *version* only (see the module doc)."""
    code = dict(code_version() if code is None else code)
    config = keyed_config(resolved)
    blob = json.dumps({"config": config, "version": code.get("version")}, sort_keys=True,
                      default=str, separators=(",", ":"))
    return RunIdentity(hashlib.sha256(blob.encode()).hexdigest()[:16], config, code)


def _declared(cls: type, prefix: str) -> list[str]:
    """``cls.RESUMABLE`` with ``prefix``, then those of its nested config dataclasses (IWOCS's
    ``sac: SACConfig`` gives ``agent.sac.learning_rate``)."""
    keys = [f"{prefix}{k}" for k in getattr(cls, "RESUMABLE", ())]
    for f in dataclasses.fields(cls):
        default = (f.default_factory() if f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
                   else f.default)
        if dataclasses.is_dataclass(default):
            keys += _declared(type(default), f"{prefix}{f.name}.")
    return keys


def resumable_keys(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The dotted keys of the keyed ``config`` a resume may change: :data:`RESUMABLE_KEYS`, and
    ``agent.<key>`` for each key the agent's config class declares resumable (its ``RESUMABLE``
    class attribute, and its nested configs'). An unknown agent declares none."""
    from rlsuite import agents

    name = (config.get("agent") or {}).get("name") if isinstance(config, Mapping) else None
    if name not in agents.names():
        return RESUMABLE_KEYS
    return (*RESUMABLE_KEYS, *_declared(agents.get(name).config_cls, "agent."))


def changes(old: RunIdentity, new: RunIdentity, step: int) -> list[dict[str, Any]]:
    """``resumed_with`` entries for a resume at ``step`` from ``old`` to ``new``: one
    ``{step, key, old, new}`` per keyed value that differs (see the module doc)."""
    return [{"step": int(step), "key": key, "old": a, "new": b}
            for key, (a, b) in differences(old, new).items()]


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, Mapping) or not node:
        return {prefix: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(_flatten(value, f"{prefix}{key}."
                             if isinstance(value, Mapping) and value else f"{prefix}{key}"))
    return flat


def differences(old: RunIdentity, new: RunIdentity) -> dict[str, tuple[Any, Any]]:
    """Dotted keys whose values differ, ``{key: (old, new)}``; the code version as ``code.version``."""
    a, b = _flatten(old.config), _flatten(new.config)
    absent = "<absent>"
    diff = {k: (a.get(k, absent), b.get(k, absent)) for k in sorted({*a, *b})
            if a.get(k, absent) != b.get(k, absent)}
    if old.code.get("version") != new.code.get("version"):
        diff["code.version"] = (old.code.get("version"), new.code.get("version"))
    return diff


def describe(diff: Mapping[str, tuple[Any, Any]]) -> str:
    """``key: old -> new`` for each difference, comma-separated."""
    return ", ".join(f"{k}: {old!r} there, {new!r} here" for k, (old, new) in diff.items())


def check_same_run(recorded: RunIdentity, current: RunIdentity, run_dir: str | Path,
                   what: str, allow: tuple[str, ...] | None = None, why: str = "") -> None:
    """Raise :class:`RunMismatch` unless ``recorded`` (from ``what`` in ``run_dir``) and
    ``current`` differ at most in the keys ``allow`` (default: :func:`resumable_keys` of
    ``current``). ``why`` follows the differences in the message (why they are refused)."""
    if allow is None:
        allow = resumable_keys(current.config)
    diff = {k: v for k, v in differences(recorded, current).items() if k not in allow}
    if diff:
        raise RunMismatch(
            f"{run_dir} holds another run ({what}): {describe(diff)}{why}. Only "
            f"{', '.join(allow) or 'nothing keyed'} may change on resume (and the unkeyed "
            f"{', '.join(NON_IDENTITY_KEYS)}). Give this run a run_dir of its own (in a sweep: "
            f"leave run_dir unset, or make it depend on the swept keys)")


def with_new_defaults(recorded: RunIdentity, where: str = "record") -> RunIdentity:
    """``recorded`` with the config keys added to the schemas since it was written, at their
    defaults (the values every other run of this code gets when it does not set them), so a run
    written before a field existed compares equal to the same run now. Keys it holds keep their
    values. A key the schemas no longer know raises :class:`IncompatibleRecord`."""
    from omegaconf import OmegaConf

    try:
        # run_dir is outside the identity; its schema default is a Hydra interpolation.
        validated = validate_config({**recorded.config, "run_dir": None}, where)
    except ValueError as err:
        raise IncompatibleRecord(f"{err} (it was written by code whose config differs: "
                                 f"commit {recorded.code.get('commit')})") from None
    filled = _flatten(keyed_config(OmegaConf.to_container(validated, resolve=True)))
    held = _flatten(recorded.config)
    added = sorted(k for k in filled if k not in held)
    if not added:
        return recorded
    config = copy.deepcopy(recorded.config)
    for dotted in added:
        *parents, last = dotted.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = filled[dotted]
    return make(config, recorded.code)


def read_claim(run_dir: str | Path) -> RunIdentity | None:
    """The identity recorded in ``run_dir/identity.json`` (with the keys added since at their
    defaults, :func:`with_new_defaults`), or None when there is none."""
    path = Path(run_dir) / IDENTITY_FILE
    if not path.exists():
        return None
    return with_new_defaults(RunIdentity.from_dict(json.loads(path.read_text()), str(path)),
                             str(path))


def claim(run_dir: str | Path, current: RunIdentity, allow: tuple[str, ...] = ("total_steps",),
          resumed_with: list[dict[str, Any]] | None = None) -> None:
    """Make ``run_dir`` this run's: create ``identity.json`` (exclusively, so two jobs started at
    once into one directory cannot both win), or check the one there (it may differ from
    ``current`` in the keys ``allow`` only) and record ``current``, with ``resumed_with`` (the
    changes made on resume, see the module doc) when there were any."""
    path = Path(run_dir) / IDENTITY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    record = current.to_dict() | ({"resumed_with": resumed_with} if resumed_with else {})
    text = json.dumps(record, indent=2, default=str) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        recorded = read_claim(run_dir)
        assert recorded is not None
        check_same_run(recorded, current, run_dir, IDENTITY_FILE, allow)
        write_text_atomically(path, text)  # the new budget or learning rate, if the resume changed one
        return
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _env_schemas(name: str) -> tuple[type, type | None]:
    """The schema dataclasses the env preset ``conf/env/<name>.yaml`` composes with: the env's
    (``/<x>_env_schema@_here_``) and, where the preset has one, its params' (``@params``)."""
    from importlib import resources

    import yaml

    from rlsuite.config import ENV_SCHEMAS
    from rlsuite.env_params import PARAMS_SCHEMAS, schema_name

    preset = resources.files("rlsuite.conf").joinpath("env", f"{name}.yaml")
    if not isinstance(name, str) or "/" in name or not preset.is_file():
        raise ValueError(f"env.name={name!r}: no such env preset in conf/env/")
    defaults = (yaml.safe_load(preset.read_text()) or {}).get("defaults") or []
    entries = [d.lstrip("/").partition("@") for d in defaults if isinstance(d, str)]
    schemas = [ENV_SCHEMAS[n] for n, _, pkg in entries if n in ENV_SCHEMAS and pkg in ("", "_here_")]
    if len(schemas) != 1:
        raise ValueError(f"conf/env/{name}.yaml names no single env schema")
    by_name = {schema_name(env): node for env, node in PARAMS_SCHEMAS.items()}
    params = [by_name[n] for n, _, pkg in entries if n in by_name and pkg == "params"]
    return schemas[0], (params[0] if params else None)


def _reject_interpolations(node: Any, path: str = "") -> None:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if not isinstance(key, str):
                raise ValueError(f"config key {path}{key!r} is not a string")
            _reject_interpolations(value, f"{path}{key}.")
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            _reject_interpolations(value, f"{path}{i}.")
    elif isinstance(node, str) and "${" in node:
        # A saved config is resolved: an interpolation here would run a resolver (oc.env, ...).
        raise ValueError(f"config key {path.rstrip('.')} holds an interpolation {node!r}")


def validate_config(saved: Any, where: str = "checkpoint") -> Any:
    """``saved`` (a run's resolved config as plain data, e.g. from a checkpoint) checked against
    the structured schemas, as Hydra checks a composed one: :class:`rlsuite.config.RunConfig` at
    the top, the agent's config class from the agent registry, the env preset's schema. Unknown
    keys, wrong types, unknown agents or envs and interpolations raise ValueError naming the key.
    Returns the validated DictConfig (struct mode)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from rlsuite import agents
    from rlsuite.config import RunConfig

    if not isinstance(saved, Mapping):
        raise ValueError(f"{where}: the config is not a mapping")
    _reject_interpolations(saved)
    agent, env = saved.get("agent"), saved.get("env")
    if not isinstance(agent, Mapping) or not isinstance(env, Mapping):
        raise ValueError(f"{where}: the config has no agent or env section")
    if agent.get("name") not in agents.names():
        raise ValueError(f"{where}: agent.name={agent.get('name')!r} is not a registered agent")
    schema = OmegaConf.structured(RunConfig)
    schema.agent = OmegaConf.structured(agents.get(agent["name"]).config_cls)
    env_schema, params_schema = _env_schemas(env.get("name"))
    schema.env = OmegaConf.structured(env_schema)
    if params_schema is not None:
        schema.env.params = OmegaConf.structured(params_schema)
    OmegaConf.set_struct(schema, True)
    try:
        merged = OmegaConf.merge(schema, dict(saved))
    except OmegaConfBaseException as err:
        raise ValueError(f"{where}: invalid config: {err}") from None
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        raise ValueError(f"{where}: the config lacks {missing}")
    return merged
