"""The request middleware (plain ASGI): request id, context, the six metrics, request
start/end and error lines — recorded in ``finally`` for every request, exception or not.

It runs inside whichever instrumentation owns the server span (its own, FastAPI's native
telemetry or contrib's OpenTelemetryMiddleware), so every line it writes carries that
span's trace context. The route template comes from the route the framework resolved
(``scope["route"]``), never from a second match or the raw path.

Telemetry never breaks the request: every step the middleware takes — span start and
propagation, request id, counters, lines, header capture, response-header injection — is
guarded; a failure is reported once (stderr, with traceback, rate-limited), counted for
``/health`` and the request goes on untouched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import hapa_telemetry.fastapi.server_span as server_span_mod
from hapa_telemetry import context, gcfreeze, names, runtime
from hapa_telemetry.fastapi.headers import ExcludedUrls, HeaderCapture
from hapa_telemetry.instruments import UNMATCHED_ENDPOINT, fold_method
from hapa_telemetry.logs.pipeline import (
    FIELDS_ATTR,
    request_end_line,
    request_start_line,
    trace_fields_of,
)

_SCOPE_MARK = "hapa_telemetry.request"
_logger = logging.getLogger("api_monitor")
_CLIENT_CLOSED = 499  # nginx's convention for a request the client abandoned
_INFO = logging.INFO


def route_template(scope: Scope) -> str:
    """The matched route's path template (with mount prefixes), or ``<unmatched>``."""
    native = scope.get("fastapi.telemetry")
    native_route = getattr(native, "route", None)
    if isinstance(native_route, str):
        return native_route
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return UNMATCHED_ENDPOINT


def _report(where: str, error: BaseException) -> None:
    t = runtime.current()
    if t is not None:
        t.internal_errors.report(where, error)


