"""Bounded queues with one exporter thread each: the package's log events, and spans.

The request thread's whole cost is :meth:`Batcher.put`: one item appended to a deque
(and, once a batch is full, one ``Event.set``). The thread wakes when a batch is
full or the schedule delay has passed, encodes the batch in time slices
(:class:`~hapa_telemetry.otlp.exporters.Slicer`), posts it with the package's OTLP/HTTP
client and books the outcome. A full queue drops the new item and counts it
(``hapa_telemetry_export_total{outcome="dropped"}``, ``/health``): the request path never
waits for the exporter. Same knobs as the SDK's batch processors (``LOG_QUEUE_SIZE`` /
``OTEL_BLRP_*``, ``OTEL_BSP_*``).
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar, cast

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter

from hapa_telemetry.otlp.events import EventEncoder, EventItem
from hapa_telemetry.otlp.exporters import _CHECK_EVERY, HapaLogExporter, Slicer

Book = Callable[[bool, int, str | None], None]
"""Told after every batch: (ok, items, error)."""
T = TypeVar("T")


class Batcher(Generic[T]):
    """A bounded queue of items and the thread that hands them to ``export`` in batches."""

    def __init__(
        self,
        export: Callable[[list[T], float | None], object],
        *,
        name: str,
        max_queue: int = 2048,
        batch_size: int = 512,
        delay_s: float = 1.0,
        on_dropped: Callable[[int], None] | None = None,
        on_shutdown: Callable[[], None] | None = None,
    ) -> None:
        self._export_batch = export
        self._name = name
        self._max_queue = max_queue
        self._batch = max(1, min(batch_size, max_queue))
        self._delay = delay_s
        self._on_dropped = on_dropped
        self._on_shutdown = on_shutdown
        self._queue: deque[T] = deque()
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
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        self._queue.clear()  # the parent exports its own items
        if not self._stopped:
            self._start()

    # -- the request thread ---------------------------------------------------------------
    def put(self, item: T) -> None:
        """Queue one item (never blocks; a full queue drops it and counts the drop)."""
        queue = self._queue
        if len(queue) >= self._max_queue or self._stopped:
            self._drop(1)
            return
        queue.append(item)
        if len(queue) >= self._batch and not self._wake.is_set():
            self._wake.set()

    def _drop(self, count: int) -> None:
        self.dropped += count
        if self._on_dropped is not None:
            try:
                self._on_dropped(count)
            except Exception:  # pragma: no cover - counting never breaks the caller
                pass

    # -- the exporter thread --------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopped:
            # Woken by a full batch: export full batches only (what arrives meanwhile
            # waits for its own batch to fill); woken by the delay: export everything.
            full = self._wake.wait(self._delay)
            self._wake.clear()
            if self._stopped:
                break
            self._drain(deadline=None, full_only=full)

    def _drain(self, *, deadline: float | None, full_only: bool = False) -> bool:
        """Export queued items in batches; True when the queue was emptied.

        ``full_only``: stop when less than a batch is left. With a ``deadline``
        (force_flush) it gives up once that has passed, also while waiting for an export
        in progress (a hung endpoint) to finish.
        """
        wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._export_lock.acquire(timeout=wait):
            return False
        try:
            queue = self._queue
            while queue:
                if full_only and len(queue) < self._batch:
                    return False
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                count = min(self._batch, len(queue))
                batch = [queue.popleft() for _ in range(count)]
                token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
                try:
                    self._export_batch(
                        batch, None if deadline is None else deadline - time.monotonic()
                    )
                except Exception:  # pragma: no cover - export callables book their errors
                    pass
                finally:
                    detach(token)
            return True
        finally:
            self._export_lock.release()

    # -- lifecycle ------------------------------------------------------------------------
    def force_flush(self, timeout_millis: float = 30_000) -> bool:
        """Export everything queued now; False if ``timeout_millis`` ran out first."""
        if self._pid != os.getpid():
            return True
        return self._drain(deadline=time.monotonic() + timeout_millis / 1000)

    def shutdown(self) -> None:
        """Stop the thread (what is still queued is dropped and counted;
        :meth:`force_flush` first to send it)."""
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        if self._on_shutdown is not None:
            self._on_shutdown()
        self._thread.join(1.0)
        left = len(self._queue)
        if left:
            self._queue.clear()
            self._drop(left)


class EventLogBatcher(Batcher[EventItem]):
    """Batches the pipeline's events and exports them as OTLP log records through the
    log exporter's client (its rejected-item booking included)."""

    def __init__(
        self,
        exporter: HapaLogExporter,
        encoder: EventEncoder,
        resource: Any,
        scope: Any,
        *,
        max_queue: int = 2048,
        batch_size: int = 512,
        delay_s: float = 1.0,
        on_result: Book | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self._exporter = exporter
        self._encoder = encoder
        self._resource = resource
        self._scope = scope
        self._on_result = on_result
        super().__init__(
            self._export, name="hapa-otlp-logs", max_queue=max_queue, batch_size=batch_size,
            delay_s=delay_s, on_dropped=on_dropped, on_shutdown=exporter.shutdown,
        )

    def emit(self, levelno: int, created: float, event: Mapping[str, Any]) -> None:
        """Queue one event of the pipeline (never blocks)."""
        self.put((levelno, created, time.time_ns(), event))

    def _export(self, batch: list[EventItem], timeout: float | None) -> None:
        exporter = self._exporter
        try:
            failures: list[BaseException] = []
            body = self._encoder.encode_request(
                batch, self._resource, self._scope, Slicer(), _CHECK_EVERY, failures.append
            )
            if failures:
                exporter.not_encodable(len(failures), failures[0])
            if not body:
                return
            ok = exporter.post(body, timeout)
            if self._on_result is not None:
                self._on_result(ok, len(batch), None if ok else exporter.last_error)
        except Exception as exc:  # never let the thread die
            if self._on_result is not None:
                self._on_result(False, len(batch), f"{type(exc).__name__}: {exc}"[:300])


class SpanBatchProcessor(SpanProcessor):
    """The BatchSpanProcessor's job on a :class:`Batcher`: sampled spans only, drops
    counted (the SDK's processor drops a full queue's spans with a log line only).

    With ``encode`` (the package's OTLP/HTTP exporter) a span is encoded as it ends and
    only its bytes wait in the queue: a queued ReadableSpan is a dozen GC-tracked objects
    that outlive young collections and make the full (slow) collections come sooner.
    """

    def __init__(
        self,
        exporter: SpanExporter,
        *,
        encode: Callable[[ReadableSpan], Any] | None = None,
        on_unencodable: Callable[[BaseException], None] | None = None,
        max_queue: int = 2048,
        batch_size: int = 512,
        delay_s: float = 5.0,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self._encode = encode
        self._on_unencodable = on_unencodable
        # with ``encode``, the exporter takes what it encoded (export_encoded)
        target = cast(Any, exporter)
        export = target.export_encoded if encode is not None else target.export
        self._batcher: Batcher[Any] = Batcher(
            lambda batch, timeout: export(batch), name="hapa-otlp-spans",
            max_queue=max_queue, batch_size=batch_size, delay_s=delay_s,
            on_dropped=on_dropped, on_shutdown=exporter.shutdown,
        )

    def on_end(self, span: ReadableSpan) -> None:
        ctx = span.context
        if ctx is None or not ctx.trace_flags.sampled:
            return
        encode = self._encode
        if encode is None:
            self._batcher.put(span)
            return
        try:
            item = encode(span)
        except Exception as exc:  # counted as rejected; never raised into span.end()
            if self._on_unencodable is not None:
                try:
                    self._on_unencodable(exc)
                except Exception:  # pragma: no cover
                    pass
            return
        self._batcher.put(item)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._batcher.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._batcher.shutdown()
