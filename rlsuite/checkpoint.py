"""Atomic checkpoints that load without executing code.

A checkpoint is one ``torch.save`` file holding only tensors and plain data (dicts, lists, numbers,
strings): the agent's ``state_dict`` (networks, optimizers, generator states, env state, counters),
the run's config as a plain dict and its identity (:mod:`rlsuite.identity`: key, keyed config,
code version). It is written to a temporary file in the same directory,
flushed to disk and renamed over the old one, so a run killed mid-write leaves the previous
checkpoint intact. Loading uses ``torch.load(weights_only=True)``: nothing in the file is executed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from rlsuite.core.atomic_file import remove_stale_temps, replaced_atomically

__all__ = ["atomic_save", "checkpoint_dir", "load", "remove_stale_temps", "save"]

LATEST = "latest.pt"
FORMAT_VERSION = 1


def checkpoint_dir(run_dir: str | Path) -> Path:
    """Where a run keeps its checkpoints."""
    return Path(run_dir) / "checkpoints"


def save(path: str | Path, agent_state: dict[str, Any], config: dict[str, Any],
         identity: dict[str, Any] | None = None) -> Path:
    """Write ``{agent, config, identity, format}`` to ``path`` atomically (temp file + fsync +
    rename). ``identity`` is :meth:`rlsuite.identity.RunIdentity.to_dict` (None: not recorded)."""
    payload = {"format": FORMAT_VERSION, "agent": agent_state, "config": config}
    if identity is not None:
        payload["identity"] = identity
    return atomic_save(path, payload)


def atomic_save(path: str | Path, payload: Any) -> Path:
    """``torch.save`` ``payload`` to ``path`` atomically: a crash leaves the old file or the new.

    Shared by checkpoints and :class:`rlsuite.learners.buffers.OfflineDataset`.
    """
    # durable: a checkpoint is what a resumed run continues from, so it is fsynced before the rename
    with replaced_atomically(path, "wb", durable=True) as f:
        torch.save(payload, f)
    return Path(path)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save` (weights-only: no code runs).

    Raises:
        FileNotFoundError: naming the path.
        ValueError: when the file is not an rlsuite checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = checkpoint_dir(path) / LATEST
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path} is not an rlsuite checkpoint (format {FORMAT_VERSION})")
    return payload
