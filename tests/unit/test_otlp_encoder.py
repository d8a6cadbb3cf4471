"""Our OTLP encoder against the SDK's: decoded with the official protobuf types, equal.

Spans and log records come from real SDK providers (in-memory exporters) and carry every
field the OTLP data model has; the only intended differences from the SDK's encoder are
asserted separately: span/link ``flags`` also carry the W3C trace flags in the low byte
(as the OTLP spec says; the SDK leaves them out) and a link's ``trace_state`` is sent
(the SDK drops it).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as sdk_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from hapa_telemetry.otlp._wire import varint
from hapa_telemetry.otlp.logs import encode_logs
from hapa_telemetry.otlp.traces import encode_spans

EVERY_TYPE: dict[str, Any] = {
    "s": "text ✓ ünïcode",
    "empty": "",
    "t": True,
    "f": False,
    "i": 42,
    "zero": 0,
    "neg": -7,
    "big": 2**62,
    "min64": -(2**63),
    "x": 3.25,
    "b": b"\x00\x01\xff",
    "strs": ("a", "b"),
    "ints": (1, -2, 3),
    "floats": (0.5, 1.5),
    "bools": (True, False),
    "mixed": ("a", 1, 2.5, True, None),
    "map": {"k": "v", "n": {"deep": [1, "two"]}},
}
REMOTE_PARENT = SpanContext(
    trace_id=0x0AF7651916CD43DD8448EB211C80319C,
    span_id=0xB7AD6B7169203331,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("vendor", "abc"), ("other", "v2")]),
)
LINKED = SpanContext(
    trace_id=0x11112222333344445555666677778888,
    span_id=0x1234567890ABCDEF,
    is_remote=True,
    trace_flags=TraceFlags(TraceFlags.SAMPLED),
    trace_state=TraceState([("linked", "yes")]),
)


def _spans() -> list[Any]:
    memory = InMemorySpanExporter()
    resource = Resource({"service.name": "svc", "service.instance.id": "i-1", "n": 3},
                        schema_url="https://opentelemetry.io/schemas/1.26.0")
    provider = TracerProvider(
        resource=resource,
        span_limits=SpanLimits(max_span_attributes=len(EVERY_TYPE), max_events=2, max_links=1),
        shutdown_on_exit=False,
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("hapa.test", "1.2.3", schema_url="https://scope.schema/1",
                                 attributes={"scope.attr": "on"})
    other = provider.get_tracer("other.scope")
    parent_ctx = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE_PARENT))
    with tracer.start_as_current_span(
        "GET /items/{id}", context=parent_ctx, kind=SpanKind.SERVER,
        attributes={"over.limit": 1, **EVERY_TYPE},  # the oldest is dropped
        links=[Link(REMOTE_PARENT), Link(LINKED, {"link.attr": "l", "n": 2})],  # oldest dropped
    ) as server:
        server.add_event("dropped-first")  # the oldest event goes when the list is full
        server.add_event("started", {"phase": 1}, timestamp=1_700_000_000_000_000_001)
        try:
            raise ValueError("bad input")
        except ValueError as exc:
            server.record_exception(exc)
        server.set_status(Status(StatusCode.ERROR, "it failed"))
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
            child.set_attribute("peer", "db")
            child.set_status(Status(StatusCode.ERROR))  # an error without a description
        with other.start_as_current_span("other", kind=SpanKind.PRODUCER):
            pass
    with tracer.start_as_current_span("root-ok", kind=SpanKind.CONSUMER) as ok:
        ok.set_status(Status(StatusCode.OK))
    with tracer.start_as_current_span("internal"):
        pass
    # a second resource in the same batch
    second = TracerProvider(resource=Resource({"service.name": "svc2"}), shutdown_on_exit=False)
    second.add_span_processor(SimpleSpanProcessor(memory))
    with second.get_tracer("t2").start_as_current_span("elsewhere"):
        pass
    return list(memory.get_finished_spans())


def _records() -> list[Any]:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(
        resource=Resource({"service.name": "svc"}, schema_url="https://schema/r"),
        log_record_limits=LogRecordLimits(max_attributes=len(EVERY_TYPE)),
        shutdown_on_exit=False,
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("hapa.logs", "9.9", schema_url="https://schema/s",
                                 attributes={"scope.attr": "one"})
    now = time.time_ns()
    ctx = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE_PARENT))
    logger.emit(timestamp=now, observed_timestamp=now + 5, context=ctx,
                severity_number=SeverityNumber.WARN, severity_text="WARNING",
                body="API request end: GET /x - 200", attributes={"extra": 1, **EVERY_TYPE},
                event_name="request_end")
    logger.emit(observed_timestamp=now, severity_number=SeverityNumber.ERROR,
                body={"message": "structured", "list": [1, "a", {"k": b"\x01"}], "none": None})
    logger.emit(timestamp=now, body=["only", 2, 3.5, False])
    logger.emit(timestamp=now, body=None, severity_text="INFO")
    logger.emit(timestamp=now, body=b"raw bytes", severity_number=SeverityNumber.FATAL4)
    return list(memory.get_finished_logs())


def _strip_differences(request: Any) -> Any:
    """Remove the two fields where we deliberately send more than the SDK."""
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                span.flags &= ~0xFF
                for link in span.links:
                    link.flags &= ~0xFF
                    link.trace_state = ""
    return request


def test_spans_decode_to_what_the_sdk_encoder_produces() -> None:
    """Every span field (ids, parent, kind, status, times, every attribute type, events with
    the exception, links, dropped counts, trace state, resource/scope with schema URLs)
    decodes to the same message as the SDK's encoder makes of the same spans."""
    spans = _spans()
    ours = ExportTraceServiceRequest.FromString(encode_spans(spans))
    theirs = sdk_spans(spans)
    assert _strip_differences(ExportTraceServiceRequest.FromString(encode_spans(spans))) == (
        _strip_differences(theirs)
    )
    # the data really has every field (so the comparison above covers them)
    server = next(s for ss in ours.resource_spans[0].scope_spans for s in ss.spans
                  if s.name == "GET /items/{id}")
    assert server.parent_span_id == REMOTE_PARENT.span_id.to_bytes(8, "big")
    assert server.trace_state == "vendor=abc,other=v2"
    assert server.status.code == 2 and server.status.message == "it failed"
    source = next(s for s in spans if s.name == "GET /items/{id}")
    assert server.dropped_attributes_count == source.dropped_attributes  # 1 on SDK >= 1.45
    assert server.dropped_events_count == 1 and server.dropped_links_count == 1
    assert [e.name for e in server.events] == ["started", "exception"]
    exc_attrs = {kv.key: kv.value.string_value for kv in server.events[1].attributes}
    assert exc_attrs["exception.type"] == "ValueError"
    assert exc_attrs["exception.message"] == "bad input"
    assert "Traceback" in exc_attrs["exception.stacktrace"]
    # every value type the SDK keeps (older SDKs drop bytes/mixed/map values themselves)
    assert {kv.key for kv in server.attributes} == set(source.attributes or {})
    assert {"s", "i", "f", "t", "strs", "ints", "floats", "bools"} <= set(source.attributes or {})
    assert ours.resource_spans[0].schema_url == "https://opentelemetry.io/schemas/1.26.0"
    assert len(ours.resource_spans) == 2
    assert ours.resource_spans[0].scope_spans[0].scope.version == "1.2.3"
    assert ours.resource_spans[0].scope_spans[0].schema_url == "https://scope.schema/1"


