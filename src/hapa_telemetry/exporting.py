"""Exporter wrappers that make export failures visible instead of silent.

Every batch's outcome is counted per signal (``hapa_telemetry_export_total``), the last
error is kept for ``/health``, and failures are reported on stderr at most once per
``report_interval`` seconds per signal — never through the (possibly dead) OTLP log
pipeline, and never raised into the application.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


@dataclass
class SignalState:
    """What one signal's exporter did last."""

    ok: int = 0
    failed: int = 0
    last_error: str | None = None
    last_failure: float | None = None
    last_success: float | None = None
    last_report: float = 0.0
    rejected: int = 0
    dropped: int = 0


class ExportHealth:
    """Shared book of exporter outcomes; feeds the self-metric, /health and stderr."""

    def __init__(
        self,
        on_result: Callable[[str, str, int], None] | None = None,
        *,
        report_interval: float = 60.0,
        stream: Any = None,
    ) -> None:
        self._lock = threading.Lock()
        self.signals: dict[str, SignalState] = {}
        self._on_result = on_result
        self._interval = report_interval
        self._stream = stream

    def record(self, signal: str, ok: bool, items: int, error: str | None = None) -> None:
        """Book one export attempt; report a failure on stderr (rate-limited)."""
        now = time.time()
        report = False
        with self._lock:
            state = self.signals.setdefault(signal, SignalState())
            if ok:
                state.ok += 1
                state.last_success = now
            else:
                state.failed += 1
                state.last_error = error or "export failed"
                state.last_failure = now
                if now - state.last_report >= self._interval:
                    state.last_report = now
                    report = True
                    failed_total = state.failed
        if self._on_result is not None:
            try:
                self._on_result(signal, "ok" if ok else "failed", 1)
            except Exception:  # pragma: no cover - counting must never break export
                pass
        if report:
            self._write(
                f"hapa-telemetry: {signal} export failed ({items} items, "
                f"{failed_total} failures so far): {error or 'unknown error'}\n"
            )

    def rejected(self, signal: str, count: int, message: str = "") -> None:
        """Book items the receiver refused in a partial-success response."""
        if count <= 0:
            return
        now = time.time()
        report = False
        with self._lock:
            state = self.signals.setdefault(signal, SignalState())
            state.rejected += count
            state.last_error = f"receiver rejected {count} items: {message or 'no reason'}"
            if now - state.last_report >= self._interval:
                state.last_report = now
                report = True
            total = state.rejected
        if self._on_result is not None:
            try:
                self._on_result(signal, "rejected", count)
            except Exception:  # pragma: no cover - counting must never break export
                pass
        if report:
            self._write(
                f"hapa-telemetry: {signal} receiver rejected {count} items "
                f"({total} so far): {message or 'no reason given'}\n"
            )

    def _write(self, line: str) -> None:
        stream = self._stream or sys.stderr
        try:
            stream.write(line)
            stream.flush()
        except Exception:  # pragma: no cover
            pass

    def dropped(self, signal: str, count: int) -> None:
        """Book items dropped before export (e.g. a full queue)."""
        if count <= 0:
            return
        with self._lock:
            self.signals.setdefault(signal, SignalState()).dropped += count
        if self._on_result is not None:
            try:
                self._on_result(signal, "dropped", count)
            except Exception:  # pragma: no cover - counting must never break export
                pass

    def status(self) -> dict[str, Any]:
        """A JSON-ready summary for /health: per signal, state and counts."""
        with self._lock:
            out: dict[str, Any] = {}
            for name, s in self.signals.items():
                healthy = s.last_failure is None or (
                    s.last_success is not None and s.last_success > s.last_failure
                )
                out[name] = {
                    "status": "ok" if healthy else "failing",
                    "exported_batches": s.ok,
                    "failed_batches": s.failed,
                    "rejected_items": s.rejected,
                    "dropped_items": s.dropped,
                    "last_error": s.last_error,
                }
            return out

    def healthy(self) -> bool:
        """True when no signal's most recent export failed."""
        return all(v["status"] == "ok" for v in self.status().values())


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _guarded_export(
    health: ExportHealth, signal: str, items: int, call: Callable[[], Any], success: Any,
    failure: Any, inner: object = None,
) -> Any:
    """Run one export; book its outcome; turn an exception into ``failure``."""
    try:
        result = call()
    except Exception as exc:
        health.record(signal, False, items, _describe(exc))
        return failure
    ok = result == success
    if ok:
        health.record(signal, True, items)
    else:
        error = getattr(inner, "last_error", None) or "exporter returned FAILURE"
        health.record(signal, False, items, error)
    return result


def _quietly(call: Callable[[], Any], default: Any = None) -> Any:
    try:
        return call()
    except Exception:
        return default


class CountingSpanExporter(SpanExporter):
    """A span exporter that books outcomes and never raises."""

    def __init__(self, inner: SpanExporter, health: ExportHealth) -> None:
        self._inner = inner
        self._health = health

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result: SpanExportResult = _guarded_export(
            self._health, "traces", len(spans), lambda: self._inner.export(spans),
            SpanExportResult.SUCCESS, SpanExportResult.FAILURE, self._inner,
        )
        return result

    def export_encoded(self, items: Sequence[Any]) -> SpanExportResult:
        """Spans the inner exporter encoded when they ended (see otlp.exporters)."""
        inner: Any = self._inner
        result: SpanExportResult = _guarded_export(
            self._health, "traces", len(items), lambda: inner.export_encoded(items),
            SpanExportResult.SUCCESS, SpanExportResult.FAILURE, self._inner,
        )
        return result

    def shutdown(self) -> None:
        _quietly(self._inner.shutdown)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(_quietly(lambda: self._inner.force_flush(timeout_millis), False))


class CountingLogExporter(LogRecordExporter):
    """A log record exporter that books outcomes and never raises."""

    def __init__(self, inner: LogRecordExporter, health: ExportHealth) -> None:
        self._inner = inner
        self._health = health

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result: LogRecordExportResult = _guarded_export(
            self._health, "logs", len(batch), lambda: self._inner.export(batch),
            LogRecordExportResult.SUCCESS, LogRecordExportResult.FAILURE, self._inner,
        )
        return result

    def shutdown(self) -> None:
        _quietly(self._inner.shutdown)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(_quietly(lambda: self._inner.force_flush(timeout_millis), False))


class CountingMetricExporter(MetricExporter):
    """A metric exporter that books outcomes and never raises."""

    def __init__(self, inner: MetricExporter, health: ExportHealth) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self._health = health

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        result: MetricExportResult = _guarded_export(
            self._health, "metrics", 1,
            lambda: self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs),
            MetricExportResult.SUCCESS, MetricExportResult.FAILURE,
        )
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(_quietly(lambda: self._inner.force_flush(timeout_millis), False))

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        _quietly(lambda: self._inner.shutdown(timeout_millis=timeout_millis, **kwargs))
