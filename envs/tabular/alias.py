"""Walker's alias method: O(1) draws from fixed categorical distributions, batched.

A categorical distribution over ``K`` slots becomes two tables (Walker 1977; the construction is
Vose's 1991 pairing of an under-full slot with an over-full one, here computed for all rows at
once from cumulative sums, see :func:`build`):

* ``threshold[k]`` in ``[0, 1]``: the chance of keeping slot ``k`` once it is picked uniformly;
* ``alias[k]``: the slot to take instead.

A draw is one uniform slot ``k``, one uniform ``u``, and ``k if u < threshold[k] else alias[k]``.
On a batch that is one ``randint``, one ``rand`` and a few gathers, whatever ``K``.
``torch.multinomial`` on gathered probability rows is 25-80x slower, and inverse-CDF search
(``searchsorted``) 2-5x slower (``docs/performance.md``, "Sampling from tabular transition tables").

The tables here are built once per distribution, in float64, on the CPU. :func:`draw` samples
from flat tables of many distributions at once (one row per distribution) and returns an index
into *pair tables* (:func:`pair_table`): for each slot, what the slot stands for and what its
alias stands for, side by side. One gather from a pair table then yields the drawn value, with no
``torch.where`` between slot and alias (that select is the slowest op of a CPU step).
"""

from __future__ import annotations

import torch


def build(prob: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Alias tables for every row of ``prob``.

    Args:
        prob: ``[..., K]`` nonnegative weights; each row must have a positive sum (rows are
            normalized here, so they need not sum to exactly 1).

    Returns:
        ``(threshold, alias)``: ``threshold [..., K]`` float64 in ``[0, 1]`` and ``alias [..., K]``
        int64 slot indices in ``[0, K)``. Slots of weight 0 get threshold 0 (never kept), and
        :func:`distribution` of the tables equals the normalized ``prob`` up to float64 rounding.
    """
    shape = prob.shape
    k = shape[-1]
    p = prob.detach().to("cpu", torch.float64).reshape(-1, k)
    total = p.sum(1, keepdim=True)
    if not bool((total > 0).all()) or not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        raise ValueError(
            "alias.build: every row needs finite nonnegative weights with a positive sum"
        )
    w = p * (k / total)  # mean 1 per row: a slot is "small" below 1, "large" from 1 up
    # Vose's construction pairs each small slot with a large one whose weight tops it up to 1;
    # a large slot that falls below 1 doing so becomes small and is paired with the next large.
    # Run over one fixed order (ascending weight: smalls, then larges), that chain is determined
    # by two cumulative sums, so it vectorizes over rows with no loop over K:
    #   D_i = deficit (1 - w) of the first i smalls, E_j = excess (w - 1) of the first j larges.
    #   Small i takes the first large j with E_j >= D_(i-1) (the one still >= 1 when i's turn
    #   comes). Large j falls below 1 once D > E_j: its weight is then 1 + E_j - D_t (t = the
    #   first small with D_t > E_j) and its alias is large j + 1. The others keep threshold 1.
    order = w.argsort(dim=1)
    ws = w.gather(1, order)
    large = ws >= 1.0
    deficit = torch.where(large, 0.0, 1.0 - ws)
    d_incl = deficit.cumsum(1)
    d_excl = d_incl - deficit
    # Larges only; -1 below them keeps the search off the small positions (E stays sorted).
    e_cum = torch.where(large, torch.where(large, ws - 1.0, 0.0).cumsum(1), -1.0)
    position = torch.arange(k).expand_as(ws)
    # Rounding can leave E_last a hair below D: clamp to the last (heaviest) slot.
    donor = torch.searchsorted(e_cum, d_excl, right=False).clamp_(max=k - 1)
    first_over = torch.searchsorted(d_incl, e_cum, right=True)  # t, or K if D never exceeds E_j
    falls = large & (first_over < k) & (position < k - 1)
    fallen_w = 1.0 + e_cum - d_incl.gather(1, first_over.clamp(max=k - 1))
    thr_sorted = torch.where(large, torch.where(falls, fallen_w.clamp(0.0, 1.0), 1.0), ws)
    alias_pos = torch.where(large, torch.where(falls, position + 1, position), donor)
    threshold = torch.empty_like(w).scatter_(1, order, thr_sorted)
    alias = torch.empty_like(order).scatter_(1, order, order.gather(1, alias_pos))
    return threshold.reshape(shape), alias.reshape(shape)


def distribution(threshold: torch.Tensor, alias: torch.Tensor) -> torch.Tensor:
    """The distribution ``[..., K]`` that alias tables ``[..., K]`` sample (undoes :func:`build`).

    Slot ``j`` is drawn with probability ``(threshold[j] + sum over k with alias[k] == j of
    (1 - threshold[k])) / K``.
    """
    k = threshold.shape[-1]
    t = threshold.to(torch.float64)
    return (t / k).scatter_add(-1, alias, (1.0 - t) / k)


def pair_table(values: torch.Tensor, alias: torch.Tensor) -> torch.Tensor:
    """``[..., K, 2]``: each slot's own value (``[..., k, 0]``) and its alias's (``[..., k, 1]``).

    Args:
        values: ``[..., K]`` what the slots stand for (a next state, a reward, ...).
        alias: ``[..., K]`` alias slots from :func:`build`.
    """
    return torch.stack([values, values.gather(-1, alias)], dim=-1)


def draw(
    threshold: torch.Tensor,
    num_slots: int,
    n: int,
    generator: torch.Generator,
    rows: torch.Tensor | None = None,
    offset: torch.Tensor | None = None,
) -> torch.Tensor:
    """``n`` alias draws from a flat table of thresholds holding one distribution per row.

    Args:
        threshold: flat ``[N]`` float table; slot ``j`` of row ``r`` sits at ``r * num_slots + j``.
        num_slots: ``K``, the slots per row.
        n: number of draws.
        generator: the source of randomness (one ``randint`` and one ``rand`` of ``n`` values).
        rows: ``[n]`` int64 row of each draw (``None``: row 0 for all).
        offset: ``[n]`` int64 added to the index into ``threshold`` (for a table stacking several
            copies' rows: ``copy * rows_per_copy * K``); the returned index excludes it.

    Returns:
        ``[n]`` int64 index into flat :func:`pair_table` s of the same layout:
        ``2 * (row * K + slot) + (1 if the alias is taken else 0)``.
    """
    device = threshold.device
    slot = torch.randint(0, num_slots, (n,), generator=generator, device=device)
    u = torch.rand(n, generator=generator, device=device, dtype=threshold.dtype)
    flat = slot if rows is None else torch.add(slot, rows, alpha=num_slots)
    at = flat if offset is None else flat + offset
    # index_select is 3-7x faster than advanced indexing (t[idx]) or take() on CPU for 64k
    # indices (torch 2.13, 1 thread: 55 us vs 195 us / 137 us).
    reject = u >= threshold.index_select(0, at)
    # The pick between the slot and its alias is an index into pair tables, not a
    # ``torch.where(keep, slot, alias[slot])``: on the CPU that where costs ~280 us for 64k
    # random picks (branchy) plus a gather of the alias, against ~70 us for this add.
    return torch.add(reject, flat, alpha=2)
