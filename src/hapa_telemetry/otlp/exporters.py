"""Span and log record exporters: our encoder + :class:`OtlpHttpClient`.

Encoding runs in time slices: every ``_CHECK_EVERY`` items the encoder looks at the
clock, and once ``_SLICE_S`` of encoding has passed since the last hand-over the exporter
thread sleeps ``_PAUSE_S``, so a thread waiting for the GIL (the event loop) gets it
then, instead of after the interpreter's 5 ms switch interval. Slicing by time rather
than by count keeps the holds short on a slow or busy machine too. Compression and the
socket I/O release the GIL themselves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from hapa_telemetry.otlp._wire import request
from hapa_telemetry.otlp.http import OtlpHttpClient, SendResult
from hapa_telemetry.otlp.logs import encode_logs
from hapa_telemetry.otlp.traces import encode_span, encode_spans, span_origin

EncodedSpan = tuple[int, bytes]
"""A span encoded when it ended: (its origin's number, Span message body). Two atomic
values: the cyclic GC untracks such a tuple at its first young collection, so the queued
spans are never promoted to the old generation (promotions are what trigger the slow full
collections, tens of ms holding the GIL)."""
_MAX_ORIGINS = 1024

_CHECK_EVERY = 8  # items between two looks at the clock (~0.1 ms of encoding)
_SLICE_S = 0.0005  # longest encoding stretch without a GIL hand-over
_PAUSE_S = 0.0001


class Slicer:
    """The encoder's ``pause`` hook: sleeps briefly once a slice's time is used up."""

    def __init__(self, slice_s: float = _SLICE_S, pause_s: float = _PAUSE_S) -> None:
        self._slice = slice_s
        self._pause = pause_s
        self._since = time.perf_counter()

    def __call__(self) -> None:
        now = time.perf_counter()
        if now - self._since >= self._slice:
            time.sleep(self._pause)
            self._since = time.perf_counter()


class _Exporter:
    """Shared body of the two exporters: encode in slices, send, book rejections."""

    signal = ""

    def __init__(
        self,
        client: OtlpHttpClient,
        encode: Callable[..., bytes],
        on_rejected: Callable[[str, int, str], None] | None = None,
    ) -> None:
        self._client = client
        self._encode = encode
        self._on_rejected = on_rejected
        self._shutdown = threading.Event()
        self.last_error: str | None = None

    def _send(self, items: Sequence[Any]) -> bool:
        if self._shutdown.is_set():
            self.last_error = "exporter is shut down"
            return False
        if not items:
            return True
        failures: list[BaseException] = []
        body = self._encode(items, Slicer(), _CHECK_EVERY, failures.append)
        if failures:
            first = failures[0]
            self.not_encodable(len(failures), first)
        return self.post(body)

    def not_encodable(self, count: int, error: BaseException) -> None:
        """Book items left out because they could not be encoded."""
        if self._on_rejected is not None:
            self._on_rejected(self.signal, count,
                              f"not encodable: {type(error).__name__}: {error}"[:300])

    def post(self, body: bytes, timeout: float | None = None) -> bool:
        """Send an encoded request; book a partial success's rejected items."""
        if self._shutdown.is_set():
            self.last_error = "exporter is shut down"
            return False
        result: SendResult = self._client.send(body, timeout)
        if result.ok:
            self.last_error = None
            if result.rejected and self._on_rejected is not None:
                self._on_rejected(self.signal, result.rejected, result.message)
            return True
        self.last_error = result.error or "export failed"
        return False

    def _close(self) -> None:
        self._shutdown.set()
        self._client.close()


class HapaSpanExporter(_Exporter, SpanExporter):
    """OTLP/HTTP (protobuf) span exporter with the package's encoder."""

    signal = "traces"

    def __init__(
        self,
        client: OtlpHttpClient,
        on_rejected: Callable[[str, int, str], None] | None = None,
    ) -> None:
        super().__init__(client, encode_spans, on_rejected)
        # (resource, scope) pairs of encoded spans, numbered: the queue holds numbers
        self._origins: list[tuple[Any, Any]] = []
        self._origin_numbers: dict[tuple[int, int], int] = {}
        self._origins_lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        ok = self._send(spans)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def encode_one(self, span: ReadableSpan) -> EncodedSpan | tuple[Any, Any, bytes]:
        """A span encoded when it ends: (origin number, Span message body); past
        ``_MAX_ORIGINS`` distinct (resource, scope) pairs, (resource, scope, body)."""
        resource, scope = span_origin(span)
        key = (id(resource), id(scope))
        number = self._origin_numbers.get(key)
        if number is None:
            if len(self._origins) >= _MAX_ORIGINS:
                return resource, scope, encode_span(span)
            with self._origins_lock:
                number = self._origin_numbers.get(key)
                if number is None:
                    number = len(self._origins)
                    self._origins.append((resource, scope))  # keeps both ids in use
                    self._origin_numbers[key] = number
        return number, encode_span(span)

    def export_encoded(self, items: Sequence[Any]) -> SpanExportResult:
        """Post spans :meth:`encode_one` encoded (grouped by resource and scope)."""
        if not items:
            return SpanExportResult.SUCCESS
        groups: dict[Any, tuple[Any, Any, list[bytes]]] = {}
        origins = self._origins
        for item in items:
            if len(item) == 2:
                number, body = item
                key: Any = number
                resource, scope = origins[number]
            else:
                resource, scope, body = item
                key = (id(resource), id(scope))
            entry = groups.get(key)
            if entry is None:
                entry = groups[key] = (resource, scope, [])
            entry[2].append(body)
        ok = self.post(request(list(groups.values()), b"\x12"))
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self._close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # nothing buffered here


class HapaLogExporter(_Exporter, LogRecordExporter):
    """OTLP/HTTP (protobuf) log record exporter with the package's encoder."""

    signal = "logs"

    def __init__(
        self,
        client: OtlpHttpClient,
        on_rejected: Callable[[str, int, str], None] | None = None,
    ) -> None:
        super().__init__(client, encode_logs, on_rejected)

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        ok = self._send(batch)
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def shutdown(self) -> None:
        self._close()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True
