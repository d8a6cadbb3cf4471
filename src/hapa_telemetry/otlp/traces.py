"""Spans -> ``ExportTraceServiceRequest`` bytes (opentelemetry-proto trace/v1)."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from hapa_telemetry.otlp._wire import (
    attributes,
    field_bytes,
    group,
    pack_fixed32,
    request,
    text,
    varint,
)

_MASK64 = (1 << 64) - 1
# trace_id (1) and span_id (2) in one call: tag, len, 16 + 8 big-endian bytes
_IDS = struct.Struct(">2sQQ2sQ").pack
_TIMES = struct.Struct("<BQBQ").pack  # start (7) and end (8), fixed64
_PARENT = struct.Struct(">2sQ").pack
_EVENT_TIME = struct.Struct("<BQ").pack
# SDK SpanKind value -> proto Span.SpanKind (INTERNAL=1 ... CONSUMER=5)
_KIND = [b"\x30" + bytes((v + 1,)) for v in range(5)]
# Span.flags (16, fixed32): bit 8 "has is_remote", bit 9 "is_remote", low byte trace flags
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_FLAGS_TAG = b"\x85\x01"


def _trace_state(tag: bytes, state: Any) -> bytes:
    if not state:
        return b""
    return text(tag, ",".join(f"{k}={v}" for k, v in state.items()))


def _flags(ctx: Any, parent: Any) -> int:
    flags = _HAS_IS_REMOTE | (int(ctx.trace_flags) & 0xFF)
    if parent is not None and parent.is_remote:
        flags |= _IS_REMOTE
    return flags


def _events(events: Sequence[Any]) -> bytes:
    out = []
    for event in events:
        body = _EVENT_TIME(0x09, event.timestamp or 0) + text(b"\x12", event.name)
        body += attributes(b"\x1a", event.attributes)
        dropped = event.dropped_attributes
        if dropped:
            body += b"\x20" + varint(dropped)
        out.append(field_bytes(b"\x5a", body))
    return b"".join(out)


def _links(links: Sequence[Any]) -> bytes:
    out = []
    for link in links:
        ctx = link.context
        tid = ctx.trace_id
        body = _IDS(b"\x0a\x10", tid >> 64, tid & _MASK64, b"\x12\x08", ctx.span_id)
        body += _trace_state(b"\x1a", ctx.trace_state)
        body += attributes(b"\x22", link.attributes)
        dropped = link.dropped_attributes
        if dropped:
            body += b"\x28" + varint(dropped)
        flags = _HAS_IS_REMOTE | (int(ctx.trace_flags) & 0xFF)
        if ctx.is_remote:
            flags |= _IS_REMOTE
        body += b"\x35" + pack_fixed32(flags)
        out.append(field_bytes(b"\x6a", body))
    return b"".join(out)


# Status without a description, by code (UNSET 0, OK 1, ERROR 2): most spans
_BARE_STATUS = [b"\x7a\x00", b"\x7a\x02\x18\x01", b"\x7a\x02\x18\x02"]


def _status(status: Any) -> bytes:
    if status is None:
        return b""
    code: int = status.status_code.value
    description: str | None = status.description
    if not description and 0 <= code < 3:
        return _BARE_STATUS[code]
    body = text(b"\x12", description) if description else b""
    if code:
        body += b"\x18" + varint(code)
    return field_bytes(b"\x7a", body)


def encode_span(span: Any) -> bytes:
    """One ``Span`` message body."""
    try:  # the fields behind ReadableSpan's properties: half the cost of the properties
        ctx = span._context
        parent = span._parent
        name = span._name
        kind = span._kind
        start, end = span._start_time, span._end_time
        attrs, events, links = span._attributes, span._events, span._links
        status = span._status
    except AttributeError:
        ctx, parent, name, kind = span.context, span.parent, span.name, span.kind
        start, end = span.start_time, span.end_time
        attrs, events, links = span.attributes, span.events, span.links
        status = span.status
    tid = ctx.trace_id
    parts = [
        _IDS(b"\x0a\x10", tid >> 64, tid & _MASK64, b"\x12\x08", ctx.span_id),
        _trace_state(b"\x1a", ctx.trace_state),
    ]
    if parent is not None:
        parts.append(_PARENT(b"\x22\x08", parent.span_id))
    parts.append(text(b"\x2a", name))
    parts.append(_KIND[kind.value])
    parts.append(_TIMES(0x39, start or 0, 0x41, end or 0))
    if attrs:
        parts.append(attributes(b"\x4a", attrs))
        dropped = getattr(attrs, "dropped", 0)
        if dropped:
            parts.append(b"\x50" + varint(dropped))
    if events:
        parts.append(_events(events))
        dropped = getattr(events, "dropped", 0)
        if dropped:
            parts.append(b"\x60" + varint(dropped))
    if links:
        parts.append(_links(links))
        dropped = getattr(links, "dropped", 0)
        if dropped:
            parts.append(b"\x70" + varint(dropped))
    parts.append(_status(status))
    parts.append(_FLAGS_TAG + pack_fixed32(_flags(ctx, parent)))
    return b"".join(parts)


def span_origin(span: Any) -> tuple[Any, Any]:
    """(resource, instrumentation scope or None) of a span."""
    try:  # ReadableSpan: the fields behind its properties
        return span._resource, span._instrumentation_scope or None
    except AttributeError:
        return span.resource, span.instrumentation_scope or None


def encode_spans(
    spans: Sequence[Any],
    pause: Callable[[], None] | None = None,
    every: int = 64,
    on_error: Callable[[BaseException], None] | None = None,
) -> bytes:
    """A serialized ``ExportTraceServiceRequest``.

    ``pause()`` runs every ``every`` spans; with ``on_error`` a span that cannot be
    encoded is left out and reported to it, otherwise its exception propagates.
    """
    return request(group(spans, encode_span, span_origin, pause, every, on_error), b"\x12")
