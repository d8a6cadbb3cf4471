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

    __slots__ = ("_buckets", "_exact", "_limit", "_zeros", "count", "maximum", "total")

    def __init__(self, exact_limit: int = DEFAULT_EXACT_LIMIT) -> None:
        self._limit = exact_limit
        self._exact: array[float] | None = array("d")
        self._buckets: dict[int, int] = {}
        self._zeros = 0
        self.count = 0
        self.total = 0.0
        self.maximum = -math.inf

    @property
    def exact(self) -> bool:
        """Whether percentiles are still exact."""
        return self._exact is not None

    def add(self, value: float) -> None:
        """Record one value (the caller has checked it is a finite number >= 0)."""
        self.count += 1
        self.total += value
        if value > self.maximum:
            self.maximum = value
        if self._exact is not None:
            self._exact.append(value)
            if len(self._exact) > self._limit:
                values, self._exact = self._exact, None
                for item in values:
                    self._bucket(item)
        else:
            self._bucket(value)

    def _bucket(self, value: float) -> None:
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
        rank = q * (self.count - 1)
        seen = self._zeros
        if rank < seen:
            return 0.0
        for index in sorted(self._buckets):
            seen += self._buckets[index]
            if rank < seen:
                middle = math.exp((index + 0.5) * _LOG_GROWTH)
                return min(middle, self.maximum)
        return self.maximum

    def summary(self) -> dict[str, float | int | None]:
        """``{"count", "avg", "p50", "p95", "p99", "max"}``; None values when empty."""
        if self.count == 0:
            return {"count": 0, "avg": None, "p50": None, "p95": None, "p99": None, "max": None}
        if self._exact is not None:
            # Sort once for the three percentiles.
            self._exact = array("d", sorted(self._exact))
        return {
            "count": self.count,
            "avg": self.total / self.count,
            "p50": self.quantile(0.50),
            "p95": self.quantile(0.95),
            "p99": self.quantile(0.99),
            "max": self.maximum,
        }
