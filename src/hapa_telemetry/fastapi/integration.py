"""Wire an app: one server-span source, our middleware, /metrics and /health.

Which instrumentation produces the server span:
- FastAPI with native telemetry (``fastapi.telemetry``, 0.16x+): the native one, with its
  own HTTP metrics, exception logs and operation spans switched off (the package records
  the seed's metrics and log lines itself; operation spans are opt-in, they cost ~80 µs
  each) and our TracerProvider passed in.
- Older FastAPI: contrib's ``FastAPIInstrumentor.instrument_app`` with a no-op meter
  provider (its metrics would duplicate ours).
- When contrib's OpenTelemetryMiddleware is already in the stack (``opentelemetry-
  instrument`` loaded the contrib instrumentor), FastAPI's native telemetry steps aside
  by itself and contrib's span is the one; nothing is added twice.
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hapa_telemetry import _state, runtime
from hapa_telemetry.exposition import render_metrics
from hapa_telemetry.fastapi.headers import ExcludedUrls, HeaderCapture
from hapa_telemetry.fastapi.middleware import TelemetryMiddleware
from hapa_telemetry.monitors import PerformanceMonitor

_MARK = "_hapa_telemetry_instrumented"


def has_native_telemetry(app: Any) -> bool:
    """True when this FastAPI has built-in OpenTelemetry support."""
    return isinstance(getattr(app, "_telemetry", None), dict) and hasattr(
        app, "_native_telemetry"
    )


def _contrib_instrumented(app: Any) -> bool:
    return bool(getattr(app, "_is_instrumented_by_opentelemetry", False))


def instrument_fastapi(app: Any, **overrides: Any) -> Any:
    """Instrument ``app`` once (later calls do nothing); configures telemetry if needed."""
    if getattr(app.state, _MARK, False):
        return app
    t = runtime.get() if not overrides else runtime.configure(**overrides)
    s = t.settings
    # uvicorn configures its loggers after a zero-code configure(): route them again.
    runtime.route_framework_loggers()
    # The server span: ours (cheapest), unless contrib's OpenTelemetryMiddleware is in
    # the stack (another distro instrumented the class) or FastAPI's native operation
    # spans are wanted — then that instrumentation makes it and ours steps aside.
    excluded = ExcludedUrls(s.excluded_urls) if s.excluded_urls else None
    capture = None
    if s.capture_request_headers or s.capture_response_headers:
        capture = HeaderCapture(
            s.capture_request_headers,
            s.capture_response_headers,
            s.sanitize_header_fields,
            t.pipeline.builder.redactor,
        )
    contrib = _contrib_instrumented(app)
    native_spans = has_native_telemetry(app) and s.operation_spans and not contrib
    if has_native_telemetry(app):
        app._telemetry.update(
            tracing=native_spans,
            metrics=False,
            logs=False,
            operation_spans=s.operation_spans,
            # The global provider is looked up per request (it is replaced after a fork);
            # a provider that is not global is passed explicitly.
            tracer_provider=None if t.global_providers else t.providers.tracer_provider,
            exclude=_exclude(frozenset({s.metrics_path, s.health_path}), excluded),
        )
    endpoints: dict[str, Any] = {s.health_path: Route(s.health_path, health_endpoint)}
    if s.enable_metrics:
        endpoints[s.metrics_path] = Route(s.metrics_path, metrics_endpoint)
    app.add_middleware(
        TelemetryMiddleware,
        endpoints=endpoints,
        owner=app,
        tracing=not (native_spans or contrib),
        excluded=excluded,
        capture=capture,
    )
    if t.metrics_listener is not None:
        t.metrics_listener.app_instrumented()
    setattr(app.state, _MARK, True)
    return app


def _exclude(paths: frozenset[str], excluded: ExcludedUrls | None) -> Any:
    def exclude(scope: Any) -> bool:
        if scope.get("path") in paths:
            return True
        return excluded is not None and excluded.matches(scope)

    return exclude


async def metrics_endpoint(request: Request) -> Response:
    """``/metrics``: Prometheus text (OpenMetrics when asked); bearer-token protected
    when ``METRICS_TOKEN`` is set."""
    t = runtime.get()
    token = t.settings.metrics_token
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return Response("unauthorized\n", status_code=401,
                            headers={"WWW-Authenticate": "Bearer"})
    body, content_type = render_metrics(t, request.headers.get("accept"))
    return Response(body, media_type=content_type)


_monitor: PerformanceMonitor | None = None


def _reset() -> None:
    global _monitor
    _monitor = None


_state.register(__name__, _reset)


async def health_endpoint(request: Request) -> Response:
    """``/health``: the seed's health document; 200 healthy, 503 unhealthy."""
    global _monitor
    if _monitor is None:
        _monitor = PerformanceMonitor()
    status = _monitor.get_health_status()
    return JSONResponse(status, status_code=200 if status["status"] == "healthy" else 503)


