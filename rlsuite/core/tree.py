"""Operations on the small dataclasses of tensors that hold env state and params.

Every State and Params in rlsuite is a (frozen) dataclass whose tensor fields share a leading
batch dimension ``B``. These helpers map, stack, index and move them without knowing their fields,
so the engine, the checker and the checkpoint code work for every env.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch

T = TypeVar("T")


def tensor_items(tree: Any) -> list[tuple[str, torch.Tensor]]:
    """Return ``(name, tensor)`` for every tensor field of a dataclass, in declaration order."""
    return [
        (f.name, getattr(tree, f.name))
        for f in dataclasses.fields(tree)
        if isinstance(getattr(tree, f.name), torch.Tensor)
    ]


def map_tensors(fn: Callable[[torch.Tensor], torch.Tensor], tree: T) -> T:
    """Apply ``fn`` to every tensor field; non-tensor fields are carried over unchanged."""
    changes = {name: fn(value) for name, value in tensor_items(tree)}
    return dataclasses.replace(tree, **changes)  # type: ignore[type-var]


def batch_size(tree: Any) -> int:
    """The leading dimension shared by all tensor fields (raises if they disagree)."""
    sizes = {name: value.shape[0] for name, value in tensor_items(tree) if value.dim() > 0}
    if not sizes:
        raise ValueError(f"{type(tree).__name__} has no batched tensor field")
    if len(set(sizes.values())) != 1:
        raise ValueError(f"{type(tree).__name__} fields disagree on the batch size: {sizes}")
    return next(iter(sizes.values()))


def stack(trees: Sequence[T]) -> T:
    """Concatenate several batched dataclasses along the batch dimension (B = sum of B_i)."""
    if not trees:
        raise ValueError("stack() needs at least one element")
    first = trees[0]
    changes = {
        name: torch.cat([getattr(t, name) for t in trees], dim=0) for name, _ in tensor_items(first)
    }
    return dataclasses.replace(first, **changes)  # type: ignore[type-var]


def index(tree: T, idx: int | slice | torch.Tensor | Sequence[int]) -> T:
    """Select copies along the batch dimension; an int keeps the batch dim (B = 1)."""
    if isinstance(idx, int):
        idx = slice(idx, idx + 1)
    elif not isinstance(idx, (slice, torch.Tensor)):
        idx = torch.as_tensor(list(idx), dtype=torch.long)
    return map_tensors(lambda x: x[idx.to(x.device) if isinstance(idx, torch.Tensor) else idx], tree)


def repeat(tree: T, n: int) -> T:
    """Tile every copy ``n`` times along the batch dim (copy i lands at rows i*n .. i*n+n-1)."""
    return map_tensors(lambda x: x.repeat_interleave(n, dim=0), tree)


def to_device(tree: T, device: torch.device | str) -> T:
    """Move every tensor field to ``device``."""
    return map_tensors(lambda x: x.to(device), tree)


def clone(tree: T) -> T:
    """Deep-copy every tensor field."""
    return map_tensors(lambda x: x.clone(), tree)


def to_dict(tree: Any) -> dict[str, Any]:
    """Plain ``{field: value}`` mapping (tensors kept), for checkpoints."""
    return {f.name: getattr(tree, f.name) for f in dataclasses.fields(tree)}


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a dataclass saved by :func:`to_dict`, rejecting missing or unknown fields."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    if set(data) != names:
        raise ValueError(
            f"{cls.__name__}: fields {sorted(data)} do not match the expected {sorted(names)}"
        )
    return cls(**data)


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dataclasses into ``{"a.b": leaf}`` (tensors, ints, floats, bools, None)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out.update(flatten(value, key + "."))
        else:
            out[key] = value
    return out


def unflatten_like(template: T, flat: dict[str, Any], prefix: str = "") -> T:
    """Rebuild ``template``'s structure with the leaves of ``flat`` (from :func:`flatten`).

    Tensors are moved to the template leaf's device; a missing key raises a KeyError naming it.
    """
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(template):  # type: ignore[arg-type]
        value = getattr(template, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes[f.name] = unflatten_like(value, flat, key + ".")
        else:
            if key not in flat:
                raise KeyError(f"saved state has no entry {key!r}")
            new = flat[key]
            if isinstance(value, torch.Tensor) and isinstance(new, torch.Tensor):
                new = new.to(value.device)
            changes[f.name] = new
    return dataclasses.replace(template, **changes)  # type: ignore[type-var]
