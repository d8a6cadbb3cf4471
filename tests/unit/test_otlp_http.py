"""The OTLP/HTTP exporter against a scripted local server on 127.0.0.1: what users rely
on from the SDK's exporter (gzip, headers, retries with backoff and Retry-After, bounded
by the timeout and by shutdown, partial success counted, one reused connection)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hapa_telemetry.exporting import CountingLogExporter, CountingSpanExporter, ExportHealth
from hapa_telemetry.otlp import build_exporter
from hapa_telemetry.otlp.http import OtlpHttpClient
from hapa_telemetry.testing import reset as reset_telemetry


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int
    at: float


@dataclass
class Script:
    """Responses to give, in order (the last one repeats), and requests seen."""

    responses: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def server() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as a collector does

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with script.lock:
                script.seen.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()},
                                        body, self.client_address[1], time.monotonic()))
                status, headers, payload = (
                    script.responses.pop(0) if len(script.responses) > 1
                    else (script.responses[0] if script.responses else (200, {}, b""))
                )
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", script
    finally:
        httpd.shutdown()
        httpd.server_close()


def _spans(n: int = 3) -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for i in range(n):
        with provider.get_tracer("t").start_as_current_span(f"s{i}"):
            pass
    return list(memory.get_finished_spans())


def _records(n: int = 3) -> list[Any]:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    for i in range(n):
        provider.get_logger("l").emit(body=f"line {i}")
    return list(memory.get_finished_logs())


def _client(url: str, **kw: Any) -> OtlpHttpClient:
    kw.setdefault("backoff_base", 0.05)
    return OtlpHttpClient(url + "/v1/traces", **kw)


def test_gzip_and_headers_reach_the_receiver(server: tuple[str, Script]) -> None:
    """Compression gzip sends a gzip body with Content-Encoding; configured headers and
    the protobuf content type are on the request; the body decodes to the spans."""
    url, script = server
    exporter = build_exporter("traces", url + "/v1/traces", compression="gzip",
                              headers={"authorization": "Bearer s3cret", "x-tenant": "t1"})
    assert exporter.export(_spans(3)) == SpanExportResult.SUCCESS
    seen = script.seen[0]
    assert seen.path == "/v1/traces"
    assert seen.headers["content-encoding"] == "gzip"
    assert seen.headers["content-type"] == "application/x-protobuf"
    assert seen.headers["authorization"] == "Bearer s3cret" and seen.headers["x-tenant"] == "t1"
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(gzip.decompress(seen.body))
    assert [s.name for s in request.resource_spans[0].scope_spans[0].spans] == ["s0", "s1", "s2"]


def test_one_connection_is_reused_across_exports(server: tuple[str, Script]) -> None:
    """Three exports travel over one keep-alive connection (same client port)."""
    url, script = server
    exporter = build_exporter("logs", url + "/v1/logs")
    for _ in range(3):
        exporter.export(_records(2))
    assert len(script.seen) == 3
    assert len({s.client_port for s in script.seen}) == 1
    body = logs_service_pb2.ExportLogsServiceRequest.FromString(script.seen[0].body)
    assert len(body.resource_logs[0].scope_logs[0].log_records) == 2


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_are_retried_then_succeed(
    server: tuple[str, Script], status: int
) -> None:
    """429/502/503/504 are retried with growing waits until the receiver accepts."""
    url, script = server
    script.responses = [(status, {}, b""), (status, {}, b""), (200, {}, b"")]
    result = _client(url).send(b"x")
    assert result.ok and result.attempts == 3
    gaps = [b.at - a.at for a, b in zip(script.seen, script.seen[1:], strict=False)]
    assert gaps[0] >= 0.05 * 0.8 and gaps[1] >= 0.1 * 0.8  # base * 2**n, ±20 % jitter


def test_retry_after_is_honoured(server: tuple[str, Script]) -> None:
    """A 429 with Retry-After: 1 makes the next attempt wait about a second."""
    url, script = server
    script.responses = [(429, {"Retry-After": "1"}, b""), (200, {}, b"")]
    result = _client(url, timeout=5).send(b"x")
    assert result.ok
    assert script.seen[1].at - script.seen[0].at >= 0.95


def test_not_retryable_status_fails_at_once_with_the_receivers_message(
    server: tuple[str, Script]
) -> None:
    """400 is not retried; the google.rpc.Status message ends up in /health's last_error."""
    url, script = server
    status_body = b"\x08\x03\x12\x0bbad payload"  # Status{code: 3, message: "bad payload"}
    script.responses = [(400, {}, status_body)]
    health = ExportHealth(stream=None, report_interval=1e9)
    exporter = CountingSpanExporter(build_exporter("traces", url + "/v1/traces"), health)
    assert exporter.export(_spans(1)) == SpanExportResult.FAILURE
    assert len(script.seen) == 1
    assert health.status()["traces"]["last_error"] == "HTTP 400: bad payload"


def test_retries_stop_at_the_timeout(server: tuple[str, Script]) -> None:
    """A receiver that always answers 503 costs at most the timeout, not six backoffs."""
    url, script = server
    script.responses = [(503, {}, b"")]
    started = time.monotonic()
    result = _client(url, timeout=0.5, backoff_base=0.1).send(b"x")
    assert not result.ok and result.status == 503
    assert time.monotonic() - started < 0.5 + 0.3
    assert 2 <= len(script.seen) <= 4


def test_shutdown_cuts_a_retry_wait_short(server: tuple[str, Script]) -> None:
    """close() during a 30 s Retry-After wait ends the export within a moment."""
    url, script = server
    script.responses = [(503, {"Retry-After": "30"}, b"")]
    client = _client(url, timeout=60)
    out: list[Any] = []
    worker = threading.Thread(target=lambda: out.append(client.send(b"x")))
    worker.start()
    time.sleep(0.3)
    started = time.monotonic()
    client.close()
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - started < 1.0
    assert not out[0].ok


