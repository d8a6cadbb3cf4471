"""Live application figures for /health over a sliding one-minute window.

Per-second buckets in a ring: recording a request is a few integer operations under a
lock; reading sums at most 60 buckets.
"""

from __future__ import annotations

import threading
import time

_WINDOW = 60


class LiveStats:
    """Requests, summed duration and 5xx count per second for the last minute."""

    def __init__(self, clock: object = None) -> None:
        self._clock = clock if callable(clock) else time.monotonic
        self._lock = threading.Lock()
        self._stamp = [-1] * _WINDOW
        self._count = [0] * _WINDOW
        self._duration = [0.0] * _WINDOW
        self._errors = [0] * _WINDOW

    def record(self, duration: float, error: bool) -> None:
        """Count one finished request."""
        sec = int(self._clock())
        i = sec % _WINDOW
        with self._lock:
            if self._stamp[i] != sec:
                self._stamp[i] = sec
                self._count[i] = 0
                self._duration[i] = 0.0
                self._errors[i] = 0
            self._count[i] += 1
            self._duration[i] += duration
            if error:
                self._errors[i] += 1

    def snapshot(self) -> dict[str, float]:
        """requests_per_minute, average_response_time (s), error_rate (0–1)."""
        now = int(self._clock())
        count = 0
        total = 0.0
        errors = 0
        with self._lock:
            for i in range(_WINDOW):
                if now - self._stamp[i] < _WINDOW:
                    count += self._count[i]
                    total += self._duration[i]
                    errors += self._errors[i]
        return {
            "requests_per_minute": count,
            "average_response_time": round(total / count, 6) if count else 0.0,
            "error_rate": round(errors / count, 6) if count else 0.0,
        }
