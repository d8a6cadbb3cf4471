"""Count, average, max and percentiles of durations in bounded memory.

Up to ``exact_limit`` values per series the percentiles are exact (linear interpolation
between the closest ranks, like ``numpy.percentile`` and ``statistics.quantiles(...,
method="inclusive")``). Past it the values move into a log-bucketed histogram whose
buckets are 0.2 % wide: memory stays a few thousand buckets whatever the input size, and a
reported percentile is within 0.2 % of the exact one (count, average and max stay exact).
"""

from __future__ import annotations

import math
from array import array

GROWTH = 1.002
"""Ratio between consecutive histogram bucket bounds: the relative error bound."""
_LOG_GROWTH = math.log(GROWTH)

DEFAULT_EXACT_LIMIT = 100_000


class Quantiles:
    """A series of non-negative numbers (durations in seconds)."""

    __slots__ = ("_buckets", "_count", "_exact", "_limit", "_max", "_total", "_zeros")

    def __init__(self, exact_limit: int = DEFAULT_EXACT_LIMIT) -> None:
        self._limit = exact_limit
        self._exact: array[float] | None = array("d")
        self._buckets: dict[int, int] = {}
        self._zeros = 0
        # Totals of the values already moved into buckets.
        self._count = 0
        self._total = 0.0
        self._max = -math.inf

    @property
    def exact(self) -> bool:
        """Whether percentiles are still exact."""
        return self._exact is not None

    @property
    def count(self) -> int:
        """Values added."""
        return self._count + (len(self._exact) if self._exact is not None else 0)

    @property
    def total(self) -> float:
        """Sum of the values."""
        return self._total + (math.fsum(self._exact) if self._exact is not None else 0.0)

    @property
    def maximum(self) -> float:
        """Largest value (-inf when empty)."""
        if self._exact:
            return max(self._max, max(self._exact))
        return self._max

    def add(self, value: float) -> None:
        """Record one value (the caller has checked it is a finite number >= 0)."""
        exact = self._exact
        if exact is not None:
            exact.append(value)
            if len(exact) > self._limit:
                self._spill()
            return
        self._bucket(value)

    def _spill(self) -> None:
        """Move the exact values into the histogram (once, when the limit is passed)."""
        values, self._exact = self._exact, None
        assert values is not None
        for item in values:
            self._bucket(item)

    def _bucket(self, value: float) -> None:
        self._count += 1
        self._total += value
        if value > self._max:
            self._max = value
        if value <= 0.0:
            self._zeros += 1
            return
        index = math.floor(math.log(value) / _LOG_GROWTH)
        self._buckets[index] = self._buckets.get(index, 0) + 1

    def quantile(self, q: float) -> float | None:
        """The ``q`` quantile (0..1), None for an empty series."""
        if self.count == 0:
            return None
        if self._exact is not None:
            ordered = sorted(self._exact)
            rank = q * (len(ordered) - 1)
            low = math.floor(rank)
            high = min(low + 1, len(ordered) - 1)
            return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
        rank = q * (self._count - 1)
        seen = self._zeros
        if rank < seen:
            return 0.0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if rank < seen:
                middle = math.exp((index + 0.5) * _LOG_GROWTH)
                return min(middle, self._max)
        return self._max

    def summary(self) -> dict[str, float | int | None]:
        """``{"count", "avg", "p50", "p95", "p99", "max"}``; None values when empty."""
        count = self.count
        if count == 0:
            return {"count": 0, "avg": None, "p50": None, "p95": None, "p99": None, "max": None}
        if self._exact is not None:
            # Sort once for the three percentiles.
            self._exact = array("d", sorted(self._exact))
        return {
            "count": count,
            "avg": self.total / count,
            "p50": self.quantile(0.50),
            "p95": self.quantile(0.95),
            "p99": self.quantile(0.99),
            "max": self.maximum,
        }
