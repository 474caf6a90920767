"""Autoreset machinery shared by every env: where the initial states come from, and how they land.

Two facts from the performance notes (``shared/notes/performance.md``, B3 and C) shape this file:

* On CPU, drawing fresh initial states for all ``B`` copies every step costs more than the physics
  (the CPU generator makes ~4.5 ns per float), although only a few percent of copies reset. So on
  CPU the initial states come from a pre-drawn :class:`ResetPool`, consumed in order (each reset
  takes the next unused column; nothing else is consumed) and refilled when spent: the initial
  states stay i.i.d. draws from the generator. The resets are written with ``nonzero`` +
  ``index_put_``, which on CPU touches only the copies that reset and costs nothing on a step
  where no episode ends.
* On CUDA, ``nonzero`` and boolean indexing synchronise with the host and cannot be captured in a
  graph, while drawing is nearly free. There every copy gets a fresh draw and resets land with
  ``torch.where(done, reset, stepped)``: no host sync anywhere in a step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

SampleFn = Callable[[int, torch.Generator], torch.Tensor]
"""``sample(n, generator) -> [F, n]``: ``n`` i.i.d. initial states, one row per state field."""

POOL_STEPS = 4
"""A refilled pool holds enough initial states for this many all-copies-reset steps."""
MIN_POOL = 1024


@dataclass(frozen=True)
class ResetPool:
    """Pre-drawn i.i.d. initial states ``values [F, P]``; ``cursor`` is the next unused column.

    ``values`` is empty (``P == 0``) where fresh states are drawn every step (CUDA).
    """

    values: torch.Tensor
    cursor: int


def uses_pool(device: torch.device) -> bool:
    """True where resets come from a pool by index (CPU), False where by ``torch.where`` (CUDA)."""
    return device.type == "cpu"


def new_pool(sample: SampleFn, batch_size: int, generator: torch.Generator) -> ResetPool:
    """A full pool on the generator's device (an empty one where fresh draws are used)."""
    if not uses_pool(generator.device):
        return ResetPool(sample(0, generator), 0)
    return ResetPool(sample(max(MIN_POOL, POOL_STEPS * batch_size), generator), 0)


def select(done: torch.Tensor, reset: torch.Tensor, stepped: torch.Tensor) -> torch.Tensor:
    """``reset`` where ``done`` else ``stepped``; ``done`` is ``[B]`` and broadcasts over events."""
    while done.dim() < stepped.dim():
        done = done.unsqueeze(-1)
    return torch.where(done, reset, stepped)


def apply_resets(
    fields: tuple[torch.Tensor, ...],
    time: torch.Tensor,
    done: torch.Tensor,
    pool: ResetPool,
    sample: SampleFn,
    generator: torch.Generator,
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, ResetPool, bool]:
    """Start a new episode in the copies where ``done``.

    Args:
        fields: state fields after the transition, each ``[B]``. On CPU they are updated in place,
            so they must be fresh tensors (not the previous state's).
        time: ``[B]`` step counters after the transition.
        done: ``[B]`` bool, the copies to reset.

    Returns:
        ``(fields, time, pool, any_reset)``; ``any_reset`` is False only when it is known without a
        host sync that no copy reset (CPU), so callers can reuse the final observation.
    """
    if not uses_pool(done.device):
        reset = sample(done.shape[0], generator)
        fields = tuple(torch.where(done, reset[i], f) for i, f in enumerate(fields))
        return fields, torch.where(done, torch.zeros_like(time), time), pool, True
    index = done.nonzero().squeeze(1)
    n = index.numel()
    if n == 0:
        return fields, time, pool, False
    if pool.cursor + n > pool.values.shape[1]:
        pool = new_pool(sample, done.shape[0], generator)
    values = pool.values[:, pool.cursor : pool.cursor + n]
    for i, field in enumerate(fields):
        field.index_put_((index,), values[i])
    time.index_fill_(0, index, 0)
    return fields, time, ResetPool(pool.values, pool.cursor + n), True
