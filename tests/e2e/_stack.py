"""Helpers for the end-to-end tests: the local stack (scripts/stack) and its HTTP APIs.

Every wait here is bounded (a deadline in seconds) and polls at most a few times a second.
Ports follow the same environment variables as scripts/stack.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
STACK_SCRIPT = ROOT / "scripts" / "stack"
STACK_DIR = Path(os.environ.get("HAPA_STACK_DIR", str(ROOT / ".stack")))
COLLECTOR_BIN = STACK_DIR / "bin" / "hapa-otelcol"
COLLECTOR_CONFIG = ROOT / "otel-collector.yaml"
FILELOG_DIR = Path(os.environ.get("HAPA_STACK_FILELOG_DIR", str(STACK_DIR / "filelog")))


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


OTLP_HTTP = f"http://127.0.0.1:{_port('HAPA_STACK_OTLP_HTTP_PORT', 4318)}"
OTLP_GRPC = f"127.0.0.1:{_port('HAPA_STACK_OTLP_GRPC_PORT', 4317)}"
ES = f"http://127.0.0.1:{_port('HAPA_STACK_ES_PORT', 9200)}"
PROMETHEUS = f"http://127.0.0.1:{_port('HAPA_STACK_PROMETHEUS_PORT', 9090)}"
COLLECTOR_HEALTH = f"http://127.0.0.1:{_port('HAPA_STACK_COLLECTOR_HEALTH_PORT', 13133)}/"
COLLECTOR_PROM = f"http://127.0.0.1:{_port('HAPA_STACK_COLLECTOR_PROM_PORT', 8889)}/metrics"
APP_METRICS_PORT = _port("HAPA_STACK_APP_METRICS_PORT", 8000)

LOG_INDEX_PREFIX = "hapa-backend"
TRACE_INDEX_PREFIX = "hapa-traces"

T = TypeVar("T")


def stack(*args: str, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    """Run scripts/stack with arguments; raise with its output if it fails."""
    proc = subprocess.run(
        [str(STACK_SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )
    if proc.returncode != 0 and args[:1] != ("status",):
        raise AssertionError(
            f"scripts/stack {' '.join(args)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def pid_file(part: str) -> Path:
    """The PID file scripts/stack keeps for one part."""
    return STACK_DIR / "run" / f"{part}.pid"


def http(method: str, url: str, body: Any = None, timeout: float = 10) -> tuple[int, Any]:
    """One HTTP request; JSON in and out. Returns (status, parsed body or text)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read().decode()
            status = resp.status
    except urllib.error.HTTPError as err:
        raw = err.read().decode()
        status = err.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def answers(url: str) -> bool:
    """True when url answers 2xx within 3 s."""
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return 200 <= resp.status < 300
    except (OSError, urllib.error.URLError):
        return False