class TelemetryMiddleware:
    """ASGI middleware recording each HTTP request's telemetry.

    It also answers the paths in ``endpoints`` (``/metrics``, ``/health``) unless the
    application has routes of its own for them (checked once, at the first request, so
    routes added after instrumentation win). Those paths, and the URLs matching
    ``excluded`` (contrib's ``OTEL_PYTHON_*_EXCLUDED_URLS``), are not counted, logged or
    traced.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        endpoints: Mapping[str, ASGIApp] | None = None,
        owner: Any = None,
        tracing: bool = True,
        excluded: ExcludedUrls | None = None,
        capture: HeaderCapture | None = None,
    ) -> None:
        self.app = app
        self.tracing = tracing
        self.endpoints: dict[str, ASGIApp] = dict(endpoints or {})
        self.exclude_paths = frozenset(self.endpoints)
        self.excluded = excluded
        self.capture = capture
        self._owner = owner
        self._checked = owner is None
        self._server_seen = False

    def _drop_endpoints_the_app_serves(self) -> None:
        self._checked = True
        router = getattr(self._owner, "router", None)
        own = {getattr(r, "path", None) for r in getattr(router, "routes", ())}
        self.endpoints = {p: e for p, e in self.endpoints.items() if p not in own}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" or _SCOPE_MARK in scope:
            if kind == "lifespan" and not self._server_seen:
                listener = getattr(runtime.current(), "metrics_listener", None)
                if listener is not None:
                    try:
                        listener.lifespan_starting()
                    except Exception as exc:
                        _report("metrics listener", exc)
                await self.app(scope, receive, self._lifespan_send(send))
                return
            await self.app(scope, receive, send)
            return
        if not self._server_seen:
            self._server_up(scope.get("server"))
        path = scope["path"]
        if path in self.exclude_paths:
            if not self._checked:
                self._drop_endpoints_the_app_serves()
            served = self.endpoints.get(path)
            await (served or self.app)(scope, receive, send)
            return
        if self.excluded is not None and self._is_excluded(scope):
            await self.app(scope, receive, send)
            return
        scope[_SCOPE_MARK] = True
        try:
            request = _Request(self, scope, receive, send)
        except Exception as exc:  # nothing of ours may stop the request
            _report("middleware (request start)", exc)
            await self.app(scope, receive, send)
            return
        error: BaseException | None = None
        try:
            await self.app(scope, request.receive, request.send)
        except BaseException as exc:
            error = exc
            raise
        finally:
            request.finish(error)

    def _is_excluded(self, scope: Scope) -> bool:
        assert self.excluded is not None
        try:
            return self.excluded.matches(scope)
        except Exception as exc:
            _report("middleware (excluded URLs)", exc)
            return False

    # -- the real listening port, for METRICS_PORT ---------------------------------------
    def _lifespan_send(self, send: Send) -> Send:
        async def lifespan_send(message: Message) -> None:
            await send(message)
            if message.get("type") == "lifespan.startup.complete":
                self._server_up(None)

        return lifespan_send

    def _server_up(self, server: Any) -> None:
        """The server started (lifespan) or served a first request: let the metrics
        listener decide from the port the server really listens on."""
        self._server_seen = True
        t = runtime.current()
        if t is not None and t.settings.gc_freeze:
            try:
                gcfreeze.freeze_startup_heap()
            except Exception as exc:
                _report("gc freeze", exc)
        listener = getattr(t, "metrics_listener", None)
        if listener is not None:
            try:
                listener.server_started(server)
            except Exception as exc:
                _report("metrics listener", exc)


class _Request:
    """One request's telemetry: everything before the app runs, the send/receive
    wrappers, and :meth:`finish` after it returned or raised."""

    __slots__ = (
        "_receive",
        "_send",
        "capture",
        "client_ip",
        "counted",
        "created",
        "endpoint",
        "lines",
        "method",
        "rid_header",
        "scope",
        "span",
        "start_logged",
        "started",
        "status",
        "t",
        "token",
        "trace_fields",
    )

    def __init__(self, mw: TelemetryMiddleware, scope: Scope, receive: Receive, send: Send):
        self.t = t = runtime.get()
        self.scope = scope
        self._send = send
        self._receive = receive
        self.status: int | None = None
        self.start_logged = False
        self.counted = False
        self.span: tuple[trace.Span, object] | None = None
        self.token: Any = None
        self.rid_header: tuple[bytes, bytes] | None = None
        self.capture = mw.capture
        self.endpoint: str | None = None
        self.trace_fields: tuple[str, str, str] | None = None
        self.started = time.perf_counter()
        self.created = time.time()
        self.method = method = fold_method(scope["method"])
        client = scope.get("client")
        self.client_ip = client[0] if client else None
        # Lines nobody reads are not built: level filtered out, or no sink at all.
        self.lines = _logger.isEnabledFor(_INFO) and t.pipeline.accepts(_INFO)
        request_id_header: str | None = None
        carrier: dict[str, str] | None = None
        try:
            for key, value in scope.get("headers", ()):
                if key == b"x-request-id":
                    request_id_header = value.decode("latin-1")
                elif key in server_span_mod.PROPAGATION_HEADERS:
                    if carrier is None:
                        carrier = {}
                    carrier[key.decode("latin-1")] = value.decode("latin-1")
        except Exception as exc:
            _report("middleware (request headers)", exc)
        request_id = context.sane_request_id(request_id_header)
        if mw.tracing:
            try:
                self.span = server_span_mod.start(
                    scope, method, t.tracer, carrier, request_id, t.internal_errors
                )
            except Exception as exc:
                _report("server span (start)", exc)
        span = self.span[0] if self.span is not None else trace.get_current_span()
        try:
            if self.lines:  # the request's lines carry its server span's ids
                self.trace_fields = trace_fields_of(span)
            if self.span is None and span.is_recording():  # another instrumentation's span
                span.set_attribute("http.request.id", request_id)
            if self.capture is not None and self.capture.requests and span.is_recording():
                span.set_attributes(self.capture.request_attributes(scope.get("headers", ())))
        except Exception as exc:
            _report("middleware (span attributes)", exc)
        try:
            self.token = context.start_request(request_id, span)
            self.rid_header = (b"x-request-id", request_id.encode("latin-1"))
        except Exception as exc:
            _report("middleware (request context)", exc)
        try:
            t.instruments.request_started()
            self.counted = True
        except Exception as exc:
            _report("instruments (request started)", exc)

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            try:
                if not self.start_logged:
                    self.log_start()
                self.status = message["status"]
                if self.rid_header is not None:
                    message["headers"] = [*message.get("headers", ()), self.rid_header]
                if self.capture is not None and self.capture.responses:
                    self._capture_response(message)
            except Exception as exc:
                _report("middleware (response start)", exc)
        await self._send(message)

    async def receive(self) -> Message:
        if not self.start_logged and "route" in self.scope:
            try:
                self.log_start()
            except Exception as exc:
                _report("middleware (request start line)", exc)
        return await self._receive()

    def _capture_response(self, message: Message) -> None:
        assert self.capture is not None
        span = self.span[0] if self.span is not None else trace.get_current_span()
        if span.is_recording():
            span.set_attributes(self.capture.response_attributes(message.get("headers", ())))

    def log_start(self) -> None:
        self.start_logged = True
        self.endpoint = endpoint = route_template(self.scope)
        if self.lines:
            message, fields = request_start_line(self.method, endpoint, self.client_ip)
            _emit(self.t, _INFO, message, self.created, fields, self.trace_fields)

    def finish(self, error: BaseException | None) -> None:
        """Lines, counts and the span's end; never raises."""
        t = self.t
        try:
            duration = time.perf_counter() - self.started
            endpoint = self.endpoint
            if endpoint is None or endpoint == UNMATCHED_ENDPOINT:
                endpoint = route_template(self.scope)
            status = self.status
            if status is None:  # no response: an exception, or the client went away
                status = (
                    500
                    if error is not None and not isinstance(error, asyncio.CancelledError)
                    else _CLIENT_CLOSED
                )
        except Exception as exc:
            _report("middleware (request end)", exc)
            duration, endpoint, status = 0.0, UNMATCHED_ENDPOINT, 500
        method = self.method
        try:
            if not self.start_logged:
                self.log_start()
            if error is not None and isinstance(error, Exception):
                if not getattr(error, "__hapa_logged__", False):  # e.g. by inference()
                    _log_exception(error, method, endpoint)
                t.instruments.error(type(error).__name__)
            if self.lines:
                message, fields = request_end_line(
                    method, endpoint, status, duration, self.client_ip
                )
                _emit(t, _INFO, message, None, fields, self.trace_fields)
        except Exception as exc:
            _report("middleware (request lines)", exc)
        try:
            t.instruments.request_finished(
                method, endpoint, status, duration, started=self.counted,
                span=self.span[0] if self.span is not None else None,
            )
            t.stats.record(duration, status >= 500)
        except Exception as exc:
            _report("instruments (request finished)", exc)
        if self.token is not None:
            context.end_request(self.token)
        if self.span is not None:
            try:
                server_span_mod.end(self.span, method, endpoint, status, error)
            except Exception as exc:
                _report("server span (end)", exc)


