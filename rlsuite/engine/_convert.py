"""numpy <-> torch and gymnasium <-> rlsuite conversions, shared by the three adapters.

The adapters (:mod:`~rlsuite.engine.gym_import`, :mod:`~rlsuite.engine.gym_export`,
:mod:`~rlsuite.engine.sb3`) all cross the same two borders: numpy arrays against torch tensors,
and gymnasium spaces against :mod:`rlsuite.core.spaces`. The rules live here once:

* observations are float32 for a ``Box`` and int64 for a ``Discrete`` on the engine side (the
  engine's contract), and the gymnasium face declares the same dtypes, so
  ``gymnasium.utils.env_checker`` finds every observation inside its space;
* an action is checked against its space's batched shape before it reaches an env, so a wrong
  shape fails here with the shape expected instead of deep inside a physics kernel.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch

from rlsuite.core import spaces


def space_from_gymnasium(
    space: gymnasium.Space, device: torch.device | str = "cpu"
) -> spaces.Space:
    """The rlsuite space of a single-copy gymnasium ``Box`` or ``Discrete`` space.

    A gymnasium ``Box`` of any dtype becomes a float32 :class:`~rlsuite.core.spaces.Box` (the
    engine's observations are float32); a ``Discrete`` must start at 0, as the engine's does.

    Raises:
        TypeError: for any other gymnasium space (Dict, Tuple, MultiDiscrete, ...).
        ValueError: for a ``Discrete`` whose ``start`` is not 0.
    """
    if isinstance(space, gymnasium.spaces.Box):
        return spaces.Box.make(
            np.asarray(space.low, dtype=np.float64), np.asarray(space.high, dtype=np.float64),
            device=device,
        )
    if isinstance(space, gymnasium.spaces.Discrete):
        if int(space.start) != 0:
            raise ValueError(
                f"Discrete space with start={int(space.start)} is not supported; rlsuite's "
                "Discrete spaces count from 0"
            )
        return spaces.Discrete(int(space.n), device=torch.device(device))
    raise TypeError(
        f"only gymnasium Box and Discrete spaces convert to rlsuite spaces, got {space!r}"
    )


def numpy_dtype(space: spaces.Space) -> np.dtype:
    """The numpy dtype of one element of ``space`` (float32 for Box, int64 for Discrete)."""
    return np.dtype(np.float32) if isinstance(space, spaces.Box) else np.dtype(np.int64)


def to_numpy(x: torch.Tensor, copy: bool = False) -> np.ndarray:
    """A host numpy array of ``x``; ``copy=True`` guarantees it shares no memory with ``x``."""
    array = x.detach().cpu().numpy()
    if copy and x.device.type == "cpu":
        return array.copy()
    return array


def to_torch(
    x: Any, space: spaces.Space, batch_size: int, device: torch.device, what: str = "action"
) -> torch.Tensor:
    """A batch of ``batch_size`` elements of ``space`` as a tensor on ``device``.

    Accepts a tensor, a numpy array or a nested list; converts to the space's dtype (float32 or
    int64). Integer-valued floats are refused for a ``Discrete`` space rather than truncated.

    Raises:
        ValueError: naming ``what`` and the shape expected, when the shape does not fit.
        TypeError: when a ``Discrete`` batch holds non-integer values.
    """
    dtype = torch.float32 if isinstance(space, spaces.Box) else torch.int64
    if isinstance(x, torch.Tensor):
        t = x.to(device=device)
    else:
        t = torch.as_tensor(np.asarray(x), device=device)
    if isinstance(space, spaces.Discrete) and t.is_floating_point():
        raise TypeError(f"{what} for a Discrete({space.n}) space must be integers, got {t.dtype}")
    expected = (batch_size, *space.shape)
    if tuple(t.shape) != expected:
        raise ValueError(f"{what} has shape {tuple(t.shape)}; expected {expected}")
    return t.to(dtype)


def single_to_numpy(x: torch.Tensor, space: spaces.Space) -> np.ndarray | int:
    """Copy 0 of a ``[1, ...]`` batch as gymnasium returns one observation.

    A ``Box`` element becomes a fresh float32 array; a ``Discrete`` element a Python ``int``
    (gymnasium's passive checker wants ``int`` or ``np.int64`` for Discrete observations).
    """
    if isinstance(space, spaces.Discrete):
        return int(x[0])
    return np.array(to_numpy(x[0]), dtype=np.float32, copy=True)
