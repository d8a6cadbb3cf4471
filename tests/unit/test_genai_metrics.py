"""GenAI semantic-convention metrics of the inference helper: names, units, attributes,
advised buckets, on the SDK's data and on /metrics; cache lookups; failures."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import Harness
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics

import hapa_telemetry
from hapa_telemetry import names, runtime
from hapa_telemetry.testing import reset as reset_telemetry


@pytest.fixture
def reader(harness: Harness) -> InMemoryMetricReader:
    """The harness reconfigured with an in-memory metric reader (SDK-side data)."""
    reset_telemetry()
    harness.spans = InMemorySpanExporter()  # the old one was shut down with its provider
    r = InMemoryMetricReader()
    harness.telemetry = runtime.configure(
        set_global=False,
        span_exporter=harness.spans,
        log_stream=harness.stream,
        log_directory=str(harness.log_dir),
        metric_readers=(r,),
    )
    return r


def _points(reader: InMemoryMetricReader) -> dict[str, tuple[Any, list[Any]]]:
    data = reader.get_metrics_data()
    out: dict[str, tuple[Any, list[Any]]] = {}
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out[m.name] = (m, list(m.data.data_points))
    return out


def test_names_match_the_semconv_package() -> None:
    """Our names are the ones opentelemetry-semantic-conventions ships for GenAI metrics."""
    assert names.GEN_AI_CLIENT_OPERATION_DURATION == (
        gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION
    )
    assert names.GEN_AI_CLIENT_TOKEN_USAGE == gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
    assert names.GEN_AI_SERVER_TIME_TO_FIRST_TOKEN == (
        gen_ai_metrics.GEN_AI_SERVER_TIME_TO_FIRST_TOKEN
    )
    assert names.GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN == (
        gen_ai_metrics.GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN
    )


def test_units_attributes_and_advised_buckets(reader: InMemoryMetricReader) -> None:
    """A call records duration (s) and token usage ({token}) with the semconv's attributes
    and bucket boundaries; a streamed one adds TTFT and time per output token."""
    with hapa_telemetry.inference(model="codegen", provider="openai", prompt="p") as call:
        call.usage(input_tokens=12, output_tokens=80)
    with hapa_telemetry.inference(model="codegen", provider="openai") as call:
        assert list(call.stream(iter(["a", "b", "c"]))) == ["a", "b", "c"]
    points = _points(reader)

    duration, dpoints = points[names.GEN_AI_CLIENT_OPERATION_DURATION]
    assert duration.unit == "s"
    assert len(dpoints) == 1 and dpoints[0].count == 2
    assert dict(dpoints[0].attributes) == {
        "gen_ai.operation.name": "text_completion",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "codegen",
    }
    assert tuple(dpoints[0].explicit_bounds) == names.GEN_AI_DURATION_BUCKETS
    assert names.GEN_AI_DURATION_BUCKETS[0] == 0.01 and names.GEN_AI_DURATION_BUCKETS[-1] == 81.92

    usage, upoints = points[names.GEN_AI_CLIENT_TOKEN_USAGE]
    assert usage.unit == "{token}"
    by_type = {p.attributes["gen_ai.token.type"]: p for p in upoints}
    assert set(by_type) == {"input", "output"}
    assert by_type["input"].sum == 12 and by_type["input"].count == 1
    assert by_type["output"].sum == 80 + 3  # the stream's three items count as tokens
    assert tuple(by_type["output"].explicit_bounds) == names.GEN_AI_TOKEN_BUCKETS
    assert names.GEN_AI_TOKEN_BUCKETS[-1] == 67108864

    ttft, tpoints = points[names.GEN_AI_SERVER_TIME_TO_FIRST_TOKEN]
    assert ttft.unit == "s" and tpoints[0].count == 1  # only the streamed call
    assert tuple(tpoints[0].explicit_bounds) == names.GEN_AI_TTFT_BUCKETS
    tpot, ppoints = points[names.GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN]
    assert tpot.unit == "s" and ppoints[0].count == 1
    assert tuple(ppoints[0].explicit_bounds) == names.GEN_AI_TPOT_BUCKETS


def test_prometheus_exposition_names(harness: Harness) -> None:
    """On /metrics the families are gen_ai_client_operation_duration_seconds,
    gen_ai_client_token_usage, gen_ai_server_time_to_first_token_seconds, ... with
    underscored label names; the seed's six are still there."""
    with hapa_telemetry.inference(model="m") as call:
        call.cached = False
        call.usage(input_tokens=3, output_tokens=4)
    with hapa_telemetry.inference(model="m") as call:
        list(call.stream(["x", "y"]))
    with hapa_telemetry.inference(model="m") as call:
        call.cached = True
    body = harness.metrics()
    for family in names.GENAI_PROM_FAMILIES:
        assert family in body, family
    labels = {
        "gen_ai_operation_name": "text_completion",
        "gen_ai_provider_name": "_OTHER",
        "gen_ai_request_model": "m",
    }
    assert harness.sample(names.PROM_GEN_AI_OPERATION_DURATION, "_count", **labels) == 2
    assert harness.sample(
        names.PROM_GEN_AI_TOKEN_USAGE, "_sum", gen_ai_token_type="output", **labels
    ) == 4 + 2
    assert harness.sample(
        names.PROM_GEN_AI_TOKEN_USAGE, "_bucket", gen_ai_token_type="input", le="4", **labels
    ) == 1
    assert harness.sample(names.PROM_GEN_AI_TIME_TO_FIRST_TOKEN, "_count", **labels) == 1
    assert harness.sample(names.PROM_GEN_AI_TIME_PER_OUTPUT_TOKEN, "_count", **labels) == 1
    lookups = names.AI_INFERENCE_CACHE_LOOKUPS_TOTAL
    assert harness.sample(lookups, result="hit", model="m") == 1
    assert harness.sample(lookups, result="miss", model="m") == 1
    # the seed's histogram: not for the cache hit
    assert harness.sample(names.AI_INFERENCE_DURATION_SECONDS, "_count", model="m") == 2