def test_span_flags_carry_trace_flags_and_remote_bits() -> None:
    """flags = 0x100 (has is_remote) | 0x200 when the parent/link is remote | trace flags;
    a link keeps its trace_state."""
    ours = ExportTraceServiceRequest.FromString(encode_spans(_spans()))
    spans = {s.name: s for rs in ours.resource_spans for ss in rs.scope_spans for s in ss.spans}
    assert spans["GET /items/{id}"].flags == 0x100 | 0x200 | 0x01
    assert spans["child"].flags == 0x100 | 0x01  # local parent, sampled
    link = spans["GET /items/{id}"].links[0]
    assert link.flags == 0x100 | 0x200 | 0x01
    assert link.trace_state == "linked=yes"
    assert {kv.key for kv in link.attributes} == {"link.attr", "n"}


def test_log_records_decode_to_what_the_sdk_encoder_produces() -> None:
    """Severity number and text, str/map/list/bytes/None bodies, every attribute type,
    trace context, observed timestamp, event_name, dropped count, resource and scope."""
    records = _records()
    ours = ExportLogsServiceRequest.FromString(encode_logs(records))
    assert ours == sdk_logs(records)
    first = ours.resource_logs[0].scope_logs[0].log_records[0]
    assert first.trace_id == REMOTE_PARENT.trace_id.to_bytes(16, "big")
    assert first.span_id == REMOTE_PARENT.span_id.to_bytes(8, "big")
    assert first.flags == 1 and first.event_name == "request_end"
    assert first.observed_time_unix_nano == first.time_unix_nano + 5
    assert first.dropped_attributes_count == 1
    assert ours.resource_logs[0].scope_logs[0].scope.attributes[0].key == "scope.attr"


