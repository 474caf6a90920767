"""Per-copy dynamics params: validation and builders from a box of physical constants.

Params hold the constants of the dynamics *per batch copy* (masses, lengths, gravity, transition
tensors). Building them from a box, as a grid or as uniform samples, is how a policy gets scored
on a whole uncertainty set in one batched rollout (robust RL), how source and target domains
share one env (cross-domain RL), and how domain randomization samples physics.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping, Sequence
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
    # Without a given batch size, the one most fields share is the reference, so a single field
    # of the wrong size is the one blamed (not whichever field happens to come first).
    expected_b = batch_size if batch_size is not None else _common_batch(params, reference)
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


def _common_batch(params: Any, reference: Any) -> int | None:
    """The leading size most of ``params``' tensor fields share (ties: the earliest field's)."""
    sizes = [getattr(params, name).shape[0] for name, _ in tree.tensor_items(reference)
             if isinstance(getattr(params, name), torch.Tensor) and getattr(params, name).dim() > 0]
    return max(sizes, key=sizes.count) if sizes else None


def check_values(params: Any, finite: Iterable[str] = (), positive: Iterable[str] = (),
                 nonnegative: Iterable[str] = (), unit: Iterable[str] = ()) -> None:
    """Raise a :class:`~rlsuite.validation.ConfigError` (a ValueError) naming the first field of
    ``finite`` with a NaN/inf entry, of ``positive`` with an entry that is not a finite positive
    number, of ``nonnegative`` with one below 0 or NaN/inf, or of ``unit`` (probabilities) with one
    outside [0, 1] or NaN, and that entry's value and copy.

    Physical constants are checked once, where an env starts (``reset``): the test is one device
    reduction per field and a single host sync for all of them. Names that ``params`` lacks are
    skipped (a subclass's params may drop some).
    """
    from rlsuite.validation import ConfigError

    checks = [(name, "must be finite", lambda t: torch.isfinite(t)) for name in finite]
    checks += [(name, "must be positive and finite", lambda t: torch.isfinite(t) & (t > 0))
               for name in positive]
    checks += [(name, "must be non-negative and finite", lambda t: torch.isfinite(t) & (t >= 0))
               for name in nonnegative]
    checks += [(name, "must be in [0, 1]", lambda t: (t >= 0) & (t <= 1)) for name in unit]
    checks = [(n, req, ok) for n, req, ok in checks if isinstance(getattr(params, n, None), torch.Tensor)]
    if not checks:
        return
    flags = torch.stack([ok(getattr(params, n)).all() for n, _, ok in checks]).tolist()
    for (name, requirement, ok), good in zip(checks, flags, strict=True):
        if not good:
            value = getattr(params, name)
            bad = (~ok(value)).reshape(value.shape[0], -1).any(-1).nonzero()[0, 0].item() \
                if value.dim() > 0 else 0
            shown = value[bad] if value.dim() > 0 else value
            shown = shown.item() if shown.numel() == 1 else shown.tolist()
            raise ConfigError(f"params.{name}", shown, f"{requirement} (copy {bad})")


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
