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
            stream = self._stream or sys.stderr
            try:
                stream.write(
                    f"hapa-telemetry: {signal} export failed ({items} items, "
                    f"{failed_total} failures so far): {error or 'unknown error'}\n"
                )
                stream.flush()
            except Exception:  # pragma: no cover
                pass

    def dropped(self, signal: str, count: int) -> None:
        """Book items dropped before export (e.g. a full queue)."""
        if self._on_result is not None and count:
            self._on_result(signal, "dropped", count)

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
                    "last_error": s.last_error,
                }
            return out

    def healthy(self) -> bool:
        """True when no signal's most recent export failed."""
        return all(v["status"] == "ok" for v in self.status().values())


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


class CountingSpanExporter(SpanExporter):
    """A span exporter that books outcomes and never raises."""

    def __init__(self, inner: SpanExporter, health: ExportHealth) -> None:
        self._inner = inner
        self._health = health

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception as exc:
            self._health.record("traces", False, len(spans), _describe(exc))
            return SpanExportResult.FAILURE
        ok = result == SpanExportResult.SUCCESS
        self._health.record("traces", ok, len(spans), None if ok else "exporter returned FAILURE")
        return result

    def shutdown(self) -> None:
        try:
            self._inner.shutdown()
        except Exception:
            pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return self._inner.force_flush(timeout_millis)
        except Exception:
            return False


class CountingLogExporter(LogRecordExporter):
    """A log record exporter that books outcomes and never raises."""

    def __init__(self, inner: LogRecordExporter, health: ExportHealth) -> None:
        self._inner = inner
        self._health = health

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        try:
            result = self._inner.export(batch)
        except Exception as exc:
            self._health.record("logs", False, len(batch), _describe(exc))
            return LogRecordExportResult.FAILURE
        ok = result == LogRecordExportResult.SUCCESS
        self._health.record("logs", ok, len(batch), None if ok else "exporter returned FAILURE")
        return result

    def shutdown(self) -> None:
        try:
            self._inner.shutdown()  # type: ignore[no-untyped-call]
        except Exception:
            pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return bool(self._inner.force_flush(timeout_millis))
        except Exception:
            return False


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
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self._health.record("metrics", False, 1, _describe(exc))
            return MetricExportResult.FAILURE
        ok = result == MetricExportResult.SUCCESS
        self._health.record("metrics", ok, 1, None if ok else "exporter returned FAILURE")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        try:
            return self._inner.force_flush(timeout_millis)
        except Exception:
            return False

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        try:
            self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)
        except Exception:
            pass
