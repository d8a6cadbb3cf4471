"""Fixtures: a freshly configured Telemetry per test with in-memory exporters."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from hapa_telemetry import runtime
from hapa_telemetry.exposition import render_metrics
from hapa_telemetry.testing import reset as reset_telemetry


@dataclass
class Harness:
    """A configured Telemetry plus handles on everything it emitted."""

    telemetry: runtime.Telemetry
    spans: InMemorySpanExporter
    logs: InMemoryLogRecordExporter
    stream: io.StringIO
    log_dir: Path

    def lines(self) -> list[dict[str, Any]]:
        """Every JSON line written to stdout so far (after a flush)."""
        self.telemetry.pipeline.flush(5.0)
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line]

    def metrics(self) -> dict[str, Any]:
        """Parsed /metrics families by name."""
        body, _ = render_metrics(self.telemetry, None)
        out: dict[str, Any] = {}
        for fam in text_string_to_metric_families(body.decode()):
            out[fam.name] = fam
            if fam.type == "counter":  # the parser drops the _total suffix
                out[fam.name + "_total"] = fam
        return out

    def sample(self, family: str, suffix: str = "", **labels: str) -> float | None:
        """The value of one sample, or None when absent."""
        fams = self.metrics()
        name = family
        for fam in fams.values():
            for s in fam.samples:
                if s.name == name + suffix and all(s.labels.get(k) == v for k, v in labels.items()):
                    return float(s.value)
        return None


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Harness]:
    """A Telemetry configured for one test (not global), writing logs to tmp_path."""
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "DEBUG", "LOG_LEVEL", "METRICS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    reset_telemetry()
    spans = InMemorySpanExporter()
    logs = InMemoryLogRecordExporter()
    stream = io.StringIO()
    t = runtime.configure(
        set_global=False,
        span_exporter=spans,
        log_exporter=logs,
        log_stream=stream,
        log_directory=str(tmp_path / "logs"),
        log_level="DEBUG",
    )
    yield Harness(t, spans, logs, stream, tmp_path / "logs")
    reset_telemetry()
