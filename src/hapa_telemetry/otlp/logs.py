"""Log records -> ``ExportLogsServiceRequest`` bytes (opentelemetry-proto logs/v1)."""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from hapa_telemetry.otlp._wire import (
    any_value,
    attributes,
    field_bytes,
    group,
    pack_fixed32,
    request,
    text,
    varint,
)

_TIME = struct.Struct("<BQ").pack
_TIMES = struct.Struct("<BQBQ").pack
_IDS = struct.Struct(">2sQQ2sQ").pack
_TRACE = struct.Struct(">2sQQ").pack
_SPAN = struct.Struct(">2sQ").pack
_MASK64 = (1 << 64) - 1
_SEVERITY = [b"\x10" + bytes((n,)) for n in range(25)]


def encode_log(readable: Any) -> bytes:
    """One ``LogRecord`` message body from an SDK ReadableLogRecord."""
    rec = readable.log_record
    ts, observed = rec.timestamp, rec.observed_timestamp
    if ts and observed:  # time (1) and observed time (11) in one call
        parts = [_TIMES(0x09, ts, 0x59, observed)]
    else:
        parts = [_TIME(0x09, ts)] if ts else []
        if observed:
            parts.append(_TIME(0x59, observed))
    severity = rec.severity_number
    if severity is not None:
        number = severity.value
        parts.append(_SEVERITY[number] if 0 <= number < 25 else b"\x10" + varint(number))
    if rec.severity_text:
        parts.append(text(b"\x1a", rec.severity_text))
    body = rec.body
    if type(body) is str:  # AnyValue{string_value} inside field 5, written out
        data = body.encode("utf-8", "replace")
        n = len(data)
        parts.append(field_bytes(b"\x2a", b"\x0a" + varint(n) + data))
    else:
        parts.append(field_bytes(b"\x2a", any_value(body)))
    attrs = rec.attributes
    if attrs:
        parts.append(attributes(b"\x32", attrs))
        dropped = getattr(attrs, "dropped", 0)
        if dropped:
            parts.append(b"\x38" + varint(dropped))
    flags = rec.trace_flags
    if flags:
        parts.append(b"\x45" + pack_fixed32(int(flags)))
    tid, sid = rec.trace_id, rec.span_id
    if tid and sid:
        parts.append(_IDS(b"\x4a\x10", tid >> 64, tid & _MASK64, b"\x52\x08", sid))
    elif tid:
        parts.append(_TRACE(b"\x4a\x10", tid >> 64, tid & _MASK64))
    elif sid:
        parts.append(_SPAN(b"\x52\x08", sid))
    event_name = getattr(rec, "event_name", None)
    if event_name:
        parts.append(text(b"\x62", event_name))
    return b"".join(parts)


def _origin(readable: Any) -> tuple[Any, Any]:
    return readable.resource, readable.instrumentation_scope or None


def encode_logs(
    records: Sequence[Any],
    pause: Callable[[], None] | None = None,
    every: int = 64,
    on_error: Callable[[BaseException], None] | None = None,
) -> bytes:
    """A serialized ``ExportLogsServiceRequest``.

    ``pause()`` runs every ``every`` records; with ``on_error`` a record that cannot be
    encoded is left out and reported to it, otherwise its exception propagates.
    """
    return request(group(records, encode_log, _origin, pause, every, on_error), b"\x12")
