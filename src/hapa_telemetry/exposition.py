"""Prometheus exposition of the package's own registry (text, or OpenMetrics on request).

Only this package's families are exposed (no prometheus_client default process/GC
collectors): the six seed metrics, the system gauges, the self-metrics and target_info.
"""

from __future__ import annotations

from typing import Any, Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from hapa_telemetry.settings import Settings


class MetricsSource(Protocol):
    """What exposition needs of :class:`hapa_telemetry.runtime.Telemetry` (a protocol, so
    this module does not import runtime, which imports it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def metrics_registry(self) -> CollectorRegistry | None: ...


def render_metrics(telemetry: MetricsSource, accept: str | None) -> tuple[bytes, str]:
    """Body and content type for a scrape with the given Accept header."""
    registry = telemetry.metrics_registry
    if registry is None:
        return b"", "text/plain; charset=utf-8"
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def start_metrics_listener(telemetry: MetricsSource, host: str, port: int) -> Any:
    """Serve /metrics on its own port (a daemon thread), with the same token rule.

    Returns the server, or None when the port is taken (e.g. another worker of the same
    server already listens there; with PROMETHEUS_MULTIPROC_DIR it serves every worker).
    """
    import hmac
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    token = telemetry.settings.metrics_token
    path = telemetry.settings.metrics_path

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ.get("PATH_INFO", "/") not in (path, "/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        if token:
            given = environ.get("HTTP_AUTHORIZATION", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                start_response("401 Unauthorized", [("WWW-Authenticate", "Bearer")])
                return [b"unauthorized\n"]
        body, content_type = render_metrics(telemetry, environ.get("HTTP_ACCEPT"))
        start_response("200 OK", [("Content-Type", content_type)])
        return [body]

    class _Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    class _Server(WSGIServer):
        daemon_threads = True

    try:
        server = make_server(host, port, app, server_class=_Server, handler_class=_Quiet)
    except OSError:
        return None
    thread = threading.Thread(target=server.serve_forever, name="hapa-metrics", daemon=True)
    thread.start()
    return server