def _emit(
    t: runtime.Telemetry, level: int, message: str, created: float | None,
    fields: dict[str, Any], trace_fields: tuple[str, str, str] | None,
) -> None:
    """Write one of the middleware's own lines.

    When the package's handler is the only one on the way (the usual case), the event is
    built directly, skipping LogRecord creation and handler dispatch; otherwise a real
    LogRecord goes through ``logging`` so every other handler sees it too.
    """
    root_handlers = logging.root.handlers
    if (
        len(root_handlers) == 1
        and root_handlers[0] is t.handler
        and not _logger.handlers
        and level >= t.handler.level
    ):
        when = time.time() if created is None else created
        pipeline = t.pipeline
        try:
            event = pipeline.builder.build_trusted(
                when, logging.getLevelName(level), _logger.name, message,
                context.bound_fields(), fields, trace_fields,
            )
            pipeline.write(level, _logger.name, when, event)
        except Exception as exc:
            pipeline.failed("log pipeline (request line)", exc)
        return
    record = _logger.makeRecord(
        _logger.name, level, __file__, 0, message, (), None, "dispatch", {FIELDS_ATTR: fields}
    )
    record.module = "middleware"
    if created is not None:
        record.created = created
        record.msecs = (created - int(created)) * 1000
    _logger.handle(record)


def _log_exception(error: Exception, method: str, endpoint: str) -> None:
    fields = {
        "method": method,
        "endpoint": endpoint,
        "error_type": type(error).__name__,
        "error_message": str(error),
        "event_type": names.EVENT_ERROR,
    }
    record = _logger.makeRecord(
        _logger.name,
        logging.ERROR,
        __file__,
        0,
        f"Unhandled exception: {type(error).__name__}: {error}",
        (),
        (type(error), error, error.__traceback__),
        "dispatch",
        {FIELDS_ATTR: fields},
    )
    record.module = "middleware"
    _logger.handle(record)
    try:
        error.__hapa_logged__ = True  # type: ignore[attr-defined]
    except Exception:
        pass
