"""The package's own HTTP server span: what FastAPI's native telemetry or contrib's
middleware would record, at about half the cost (no per-request stack walk, attribute
dicts or operation-span bookkeeping).

Used unless another instrumentation already made a server span for the request (contrib's
OpenTelemetryMiddleware, or FastAPI's native telemetry when operation spans are wanted).
Attributes follow the HTTP semantic conventions (stable). The attributes that depend only
on the connection (scheme, protocol version, server address and port) are built once per
distinct connection shape and reused.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from starlette.types import Scope

from hapa_telemetry.instruments import OTHER_METHOD, UNMATCHED_ENDPOINT
from hapa_telemetry.internal_errors import InternalErrors

PROPAGATION_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})
_CACHE_MAX = 256
_connection_attrs: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
_names: dict[tuple[str, str], str] = {}


def _base_attributes(scope: Scope) -> dict[str, Any]:
    server = scope.get("server")
    if server is not None and not isinstance(server, tuple):
        server = tuple(server)  # some servers and test clients pass a list
    key = (scope.get("scheme", "http"), scope.get("http_version"), server)
    attrs = _connection_attrs.get(key)
    if attrs is None:
        attrs = {"url.scheme": key[0]}
        if key[1]:
            attrs["network.protocol.version"] = key[1]
        if server:
            attrs["server.address"] = server[0]
            if server[1] is not None:
                attrs["server.port"] = server[1]
        if len(_connection_attrs) < _CACHE_MAX:
            _connection_attrs[key] = attrs
    return attrs


def start(
    scope: Scope,
    method: str,
    tracer: trace.Tracer,
    carrier: dict[str, str] | None = None,
    request_id: str | None = None,
    errors: InternalErrors | None = None,
) -> tuple[trace.Span, object] | None:
    """Open the server span (continuing an incoming W3C trace) and make it current.

    ``carrier`` holds the request's propagation headers. A propagator that fails is
    reported to ``errors`` and the span starts a new trace. Returns None when a span is
    already current (another instrumentation made it).
    """
    if trace.get_current_span().get_span_context().is_valid:
        return None
    parent = None
    if carrier:
        try:
            parent = propagate.extract(carrier)
        except Exception as exc:
            if errors is not None:
                errors.report("server span (propagator extract)", exc)
    attributes = {
        "http.request.method": method,
        "url.path": scope.get("path", ""),
        **_base_attributes(scope),
    }
    if request_id is not None:
        attributes["http.request.id"] = request_id
    if method == OTHER_METHOD:
        attributes["http.request.method_original"] = scope.get("method", "")
    name = "HTTP" if method == OTHER_METHOD else method
    if _unobserved(tracer):
        span = _context_only_span(tracer, name, parent, attributes)
    else:
        span = tracer.start_span(
            name,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attributes,  # at creation: a sampler may read them
        )
    token = otel_context.attach(trace.set_span_in_context(span, parent))
    return span, token


def _unobserved(tracer: trace.Tracer) -> bool:
    """True when no span processor would see the server span: an SDK tracer whose
    provider has none (the embedded default, no OTLP traces endpoint). Read per request,
    so a processor added later (another exporter) gets recorded spans from then on;
    anything unexpected counts as observed."""
    processors = getattr(getattr(tracer, "span_processor", None), "_span_processors", None)
    if processors != ():
        return False
    enabled = getattr(tracer, "_is_enabled", None)  # a tracer the configurator disabled
    return enabled is not None and bool(enabled())


def _context_only_span(
    tracer: Any, name: str, parent: otel_context.Context | None, attributes: dict[str, Any]
) -> trace.Span:
    """The server span's context without a recorded span: the same ids and sampling
    decision the SDK would make (its sampler and id generator), so the request's lines,
    exemplars and outgoing ``traceparent`` carry them, without building attributes that
    nothing would read."""
    parent_ctx = trace.get_current_span(parent).get_span_context()
    ids = tracer.id_generator
    trace_id = parent_ctx.trace_id if parent_ctx.is_valid else ids.generate_trace_id()
    result = tracer.sampler.should_sample(
        parent, trace_id, name, SpanKind.SERVER, attributes, None
    )
    flags = TraceFlags.SAMPLED if result.decision.is_sampled() else TraceFlags.DEFAULT
    random_id = (
        parent_ctx.trace_flags.random_trace_id if parent_ctx.is_valid
        else ids.is_trace_id_random()
    )
    if random_id:  # W3C Trace Context level 2, as the SDK sets it
        flags |= TraceFlags.RANDOM_TRACE_ID
    return trace.NonRecordingSpan(
        SpanContext(
            trace_id, ids.generate_span_id(), is_remote=False,
            trace_flags=TraceFlags(flags), trace_state=result.trace_state,
        )
    )


def _span_name(method: str, endpoint: str) -> str:
    key = (method, endpoint)
    name = _names.get(key)
    if name is None:
        name = f"{'HTTP' if method == OTHER_METHOD else method} {endpoint}"
        if len(_names) < _CACHE_MAX * 16:
            _names[key] = name
    return name


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
                span.update_name(_span_name(method, endpoint))
                span.set_attributes(
                    {"http.route": endpoint, "http.response.status_code": status}
                )
            else:
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
