"""Finite sets of stocks: exact (deduplicated up to float rounding) or snapped to a lattice.

A stock set is a sorted table of ``N`` distinct stocks ``values [N, d]`` (``d = 1`` for scalar
rewards) with integer ``keys [N, d]``: ``round(value / quantum)``. Two stocks are the same iff their
keys are equal, so sums reached along different paths (``0.1 + 0.2`` and ``0.2 + 0.1``) merge,
while the stored value is the float actually computed (no rounding error enters the DP). With a
``resolution`` the stocks are snapped to the lattice ``resolution * Z^d`` instead: an approximation
for MDPs whose reachable stocks are too many to enumerate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Quantizer:
    """Maps stocks to integer keys (and, with ``snap``, to lattice points)."""

    quantum: float
    """Key resolution: stocks closer than this may share a key."""
    snap: bool = False
    """Replace each stock by its lattice point ``key * quantum`` (approximate mode)."""

    def keys(self, values: torch.Tensor) -> torch.Tensor:
        """``round(values / quantum)`` as int64."""
        return torch.round(values / self.quantum).to(torch.int64)

    def canonical(self, values: torch.Tensor) -> torch.Tensor:
        """The stock that represents ``values`` (itself, or its lattice point when snapping)."""
        return self.keys(values).to(torch.float64) * self.quantum if self.snap else values


@dataclass(frozen=True)
class StockSet:
    """``N`` distinct stocks, sorted by key (lexicographically for ``d > 1``)."""

    keys: torch.Tensor
    """``[N, d]`` int64."""
    values: torch.Tensor
    """``[N, d]`` float64."""

    @property
    def size(self) -> int:
        """``N``."""
        return self.keys.shape[0]

    @classmethod
    def build(cls, values: torch.Tensor, quantizer: Quantizer) -> StockSet:
        """The distinct stocks among ``values [n, d]`` (the first value seen for each key)."""
        values = quantizer.canonical(values)
        keys = quantizer.keys(values)
        if keys.shape[0] == 0:
            return cls(keys, values)
        if keys.shape[1] == 1:
            flat = keys[:, 0]
            order = torch.argsort(flat, stable=True)
            sorted_keys = flat[order]
            first = torch.ones_like(sorted_keys, dtype=torch.bool)
            first[1:] = sorted_keys[1:] != sorted_keys[:-1]
            pick = order[first]
            return cls(keys[pick], values[pick])
        uniq, inverse = torch.unique(keys, dim=0, return_inverse=True)
        # The first occurrence of each unique row: scatter the smallest index per group.
        n = keys.shape[0]
        first_idx = torch.full((uniq.shape[0],), n, dtype=torch.int64)
        first_idx.scatter_reduce_(0, inverse, torch.arange(n), reduce="amin")
        return cls(uniq, values[first_idx])

    def find(self, keys: torch.Tensor) -> torch.Tensor:
        """Positions ``[n]`` of the stocks with ``keys [n, d]``; ``-1`` where absent."""
        n = keys.shape[0]
        if self.size == 0 or n == 0:
            return torch.full((n,), -1, dtype=torch.int64, device=keys.device)
        if keys.shape[1] == 1:
            table = self.keys[:, 0].contiguous()
            pos = torch.searchsorted(table, keys[:, 0].contiguous()).clamp_(max=self.size - 1)
            return torch.where(table[pos] == keys[:, 0], pos, -1)
        # d > 1: label stored and queried rows jointly, then map labels back to positions.
        _, inverse = torch.unique(torch.cat([self.keys, keys]), dim=0, return_inverse=True)
        where = torch.full((int(inverse.max()) + 1,), -1, dtype=torch.int64)
        where[inverse[: self.size]] = torch.arange(self.size)
        return where[inverse[self.size :]]

    def nearest(self, values: torch.Tensor) -> torch.Tensor:
        """Positions ``[n]`` of the stored stocks closest (Euclidean) to ``values [n, d]``."""
        if values.shape[1] == 1:
            table = self.values[:, 0].contiguous()
            hi = torch.searchsorted(table, values[:, 0].contiguous()).clamp_(1, self.size - 1) \
                if self.size > 1 else torch.zeros(values.shape[0], dtype=torch.int64)
            lo = (hi - 1).clamp_(min=0)
            closer_lo = (values[:, 0] - table[lo]).abs() <= (table[hi] - values[:, 0]).abs()
            return torch.where(closer_lo, lo, hi)
        return torch.cdist(values, self.values).argmin(1)

    def select(self, mask: torch.Tensor) -> StockSet:
        """The stocks where ``mask [N]`` holds (order kept)."""
        return StockSet(self.keys[mask], self.values[mask])


def sumset(stocks: StockSet, increments: torch.Tensor, quantizer: Quantizer,
           limit: int, keep: Callable[[torch.Tensor], torch.Tensor] | None = None) -> StockSet:
    """``{x + r : x in stocks, r in increments [m, d]}`` as a stock set.

    ``keep(values [n, d]) -> [n]`` filters the sums *before* they are merged by key, so a key is
    kept when any float that maps to it passes (the filter and later lookups then agree even
    where float rounding puts equal-key sums on both sides of a boundary).

    Raises:
        ValueError: when more than ``limit`` stocks would be formed (exact enumeration exploding).
    """
    n, m = stocks.size, increments.shape[0]
    if n * m > limit:
        raise ValueError(
            f"stock enumeration: {n} stocks x {m} distinct rewards = {n * m} candidates exceed "
            f"max_stocks={limit}; the rewards do not lie on a lattice coarse enough for exact "
            "enumeration. Pass stock_resolution=<float> to snap stocks to a grid (approximate), "
            "or raise max_stocks."
        )
    if n == 0 or m == 0:
        d = increments.shape[1]
        return StockSet(torch.zeros(0, d, dtype=torch.int64), torch.zeros(0, d, dtype=torch.float64))
    cand = quantizer.canonical((stocks.values.unsqueeze(1) + increments.unsqueeze(0)).reshape(n * m, -1))
    if keep is not None:
        cand = cand[keep(cand)]
    return StockSet.build(cand, quantizer)
