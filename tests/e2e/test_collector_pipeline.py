"""OTLP from the plain OTel SDK -> collector -> Elasticsearch (logs, spans) and Prometheus."""

from __future__ import annotations

import time
from typing import Any

import _stack
import pytest
from opentelemetry.metrics import CallbackOptions, Observation

from hapa_telemetry import names

pytestmark = pytest.mark.e2e

ENDPOINT = "/api/v1/items/{item_id}"


def test_log_and_span_of_one_trace_land_in_elasticsearch(otel_client: _stack.OtelClient) -> None:
    """A log written in a span is in today's hapa-backend index and its span in hapa-traces,
    both found by the same trace id, with the seed's fields at the top level."""
    with otel_client.tracer.start_as_current_span("GET " + ENDPOINT) as span:
        ctx = span.get_span_context()
        otel_client.log(
            "request finished",
            "WARNING",
            user_id="user-e2e",
            event_type=names.EVENT_REQUEST_END,
            endpoint=ENDPOINT,
            duration=0.25,
            status_code=200,
            cached=False,
        )
    otel_client.flush()
    trace_id = format(ctx.trace_id, "032x")
    span_id = format(ctx.span_id, "016x")

    log_index = _stack.today_log_index()
    logs = _stack.wait_for_docs(log_index, {"term": {"TraceId.keyword": trace_id}}, 1, 60)
    spans = _stack.wait_for_docs(
        f"{_stack.TRACE_INDEX_PREFIX}-*", {"term": {"TraceId.keyword": trace_id}}, 1, 60
    )

    (log,) = logs
    assert log["_index"] == log_index
    assert log["TraceId"] == trace_id and log["SpanId"] == span_id
    assert log["SeverityText"] == "WARNING" and log["level"] == "WARNING"
    assert log["message"] == "request finished" == log["Body"]
    assert log["user_id"] == "user-e2e" and log["event_type"] == names.EVENT_REQUEST_END
    assert log["endpoint"] == ENDPOINT and log["status_code"] == 200
    assert log["duration"] == 0.25 and log["cached"] is False
    assert log["Resource.service.name"] == names.DEFAULT_SERVICE_NAME
    assert log["Resource.service.instance.id"] == otel_client.instance_id

    (span_doc,) = spans
    assert span_doc["_index"].startswith(_stack.TRACE_INDEX_PREFIX + "-")
    assert span_doc["SpanId"] == span_id and span_doc["Name"] == "GET " + ENDPOINT

    # one query over both indices finds both documents of the trace
    both_indices = f"{_stack.LOG_INDEX_PREFIX}-*,{_stack.TRACE_INDEX_PREFIX}-*"
    both = _stack.by_trace_id(trace_id, both_indices)
    assert sorted(d["_index"].split("-")[1] for d in both) == ["backend", "traces"]


def test_six_seed_families_reach_prometheus_with_their_labels(
    otel_client: _stack.OtelClient,
) -> None:
    """The six families arrive in Prometheus through the collector under the app's names
    and labels, without resource attributes exploded into labels."""
    meter = otel_client.meter
    requests = meter.create_counter(names.API_REQUESTS_TOTAL)
    duration = meter.create_histogram(names.API_REQUEST_DURATION_SECONDS, unit="s")
    inference = meter.create_histogram(names.AI_INFERENCE_DURATION_SECONDS, unit="s")
    active = meter.create_up_down_counter(names.ACTIVE_CONNECTIONS)
    errors = meter.create_counter(names.API_ERRORS_TOTAL)

    def hit_rate(_: CallbackOptions) -> list[Observation]:
        return [Observation(75.0)]

    meter.create_observable_gauge(names.CACHE_HIT_RATE, callbacks=[hit_rate])

    requests.add(
        3, {names.LABEL_METHOD: "GET", names.LABEL_ENDPOINT: ENDPOINT, names.LABEL_STATUS: "200"}
    )
    duration.record(1.7, {names.LABEL_METHOD: "GET", names.LABEL_ENDPOINT: ENDPOINT})
    inference.record(2.5, {names.LABEL_MODEL: "demo-model"})
    active.add(2)
    errors.add(1, {names.LABEL_ERROR_TYPE: "ValueError"})
    otel_client.flush()

    inst = otel_client.instance_id
    # honor_labels: the exporter's job/instance (service.name, service.instance.id) stay
    sel = f'{{instance="{inst}"}}'
    reqs = _stack.wait_for_series(f"{names.API_REQUESTS_TOTAL}{sel}", 90)
    (series,) = reqs
    labels = series["metric"]
    assert labels[names.LABEL_METHOD] == "GET"
    assert labels[names.LABEL_ENDPOINT] == ENDPOINT
    assert labels[names.LABEL_STATUS] == "200"
    assert labels["job"] == names.DEFAULT_SERVICE_NAME
    assert "exported_job" not in labels and "exported_instance" not in labels
    assert float(series["value"][1]) == 3
    assert not any(k.startswith(("deployment", "telemetry", "service")) for k in labels)

    deadline = time.monotonic() + 60
    wanted = {
        f"{names.API_REQUEST_DURATION_SECONDS}_bucket": None,
        f"{names.AI_INFERENCE_DURATION_SECONDS}_bucket": None,
        names.ACTIVE_CONNECTIONS: 2.0,
        names.API_ERRORS_TOTAL: 1.0,
        names.CACHE_HIT_RATE: 75.0,
    }
    found: dict[str, list[dict[str, Any]]] = {}
    while time.monotonic() < deadline and len(found) < len(wanted):
        for family in wanted:
            if family not in found:
                result = _stack.prom_query(f"{family}{sel}")
                if result:
                    found[family] = result
        time.sleep(1)
    assert set(found) == set(wanted), f"missing in Prometheus: {set(wanted) - set(found)}"
    for family, value in wanted.items():
        if value is not None:
            assert float(found[family][0]["value"][1]) == value, family
    assert found[names.API_ERRORS_TOTAL][0]["metric"][names.LABEL_ERROR_TYPE] == "ValueError"
    # buckets in seconds: 1.7 s falls in le="2", not in le="1.5" (OpenMetrics, which
    # the exporter serves for exemplars, writes le="2.0"; Prometheus 2.x keeps it so)
    bucket = f'{names.API_REQUEST_DURATION_SECONDS}_bucket{{instance="{inst}"'
    le = _stack.prom_query(bucket + ',le=~"2|2.0"}')
    assert le and float(le[0]["value"][1]) == 1
    le = _stack.prom_query(bucket + ',le="1.5"}')
    assert le and float(le[0]["value"][1]) == 0
    # no doubled or unit suffixes anywhere
    for bad in (
        "api_requests_total_total",
        "cache_hit_rate_ratio",
        "cache_hit_rate_percent",
        "api_request_duration_seconds_seconds",
        "active_connections_total",
    ):
        assert not _stack.prom_query(f"{bad}{sel}"), bad
