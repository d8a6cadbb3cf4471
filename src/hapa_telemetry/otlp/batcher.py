"""A bounded queue and one exporter thread for the package's own log events.

The request thread's whole cost is :meth:`EventLogBatcher.emit`: one tuple appended to a
deque (and, once a batch is full, one ``Event.set``). The thread wakes when a batch is
full or the schedule delay has passed, encodes the batch in time slices
(:class:`~hapa_telemetry.otlp.exporters.Slicer`), posts it with the package's OTLP/HTTP
client and books the outcome. A full queue drops the new event and counts it
(``hapa_telemetry_export_total{outcome="dropped"}``, ``/health``): the request path never
waits for the exporter. Same knobs as the SDK's BatchLogRecordProcessor
(``LOG_QUEUE_SIZE`` / ``OTEL_BLRP_*``).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value

from hapa_telemetry.otlp.events import EventEncoder, EventItem
from hapa_telemetry.otlp.exporters import _CHECK_EVERY, Slicer
from hapa_telemetry.otlp.http import OtlpHttpClient

Book = Callable[[bool, int, str | None], None]
"""Told after every batch: (ok, items, error)."""


class EventLogBatcher:
    """Batches :data:`EventItem` tuples and exports them as OTLP log records."""

    def __init__(
        self,
        client: OtlpHttpClient,
        encoder: EventEncoder,
        resource: Any,
        scope: Any,
        *,
        max_queue: int = 2048,
        batch_size: int = 512,
        delay_s: float = 1.0,
        on_result: Book | None = None,
        on_dropped: Callable[[int], None] | None = None,
        on_rejected: Callable[[int, str], None] | None = None,
    ) -> None:
        self._client = client
        self._encoder = encoder
        self._resource = resource
        self._scope = scope
        self._max_queue = max_queue
        self._batch = max(1, min(batch_size, max_queue))
        self._delay = delay_s
        self._on_result = on_result
        self._on_dropped = on_dropped
        self._on_rejected = on_rejected
        self._queue: deque[EventItem] = deque()
        self.dropped = 0
        self._stopped = False
        self._start()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork)

            def after_in_child() -> None:
                method = ref()
                if method is not None:
                    method()

            os.register_at_fork(after_in_child=after_in_child)

    def _start(self) -> None:
        self._pid = os.getpid()
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._run, name="hapa-otlp-logs", daemon=True
        )
        self._thread.start()

    def _after_fork(self) -> None:
        self._queue.clear()  # the parent exports its own events
        if not self._stopped:
            self._start()

    # -- the request thread ---------------------------------------------------------------
    def emit(self, levelno: int, created: float, event: Mapping[str, Any]) -> None:
        """Queue one event (never blocks; a full queue drops it and counts the drop)."""
        queue = self._queue
        if len(queue) >= self._max_queue or self._stopped:
            self.dropped += 1
            if self._on_dropped is not None:
                self._on_dropped(1)
            return
        queue.append((levelno, created, time.time_ns(), event))
        if len(queue) >= self._batch and not self._wake.is_set():
            self._wake.set()

    # -- the exporter thread --------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._delay)
            self._wake.clear()
            if self._stopped:
                break
            self._drain(full_batches_only=False, deadline=None)

    def _drain(self, *, full_batches_only: bool, deadline: float | None) -> bool:
        """Export queued events in batches; True when the queue was emptied."""
        with self._export_lock:
            queue = self._queue
            while queue:
                if full_batches_only and len(queue) < self._batch:
                    return False
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                count = min(self._batch, len(queue))
                batch = [queue.popleft() for _ in range(count)]
                self._export(batch, None if deadline is None else deadline - time.monotonic())
            return True

    def _export(self, batch: list[EventItem], timeout: float | None) -> None:
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            failures: list[BaseException] = []
            body = self._encoder.encode_request(
                batch, self._resource, self._scope, Slicer(), _CHECK_EVERY, failures.append
            )
            if failures and self._on_rejected is not None:
                first = failures[0]
                self._on_rejected(
                    len(failures), f"not encodable: {type(first).__name__}: {first}"[:300]
                )
            if not body:
                return
            result = self._client.send(body, timeout)
            if result.ok and result.rejected and self._on_rejected is not None:
                self._on_rejected(result.rejected, result.message)
            if self._on_result is not None:
                self._on_result(result.ok, len(batch), None if result.ok else result.error)
        except Exception as exc:  # never let the thread die
            if self._on_result is not None:
                self._on_result(False, len(batch), f"{type(exc).__name__}: {exc}"[:300])
        finally:
            detach(token)

    # -- lifecycle ------------------------------------------------------------------------
    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything queued now; False if ``timeout_millis`` ran out first."""
        deadline = time.monotonic() + timeout_millis / 1000
        if self._pid != os.getpid():
            return True
        return self._drain(full_batches_only=False, deadline=deadline)

    def shutdown(self) -> None:
        """Stop the thread and close the connection (what is still queued is dropped;
        :meth:`force_flush` first to send it)."""
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        self._client.close()
        self._thread.join(1.0)
        left = len(self._queue)
        if left:
            self._queue.clear()
            self.dropped += left
            if self._on_dropped is not None:
                self._on_dropped(left)
