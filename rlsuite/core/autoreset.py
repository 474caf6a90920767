"""Autoreset machinery shared by every env: where the initial states come from, and how they land.

Two facts (``docs/performance.md``, "Autoreset without per-step random draws on CPU") shape this file:

* On CPU, drawing fresh initial states for all ``B`` copies every step costs more than the physics
  (the CPU generator makes ~4.5 ns per float), although only a few percent of copies reset. So on
  CPU the initial states come from a pre-drawn :class:`ResetPool`, consumed in order (the ending
  copies take the next unused columns, in copy order; nothing else is consumed) and refilled at
  the start of a step that could run out (:func:`ensure_pool`): the initial states stay i.i.d.
  draws from the generator. The copies that reset are found and written on the host, through
  numpy views of the CPU tensors (zero-copy, no device involved): numpy's ``nonzero`` and fancy
  assignment cost ~1 us per call against ~2-5 us for torch's ``nonzero`` / ``index_put_``, and at
  B = 16384 numpy's ``nonzero`` takes ~7 us against torch's ~30 us. Nothing is written on a step
  where no episode ends.
* On CUDA, ``nonzero`` and boolean indexing synchronise with the host and cannot be captured in a
  graph, while drawing is nearly free. There every copy gets a fresh draw and resets land with
  ``torch.where(done, reset, stepped)``: no host sync anywhere in a step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

SampleFn = Callable[[int, torch.Generator], torch.Tensor]
"""``sample(n, generator) -> [F, n]``: ``n`` i.i.d. initial states, one row per state field."""

POOL_STEPS = 4
"""A refilled pool holds ``POOL_STEPS * B`` initial states; it is refilled at the start of a step
that finds fewer than ``B`` unused ones (:func:`ensure_pool`), so it lasts at least
``POOL_STEPS - 1`` steps in which every copy resets."""
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


def ensure_pool(
    pool: ResetPool, batch_size: int, sample: SampleFn, generator: torch.Generator
) -> ResetPool:
    """``pool``, or a new full one if fewer than ``batch_size`` unused columns are left.

    Called at the start of every step, before anything else draws: a step can then never run out
    (at most every copy resets), and when the generator is used for refills does not depend on how
    the step applies its resets (by host index or fused, see ``core/classic.py``).
    """
    if pool.values.shape[1] - pool.cursor >= batch_size or not uses_pool(generator.device):
        return pool
    return new_pool(sample, batch_size, generator)


def reset_indices(done: torch.Tensor) -> np.ndarray:
    """Indices of the copies where ``done`` (a CPU bool ``[B]``), found on the host without a copy.

    CPU only: the CPU pool path is the one place where a step may index by data (see the module
    docstring); on CUDA use :func:`restart_by_select`.
    """
    return done.numpy().nonzero()[0]


def _take(
    pool: ResetPool, n: int, sample: SampleFn, batch_size: int, generator: torch.Generator
) -> tuple[slice, ResetPool]:
    """Columns of ``pool`` with the next ``n`` initial states (refilled first if too few left)."""
    if pool.cursor + n > pool.values.shape[1]:
        pool = new_pool(sample, batch_size, generator)
    return slice(pool.cursor, pool.cursor + n), pool


def _consume(pool: ResetPool, columns: slice) -> ResetPool:
    return ResetPool(pool.values, columns.stop)


def restart_stacked(
    fields: tuple[torch.Tensor, ...],
    time: torch.Tensor,
    done: torch.Tensor,
    pool: ResetPool,
    sample: SampleFn,
    generator: torch.Generator,
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, ResetPool, bool]:
    """Start a new episode in the copies where ``done``, never writing into ``fields``.

    Where some copy resets, the fields are copied into one fresh ``[F, B]`` block (one ``stack``),
    the initial states land in it, and its rows are returned; the tensors passed in (which may be
    views of the final observation, or the previous state's) are left as they were. ``time`` is
    still written in place on CPU and must be a fresh tensor. Where nothing resets (known on CPU
    without a sync), ``fields`` come back unchanged and ``any_reset`` is False.
    """
    if not uses_pool(done.device):
        return (*restart_by_select(fields, time, done, sample, generator), pool, True)
    index = reset_indices(done)
    if index.size == 0:
        return fields, time, pool, False
    columns, pool = _take(pool, index.size, sample, done.shape[0], generator)
    block = torch.stack(fields)
    _write(block, index, pool.values, columns)
    time.numpy()[index] = 0
    return tuple(block.unbind(0)), time, _consume(pool, columns), True


def restart_by_select(
    fields: tuple[torch.Tensor, ...],
    time: torch.Tensor,
    done: torch.Tensor,
    sample: SampleFn,
    generator: torch.Generator,
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """Resets without a host sync (the CUDA path): a fresh draw for every copy, kept where done."""
    # One where over the [F, B] block: done [B] broadcasts over the rows.
    block = torch.where(done, sample(done.shape[0], generator), torch.stack(fields))
    return tuple(block.unbind(0)), torch.where(done, 0, time)


def _write(target: torch.Tensor, index: np.ndarray, source: torch.Tensor, columns: slice) -> None:
    """``target[..., index] = source[..., columns]`` on CPU, through numpy views (~1 us a call).

    Where autograd must see the write (``target`` requires grad), torch's ``index_copy_`` does it.
    """
    if target.requires_grad:
        target.index_copy_(target.dim() - 1, torch.from_numpy(index), source[..., columns])
    else:
        target.numpy()[..., index] = source.numpy()[..., columns]
