"""Exporter wrappers: failures are booked, reported once per interval, never raised."""

from __future__ import annotations

import io
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from hapa_telemetry.exporting import CountingSpanExporter, ExportHealth


class Exploding(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise ConnectionRefusedError("collector down")

    def shutdown(self) -> None:
        raise RuntimeError("also broken")


class Failing(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.FAILURE


def test_raising_exporter_is_booked_reported_and_contained() -> None:
    """An exception from an exporter becomes FAILURE, a count, one stderr line, a status."""
    stream = io.StringIO()
    booked: list[tuple[str, str, int]] = []
    health = ExportHealth(lambda s, o, n: booked.append((s, o, n)), stream=stream)
    exporter = CountingSpanExporter(Exploding(), health)
    assert exporter.export([]) == SpanExportResult.FAILURE
    assert exporter.export([]) == SpanExportResult.FAILURE
    exporter.shutdown()  # does not raise either
    assert booked == [("traces", "failed", 1), ("traces", "failed", 1)]
    assert stream.getvalue().count("traces export failed") == 1
    assert "ConnectionRefusedError: collector down" in stream.getvalue()
    status = health.status()["traces"]
    assert status["status"] == "failing" and status["failed_batches"] == 2
    assert not health.healthy()


def test_recovery_turns_status_back_to_ok() -> None:
    """A success after failures marks the signal ok again."""
    health = ExportHealth(stream=io.StringIO())
    CountingSpanExporter(Failing(), health).export([])
    assert health.status()["traces"]["status"] == "failing"
    health.record("traces", True, 1)
    assert health.status()["traces"]["status"] == "ok" and health.healthy()
