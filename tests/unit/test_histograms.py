"""The seed histograms aggregated by the package (histograms.py): every reader gets what
the SDK's own histogram would have given it, and configurations the fast path cannot
serve fall back to the SDK instrument."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

import hapa_telemetry
from hapa_telemetry import names
from hapa_telemetry.exposition import render_metrics
from hapa_telemetry.histograms import BucketHistogram, PackageHistograms
from hapa_telemetry.instruments import Instruments
from hapa_telemetry.testing import reset

DURATION = names.API_REQUEST_DURATION_SECONDS
INFERENCE = names.AI_INFERENCE_DURATION_SECONDS
VALUES = [0.0, 0.003, 0.005, 0.0051, 0.2, 0.2, 1.5, 9.9, 10.0, 42.0]


@pytest.fixture(autouse=True)
def _clean() -> Any:
    reset()
    yield
    reset()


def _points(data: MetricsData | None, name: str) -> list[HistogramDataPoint]:
    out: list[HistogramDataPoint] = []
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    out += m.data.data_points  # type: ignore[arg-type]
    return out


def _scopes(data: MetricsData | None, name: str) -> list[str]:
    return [
        sm.scope.name
        for rm in data.resource_metrics if data is not None
        for sm in rm.scope_metrics
        for m in sm.metrics if m.name == name
    ]  # fmt: skip


def _record_both(values: list[float]) -> tuple[HistogramDataPoint, HistogramDataPoint]:
    """The same values through the SDK histogram and through the package's."""
    sdk_reader = InMemoryMetricReader()
    provider = MeterProvider(
        metric_readers=[sdk_reader],
        views=[View(instrument_name=DURATION,
                    aggregation=ExplicitBucketHistogramAggregation(
                        names.REQUEST_DURATION_BUCKETS))],
    )
    sdk = provider.get_meter("hapa_telemetry").create_histogram(DURATION, unit="s")
    ours_reader = InMemoryMetricReader()
    MeterProvider(metric_readers=[ours_reader])
    package = PackageHistograms(Resource.create({}), "always_off")
    assert package.attach([ours_reader])
    package.scope = provider.get_meter("hapa_telemetry")._instrumentation_scope  # type: ignore[attr-defined]
    ours = package.histogram(DURATION, "d", "s", names.REQUEST_DURATION_BUCKETS)
    attrs = {"method": "GET", "endpoint": "/x"}
    for v in values:
        sdk.record(v, attrs)
        ours.record(v, ("GET", "/x"), attrs)
    (a,) = _points(sdk_reader.get_metrics_data(), DURATION)
    (b,) = _points(ours_reader.get_metrics_data(), DURATION)
    provider.shutdown()
    return a, b


def test_same_counts_sum_buckets_min_max_as_the_sdk() -> None:
    """Values on, between and beyond the bucket bounds land in the buckets the SDK puts
    them in, with the same count, sum, min and max."""
    sdk, ours = _record_both(VALUES)
    assert ours.bucket_counts == sdk.bucket_counts
    assert tuple(ours.explicit_bounds) == tuple(sdk.explicit_bounds)
    assert (ours.count, ours.min, ours.max) == (sdk.count, sdk.min, sdk.max) == (10, 0.0, 42.0)
    assert math.isclose(ours.sum, sdk.sum)
    assert dict(ours.attributes or {}) == dict(sdk.attributes or {})


