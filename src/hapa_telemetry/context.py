"""Request-scoped context: the request id and fields bound with :func:`bind`.

Backed by one :class:`contextvars.ContextVar` holding an immutable mapping, so a value
bound inside a request never leaks into the next request (each ASGI request runs in its
own context copy) and reading it on the hot path is one ``ContextVar.get``.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import Any

from opentelemetry import trace

from hapa_telemetry import _state

_random_bits = random.Random().getrandbits  # reseeded per process by os.register_at_fork below
_EMPTY: Mapping[str, Any] = MappingProxyType({})
_bound: ContextVar[Mapping[str, Any]] = ContextVar("hapa_bound", default=_EMPTY)

_REQUEST_ID_OK = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def bound_fields() -> Mapping[str, Any]:
    """The fields bound in the current context (read-only)."""
    return _bound.get()


def bind(**fields: Any) -> None:
    """Add fields to every later log line of the current request (and to its span).

    Inside a request the binding lasts until the request ends; outside one it lasts for
    the current context (thread or task).
    """
    if not fields:
        return
    _set(fields)
    span = trace.get_current_span()
    if span.is_recording():
        for key, value in fields.items():
            if isinstance(value, (str, bool, int, float)):
                span.set_attribute(_SPAN_KEYS.get(key, f"app.{key}"), value)


def unbind(*keys: str) -> None:
    """Remove bound fields from the current context."""
    current = _bound.get()
    if any(k in current for k in keys):
        _bound.set(MappingProxyType({k: v for k, v in current.items() if k not in keys}))


def clear() -> None:
    """Remove every bound field from the current context."""
    _bound.set(_EMPTY)


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Bind fields for the duration of a ``with`` block, then restore the previous ones."""
    token = _set(fields)
    try:
        yield
    finally:
        _bound.reset(token)


def _set(fields: Mapping[str, Any]) -> Token[Mapping[str, Any]]:
    current = _bound.get()
    merged = dict(current)
    merged.update(fields)
    return _bound.set(MappingProxyType(merged))


def start_request(request_id: str) -> Token[Mapping[str, Any]]:
    """Begin a request's context with only its request id bound; returns the reset token."""
    return _bound.set(MappingProxyType({"request_id": request_id}))


def end_request(token: Token[Mapping[str, Any]]) -> None:
    """Restore the context that was current before :func:`start_request`."""
    try:
        _bound.reset(token)
    except ValueError:  # token from another context (should not happen); fall back
        _bound.set(_EMPTY)


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
