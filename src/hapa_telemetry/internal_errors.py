"""Failures inside the package's own code: counted, reported on stderr, never raised.

Every guarded step of the request path (server span, propagation, request id, counters,
request lines, header capture) reports through :meth:`InternalErrors.report`: the failure
is counted per place (``/health`` shows the counts under ``telemetry.internal_errors``),
and the first failure of a place — then at most one per ``interval`` seconds — is written
on stderr with its traceback. Never through ``logging``: the log pipeline may be the part
that is failing.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import Any


class InternalErrors:
    """Counts per place plus rate-limited stderr reports; thread-safe, never raises."""

    def __init__(self, *, interval: float = 60.0, stream: Any = None) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._last_report: dict[str, float] = {}
        self._interval = interval
        self.stream = stream

    def report(self, where: str, error: BaseException | None = None) -> None:
        """Count one failure at ``where``; print it (with traceback) unless rate-limited."""
        try:
            now = time.monotonic()
            with self._lock:
                count = self._counts.get(where, 0) + 1
                self._counts[where] = count
                last = self._last_report.get(where)
                if last is not None and now - last < self._interval:
                    return
                self._last_report[where] = now
            if error is None:
                error = sys.exc_info()[1]
            detail = (
                "".join(traceback.format_exception(error)) if error is not None else "\n"
            )
            stream = self.stream or sys.stderr
            stream.write(
                f"hapa-telemetry: internal error in {where} ({count} so far; the request "
                f"goes on, further reports at most every {self._interval:g}s):\n{detail}"
            )
            stream.flush()
        except Exception:  # reporting must never fail the caller
            pass

    def counts(self) -> dict[str, int]:
        """A copy of the failure counts by place."""
        with self._lock:
            return dict(self._counts)

    @property
    def total(self) -> int:
        """All failures counted so far."""
        with self._lock:
            return sum(self._counts.values())
