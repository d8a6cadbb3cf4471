"""The package's own log lines sent over OTLP/HTTP without SDK log objects
(otlp/events.py, otlp/batcher.py): the same records as the SDK bridge, a bounded queue
whose drops are counted, flush and shutdown that finish; the span queue's drops too."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from hapa_telemetry import runtime
from hapa_telemetry.logs.pipeline import LogPipeline
from hapa_telemetry.otlp import exporters as exporters_mod
from hapa_telemetry.otlp.batcher import EventLogBatcher, SpanBatchProcessor
from hapa_telemetry.otlp.events import EventEncoder
from hapa_telemetry.otlp.exporters import HapaLogExporter, HapaSpanExporter
from hapa_telemetry.otlp.http import OtlpHttpClient
from hapa_telemetry.otlp.logs import encode_logs
from hapa_telemetry.otlp.traces import encode_spans
from hapa_telemetry.settings import Settings
from hapa_telemetry.testing import reset as reset_telemetry

RESOURCE = Resource({"service.name": "svc", "service.instance.id": "i-1"})
SCOPE = InstrumentationScope("hapa_telemetry", "1.2.3")


class _Capture(logging.Handler):
    def __init__(self, pipeline: LogPipeline) -> None:
        super().__init__()
        self.pipeline = pipeline

    def emit(self, record: logging.LogRecord) -> None:
        self.pipeline.handle(record)


class _Recorder:
    """Stands in for the batcher: keeps what the pipeline would queue."""

    def __init__(self) -> None:
        self.items: list[tuple[int, float, int, Any]] = []

    def emit(self, levelno: int, created: float, event: Any) -> None:
        self.items.append((levelno, created, time.time_ns(), event))


def _emit_lines(pipeline: LogPipeline, tracer: trace.Tracer) -> None:
    log = logging.getLogger("events.test")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    handler = _Capture(pipeline)
    log.addHandler(handler)
    try:
        with tracer.start_as_current_span("request"):
            log.info("hello %s", "world", extra={
                "user_id": 7, "ratio": 0.5, "flag": True, "nothing": None,
                "tags": ["a", "b"], "nested": {"k": [1, 2]}, "level": "shadowed",
            })
            try:
                raise ValueError("bad input")
            except ValueError:
                log.exception("failed")
            start = pipeline.builder.build_trusted(
                time.time(), "INFO", "hapa_telemetry.middleware", "API request start: GET /x",
                {}, {"method": "GET", "endpoint": "/x", "client_ip": "10.0.0.1",
                     "event_type": "request_start"},
            )
            pipeline.write(logging.INFO, "hapa_telemetry.middleware", time.time(), start)
        log.warning("outside any span \u2028 with \x00 odd text")
    finally:
        log.removeHandler(handler)


def _records(body: bytes) -> list[dict[str, Any]]:
    request = logs_service_pb2.ExportLogsServiceRequest.FromString(body)
    out = []
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                d = MessageToDict(record)
                d.pop("observedTimeUnixNano", None)
                d["_resource"] = MessageToDict(rl.resource)
                d["_scope"] = MessageToDict(sl.scope)
                out.append(d)
    return out


def test_fast_path_sends_the_records_the_sdk_bridge_sends(tmp_path: Path) -> None:
    """The same lines through the SDK's LogRecord bridge and through the package's event
    encoder decode to identical OTLP log records: time, severity, body, every attribute
    (JSON text for structures, no None values, no code location on the package's own
    lines), trace context, event name, resource and scope."""
    settings = Settings.load({"LOG_TO_STDOUT": "false", "LOG_DIRECTORY": str(tmp_path),
                              "LOG_LEVEL": "DEBUG"})
    tracer = TracerProvider(resource=RESOURCE, shutdown_on_exit=False).get_tracer("t")

    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    sdk_pipeline = LogPipeline(settings)
    sdk_pipeline.otel_logger = provider.get_logger(SCOPE.name, SCOPE.version)
    recorder = _Recorder()
    fast_pipeline = LogPipeline(settings)
    fast_pipeline.otel_batcher = recorder  # type: ignore[assignment]
    try:
        _emit_lines(sdk_pipeline, tracer)
        _emit_lines(fast_pipeline, tracer)
    finally:
        sdk_pipeline.shutdown()
        fast_pipeline.shutdown()

    sdk = _records(encode_logs(list(memory.get_finished_logs())))
    fast = _records(EventEncoder().encode_request(recorder.items, RESOURCE, SCOPE))
    assert len(sdk) == len(fast) == 4
    for a, b in zip(sdk, fast, strict=True):
        # two runs: different clocks and ids, same shape; compare them as the other run's
        for key in ("timeUnixNano", "traceId", "spanId"):
            assert (key in a) == (key in b), key
            a.pop(key, None)
            b.pop(key, None)
        for record in (a, b):
            for kv in record.get("attributes", []):
                if kv["key"] in ("exception", "line"):
                    kv["value"] = "<varies>"
        assert a == b
    first = fast[0]
    attrs = {kv["key"]: kv["value"] for kv in first["attributes"]}
    assert attrs["tags"] == {"stringValue": '["a","b"]'} and "nothing" not in attrs
    assert attrs["field_level"] == {"stringValue": "shadowed"}
    assert fast[2]["eventName"] == "request_start" and "module" not in {
        kv["key"] for kv in fast[2]["attributes"]}


def test_event_time_and_trace_context_are_the_lines_own() -> None:
    """The record's time is the line's timestamp in ns, its trace/span id and sampled
    flag are the ones written on the JSON line."""
    event = {"level": "INFO", "message": "m", "trace_id": "0af7651916cd43dd8448eb211c80319c",
             "span_id": "b7ad6b7169203331", "trace_flags": "01"}
    body = EventEncoder().encode_request([(logging.INFO, 1700000000.25, 5, event)],
                                         RESOURCE, SCOPE)
    record = logs_service_pb2.ExportLogsServiceRequest.FromString(
        body).resource_logs[0].scope_logs[0].log_records[0]
    assert record.time_unix_nano == int(1700000000.25 * 1e9)  # as the SDK bridge computes it
    assert record.observed_time_unix_nano == 5
    assert record.trace_id.hex() == event["trace_id"] and record.span_id.hex() == event["span_id"]
    assert record.flags == 1 and record.severity_number == 9


def test_attribute_limits_keep_the_newest_like_the_sdk() -> None:
    """Past the attribute count limit the oldest attributes go and the record says how
    many; string values are cut to the value length limit."""
    event = {"level": "INFO", "message": "m", **{f"k{i}": "x" * 10 for i in range(6)}}
    body = EventEncoder(max_attributes=4, max_length=3).encode_request(
        [(logging.INFO, 1.0, 1, event)], RESOURCE, SCOPE)
    record = logs_service_pb2.ExportLogsServiceRequest.FromString(
        body).resource_logs[0].scope_logs[0].log_records[0]
    assert [kv.key for kv in record.attributes] == ["k2", "k3", "k4", "k5"]
    assert {kv.value.string_value for kv in record.attributes} == {"xxx"}
    assert record.dropped_attributes_count == 2


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes], threading.Event]]:
    bodies: list[bytes] = []
    gate = threading.Event()
    gate.set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            gate.wait(10)
            bodies.append(body)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1/logs", bodies, gate
    finally:
        gate.set()
        httpd.shutdown()
        httpd.server_close()


def _exporter(url: str, timeout: float = 10.0) -> HapaLogExporter:
    return HapaLogExporter(OtlpHttpClient(url, timeout=timeout))


def _count(bodies: list[bytes]) -> list[str]:
    return [r["body"]["stringValue"] for b in bodies for r in _records(b)]


def test_batches_arrive_in_order_and_flush_sends_the_rest(
    receiver: tuple[str, list[bytes], threading.Event],
) -> None:
    """Full batches go out without waiting for the delay, a partial one does not (no
    stream of tiny requests under load); force_flush sends it; every event arrives once,
    in order; outcomes are booked per batch."""
    url, bodies, _ = receiver
    booked: list[tuple[bool, int]] = []
    batcher = EventLogBatcher(_exporter(url), EventEncoder(), RESOURCE, SCOPE,
                              max_queue=100, batch_size=10, delay_s=30,
                              on_result=lambda ok, n, error: booked.append((ok, n)))
    try:
        for i in range(25):
            batcher.emit(logging.INFO, time.time(), {"level": "INFO", "message": f"m{i}"})
        deadline = time.monotonic() + 10
        while len(booked) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert booked[:2] == [(True, 10), (True, 10)]  # before the 30 s delay
        time.sleep(0.3)
        assert len(booked) == 2  # a partial batch waits for the delay (or a flush)
        assert batcher.force_flush(5_000)
        assert _count(bodies) == [f"m{i}" for i in range(25)]
        assert booked == [(True, 10), (True, 10), (True, 5)]
    finally:
        batcher.shutdown()


def test_full_queue_drops_new_events_counts_them_and_never_blocks(
    receiver: tuple[str, list[bytes], threading.Event],
) -> None:
    """With the receiver stalled, emit() returns at once whatever the queue holds; what
    does not fit is dropped and counted, what fit arrives once the receiver answers."""
    url, bodies, gate = receiver
    gate.clear()  # the receiver holds every request
    dropped: list[int] = []
    batcher = EventLogBatcher(_exporter(url, timeout=10), EventEncoder(), RESOURCE,
                              SCOPE, max_queue=5, batch_size=5, delay_s=0.01,
                              on_dropped=dropped.append)
    try:
        batcher.emit(logging.INFO, time.time(), {"level": "INFO", "message": "first"})
        deadline = time.monotonic() + 5
        while batcher._queue and time.monotonic() < deadline:  # the thread took it
            time.sleep(0.01)
        started = time.perf_counter()
        for i in range(20):
            batcher.emit(logging.INFO, time.time(), {"level": "INFO", "message": f"m{i}"})
        assert time.perf_counter() - started < 1.0
        assert batcher.dropped == 15 and sum(dropped) == 15
        gate.set()
        assert batcher.force_flush(10_000)
        assert _count(bodies) == ["first"] + [f"m{i}" for i in range(5)]
    finally:
        gate.set()
        batcher.shutdown()


def test_shutdown_with_a_dead_endpoint_is_bounded_and_counts_what_is_left() -> None:
    """A closed port: shutdown returns within about a second and the events still queued
    are counted as dropped, not silently lost."""
    batcher = EventLogBatcher(_exporter("http://127.0.0.1:9/v1/logs", timeout=30),
                              EventEncoder(), RESOURCE, SCOPE, max_queue=50, batch_size=50,
                              delay_s=60)
    for i in range(7):
        batcher.emit(logging.INFO, time.time(), {"level": "INFO", "message": f"m{i}"})
    started = time.monotonic()
    batcher.shutdown()
    assert time.monotonic() - started < 3
    assert batcher.dropped == 7


def test_configure_sends_the_packages_lines_through_the_fast_path(
    receiver: tuple[str, list[bytes], threading.Event], tmp_path: Path
) -> None:
    """configure() with an OTLP/HTTP logs endpoint routes the package's lines through the
    batcher (no SDK log records made); /health books the batches and a dropped count."""
    url, bodies, _ = receiver
    reset_telemetry()
    try:
        telemetry = runtime.configure(
            set_global=False,
            environ={"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": url, "OTEL_TRACES_EXPORTER": "none",
                     "OTEL_METRICS_EXPORTER": "none", "LOG_TO_STDOUT": "false",
                     "LOG_DIRECTORY": str(tmp_path)},
        )
        assert telemetry.pipeline.otel_batcher is telemetry.providers.log_batcher is not None
        assert telemetry.pipeline.otel_logger is None
        logging.getLogger("fast.path").warning("through the batcher")
        assert telemetry.force_flush(5.0)
        assert "through the batcher" in _count(bodies)
        status = telemetry.providers.health.status()["logs"]
        assert status["exported_batches"] >= 1 and status["dropped_items"] == 0
    finally:
        reset_telemetry()


def test_sdk_encoder_setting_keeps_the_sdk_bridge(tmp_path: Path) -> None:
    """HAPA_OTLP_ENCODER=sdk (and gRPC) keep the SDK's LogRecord path."""
    reset_telemetry()
    try:
        telemetry = runtime.configure(
            set_global=False,
            environ={"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://127.0.0.1:9/v1/logs",
                     "HAPA_OTLP_ENCODER": "sdk", "OTEL_TRACES_EXPORTER": "none",
                     "OTEL_METRICS_EXPORTER": "none", "LOG_TO_STDOUT": "false",
                     "LOG_DIRECTORY": str(tmp_path)},
        )
        assert telemetry.providers.log_batcher is None
        assert telemetry.pipeline.otel_logger is not None
    finally:
        reset_telemetry()