def test_unreachable_receiver_fails_within_the_timeout() -> None:
    """Nothing listening: connection errors are retried, the export ends by the timeout."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    result = OtlpHttpClient(f"http://127.0.0.1:{port}/v1/logs", timeout=0.6,
                            backoff_base=0.05).send(b"x")
    assert not result.ok and "ConnectionRefused" in (result.error or "")
    assert time.monotonic() - started < 1.0 and result.attempts >= 2


def test_partial_success_is_counted(server: tuple[str, Script]) -> None:
    """A 200 with partial_success books the rejected records (outcome=rejected) and tells
    /health why; the batch itself counts as exported."""
    url, script = server
    response = logs_service_pb2.ExportLogsServiceResponse()
    response.partial_success.rejected_log_records = 2
    response.partial_success.error_message = "too old"
    script.responses = [(200, {}, response.SerializeToString())]
    outcomes: list[tuple[str, str, int]] = []
    health = ExportHealth(lambda s, o, n: outcomes.append((s, o, n)), stream=None)
    inner = build_exporter("logs", url + "/v1/logs", on_rejected=health.rejected)
    exporter = CountingLogExporter(inner, health)
    exporter.export(_records(3))
    assert ("logs", "ok", 1) in outcomes and ("logs", "rejected", 2) in outcomes
    status = health.status()["logs"]
    assert status["rejected_items"] == 2 and "too old" in status["last_error"]


def test_span_partial_success_is_counted(server: tuple[str, Script]) -> None:
    """The same for spans (rejected_spans)."""
    url, script = server
    response = trace_service_pb2.ExportTraceServiceResponse()
    response.partial_success.rejected_spans = 1
    script.responses = [(200, {}, response.SerializeToString())]
    health = ExportHealth(stream=None)
    build_exporter("traces", url + "/v1/traces", on_rejected=health.rejected).export(_spans(2))
    assert health.status()["traces"]["rejected_items"] == 1


def test_export_after_shutdown_fails_without_a_request(server: tuple[str, Script]) -> None:
    """After shutdown() nothing is sent."""
    url, script = server
    exporter = build_exporter("traces", url + "/v1/traces")
    exporter.shutdown()
    assert exporter.export(_spans(1)) == SpanExportResult.FAILURE
    assert script.seen == []


def test_a_record_that_cannot_be_encoded_costs_only_itself(server: tuple[str, Script]) -> None:
    """One record whose body cannot even be turned into text is left out and booked as
    rejected with the reason; the rest of the batch is delivered."""
    url, script = server

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text for you")

    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("l")
    logger.emit(body="first")
    logger.emit(body=Unprintable())  # type: ignore[arg-type]
    logger.emit(body="third")
    health = ExportHealth(stream=None)
    exporter = CountingLogExporter(
        build_exporter("logs", url + "/v1/logs", on_rejected=health.rejected), health)
    exporter.export(list(memory.get_finished_logs()))
    request = logs_service_pb2.ExportLogsServiceRequest.FromString(script.seen[0].body)
    bodies = [r.body.string_value for r in request.resource_logs[0].scope_logs[0].log_records]
    assert bodies == ["first", "third"]
    status = health.status()["logs"]
    assert status["rejected_items"] == 1 and "no text for you" in status["last_error"]


def test_a_forked_worker_opens_its_own_connection(server: tuple[str, Script]) -> None:
    """After fork (gunicorn --preload), the child does not write into the parent's socket."""
    import os

    url, script = server
    client = _client(url)
    assert client.send(b"parent").ok
    pid = os.fork()
    if pid == 0:  # child: send once and report by exit code
        os._exit(0 if client.send(b"child").ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert client.send(b"parent again").ok
    ports = {s.body: s.client_port for s in script.seen}
    assert ports[b"child"] != ports[b"parent"] == ports[b"parent again"]


def test_rejected_records_show_in_metrics_and_health(
    server: tuple[str, Script], tmp_path: Any
) -> None:
    """A configured app whose receiver rejects log records in a partial success shows them
    as hapa_telemetry_export_total{signal="logs",outcome="rejected"} on /metrics and as
    rejected_items in /health."""
    from prometheus_client.parser import text_string_to_metric_families

    from hapa_telemetry import runtime
    from hapa_telemetry.exposition import render_metrics

    url, script = server
    response = logs_service_pb2.ExportLogsServiceResponse()
    response.partial_success.rejected_log_records = 1
    response.partial_success.error_message = "quota"
    script.responses = [(200, {}, response.SerializeToString())]
    reset_telemetry()
    try:
        telemetry = runtime.configure(
            set_global=False,
            environ={"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": url + "/v1/logs",
                     "OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none",
                     "LOG_TO_STDOUT": "false", "LOG_DIRECTORY": str(tmp_path)},
        )
        import logging

        logging.getLogger("rejected.test").warning("this one will be rejected")
        telemetry.pipeline.flush(5.0)
        assert telemetry.providers.force_flush(5_000)
        body, _ = render_metrics(telemetry, None)
        samples = {
            (s.labels.get("signal"), s.labels.get("outcome")): s.value
            for fam in text_string_to_metric_families(body.decode())
            for s in fam.samples if s.name.startswith("hapa_telemetry_export")
        }
        assert samples[("logs", "rejected")] >= 1
        assert telemetry.providers.health.status()["logs"]["rejected_items"] >= 1
    finally:
        reset_telemetry()
