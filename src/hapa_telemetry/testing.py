"""A pytest plugin for tests of apps that use hapa-telemetry: the ``hapa_capture`` fixture.

Installed with the package and registered under the ``pytest11`` entry point; it does
nothing until a test asks for the fixture::

    def test_generate(hapa_capture):
        app = make_app()                      # calls hapa_telemetry.instrument_fastapi(app)
        TestClient(app).post("/generate", json={"prompt": "hi"})
        assert hapa_capture.lines(event_type="request_end", status_code=200)
        assert hapa_capture.spans("POST /generate")
        assert hapa_capture.metric("api_requests_total", endpoint="/generate") == 1

The fixture configures the package (not the global OTel providers) against in-memory
exporters: JSON log lines go to memory instead of stdout, no files are written outside
``tmp_path``, nothing is exported over the network. Afterwards everything the package
holds process-wide is reset (:func:`reset`), so tests do not leak into each other.

Settings for one test: ``@pytest.mark.hapa_telemetry(log_level="DEBUG", ...)`` takes the
keyword arguments of :func:`hapa_telemetry.configure`.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from hapa_telemetry import _state

if TYPE_CHECKING:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from hapa_telemetry.runtime import Telemetry

__all__ = ["Capture", "hapa_capture", "reset"]

# Settings a user's environment may hold that would send a test's telemetry elsewhere.
_ISOLATED_ENV = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "PROMETHEUS_MULTIPROC_DIR",
    "METRICS_PORT",
    "LOG_DIRECTORY",
)


def reset() -> None:
    """Return the package to its import-time state: shut down the configured Telemetry,
    forget it and every lazily built helper (see ``hapa_telemetry._state``)."""
    _state.reset()


class Capture:
    """What the package emitted during one test: log lines, finished spans, metrics."""

    def __init__(
        self,
        telemetry: Telemetry,
        span_exporter: InMemorySpanExporter,
        log_exporter: InMemoryLogRecordExporter,
        metric_reader: InMemoryMetricReader,
        stream: io.StringIO,
    ) -> None:
        self.telemetry = telemetry
        self.span_exporter = span_exporter
        self.log_exporter = log_exporter
        self.metric_reader = metric_reader
        self._stream = stream

    def lines(self, **match: Any) -> list[dict[str, Any]]:
        """The JSON log lines written so far (flushed first), as dicts, in order; only
        those whose fields equal every ``match`` keyword, e.g. ``lines(level="ERROR")``."""
        self.telemetry.pipeline.flush(5.0)
        out = []
        for text in self._stream.getvalue().splitlines():
            if not text.strip():
                continue
            try:
                line = orjson.loads(text)
            except orjson.JSONDecodeError:  # LOG_FORMAT=plain: keep the text
                line = {"message": text}
            if all(line.get(key, _MISSING) == value for key, value in match.items()):
                out.append(line)
        return out

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """The finished spans (all, or those called ``name``), oldest first."""
        spans = self.span_exporter.get_finished_spans()
        return [s for s in spans if name is None or s.name == name]

    def metric(self, name: str, **labels: str) -> float:
        """The current value of metric ``name`` over the points whose attributes include
        ``labels``: a counter's total, a histogram's count of observations, a gauge's
        value (one matching point expected). 0 for a known metric nothing recorded yet.

        Raises ``LookupError`` for a name the package does not record, and ``ValueError``
        when the labels match several points of a gauge.
        """
        from opentelemetry.sdk.metrics.export import Gauge, Histogram, Sum

        from hapa_telemetry import names

        data = self.metric_reader.get_metrics_data()
        seen: set[str] = set()
        total = 0.0
        gauges: list[float] = []
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    seen.add(metric.name)
                    if metric.name != name:
                        continue
                    for point in metric.data.data_points:
                        attrs = point.attributes or {}
                        if any(str(attrs.get(k, _MISSING)) != str(v) for k, v in labels.items()):
                            continue
                        if isinstance(metric.data, Histogram):
                            total += point.count  # type: ignore[union-attr]
                        elif isinstance(metric.data, Sum):
                            total += point.value  # type: ignore[union-attr]
                        elif isinstance(metric.data, Gauge):
                            gauges.append(float(point.value))  # type: ignore[union-attr]
        if gauges:
            if len(gauges) > 1:
                raise ValueError(
                    f"{len(gauges)} points of gauge {name!r} match {labels}: give more labels"
                )
            return gauges[0]
        known = {*names.SEED_FAMILIES, *names.SYSTEM_FAMILIES, names.TELEMETRY_EXPORT_TOTAL}
        if name not in seen and name not in known:
            raise LookupError(f"no metric named {name!r}; recorded: {sorted(seen)}")
        return total

    def clear(self) -> None:
        """Forget the lines and spans captured so far (metrics are cumulative)."""
        self.telemetry.pipeline.flush(5.0)
        self._stream.seek(0)
        self._stream.truncate()
        self.span_exporter.clear()
        self.log_exporter.clear()


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "hapa_telemetry(**settings): settings for the hapa_capture fixture "
        "(keyword arguments of hapa_telemetry.configure)",
    )


@pytest.fixture
def hapa_capture(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Capture]:
    """hapa-telemetry configured against in-memory exporters for this test; reset after."""
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from hapa_telemetry.runtime import configure

    for var in _ISOLATED_ENV:
        monkeypatch.delenv(var, raising=False)
    marker = request.node.get_closest_marker("hapa_telemetry")
    # JSON lines whatever DEBUG / LOG_FORMAT the environment sets: lines() parses them
    overrides: dict[str, Any] = {"log_directory": str(tmp_path / "hapa-logs"),
                                 "log_format": "json"}
    overrides.update(marker.kwargs if marker is not None else {})
    reset()
    spans = InMemorySpanExporter()
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    reader = InMemoryMetricReader()
    stream = io.StringIO()
    telemetry = configure(
        set_global=False,
        span_exporter=spans,
        log_exporter=logs,
        metric_readers=(reader,),
        log_stream=stream,
        **overrides,
    )
    try:
        yield Capture(telemetry, spans, logs, reader, stream)
    finally:
        reset()
