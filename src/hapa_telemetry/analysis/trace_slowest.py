"""The slowest requests of a latency report, with their trace ids (top N).

``hapa-telemetry logs latency`` lists them under the percentiles so a person can jump
from the report to ``hapa-telemetry trace <id>``. Files: a bounded heap fed by the
report; Elasticsearch: a ``top_hits`` sorted by duration (see es_reports). The table
is drawn by render.py.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping
from typing import Any

TOP = 10
#: Log fields a slowest-request row keeps.
FIELDS = ("duration", "trace_id", "endpoint", "method", "status_code", "timestamp")


class Slowest:
    """The ``top`` longest durations seen, each with its line's trace id and route."""

    def __init__(self, top: int = TOP) -> None:
        self._top = top
        self._heap: list[tuple[float, int, dict[str, Any]]] = []
        self._seq = itertools.count()

    def add(self, duration: float, record: Mapping[str, Any]) -> None:
        """Offer one request_end line (O(log top); the row is built only when kept)."""
        heap = self._heap
        if len(heap) >= self._top and duration <= heap[0][0]:
            return
        row = {key: record.get(key) for key in FIELDS}
        row["duration"] = duration
        item = (duration, next(self._seq), row)
        if len(heap) < self._top:
            heapq.heappush(heap, item)
        else:
            heapq.heapreplace(heap, item)

    def result(self) -> list[dict[str, Any]]:
        """Rows, slowest first."""
        return [row for _, _, row in sorted(self._heap, key=lambda i: (-i[0], i[1]))]
