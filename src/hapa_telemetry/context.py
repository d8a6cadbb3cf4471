"""Request-scoped context: the request id and fields bound with :func:`bind`.

Each request gets one mutable :class:`_Scope`, created by the middleware and found through
a :class:`contextvars.ContextVar`. Code that runs with a *copy* of the request's context —
a plain ``def`` endpoint in FastAPI's thread pool, ``run_in_threadpool``, BackgroundTasks,
a task created inside the request — still points at the same scope, so a field bound there
reaches every later line of the request (``request_end`` included) and the request's span.
A new request starts a new scope, so nothing leaks from one request into another.

Outside a request, :func:`bind` falls back to plain context-variable semantics: the binding
lasts for the current context (thread or task) and is not shared with copies.

Reading is one ``ContextVar.get`` and an attribute load; a bind replaces the scope's
mapping (copy-on-write under a lock), so readers never see a half-updated mapping.
"""

from __future__ import annotations

import os
import random
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

from opentelemetry import trace

from hapa_telemetry import _state

_random_bits = random.Random().getrandbits  # reseeded per process by os.register_at_fork below
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_lock = threading.Lock()

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


class _Scope:
    """The fields bound in one context; ``request`` is the scope of the enclosing request
    (itself for a request's own scope, None outside any request).

    A request's own scope does not hold a reference to itself (``own``): a scope in a
    reference cycle, with the span it holds, would outlive the request until a garbage
    collection, and every such survivor brings the slow full collections sooner.
    """

    __slots__ = ("_own", "_parent", "fields", "span")

    def __init__(
        self,
        fields: Mapping[str, Any],
        request: _Scope | None = None,
        span: trace.Span | None = None,
        own: bool = False,
    ) -> None:
        self.fields = fields
        self._parent = request
        self.span = span
        self._own = own

    @property
    def request(self) -> _Scope | None:
        return self if self._own else self._parent


_NO_SCOPE = _Scope(_EMPTY)
_scope: ContextVar[_Scope] = ContextVar("hapa_scope", default=_NO_SCOPE)


def bound_fields() -> Mapping[str, Any]:
    """The fields bound in the current context (read-only)."""
    return _scope.get().fields


def _merged(current: Mapping[str, Any], fields: Mapping[str, Any]) -> Mapping[str, Any]:
    merged = dict(current)
    merged.update(fields)
    return MappingProxyType(merged)


def bind(**fields: Any) -> None:
    """Add fields to every later log line of the current request (and to its span).

    Inside a request the binding lasts until the request ends, whichever thread or task
    of the request binds it; outside one it lasts for the current context.
    """
    if not fields:
        return
    scope = _scope.get()
    request = scope.request
    if request is None:
        _scope.set(_Scope(_merged(scope.fields, fields)))
    else:
        with _lock:
            request.fields = _merged(request.fields, fields)
            if scope is not request:  # inside a bound() block: visible there too
                scope.fields = _merged(scope.fields, fields)
    _set_span_attributes(fields, request)


def _set_span_attributes(fields: Mapping[str, Any], request: _Scope | None) -> None:
    spans = [trace.get_current_span()]
    if request is not None and request.span is not None and request.span is not spans[0]:
        spans.append(request.span)  # the request's server span, whatever span is current
    for span in spans:
        if span.is_recording():
            for key, value in fields.items():
                if isinstance(value, (str, bool, int, float)):
                    span.set_attribute(_SPAN_KEYS.get(key, f"app.{key}"), value)


def unbind(*keys: str) -> None:
    """Remove bound fields (from the whole request when inside one)."""
    scope = _scope.get()
    request = scope.request
    if request is None:
        if any(k in scope.fields for k in keys):
            _scope.set(_Scope(_without(scope.fields, keys)))
        return
    with _lock:
        request.fields = _without(request.fields, keys)
        if scope is not request:
            scope.fields = _without(scope.fields, keys)


def _without(fields: Mapping[str, Any], keys: tuple[str, ...]) -> Mapping[str, Any]:
    return MappingProxyType({k: v for k, v in fields.items() if k not in keys})


def clear() -> None:
    """Remove every bound field (inside a request, all but its ``request_id``)."""
    scope = _scope.get()
    request = scope.request
    if request is None:
        _scope.set(_NO_SCOPE)
        return
    keep = {k: v for k, v in request.fields.items() if k == "request_id"}
    with _lock:
        request.fields = MappingProxyType(keep)
        if scope is not request:
            scope.fields = MappingProxyType(dict(keep))


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Bind fields for the duration of a ``with`` block, then restore the previous ones.

    A :func:`bind` inside the block still reaches the rest of the request.
    """
    scope = _scope.get()
    token = _scope.set(_Scope(_merged(scope.fields, fields), scope.request, None))
    try:
        yield
    finally:
        _scope.reset(token)


def start_request(request_id: str, span: trace.Span | None = None) -> Token[_Scope]:
    """Begin a request's scope with only its request id bound; returns the reset token.

    ``span`` is the request's server span: :func:`bind` sets its attributes there.
    """
    return _scope.set(_Scope(MappingProxyType({"request_id": request_id}), None, span, own=True))


def end_request(token: Token[_Scope]) -> None:
    """Restore the context that was current before :func:`start_request`."""
    try:
        _scope.reset(token)
    except ValueError:  # token from another context (should not happen); fall back
        _scope.set(_NO_SCOPE)


def sane_request_id(candidate: str | None) -> str:
    """Keep an incoming request id when it is short and plain, else make a new one."""
    if candidate and _REQUEST_ID_OK.match(candidate):
        return candidate
    # 128 random bits as 32 hex digits; not a secret, so no os.urandom syscall per request
    return f"{_random_bits(128):032x}"


# Bound keys that have an OpenTelemetry semantic-convention name on the span.
_SPAN_KEYS = {"user_id": "enduser.id", "request_id": "http.request.id"}


def _reseed_after_fork() -> None:
    global _random_bits
    _random_bits = random.Random().getrandbits


os.register_at_fork(after_in_child=_reseed_after_fork)

# The fields bound in the calling context are its state; the RNG needs no reset.
_state.register(__name__, clear)
