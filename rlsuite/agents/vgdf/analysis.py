"""Summaries of VGDF runs for the results pages: a mean with its Student-t interval over seeds, and
a logged diagnostic averaged over the part of a run where the filter is active."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence

from rlsuite.reproduce import fmt

T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
"""Two-sided 95 % Student-t quantiles by degrees of freedom (1.96 beyond 9)."""


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean of ``values`` and the half-width of its 95 % Student-t interval (NaN for one value)."""
    if not values:
        raise ValueError("mean_ci of no values")
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, math.nan
    return m, T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / math.sqrt(len(values))


def mean_after(points: Iterable[tuple[int, float]], step: int) -> float:
    """Mean of the values of ``(step, value)`` points logged strictly after ``step`` (the filter's
    warm-up), NaN when there are none."""
    values = [v for s, v in points if s > step]
    return statistics.fmean(values) if values else math.nan


def mean_ci_text(values: Sequence[float]) -> str:
    """``"mean ± half-width"`` of :func:`mean_ci` (the mean alone for one value, ``-`` for none)."""
    if not values:
        return "-"
    m, h = mean_ci(values)
    return f"{fmt(m, 4)} ± {fmt(h, 3)}" if h == h else fmt(m, 4)
