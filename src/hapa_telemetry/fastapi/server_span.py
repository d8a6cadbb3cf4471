"""The package's own HTTP server span: what FastAPI's native telemetry or contrib's
middleware would record, at about half the cost (no per-request stack walk, attribute
dicts or operation-span bookkeeping).

Used unless another instrumentation already made a server span for the request (contrib's
OpenTelemetryMiddleware, or FastAPI's native telemetry when operation spans are wanted).
Attributes follow the HTTP semantic conventions (stable).
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import Scope

from hapa_telemetry.instruments import OTHER_METHOD, UNMATCHED_ENDPOINT

_PROPAGATION_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})


def start(scope: Scope, method: str, tracer: trace.Tracer) -> tuple[trace.Span, object] | None:
    """Open the server span (continuing an incoming W3C trace) and make it current.

    Returns None when a span is already current (another instrumentation made it).
    """
    if trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    for key, value in scope.get("headers", ()):
        if key in _PROPAGATION_HEADERS:
            carrier[key.decode("latin-1")] = value.decode("latin-1")
    parent = propagate.extract(carrier) if carrier else None
    attributes: dict[str, Any] = {
        "http.request.method": method,
        "url.path": scope.get("path", ""),
        "url.scheme": scope.get("scheme", "http"),
    }
    if method == OTHER_METHOD:
        attributes["http.request.method_original"] = scope.get("method", "")
    if scope.get("http_version"):
        attributes["network.protocol.version"] = scope["http_version"]
    server = scope.get("server")
    if server:
        attributes["server.address"] = server[0]
        if server[1] is not None:
            attributes["server.port"] = server[1]
    span = tracer.start_span(
        "HTTP" if method == OTHER_METHOD else method,
        context=parent,
        kind=SpanKind.SERVER,
        attributes=attributes,
    )
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    return span, token


def end(
    started: tuple[trace.Span, object],
    method: str,
    endpoint: str,
    status: int,
    error: BaseException | None,
) -> None:
    """Name the span after the route, record status and error, end it, restore context."""
    span, token = started
    try:
        if span.is_recording():
            if endpoint != UNMATCHED_ENDPOINT:
                span.set_attribute("http.route", endpoint)
                span.update_name(f"{'HTTP' if method == OTHER_METHOD else method} {endpoint}")
            span.set_attribute("http.response.status_code", status)
            if error is not None and isinstance(error, Exception):
                span.record_exception(error)
                span.set_attribute("error.type", type(error).__qualname__)
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            elif status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
        span.end()
    finally:
        otel_context.detach(token)  # type: ignore[arg-type]
