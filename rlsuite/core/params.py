"""Per-copy dynamics params: validation and builders from a box of physical constants.

Params hold the constants of the dynamics *per batch copy* (masses, lengths, gravity, transition
tensors). Building them from a box, as a grid or as uniform samples, is how a policy gets scored
on a whole uncertainty set in one batched rollout (robust RL), how source and target domains
share one env (cross-domain RL), and how domain randomization samples physics.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import torch

from rlsuite.core import tree

P = TypeVar("P")

Box = Mapping[str, tuple[float, float]]
"""A box of physical constants: ``{field name: (low, high)}``; fields not named keep their value."""


def validate_params(params: Any, reference: Any, batch_size: int | None = None) -> None:
    """Check that ``params`` has the fields, event shapes, dtypes and device of ``reference``.

    ``reference`` is a valid params object of the same env (usually ``env.default_params(1)``);
    every tensor field of ``params`` must be ``[B, *event_shape]`` with the reference's event shape.

    Raises:
        TypeError: when ``params`` is not the env's params class.
        ValueError: naming the offending field, its shape and the shape expected.
    """
    if type(params) is not type(reference):
        raise TypeError(
            f"params must be {type(reference).__name__}, got {type(params).__name__}"
        )
    expected_b = batch_size
    for name, ref in tree.tensor_items(reference):
        value = getattr(params, name)
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"params.{name} must be a tensor, got {type(value).__name__}")
        event = tuple(ref.shape[1:])
        if value.dim() != ref.dim() or tuple(value.shape[1:]) != event:
            raise ValueError(
                f"params.{name} has shape {tuple(value.shape)}; expected (B, {', '.join(map(str, event))})"
                .replace(", )", ")")
            )
        if expected_b is None:
            expected_b = value.shape[0]
        elif value.shape[0] != expected_b:
            raise ValueError(
                f"params.{name} has batch size {value.shape[0]}; expected {expected_b}"
            )
        if value.dtype != ref.dtype:
            raise ValueError(f"params.{name} has dtype {value.dtype}; expected {ref.dtype}")
        if value.device.type != ref.device.type:
            raise ValueError(f"params.{name} is on {value.device}; the env runs on {ref.device}")


def _check_box(base: Any, box: Box) -> None:
    names = {name for name, _ in tree.tensor_items(base)}
    for name, bounds in box.items():
        if name not in names:
            raise KeyError(
                f"box names unknown param {name!r}; {type(base).__name__} has {sorted(names)}"
            )
        low, high = bounds
        if not low <= high:
            raise ValueError(f"box[{name!r}] = {bounds}: low must be <= high")


def grid_params(base: P, box: Box, points: int | Mapping[str, int]) -> P:
    """Cartesian grid over ``box``: one copy per grid point, other fields taken from ``base``.

    Args:
        base: params with batch size 1 (e.g. ``env.default_params(1)``).
        box: ``{field: (low, high)}``.
        points: grid points per axis (an int for all, or a mapping per field). Axis order
            follows ``box``; the last axis varies fastest.

    Returns:
        params with ``B = prod(points)`` copies.
    """
    _check_box(base, box)
    if tree.batch_size(base) != 1:
        raise ValueError("grid_params: base must have batch size 1")
    names = list(box)
    counts = [points if isinstance(points, int) else points[n] for n in names]
    axes = [
        torch.linspace(box[n][0], box[n][1], c, dtype=torch.float64).tolist()
        for n, c in zip(names, counts, strict=False)
    ]
    combos = list(itertools.product(*axes))
    changes: dict[str, torch.Tensor] = {}
    for name, _ in tree.tensor_items(base):
        ref = getattr(base, name)
        if name in box:
            col = [c[names.index(name)] for c in combos]
            changes[name] = torch.tensor(col, dtype=ref.dtype, device=ref.device)
        else:
            changes[name] = ref.expand(len(combos), *ref.shape[1:]).clone()
    return dataclasses.replace(base, **changes)  # type: ignore[type-var]


def uniform_params(base: P, box: Box, n: int, generator: torch.Generator) -> P:
    """``n`` copies with each boxed field drawn independently and uniformly from its interval."""
    _check_box(base, box)
    if tree.batch_size(base) != 1:
        raise ValueError("uniform_params: base must have batch size 1")
    changes: dict[str, torch.Tensor] = {}
    for name, ref in tree.tensor_items(base):
        if name in box:
            low, high = box[name]
            u = torch.rand(n, generator=generator, device=generator.device, dtype=torch.float64)
            changes[name] = (low + (high - low) * u).to(dtype=ref.dtype, device=ref.device)
        else:
            changes[name] = ref.expand(n, *ref.shape[1:]).clone()
    return dataclasses.replace(base, **changes)  # type: ignore[type-var]


def with_values(base: P, **values: float | Sequence[float] | torch.Tensor) -> P:
    """Copy of ``base`` with some fields replaced (a scalar is broadcast over the batch)."""
    names = {name for name, _ in tree.tensor_items(base)}
    b = tree.batch_size(base)
    changes = {}
    for name, value in values.items():
        if name not in names:
            raise KeyError(f"unknown param {name!r}; {type(base).__name__} has {sorted(names)}")
        ref = getattr(base, name)
        t = torch.as_tensor(value, dtype=ref.dtype, device=ref.device)
        changes[name] = t.expand(b, *ref.shape[1:]).clone() if t.dim() < ref.dim() else t
    return dataclasses.replace(base, **changes)  # type: ignore[type-var]


stack_params = tree.stack
index_params = tree.index