class _StalledExporter(SpanExporter):
    """Holds every export until released; keeps what it was given."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.names: list[str] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.gate.wait(10)
        self.names.extend(s.name for s in spans)
        return SpanExportResult.SUCCESS


def test_span_queue_drops_are_counted_and_sampled_out_spans_never_queued() -> None:
    """The span processor queues sampled spans only; with the exporter stalled and the
    queue full, further spans are dropped at once and counted, the rest arrive."""
    exporter = _StalledExporter()
    dropped: list[int] = []
    processor = SpanBatchProcessor(exporter, max_queue=4, batch_size=4, delay_s=0.01,
                                   on_dropped=dropped.append)
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    try:
        with tracer.start_as_current_span("first"):
            pass
        deadline = time.monotonic() + 5
        while processor._batcher._queue and time.monotonic() < deadline:
            time.sleep(0.01)  # the thread took "first" and waits in export
        started = time.perf_counter()
        for i in range(10):
            with tracer.start_as_current_span(f"s{i}"):
                pass
        processor.on_end(ReadableSpan(  # recorded, not sampled: never exported
            name="unsampled", context=trace.SpanContext(1, 2, is_remote=False)))
        assert time.perf_counter() - started < 1.0
        assert sum(dropped) == 6
        exporter.gate.set()
        assert processor.force_flush(5_000)
        assert exporter.names == ["first", "s0", "s1", "s2", "s3"]
    finally:
        exporter.gate.set()
        provider.shutdown()


@pytest.mark.parametrize("max_origins", [1024, 1])
def test_spans_encoded_as_they_end_are_the_batch_encoders_request(
    receiver: tuple[str, list[bytes], threading.Event],
    monkeypatch: pytest.MonkeyPatch,
    max_origins: int,
) -> None:
    """With the package's exporter, spans are encoded when they end and only bytes wait
    in the queue; what arrives decodes to what encoding the same spans as a batch gives
    (two tracers: grouped per scope), and an unencodable span is counted, never raised.
    Also past the table of numbered (resource, scope) pairs (``max_origins`` 1)."""
    monkeypatch.setattr(exporters_mod, "_MAX_ORIGINS", max_origins)
    url, bodies, _ = receiver
    url = url.replace("/v1/logs", "/v1/traces")
    memory: list[ReadableSpan] = []
    rejected: list[int] = []
    exporter = HapaSpanExporter(OtlpHttpClient(url),
                                on_rejected=lambda signal, n, message: rejected.append(n))

    def encode(span: ReadableSpan) -> Any:
        memory.append(span)
        if span.name == "bad":
            raise ValueError("cannot encode")
        return exporter.encode_one(span)

    processor = SpanBatchProcessor(exporter, encode=encode,
                                   on_unencodable=lambda exc: exporter.not_encodable(1, exc),
                                   max_queue=100, batch_size=100, delay_s=30)
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(processor)
    try:
        for scope in ("a", "b"):
            tracer = provider.get_tracer(scope, "1.0")
            with tracer.start_as_current_span("parent", attributes={"k": [1, 2]}) as parent:
                parent.add_event("evt", {"x": 1.5})
                with tracer.start_as_current_span("child"):
                    pass
        with provider.get_tracer("a", "1.0").start_as_current_span("bad"):
            pass  # span.end() must not raise
        assert processor.force_flush(5_000)
    finally:
        provider.shutdown()
    good = [s for s in memory if s.name != "bad"]
    expected = trace_service_pb2.ExportTraceServiceRequest.FromString(encode_spans(good))
    got = trace_service_pb2.ExportTraceServiceRequest.FromString(b"".join(bodies))
    assert MessageToDict(got) == MessageToDict(expected)
    assert len(got.resource_spans[0].scope_spans) == 2 and rejected == [1]


def test_a_queued_span_holds_nothing_the_cyclic_gc_tracks() -> None:
    """A span waiting for its batch is (origin number, bytes): after one young collection
    the GC no longer tracks it, so a full queue adds nothing to the promotions that make
    the slow full collections (tens of ms holding the GIL) come sooner."""
    exporter = HapaSpanExporter(OtlpHttpClient("http://127.0.0.1:9/v1/traces"))
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    with provider.get_tracer("a", "1.0").start_as_current_span("s") as span:
        pass
    items = [exporter.encode_one(span) for _ in range(3)]  # type: ignore[arg-type]
    gc.collect(0)
    assert [gc.is_tracked(item) for item in items] == [False] * 3
    assert items[0][0] == items[2][0] == 0  # one origin, one number


def test_force_flush_gives_up_at_its_deadline_while_an_export_hangs(
    receiver: tuple[str, list[bytes], threading.Event],
) -> None:
    """An endpoint that accepts and never answers: force_flush returns False at about its
    deadline instead of waiting for the export in progress (shutdown stays bounded)."""
    url, _, gate = receiver
    gate.clear()
    batcher = EventLogBatcher(_exporter(url, timeout=20), EventEncoder(), RESOURCE,
                              SCOPE, max_queue=10, batch_size=1, delay_s=0.01)
    try:
        batcher.emit(logging.INFO, time.time(), {"level": "INFO", "message": "hangs"})
        deadline = time.monotonic() + 5
        while batcher._queue and time.monotonic() < deadline:
            time.sleep(0.01)
        batcher.emit(logging.INFO, time.time(), {"level": "INFO", "message": "waits"})
        started = time.monotonic()
        assert batcher.force_flush(300) is False
        assert time.monotonic() - started < 1.5
    finally:
        gate.set()
        batcher.shutdown()
