"""Which exporter the providers use for each protocol and encoder setting, with the
user's headers, compression and timeout (observed at a local receiver)."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.resources import Resource

from hapa_telemetry.exporting import ExportHealth
from hapa_telemetry.providers import _otlp_exporter, build_providers
from hapa_telemetry.settings import Settings


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            seen.append({"path": self.path, "body": body,
                         "headers": {k.lower(): v for k, v in self.headers.items()}})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def _send_one_span(settings: Settings) -> None:
    providers = build_providers(settings, Resource({"service.name": "p"}), ExportHealth(),
                                set_global=False)
    try:
        with providers.tracer_provider.get_tracer("t").start_as_current_span("one"):
            pass
        assert providers.force_flush(5_000)
    finally:
        providers.shutdown()


@pytest.mark.parametrize("encoder, agent", [("hapa", "hapa-telemetry/"),
                                            ("sdk", "OTel-OTLP-Exporter-Python")])
def test_http_protobuf_uses_the_chosen_encoder_with_headers_gzip_and_timeout(
    receiver: tuple[str, list[dict[str, Any]]], encoder: str, agent: str
) -> None:
    """http/protobuf goes through our exporter by default, the SDK's with
    HAPA_OTLP_ENCODER=sdk; both send OTEL_EXPORTER_OTLP_HEADERS and gzip."""
    url, seen = receiver
    settings = Settings.load({
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        "OTEL_EXPORTER_OTLP_HEADERS": "x-api-key=k%201",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "3",
        "HAPA_OTLP_ENCODER": encoder,
        "ENABLE_METRICS": "false",
    })
    _send_one_span(settings)
    traces = [s for s in seen if s["path"] == "/v1/traces"]
    assert traces, seen
    headers = traces[0]["headers"]
    assert headers["user-agent"].startswith(agent)
    assert headers["x-api-key"] == "k 1" and headers["content-encoding"] == "gzip"
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(
        gzip.decompress(traces[0]["body"])
    )
    assert request.resource_spans[0].scope_spans[0].spans[0].name == "one"


def test_grpc_protocol_keeps_the_sdk_grpc_exporters() -> None:
    """OTEL_EXPORTER_OTLP_PROTOCOL=grpc: the SDK's gRPC exporters for every signal."""
    settings = Settings.load({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317",
                              "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                              "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"})
    for signal in ("traces", "logs", "metrics"):
        exporter = _otlp_exporter(settings, signal, "http://127.0.0.1:4317")
        assert type(exporter).__module__.startswith("opentelemetry.exporter.otlp.proto.grpc")
        exporter.shutdown()


def test_metrics_over_http_stay_on_the_sdk_exporter() -> None:
    """Metrics (one export a minute) keep the SDK's OTLP/HTTP exporter."""
    settings = Settings.load({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    exporter = _otlp_exporter(settings, "metrics", settings.otlp_metrics_endpoint)
    assert type(exporter).__module__.startswith("opentelemetry.exporter.otlp.proto.http")


@pytest.mark.parametrize("raw, expected", [
    ("a=1,b=2", {"a": "1", "b": "2"}),
    (" Authorization = Basic%20abc%3D , x=", {"authorization": "Basic abc=", "x": ""}),
    ("", {}),
])
def test_otlp_headers_are_parsed_like_the_sdk(raw: str, expected: dict[str, str]) -> None:
    """W3C-baggage-like k=v pairs, URL-decoded (header names are case-insensitive)."""
    headers = Settings.load({"OTEL_EXPORTER_OTLP_HEADERS": raw}).otlp_headers
    assert {k.lower(): v for k, v in headers.items()} == expected


@pytest.mark.parametrize("env", [
    {"OTEL_EXPORTER_OTLP_HEADERS": "novalue"},
    {"OTEL_EXPORTER_OTLP_COMPRESSION": "brotli"},
    {"OTEL_EXPORTER_OTLP_TIMEOUT": "soon"},
    {"HAPA_OTLP_ENCODER": "fast"},
])
def test_bad_transport_settings_stop_startup_with_the_variable_named(
    env: dict[str, str]
) -> None:
    """A bad value is a SettingsError naming the variable, not a silent fallback."""
    from hapa_telemetry.settings import SettingsError

    with pytest.raises(SettingsError) as info:
        Settings.load(env)
    assert next(iter(env)) in str(info.value)
