"""OTLP encoder micro-benchmark: CPU µs per item for the SDK's encoder
(opentelemetry-exporter-otlp-proto-common, what ``OTLPSpanExporter``/``OTLPLogExporter``
run) and ours (``hapa_telemetry.otlp``), side by side in one run; then the GIL: a ping
thread's worst wake-up delay while batches are encoded.

Run on demand (not a test):

    .venv/bin/python bench/otlp_encode_bench.py              # ~1 min
    .venv/bin/python bench/otlp_encode_bench.py --rounds 9 --batch 512

Items have a realistic shape: the package's 10-attribute HTTP server span (method, path,
scheme, protocol version, server address/port, client address, user agent, route,
status code) and a ``request_end`` log record with 12 attributes as the log pipeline
emits it (body = the message, trace context set). Both are made by the real SDK
providers, so they are the ReadableSpan/ReadableLogRecord objects exporters receive.

Encoding CPU time is ``time.thread_time`` per batch, rounds interleaved, the median
reported. "json" is OTLP/JSON built as dicts and dumped by orjson (what an OTLP/JSON
exporter would have to do), shown for the technique decision (spans only).

GIL: a thread sleeps 1 ms in a loop and records how late it wakes (the way a request
notices an exporter thread); meanwhile the main thread encodes batches back to back for
``--gil-seconds`` per variant. Reported: p99 and max lateness in ms; "idle" is the same
ping with nothing else running.

Pipeline (``--pipeline-seconds``, 0 to skip): the package's providers (SDK batch
processors, batch 128) export to a live local receiver (``apps/otlp_sink.py``, its own
process) while the main thread makes ``--rate`` requests/s worth of telemetry (one
server span + one ``request_end`` record each); the same ping thread measures lateness.
Variants: no export (the producing alone), the SDK's exporters, ours.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as sdk_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_spans
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from hapa_telemetry.otlp import exporters
from hapa_telemetry.otlp.logs import encode_logs
from hapa_telemetry.otlp.traces import encode_spans

RESOURCE = Resource.create({
    "service.name": "inference-api", "service.version": "1.4.2",
    "service.instance.id": "7f9c2a4e-3b1d-4c8e-9a6f-1e2d3c4b5a69",
    "deployment.environment.name": "production", "host.name": "api-7d9f8-x2k4p",
})
ROUTES = ["/api/v1/items/{item_id}", "/api/v1/chat", "/api/v1/embeddings", "/health"]


def make_spans(n: int) -> list[Any]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("hapa_telemetry", "0.4.0")
    for i in range(n):
        route = ROUTES[i % len(ROUTES)]
        span = tracer.start_span(f"GET {route}", kind=SpanKind.SERVER, attributes={
            "http.request.method": "GET",
            "url.path": route.replace("{item_id}", str(1000 + i)),
            "url.scheme": "http",
            "network.protocol.version": "1.1",
            "server.address": "10.0.3.17",
            "server.port": 8000,
            "client.address": f"10.0.{i % 7}.{i % 251}",
            "user_agent.original": "python-httpx/0.28.1",
        })
        span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", 200 if i % 50 else 500)
        span.end()
    return list(memory.get_finished_spans())


def make_records(n: int) -> list[Any]:
    memory = InMemoryLogRecordExporter()
    provider = LoggerProvider(resource=RESOURCE, shutdown_on_exit=False)
    provider.add_log_record_processor(SimpleLogRecordProcessor(memory))
    logger = provider.get_logger("hapa_telemetry")
    tracer = TracerProvider(shutdown_on_exit=False).get_tracer("x")
    for i in range(n):
        route = ROUTES[i % len(ROUTES)]
        duration = 0.0123 + i * 1e-5
        with tracer.start_as_current_span("req"):
            logger.emit(
                timestamp=time.time_ns(), observed_timestamp=time.time_ns(),
                context=trace.set_span_in_context(trace.get_current_span()),
                severity_number=SeverityNumber.INFO, severity_text="INFO",
                body=f"API request end: GET {route} - 200 ({duration:.4f}s)",
                event_name="request_end",
                attributes={
                    "logger": "api_monitor", "event_type": "request_end", "method": "GET",
                    "endpoint": route, "status_code": 200, "duration": duration,
                    "client_ip": f"10.0.{i % 7}.{i % 251}",
                    "request_id": f"{i:08x}-4c1f-4e0b-9f59-3b8d2b7e6a1c",
                    "module": "middleware", "function": "dispatch", "line": 0,
                    "user_agent": "python-httpx/0.28.1",
                },
            )
    return list(memory.get_finished_logs())


# -- OTLP/JSON with orjson (for the decision only) ----------------------------------------
def _json_value(v: Any) -> dict[str, Any]:
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, str):
        return {"stringValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    return {"arrayValue": {"values": [_json_value(x) for x in v]}}


def json_spans(spans: list[Any]) -> bytes:
    out = []
    for s in spans:
        ctx = s.context
        out.append({
            "traceId": f"{ctx.trace_id:032x}", "spanId": f"{ctx.span_id:016x}",
            "name": s.name, "kind": s.kind.value + 1,
            "startTimeUnixNano": str(s.start_time), "endTimeUnixNano": str(s.end_time),
            "attributes": [{"key": k, "value": _json_value(v)} for k, v in s.attributes.items()],
            "status": {"code": s.status.status_code.value}, "flags": 0x101,
        })
    return orjson.dumps({"resourceSpans": [{"resource": {"attributes": [
        {"key": k, "value": _json_value(v)} for k, v in RESOURCE.attributes.items()]},
        "scopeSpans": [{"scope": {"name": "hapa_telemetry"}, "spans": out}]}]})


def _wall(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cpu_us_per_item(fn: Callable[[], Any], items: int, repeat: int) -> float:
    t0 = time.thread_time()
    for _ in range(repeat):
        fn()
    return (time.thread_time() - t0) / repeat / items * 1e6


def ping_lateness(work: Callable[[], Any] | None, seconds: float) -> tuple[float, float]:
    """(p99, max) ms by which a 1 ms sleep overshoots while ``work`` runs in a loop."""
    late: list[float] = []
    stop = threading.Event()

    def ping() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            time.sleep(0.001)
            late.append((time.perf_counter() - t0 - 0.001) * 1e3)

    thread = threading.Thread(target=ping)
    thread.start()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if work is None:
            time.sleep(0.01)
        else:
            work()
            time.sleep(0.002)  # the exporter thread's own wait between batches
    stop.set()
    thread.join()
    late.sort()
    return late[int(len(late) * 0.99)], late[-1]


def pipeline_lateness(sink: str, encoder: str | None, rate: int, seconds: float
                      ) -> tuple[float, float, int, str]:
    """(p99, max) ping lateness in ms, requests made and export outcomes, while
    telemetry flows to ``sink``."""
    from hapa_telemetry.exporting import ExportHealth
    from hapa_telemetry.providers import build_providers
    from hapa_telemetry.settings import Settings

    env = {"ENABLE_METRICS": "false", "OTEL_METRICS_EXPORTER": "none"}
    if encoder is not None:
        env.update(OTEL_EXPORTER_OTLP_ENDPOINT=sink, HAPA_OTLP_ENCODER=encoder)
    health = ExportHealth()
    providers = build_providers(Settings.load(env), RESOURCE, health, set_global=False,
                                log_exporter=None if encoder else _NullLogs())
    tracer = providers.tracer_provider.get_tracer("hapa_telemetry")
    assert providers.logger_provider is not None
    logger = providers.logger_provider.get_logger("hapa_telemetry")
    made = 0

    def produce() -> None:
        nonlocal made
        t0 = time.monotonic()
        for i in range(max(1, rate // 100)):  # 10 ms worth of requests
            route = ROUTES[i % len(ROUTES)]
            with tracer.start_as_current_span(f"GET {route}", kind=SpanKind.SERVER, attributes={
                "http.request.method": "GET", "url.path": route, "url.scheme": "http",
                "network.protocol.version": "1.1", "server.address": "10.0.3.17",
                "server.port": 8000, "client.address": f"10.0.0.{i % 251}",
                "user_agent.original": "python-httpx/0.28.1", "http.route": route,
                "http.response.status_code": 200}):
                logger.emit(severity_number=SeverityNumber.INFO, severity_text="INFO",
                            body=f"API request end: GET {route} - 200 (0.0123s)",
                            attributes={"logger": "api_monitor", "event_type": "request_end",
                                        "method": "GET", "endpoint": route, "status_code": 200,
                                        "duration": 0.0123 + i * 1e-6,
                                        "client_ip": f"10.0.0.{i % 251}",
                                        "request_id": f"{made:08x}-4c1f", "module": "middleware",
                                        "function": "dispatch", "line": 0, "user_agent": "httpx"})
            made += 1
        time.sleep(max(0.0, 0.01 - (time.monotonic() - t0)))

    try:
        p99, worst = ping_lateness(produce, seconds)
    finally:
        providers.force_flush(10_000)
        providers.shutdown()
    outcome = ", ".join(f"{k} {v['exported_batches']} ok/{v['failed_batches']} failed"
                        for k, v in sorted(health.status().items()))
    return p99, worst, made, outcome


class _NullLogs:
    """A log exporter that drops everything (the no-export baseline needs a provider)."""

    def export(self, batch: Any) -> Any:
        from opentelemetry.sdk._logs.export import LogRecordExportResult

        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 0) -> bool:
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=20, help="batches per round")
    parser.add_argument("--gil-seconds", type=float, default=3.0)
    parser.add_argument("--pipeline-seconds", type=float, default=4.0)
    parser.add_argument("--rate", type=int, default=1000, help="requests/s in the pipeline")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}, batch {args.batch}, {args.rounds} rounds")

    spans, records = make_spans(args.batch), make_records(args.batch)
    every = exporters._CHECK_EVERY
    candidates: dict[str, tuple[Callable[[], Any], int]] = {
        "spans sdk": (lambda: sdk_spans(spans).SerializePartialToString(), len(spans)),
        "spans hapa": (lambda: encode_spans(spans), len(spans)),
        "spans json": (lambda: json_spans(spans), len(spans)),
        "logs sdk": (lambda: sdk_logs(records).SerializePartialToString(), len(records)),
        "logs hapa": (lambda: encode_logs(records), len(records)),
    }
    results: dict[str, list[float]] = {k: [] for k in candidates}
    for _ in range(args.rounds):
        for name, (fn, n) in candidates.items():
            fn()  # warm caches the way a running exporter has them
            results[name].append(cpu_us_per_item(fn, n, args.repeat))
    med = {k: statistics.median(v) for k, v in results.items()}
    print("\nencoding, CPU µs per item (median of rounds)")
    print(f"{'':8}{'sdk':>9}{'hapa':>9}{'× cheaper':>11}{'json':>9}")
    for signal in ("spans", "logs"):
        sdk, ours = med[f"{signal} sdk"], med[f"{signal} hapa"]
        json_col = f"{med[f'{signal} json']:9.1f}" if f"{signal} json" in med else f"{'-':>9}"
        print(f"{signal:8}{sdk:9.1f}{ours:9.1f}{sdk / ours:10.1f}×{json_col}")
    size = len(encode_spans(spans)), len(sdk_spans(spans).SerializePartialToString())
    print(f"bytes per span: hapa {size[0] / len(spans):.0f}, sdk {size[1] / len(spans):.0f}, "
          f"json {len(json_spans(spans)) / len(spans):.0f}")

    print("\nlongest single C call holding the GIL per batch (min of 20, ms):")
    from hapa_telemetry.otlp._wire import group, request
    from hapa_telemetry.otlp.traces import encode_span, span_origin
    for n in (128, 512):
        sp = make_spans(n)
        msg = sdk_spans(sp)
        serialize = min(_wall(msg.SerializePartialToString) for _ in range(20))
        groups = group(sp, encode_span, span_origin, None, 1)
        join = min(_wall(lambda g=groups: request(g, b"\x12")) for _ in range(20))
        print(f"  batch {n}: sdk SerializeToString {serialize * 1e3:.2f}, "
              f"hapa whole request assembly (joins) {join * 1e3:.3f}")

    print(f"\nGIL: 1 ms ping lateness while encoding batches back to back "
          f"({args.gil_seconds:.0f} s each), ms p99 / max")
    variants: dict[str, Callable[[], Any] | None] = {"idle": None}
    for n in (128, 512):
        sp, rc = make_spans(n), make_records(n)
        variants[f"sdk spans+logs, batch {n}"] = (
            lambda sp=sp, rc=rc: (sdk_spans(sp).SerializePartialToString(),
                                  sdk_logs(rc).SerializePartialToString()))
        variants[f"hapa unsliced, batch {n}"] = (
            lambda sp=sp, rc=rc: (encode_spans(sp), encode_logs(rc)))
        variants[f"hapa sliced, batch {n}"] = (
            lambda sp=sp, rc=rc: (encode_spans(sp, exporters.Slicer(), every),
                                  encode_logs(rc, exporters.Slicer(), every)))
    for name, work in variants.items():
        p99, worst = ping_lateness(work, args.gil_seconds)
        print(f"  {name:32} {p99:6.2f} / {worst:6.2f}")

    if args.pipeline_seconds > 0:
        _pipeline(args.rate, args.pipeline_seconds)


def _pipeline(rate: int, seconds: float) -> None:
    import socket
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    stats = Path(tempfile.mkdtemp()) / "sink.json"
    sink = subprocess.Popen([sys.executable, str(Path(__file__).parent / "apps" / "otlp_sink.py"),
                             str(port), str(stats)])
    try:
        time.sleep(1.0)
        print(f"\npipeline: {rate} requests/s (1 span + 1 log record each) through the "
              f"providers to a live receiver, {seconds:.0f} s each; ping lateness ms p99 / max")
        for name, encoder in (("no export", None), ("sdk exporters", "sdk"),
                              ("hapa exporters", "hapa"), ("no export", None),
                              ("sdk exporters", "sdk"), ("hapa exporters", "hapa")):
            p99, worst, made, outcome = pipeline_lateness(
                f"http://127.0.0.1:{port}", encoder, rate, seconds)
            print(f"  {name:16} {p99:6.2f} / {worst:6.2f}   ({made / seconds:.0f} requests/s "
                  f"made{'; ' + outcome if outcome else ''})")
    finally:
        sink.terminate()
        sink.wait(10)


if __name__ == "__main__":
    main()
