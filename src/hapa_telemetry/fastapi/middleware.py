"""The request middleware (plain ASGI): request id, context, the six metrics, request
start/end and error lines — recorded in ``finally`` for every request, exception or not.

It runs inside whichever instrumentation owns the server span (FastAPI's native
telemetry or contrib's OpenTelemetryMiddleware), so every line it writes carries that
span's trace context. The route template comes from the route the framework resolved
(``scope["route"]``), never from a second match or the raw path.
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
from hapa_telemetry import context, names, runtime
from hapa_telemetry.instruments import UNMATCHED_ENDPOINT, fold_method
from hapa_telemetry.logs.pipeline import FIELDS_ATTR

_SCOPE_MARK = "hapa_telemetry.request"
_logger = logging.getLogger("api_monitor")
_CLIENT_CLOSED = 499  # nginx's convention for a request the client abandoned


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


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            try:
                return str(value.decode("latin-1"))
            except Exception:
                return None
    return None


class TelemetryMiddleware:
    """ASGI middleware recording each HTTP request's telemetry.

    It also answers the paths in ``endpoints`` (``/metrics``, ``/health``) unless the
    application has routes of its own for them (checked once, at the first request, so
    routes added after instrumentation win). Those paths are not counted.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        endpoints: Mapping[str, ASGIApp] | None = None,
        owner: Any = None,
        tracing: bool = True,
    ) -> None:
        self.app = app
        self.tracing = tracing
        self.endpoints: dict[str, ASGIApp] = dict(endpoints or {})
        self.exclude_paths = frozenset(self.endpoints)
        self._owner = owner
        self._checked = owner is None

    def _drop_endpoints_the_app_serves(self) -> None:
        self._checked = True
        router = getattr(self._owner, "router", None)
        own = {getattr(r, "path", None) for r in getattr(router, "routes", ())}
        self.endpoints = {p: e for p, e in self.endpoints.items() if p not in own}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _SCOPE_MARK in scope:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self.exclude_paths:
            if not self._checked:
                self._drop_endpoints_the_app_serves()
            served = self.endpoints.get(path)
            await (served or self.app)(scope, receive, send)
            return
        scope[_SCOPE_MARK] = True
        t = runtime.get()
        method = fold_method(scope["method"])
        server_span = server_span_mod.start(scope, method, t.tracer) if self.tracing else None
        request_id = context.sane_request_id(_header(scope, b"x-request-id"))
        token = context.start_request(request_id)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("http.request.id", request_id)
        client = scope.get("client")
        client_ip = client[0] if client else None
        started = time.perf_counter()
        created = time.time()
        state: dict[str, Any] = {"status": None, "start_logged": False}
        instruments = t.instruments
        instruments.request_started()
        rid_header = (b"x-request-id", request_id.encode("latin-1"))

        def log_start() -> None:
            state["start_logged"] = True
            endpoint = route_template(scope)
            _emit(
                logging.INFO,
                f"API request start: {method} {endpoint}",
                created,
                {
                    "method": method,
                    "endpoint": endpoint,
                    "client_ip": client_ip,
                    "event_type": names.EVENT_REQUEST_START,
                },
            )

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                if not state["start_logged"]:
                    log_start()
                state["status"] = message["status"]
                message["headers"] = [*message.get("headers", ()), rid_header]
            await send(message)

        async def receive_wrapper() -> Message:
            if not state["start_logged"] and "route" in scope:
                log_start()
            return await receive()

        error: BaseException | None = None
        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except BaseException as exc:
            error = exc
            raise
        finally:
            duration = time.perf_counter() - started
            endpoint = route_template(scope)
            status = state["status"]
            if status is None:  # no response: an exception, or the client went away
                status = (
                    500
                    if error is not None and not isinstance(error, asyncio.CancelledError)
                    else _CLIENT_CLOSED
                )
            try:
                if not state["start_logged"]:
                    log_start()
                if error is not None and isinstance(error, Exception):
                    if not getattr(error, "__hapa_logged__", False):  # e.g. by inference()
                        _log_exception(error, method, endpoint)
                    instruments.error(type(error).__name__)
                _emit(
                    logging.INFO,
                    f"API request end: {method} {endpoint} - {status} ({duration:.4f}s)",
                    None,
                    {
                        "method": method,
                        "endpoint": endpoint,
                        "status_code": status,
                        "duration": round(duration, 6),
                        "client_ip": client_ip,
                        "event_type": names.EVENT_REQUEST_END,
                    },
                )
                instruments.request_finished(method, endpoint, status, duration)
                t.stats.record(duration, status >= 500)
            except Exception:  # telemetry must never break the request
                t.pipeline.errors += 1
            finally:
                context.end_request(token)
                if server_span is not None:
                    try:
                        server_span_mod.end(server_span, method, endpoint, status, error)
                    except Exception:
                        t.pipeline.errors += 1


def _emit(level: int, message: str, created: float | None, fields: dict[str, Any]) -> None:
    """Write one of the middleware's own lines.

    When the package's handler is the only one on the way (the usual case), the event is
    built directly, skipping LogRecord creation and handler dispatch; otherwise a real
    LogRecord goes through ``logging`` so every other handler sees it too.
    """
    if not _logger.isEnabledFor(level):
        return
    t = runtime.current()
    root_handlers = logging.root.handlers
    if (
        t is not None
        and len(root_handlers) == 1
        and root_handlers[0] is t.handler
        and not _logger.handlers
        and level >= t.handler.level
    ):
        try:
            when = time.time() if created is None else created
            bound = context.bound_fields()
            merged = {**bound, **fields} if bound else fields
            pipeline = t.pipeline
            event = pipeline.builder.build(
                when, logging.getLevelName(level), _logger.name, message,
                "middleware", "dispatch", 0, merged,
            )
            pipeline.write(level, _logger.name, when, event)
        except Exception:
            t.pipeline.errors += 1
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