def test_negative_and_nan_values_are_dropped_like_the_sdk_drops_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A negative or NaN duration is not counted (and does not poison sum or max); the
    first one is reported with a warning, the others only counted."""
    h = BucketHistogram("h", "d", "s", [1.0])
    with caplog.at_level(logging.WARNING, logger="hapa_telemetry"):
        for v in (0.5, -1.0, float("nan"), 2.0):
            h.record(v, "k", {})
    assert [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()] == [
        "h: dropped -1.0 (a duration must be a non-negative number; further ones are "
        "only counted)"
    ]
    metric = h.metric(0, 1)
    assert metric is not None
    (point,) = metric.data.data_points
    assert (point.count, point.sum, point.max, h.refused) == (2, 2.5, 2.0, 2)  # type: ignore[union-attr]


def test_series_beyond_the_cardinality_limit_go_to_one_overflow_series() -> None:
    """As the SDK does: past the limit, new attribute sets share the overflow series."""
    h = BucketHistogram("h", "d", "s", [1.0], max_series=3)
    for i in range(10):
        h.record(0.1, i, {"i": str(i)})
    metric = h.metric(0, 1)
    assert metric is not None
    points = list(metric.data.data_points)
    overflow = [p for p in points if (p.attributes or {}).get("otel.metric.overflow")]
    assert len(points) == 4 and len(overflow) == 1
    assert overflow[0].count == 7  # type: ignore[attr-defined]


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item}")
    def item(item: int) -> dict[str, int]:
        return {"item": item}

    hapa_telemetry.instrument_fastapi(app)
    return app


def test_requests_reach_every_reader_with_exemplars_since_its_last_collection(
    tmp_path: Path,
) -> None:
    """Two readers of one configuration both see every request; each gets the exemplar
    (trace and span id of the request's server span) once, at its next collection."""
    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    telemetry = hapa_telemetry.configure(
        set_global=False, metric_readers=(first, second), log_to_stdout=False,
        log_directory=str(tmp_path), enable_metrics=False,
    )
    assert telemetry.providers.histograms is not None  # the fast path is on by default
    client = TestClient(_app())
    assert client.get("/items/1").status_code == 200
    a = _points(first.get_metrics_data(), DURATION)
    assert [(p.count, dict(p.attributes or {})) for p in a] == [
        (1, {"method": "GET", "endpoint": "/items/{item}"})
    ]
    (exemplar,) = a[0].exemplars
    assert exemplar.trace_id and exemplar.span_id and exemplar.value == a[0].sum
    assert _scopes(first.get_metrics_data(), DURATION) == ["hapa_telemetry"]
    assert not _points(first.get_metrics_data(), DURATION)[0].exemplars  # already seen
    (b,) = _points(second.get_metrics_data(), DURATION)
    assert b.count == 1 and len(b.exemplars) == 1  # the other reader's first look
    assert client.get("/items/2").status_code == 200
    (a2,) = _points(first.get_metrics_data(), DURATION)
    assert a2.count == 2 and a2.start_time_unix_nano == a[0].start_time_unix_nano


def test_unsampled_requests_leave_no_exemplar_under_the_trace_based_filter(tmp_path: Path) -> None:
    """The default filter (trace_based) keeps exemplars of sampled spans only."""
    reader = InMemoryMetricReader()
    hapa_telemetry.configure(
        set_global=False, metric_readers=(reader,), log_to_stdout=False,
        log_directory=str(tmp_path),
        enable_metrics=False, traces_sampler="always_off",
    )
    client = TestClient(_app())
    assert client.get("/items/1").status_code == 200
    (point,) = _points(reader.get_metrics_data(), DURATION)
    assert point.count == 1 and not point.exemplars


def test_a_delta_reader_gets_the_sdk_histogram_instead(tmp_path: Path) -> None:
    """A reader asking for delta histograms cannot share the cumulative aggregation: the
    package records through the SDK instrument, and the reader sees per-collection
    deltas."""
    reader = InMemoryMetricReader(
        preferred_temporality={SdkHistogram: AggregationTemporality.DELTA}
    )
    telemetry = hapa_telemetry.configure(
        set_global=False, metric_readers=(reader,), log_to_stdout=False,
        log_directory=str(tmp_path),
        enable_metrics=False,
    )
    assert telemetry.providers.histograms is None
    telemetry.instruments.inference(0.5, "m")
    telemetry.instruments.inference(0.25, "m")
    (point,) = _points(reader.get_metrics_data(), INFERENCE)
    assert (point.count, point.sum) == (2, 0.75)
    telemetry.instruments.inference(1.0, "m")
    (point,) = _points(reader.get_metrics_data(), INFERENCE)
    assert (point.count, point.sum) == (1, 1.0)


def test_a_failing_merge_still_delivers_the_sdk_metrics(tmp_path: Path) -> None:
    """If adding the package histograms fails, the reader still gets everything else and
    the failure is counted."""
    reader = InMemoryMetricReader()
    telemetry = hapa_telemetry.configure(
        set_global=False, metric_readers=(reader,), log_to_stdout=False,
        log_directory=str(tmp_path),
        enable_metrics=False,
    )
    histograms = telemetry.providers.histograms
    assert histograms is not None
    telemetry.instruments.inference(0.5)

    def broken(since_ns: int, now_ns: int) -> Any:
        raise RuntimeError("boom")

    histograms.histograms[1].metric = broken  # type: ignore[method-assign]
    data = reader.get_metrics_data()
    assert _points(data, INFERENCE) == []
    names_seen = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics  # type: ignore[union-attr]
                  for m in sm.metrics}
    assert names.API_REQUESTS_TOTAL in names_seen or names.ACTIVE_CONNECTIONS in names_seen
    assert histograms.errors == 1


def test_sdk_fallback_keeps_recording_with_a_plain_meter() -> None:
    """Without package histograms the Instruments record through the meter's SDK
    histogram, exemplar from the current span included."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    instruments = Instruments(provider.get_meter("hapa_telemetry"))
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("s"):
        instruments.request_finished("GET", "/a", 200, 0.01, started=False)
    (point,) = _points(reader.get_metrics_data(), DURATION)
    assert point.count == 1 and len(point.exemplars) == 1
    provider.shutdown()


def test_the_otlp_metrics_reader_takes_the_package_histograms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With OTLP metrics on (the SDK's exporter prefers explicit-bucket histograms) the
    package still aggregates the histograms once for /metrics and OTLP; with
    OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta it falls back to the SDK."""
    for preference, expect_package in (("cumulative", True), ("delta", False)):
        reset()
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", preference)
        telemetry = hapa_telemetry.configure(
            set_global=False, log_to_stdout=False, log_directory=str(tmp_path),
            otlp_metrics_endpoint="http://127.0.0.1:9/v1/metrics",
            otlp_metrics_protocol="http/protobuf",
        )
        assert (telemetry.providers.histograms is not None) is expect_package, preference
        telemetry.instruments.request_finished("GET", "/a", 200, 0.01, started=False)
        body = render_metrics(telemetry, None)[0]
        assert b'api_request_duration_seconds_count{endpoint="/a",method="GET"} 1.0' in body