def wait_until(
    probe: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5
) -> T:
    """Poll probe() until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        try:
            last = probe()
        except (OSError, urllib.error.URLError):
            last = None
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def today_log_index() -> str:
    """The log index the collector writes today: hapa-backend-YYYY.MM.dd (UTC)."""
    return f"{LOG_INDEX_PREFIX}-{datetime.now(timezone.utc):%Y.%m.%d}"


def es_search(index: str, query: dict[str, Any], size: int = 100) -> list[dict[str, Any]]:
    """Documents (with _index) matching query; refreshes first so new docs are visible."""
    http("POST", f"{ES}/{index}/_refresh")
    status, body = http(
        "POST",
        f"{ES}/{index}/_search?ignore_unavailable=true&allow_no_indices=true",
        {"query": query, "size": size, "sort": [{"@timestamp": "asc"}]},
    )
    if status != 200:
        return []
    return [{"_index": h["_index"], **h["_source"]} for h in body["hits"]["hits"]]


def by_trace_id(trace_id: str, index: str) -> list[dict[str, Any]]:
    """Documents of one trace, by the documented field (docs/elasticsearch.md)."""
    return es_search(index, {"term": {"TraceId.keyword": trace_id}})


def wait_for_docs(
    index: str, query: dict[str, Any], count: int, timeout: float, size: int = 1000
) -> list[dict[str, Any]]:
    """Wait until at least count documents match; return them."""

    def probe() -> list[dict[str, Any]] | None:
        docs = es_search(index, query, size=size)
        return docs if len(docs) >= count else None

    return wait_until(probe, timeout, f"{count} document(s) in {index} matching {query}")


def prom_query(expr: str) -> list[dict[str, Any]]:
    """Prometheus instant query; the result vector (empty on error)."""
    url = f"{PROMETHEUS}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = http("GET", url)
    if status != 200 or body.get("status") != "success":
        return []
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def wait_for_series(expr: str, timeout: float) -> list[dict[str, Any]]:
    """Wait until a Prometheus query returns at least one series."""
    return wait_until(lambda: prom_query(expr) or None, timeout, f"Prometheus series for {expr}")


class OtelClient:
    """Plain OpenTelemetry SDK providers exporting OTLP/HTTP to the stack's collector.

    One unique ``service.instance.id`` per client so Prometheus series and ES documents of
    one test can be told apart from everything else the stack has seen.
    """

    def __init__(self, instance_id: str, metric_interval_ms: int = 1000) -> None:
        # imported here so collecting the tests does not need the SDK configured
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from hapa_telemetry import names

        self.instance_id = instance_id
        resource = Resource.create(
            {
                "service.name": names.DEFAULT_SERVICE_NAME,
                "service.instance.id": instance_id,
                "deployment.environment.name": "e2e",
            }
        )
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=f"{OTLP_HTTP}/v1/traces", timeout=5),
                schedule_delay_millis=200,
            )
        )
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(
                OTLPLogExporter(endpoint=f"{OTLP_HTTP}/v1/logs", timeout=5),
                schedule_delay_millis=200,
            )
        )
        self.meter_provider = MeterProvider(
            resource=resource,
            metric_readers=[
                PeriodicExportingMetricReader(
                    OTLPMetricExporter(endpoint=f"{OTLP_HTTP}/v1/metrics", timeout=5),
                    export_interval_millis=metric_interval_ms,
                )
            ],
            views=[
                View(
                    instrument_name=names.API_REQUEST_DURATION_SECONDS,
                    aggregation=ExplicitBucketHistogramAggregation(names.REQUEST_DURATION_BUCKETS),
                ),
                View(
                    instrument_name=names.AI_INFERENCE_DURATION_SECONDS,
                    aggregation=ExplicitBucketHistogramAggregation(
                        names.INFERENCE_DURATION_BUCKETS
                    ),
                ),
            ],
        )
        self.tracer = self.tracer_provider.get_tracer("hapa.e2e")
        self.logger = self.logger_provider.get_logger("hapa.e2e")
        self.meter = self.meter_provider.get_meter("hapa.e2e")

    def log(self, message: str, level: str = "INFO", **attributes: Any) -> None:
        """Emit one OTel log record in the current span context."""
        from opentelemetry._logs import LogRecord, SeverityNumber
        from opentelemetry.trace import get_current_span

        numbers = {
            "DEBUG": SeverityNumber.DEBUG,
            "INFO": SeverityNumber.INFO,
            "WARNING": SeverityNumber.WARN,
            "ERROR": SeverityNumber.ERROR,
            "CRITICAL": SeverityNumber.FATAL,
        }
        ctx = get_current_span().get_span_context()
        self.logger.emit(
            LogRecord(
                timestamp=time.time_ns(),
                trace_id=ctx.trace_id,
                span_id=ctx.span_id,
                trace_flags=ctx.trace_flags,
                severity_text=level,
                severity_number=numbers[level],
                body=message,
                attributes=attributes,
            )
        )

    def flush(self) -> None:
        """Push everything buffered to the collector now."""
        self.tracer_provider.force_flush(5000)
        self.logger_provider.force_flush(5000)
        self.meter_provider.force_flush(5000)

    def shutdown(self) -> None:
        """Flush and stop the providers."""
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()


# --- the demo app, exporting to the stack ------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class DemoApp:
    """A running demo app: base URL, the unique service name it reports, its process."""

    url: str
    service: str
    proc: subprocess.Popen[bytes]


@contextmanager
def demo_app(
    tmp_path: Path, prefix: str, env: Mapping[str, str] | None = None
) -> Iterator[DemoApp]:
    """``uvicorn hapa_telemetry.demo.app:app`` on a free port, OTLP/HTTP to the stack's
    collector (short export intervals), a unique ``OTEL_SERVICE_NAME`` starting with
    ``prefix``; ``env`` adds or overrides variables. Ready when /metrics answers (/health
    may say 503 on a busy machine); stopped (SIGTERM, then SIGKILL) on exit."""
    port = free_port()
    service = f"{prefix}-{uuid.uuid4().hex[:8]}"
    full = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PROMETHEUS_MULTIPROC"))
    }
    full.update(
        OTEL_SERVICE_NAME=service,
        OTEL_EXPORTER_OTLP_ENDPOINT=OTLP_HTTP,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_METRIC_EXPORT_INTERVAL="1000",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
        LOG_DIRECTORY=str(tmp_path / "logs"),
        DEMO_MODEL_DELAY="0.01",
    )
    full.update(env or {})
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / f"{service}.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "hapa_telemetry.demo.app:app",
             "--host", "127.0.0.1", "--port", str(port)],
            env=full, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
        )
    try:
        wait_until(
            lambda: proc.poll() is None and answers(url + "/metrics"), 60, f"{service} /metrics"
        )
        yield DemoApp(url, service, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
