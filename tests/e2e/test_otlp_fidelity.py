"""Our OTLP encoder through the real collector into Elasticsearch: every field arrives.

Spans and log records with every field Elasticsearch's raw mapping keeps (ids, parent,
kind, status, timestamps, attributes of every value type incl. homogeneous arrays and
maps, events with the exception attributes, links, resource, scope, severity, body, log
trace context) are sent by our exporter; the same data sent by the SDK's OTLP/HTTP
exporter must give the same documents. Fields raw mode does not index (flags,
trace_state, dropped counts, schema URLs, observed time, mixed-type arrays, which ES
rejects) are checked against the official protobuf types in
tests/unit/test_otlp_encoder.py; here the collector accepting the request without a
partial-success rejection shows it parsed every byte.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import _stack
import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from hapa_telemetry.exporting import ExportHealth
from hapa_telemetry.otlp import build_exporter

pytestmark = pytest.mark.e2e

# attribute names of their own so their ES mapping never meets another test's fields
ATTRS: dict[str, Any] = {
    "fid.s": "text ✓",
    "fid.t": True,
    "fid.i": -42,
    "fid.big": 2**53,
    "fid.x": 3.25,
    "fid.strs": ["a", "b"],
    "fid.ints": [1, 2, 3],
    "fid.floats": [0.5, 1.5],
    "fid.bools": [True, False],
    "fid.map": {"k": "v", "n": 7},
}


def _data(tag: str) -> tuple[list[Any], list[Any], SpanContext]:
    """A server span (remote parent, link, events, error status), a child, two records."""
    resource = Resource({"service.name": "hapa-fidelity", "service.instance.id": tag,
                         "fid.resource": "r1"})
    memory = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = tracer_provider.get_tracer("hapa.fidelity", "2.0.1",
                                        attributes={"fid.scope": "s1"})
    parent = SpanContext(int(uuid.uuid4().hex, 16), int(uuid.uuid4().hex[:16], 16),
                         is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    linked = SpanContext(int(uuid.uuid4().hex, 16), int(uuid.uuid4().hex[:16], 16),
                         is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    records_memory = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(records_memory))
    logger = logger_provider.get_logger("hapa.fidelity.logs", "2.0.1")
    context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    with tracer.start_as_current_span(
        "GET /fidelity/{id}", context=context, kind=SpanKind.SERVER,
        attributes=ATTRS, links=[Link(linked, {"fid.link": "l1"})],
    ) as server:
        server.add_event("fid.checkpoint", {"fid.step": 1})
        try:
            raise ValueError("fidelity failure")
        except ValueError as exc:
            server.record_exception(exc)
        server.set_status(Status(StatusCode.ERROR, "fidelity status"))
        with tracer.start_as_current_span("fid.child", kind=SpanKind.CLIENT):
            logger.emit(timestamp=time.time_ns(), observed_timestamp=time.time_ns(),
                        context=trace.set_span_in_context(trace.get_current_span()),
                        severity_number=SeverityNumber.WARN, severity_text="WARNING",
                        body=f"fidelity record {tag}", attributes=ATTRS,
                        event_name="fid_event")
    logger.emit(timestamp=time.time_ns(), severity_number=SeverityNumber.ERROR,
                severity_text="ERROR", body=f"fidelity record {tag} without a span",
                attributes={"fid.tag": tag})
    return list(memory.get_finished_spans()), list(records_memory.get_finished_logs()), parent


def _send_with_ours(spans: list[Any], records: list[Any]) -> ExportHealth:
    health = ExportHealth(stream=None)
    for signal, items in (("traces", spans), ("logs", records)):
        exporter = build_exporter(signal, f"{_stack.OTLP_HTTP}/v1/{signal}",
                                  compression="gzip", on_rejected=health.rejected)
        assert exporter.export(items).name == "SUCCESS"
        exporter.shutdown()
    return health


def _send_with_sdk(spans: list[Any], records: list[Any]) -> None:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    assert OTLPSpanExporter(endpoint=f"{_stack.OTLP_HTTP}/v1/traces").export(spans).name == (
        "SUCCESS")
    assert OTLPLogExporter(endpoint=f"{_stack.OTLP_HTTP}/v1/logs").export(records).name == (
        "SUCCESS")


def _docs(trace_id: str, spans: int, logs: int) -> tuple[list[dict[str, Any]], ...]:
    span_docs = _stack.wait_for_docs(f"{_stack.TRACE_INDEX_PREFIX}-*",
                                     {"term": {"TraceId.keyword": trace_id}}, spans, 60)
    log_docs = _stack.wait_for_docs(f"{_stack.LOG_INDEX_PREFIX}-*",
                                    {"term": {"TraceId.keyword": trace_id}}, logs, 60)
    return span_docs, log_docs


def _same_fields(doc: dict[str, Any], skip: set[str]) -> dict[str, Any]:
    """Fields that do not depend on ids or clocks (event times end in ``.time``)."""
    return {k: v for k, v in doc.items() if k not in skip and not k.endswith(".time")}


def test_every_field_reaches_elasticsearch(stack_up: None) -> None:
    """Ids, parent, kind, status, times, attributes of every type, events with exception
    attributes, link, resource, scope; severity, body, trace context of the log record."""
    tag = uuid.uuid4().hex[:12]
    spans, records, parent = _data(tag)
    health = _send_with_ours(spans, records)
    assert health.status() == {}  # no partial-success rejection booked for either signal
    server = next(s for s in spans if s.name.startswith("GET"))
    child = next(s for s in spans if s.name == "fid.child")
    trace_id = format(server.context.trace_id, "032x")
    span_docs, log_docs = _docs(trace_id, 2, 1)

    doc = next(d for d in span_docs if d["Name"] == "GET /fidelity/{id}")
    assert doc["SpanId"] == format(server.context.span_id, "016x")
    assert doc["ParentSpanId"] == format(parent.span_id, "016x")
    assert doc["Kind"] == "SPAN_KIND_SERVER"
    assert doc["TraceStatus"] == 2 and doc["TraceStatusDescription"] == "fidelity status"
    assert doc["Duration"] == (server.end_time - server.start_time) // 1000
    assert doc["@timestamp"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(
        server.start_time / 1e9)))
    for key, value in ATTRS.items():
        if key == "fid.map":
            assert doc["fid.map.k"] == "v" and doc["fid.map.n"] == 7
        else:
            assert doc[key] == value, key
    assert doc["Resource.service.instance.id"] == tag and doc["Resource.fid.resource"] == "r1"
    assert doc["Scope.name"] == "hapa.fidelity" and doc["Scope.version"] == "2.0.1"
    assert doc["Scope.fid.scope"] == "s1"
    assert doc["fid.checkpoint.fid.step"] == 1
    assert doc["exception.exception.type"] == "ValueError"
    assert doc["exception.exception.message"] == "fidelity failure"
    assert "Traceback" in doc["exception.exception.stacktrace"]
    (link,) = _links(doc)
    assert link["trace_id"] == format(server.links[0].context.trace_id, "032x")
    assert link["span_id"] == format(server.links[0].context.span_id, "016x")
    child_doc = next(d for d in span_docs if d["Name"] == "fid.child")
    assert child_doc["ParentSpanId"] == doc["SpanId"] and child_doc["Kind"] == "SPAN_KIND_CLIENT"

    (log,) = log_docs
    assert log["SpanId"] == format(child.context.span_id, "016x")
    assert log["TraceFlags"] == 1
    assert log["SeverityText"] == "WARNING" and log["SeverityNumber"] == 13
    assert log["Body"] == f"fidelity record {tag}"
    for key, value in ATTRS.items():
        if key != "fid.map":
            assert log[key] == value, key
    assert log["Scope.name"] == "hapa.fidelity.logs"
    assert log["Resource.service.instance.id"] == tag
    untraced = _stack.wait_for_docs(f"{_stack.LOG_INDEX_PREFIX}-*",
                                    {"term": {"fid.tag.keyword": tag}}, 1, 60)
    assert untraced[0]["SeverityNumber"] == 17 and not untraced[0].get("TraceId")


def _links(doc: dict[str, Any]) -> list[dict[str, Any]]:
    import json

    raw = doc["Link"]
    links = json.loads(raw) if isinstance(raw, str) else raw
    return [{k.lower().replace("traceid", "trace_id").replace("spanid", "span_id"): v
             for k, v in link.items()} for link in links]


def test_documents_equal_those_of_the_sdk_exporter(stack_up: None) -> None:
    """The same spans and records sent by the SDK's exporter and by ours give the same
    Elasticsearch documents (field for field, apart from the index and the ids)."""
    tag = uuid.uuid4().hex[:12]
    spans, records, _ = _data(tag)
    theirs_spans, theirs_records, _ = _data(tag + "-sdk")
    _send_with_ours(spans, records)
    _send_with_sdk(theirs_spans, theirs_records)
    ours = _docs(format(spans[0].context.trace_id, "032x"), 2, 1)
    theirs = _docs(format(theirs_spans[0].context.trace_id, "032x"), 2, 1)
    skip = {"_index", "@timestamp", "EndTimestamp", "Duration", "TraceId", "SpanId",
            "ParentSpanId", "Link", "Body", "message", "ObservedTimestamp",
            "Resource.service.instance.id", "exception.exception.stacktrace"}
    for mine, sdk in zip(ours, theirs, strict=True):
        mine = sorted(mine, key=lambda d: str(d.get("Name")))
        sdk = sorted(sdk, key=lambda d: str(d.get("Name")))
        assert [_same_fields(d, skip) for d in mine] == [_same_fields(d, skip) for d in sdk]
        assert [sorted(d) for d in mine] == [sorted(d) for d in sdk]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_providers_export_over_either_protocol(stack_up: None, protocol: str) -> None:
    """The package's providers send spans and log records over gRPC (the SDK's exporter)
    and over http/protobuf (ours) to the collector; both arrive in Elasticsearch."""
    from hapa_telemetry.providers import build_providers
    from hapa_telemetry.settings import Settings

    endpoint = f"http://{_stack.OTLP_GRPC}" if protocol == "grpc" else _stack.OTLP_HTTP
    settings = Settings.load({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                              "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
                              "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
                              "ENABLE_METRICS": "false", "OTEL_METRICS_EXPORTER": "none"})
    tag = uuid.uuid4().hex[:12]
    health = ExportHealth(stream=None)
    providers = build_providers(
        settings, Resource({"service.name": "hapa-fidelity", "service.instance.id": tag}),
        health, set_global=False)
    try:
        tracer = providers.tracer_provider.get_tracer("hapa.fidelity")
        assert providers.logger_provider is not None
        logger = providers.logger_provider.get_logger("hapa.fidelity.logs")
        with tracer.start_as_current_span(f"fid.{protocol}") as span:
            logger.emit(body=f"over {protocol}", severity_number=SeverityNumber.INFO,
                        severity_text="INFO", attributes={"fid.tag": tag})
        assert providers.force_flush(10_000)
    finally:
        providers.shutdown()
    trace_id = format(span.get_span_context().trace_id, "032x")
    span_docs, log_docs = _docs(trace_id, 1, 1)
    assert span_docs[0]["Name"] == f"fid.{protocol}"
    assert log_docs[0]["Body"] == f"over {protocol}" and log_docs[0]["fid.tag"] == tag
    assert {s["status"] for s in health.status().values()} == {"ok"}
