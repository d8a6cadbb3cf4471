"""Prometheus exposition of the package's own registry (text, or OpenMetrics on request).

Only this package's families are exposed (no prometheus_client default process/GC
collectors): the six seed metrics, the system gauges, the self-metrics and target_info.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Protocol

import psutil
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from hapa_telemetry.instruments import SEED_FAMILIES
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
    return encoder(_WithSeedFamilies(registry)), content_type


class _WithSeedFamilies:
    """The registry's families plus every seed family it does not show yet.

    The SDK reports a metric only once it has a data point; the seed's prometheus_client
    exposition showed all six families from the first scrape. A missing family is added
    with its HELP and TYPE — and a zero sample when it has no labels.
    """

    def __init__(self, registry: Any) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        seen: set[str] = set()
        for family in self._registry.collect():
            seen.add(family.name)
            yield family
        for name, kind, description, _unit, labeled in SEED_FAMILIES:
            base = name[: -len("_total")] if kind == "counter" else name
            if base in seen:
                continue
            family = Metric(base, description, kind)
            if not labeled:
                if kind == "histogram":
                    family.add_sample(name + "_bucket", {"le": "+Inf"}, 0.0)
                    family.add_sample(name + "_count", {}, 0.0)
                    family.add_sample(name + "_sum", {}, 0.0)
                else:
                    family.add_sample(name, {}, 0.0)
            yield family


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


SEED_APP_PORT = 8000  # the seed's METRICS_PORT: "the app's own port"
_SERVER_MODULES = ("uvicorn", "gunicorn", "hypercorn", "granian", "daphne")


def listening_ports() -> set[int]:
    """TCP ports this process listens on (its server's, inherited sockets included)."""
    try:
        return {
            c.laddr.port
            for c in psutil.Process().net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN and c.laddr
        }
    except Exception:  # no /proc, no permission: nothing known
        return set()


class MetricsListener:
    """Decides whether an explicitly set ``METRICS_PORT`` gets its own listener, from the
    port the server really listens on — never by binding first (a server that wants that
    very port would then fail to start). Unset, ``METRICS_PORT`` keeps the seed's meaning
    (the app's own port) and no listener is made.

    - An instrumented app: once the server listens (after the lifespan startup, or at the
      first request, whose ``scope["server"]`` is checked against the process's listening
      sockets), the listener opens unless the server itself listens on ``METRICS_PORT``
      (then ``/metrics`` is simply the app's route). A server on a Unix socket always gets
      the listener.
    - No app instrumented within ``grace`` seconds of ``configure()`` and no ASGI server
      imported (a worker, a script): the listener opens unless ``METRICS_PORT`` is the
      seed's 8000 ("the app's own port") or already taken by this process.
    """

    def __init__(
        self, telemetry: MetricsSource, host: str, port: int, *, grace: float = 30.0,
        settle: float = 5.0,
    ) -> None:
        self._telemetry = telemetry
        self._host = host
        self.port = port
        self._grace = grace
        self._settle = settle
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._app = False
        self._polling = False
        self.decided = False
        self.server: Any = None
        self._before: set[int] | None = None

    def start(self) -> None:
        """Begin waiting for an app (called by ``configure()``)."""
        threading.Thread(target=self._no_app_rule, name="hapa-metrics-port", daemon=True).start()

    def app_instrumented(self) -> None:
        """An app was instrumented: its server's port will decide."""
        self._app = True

    def lifespan_starting(self) -> None:
        """The server runs the app's startup: the sockets it binds after are its own."""
        if self._before is None:
            self._before = listening_ports()

    def server_started(self, server: Any) -> None:
        """The lifespan startup completed (``server`` None) or a first request arrived
        (``server`` = its ``scope["server"]``)."""
        if self.decided:
            return
        if server is not None:
            if len(server) > 1 and server[1] is None:  # Unix socket: no port of ours
                self._decide(True)
                return
            port = server[1] if len(server) > 1 else None
            ports = listening_ports()
            if port in ports:  # a real server on this port (not an in-process client)
                self._decide(self.port not in ports)
            return
        with self._lock:
            if self._polling:
                return
            self._polling = True
        threading.Thread(target=self._poll, name="hapa-metrics-port", daemon=True).start()

    def _poll(self) -> None:
        """After the lifespan startup: wait for the sockets the server binds."""
        before = self._before or set()
        deadline = time.monotonic() + self._settle
        while not self.decided and not self._stop.is_set() and time.monotonic() < deadline:
            ports = listening_ports()
            if ports - before:
                self._decide(self.port not in ports)
                return
            self._stop.wait(0.05)
        ports = listening_ports()
        if ports and not self.decided and any(m in sys.modules for m in _SERVER_MODULES):
            # Sockets bound before the app started (gunicorn, uvicorn --workers): the
            # server's are among those this process held already.
            self._decide(self.port not in ports)
        with self._lock:
            self._polling = False

    def _no_app_rule(self) -> None:
        if self._stop.wait(self._grace) or self._app or self.decided:
            return
        if any(name in sys.modules for name in _SERVER_MODULES):
            return  # a server is starting an app (slow imports): its port will decide
        self._decide(self.port != SEED_APP_PORT and self.port not in listening_ports())

    def _decide(self, open_listener: bool) -> None:
        with self._lock:
            if self.decided or self._stop.is_set():
                return
            self.decided = True
            if open_listener:
                self.server = start_metrics_listener(self._telemetry, self._host, self.port)

    def close(self) -> None:
        """Stop waiting and close the listener, if open."""
        with self._lock:
            self._stop.set()
            server, self.server = self.server, None
        if server is not None:
            server.shutdown()
            server.server_close()