def test_cache_hits_record_no_genai_operation(harness: Harness) -> None:
    """A cache hit is counted as a hit, but is not a model operation: no duration, no
    tokens, no seed histogram; calls that never say anything about a cache count nothing."""
    with hapa_telemetry.inference(model="c") as call:
        call.cached = True
        call.usage(input_tokens=5, output_tokens=5)
    with hapa_telemetry.inference(model="c"):
        pass
    labels = {"gen_ai_request_model": "c"}
    assert harness.sample(names.PROM_GEN_AI_OPERATION_DURATION, "_count", **labels) == 1
    assert harness.sample(names.AI_INFERENCE_DURATION_SECONDS, "_count", model="c") == 1
    assert harness.sample(names.AI_INFERENCE_CACHE_LOOKUPS_TOTAL, result="hit", model="c") == 1
    assert harness.sample(names.AI_INFERENCE_CACHE_LOOKUPS_TOTAL, result="miss", model="c") is None


def test_failure_sets_error_type_logs_once_and_reraises(harness: Harness) -> None:
    """An exception: error.type on the span and on the duration metric, one error line
    (none for ai_inference), the same exception object re-raised."""
    boom = TimeoutError("model took too long")
    with (
        pytest.raises(TimeoutError) as caught,
        hapa_telemetry.inference(model="f", prompt="hi") as call,
    ):
        call.usage(input_tokens=2)
        raise boom
    assert caught.value is boom
    span = [s for s in harness.spans.get_finished_spans() if s.name == "text_completion f"][0]
    assert span.attributes["error.type"] == "TimeoutError"
    assert span.status.status_code.name == "ERROR"
    assert any(e.name == "exception" for e in span.events)
    assert harness.sample(
        names.PROM_GEN_AI_OPERATION_DURATION, "_count", gen_ai_request_model="f",
        error_type="TimeoutError",
    ) == 1
    assert harness.sample(names.AI_INFERENCE_DURATION_SECONDS, "_count", model="f") is None
    lines = harness.lines()
    errors = [x for x in lines if x.get("event_type") == "error"]
    assert len(errors) == 1
    assert errors[0]["error_type"] == "TimeoutError" and errors[0]["model"] == "f"
    assert "model took too long" in errors[0]["exception"]
    assert not [x for x in lines if x.get("event_type") == "ai_inference"]


def test_successful_calls_have_no_error_type(harness: Harness) -> None:
    """A successful operation carries no error.type (so error rates can filter on it)."""
    with hapa_telemetry.inference(model="ok"):
        pass
    body = harness.metrics()
    fam = body[names.PROM_GEN_AI_OPERATION_DURATION]
    assert all("error_type" not in s.labels for s in fam.samples)
    span = harness.spans.get_finished_spans()[-1]
    assert "error.type" not in (span.attributes or {})
    assert span.status.status_code.name == "UNSET"