def test_caches_never_confuse_equal_values_of_different_types() -> None:
    """1, True and 1.0 under one key (and repeated, so cached) stay int, bool and double."""
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("x")
    for _ in range(3):
        for value in (1, True, 1.0, "1"):
            logger.emit(body="b", attributes={"k": value})
    records = list(memory.get_finished_logs())
    ours = ExportLogsServiceRequest.FromString(encode_logs(records))
    assert ours == sdk_logs(records)
    kinds = [r.attributes[0].value.WhichOneof("value")
             for r in ours.resource_logs[0].scope_logs[0].log_records]
    assert kinds == ["int_value", "bool_value", "double_value", "string_value"] * 3


def test_many_distinct_values_and_long_values_encode_exactly() -> None:
    """High-cardinality keys (past the per-key cache) and values longer than 16 KiB."""
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("x")
    for i in range(300):
        logger.emit(body=f"line {i}", attributes={"request_id": f"r-{i}", "n": i * 1000})
    logger.emit(body="x" * 70_000, attributes={"long": "y" * 20_000})
    records = list(memory.get_finished_logs())
    assert ExportLogsServiceRequest.FromString(encode_logs(records)) == sdk_logs(records)


@pytest.mark.parametrize("n", [0, 1, 127, 128, 16383, 16384, 2**35, 2**64 - 1])
def test_varint_matches_protobuf(n: int) -> None:
    """Our varints are the protobuf library's (the table and the general path)."""
    from google.protobuf.internal.encoder import _VarintBytes

    assert varint(n) == _VarintBytes(n)


def test_values_the_sdk_cannot_encode_are_kept_as_text() -> None:
    """An int beyond int64 and an unknown object become strings instead of failing the batch."""
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    provider.get_logger("x").emit(body=2**70)
    ours = ExportLogsServiceRequest.FromString(encode_logs(list(memory.get_finished_logs())))
    assert ours.resource_logs[0].scope_logs[0].log_records[0].body.string_value == str(2**70)


def test_pause_runs_between_slices() -> None:
    """The encoder hands control back every ``every`` items (the GIL hand-over hook)."""
    spans = _spans() * 10
    calls: list[int] = []
    encode_spans(spans, lambda: calls.append(1), 8)
    assert len(calls) == (len(spans) - 1) // 8


def test_exporter_hands_the_gil_over_once_a_time_slice_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The exporter's pause hook sleeps only after a slice's time is used up: never
    within a long slice, every time with a zero slice."""
    from hapa_telemetry.otlp import exporters

    sleeps: list[float] = []
    monkeypatch.setattr(exporters.time, "sleep", sleeps.append)
    spans = _spans() * 20
    encode_spans(spans, exporters.Slicer(slice_s=60.0), 8)
    assert sleeps == []
    encode_spans(spans, exporters.Slicer(slice_s=0.0, pause_s=0.0001), 8)
    assert sleeps == [0.0001] * ((len(spans) - 1) // 8)
