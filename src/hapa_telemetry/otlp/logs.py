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
_TRACE = struct.Struct(">2sQQ").pack
_SPAN = struct.Struct(">2sQ").pack
_MASK64 = (1 << 64) - 1
_SEVERITY = [b"\x10" + bytes((n,)) for n in range(25)]


def encode_log(readable: Any) -> bytes:
    """One ``LogRecord`` message body from an SDK ReadableLogRecord."""
    rec = readable.log_record
    parts = []
    ts = rec.timestamp
    if ts:
        parts.append(_TIME(0x09, ts))
    severity = rec.severity_number
    if severity is not None:
        number = severity.value
        parts.append(_SEVERITY[number] if 0 <= number < 25 else b"\x10" + varint(number))
    if rec.severity_text:
        parts.append(text(b"\x1a", rec.severity_text))
    parts.append(field_bytes(b"\x2a", any_value(rec.body)))
    parts.append(attributes(b"\x32", rec.attributes))
    dropped = readable.dropped_attributes
    if dropped:
        parts.append(b"\x38" + varint(dropped))
    flags = int(rec.trace_flags or 0)
    if flags:
        parts.append(b"\x45" + pack_fixed32(flags))
    tid = rec.trace_id
    if tid:
        parts.append(_TRACE(b"\x4a\x10", tid >> 64, tid & _MASK64))
    sid = rec.span_id
    if sid:
        parts.append(_SPAN(b"\x52\x08", sid))
    observed = rec.observed_timestamp
    if observed:
        parts.append(_TIME(0x59, observed))
    event_name = getattr(rec, "event_name", None)
    if event_name:
        parts.append(text(b"\x62", event_name))
    return b"".join(parts)


def encode_logs(
    records: Sequence[Any], pause: Callable[[], None] | None = None, every: int = 64
) -> bytes:
    """A serialized ``ExportLogsServiceRequest``; ``pause()`` runs every ``every`` records."""
    return request(group(records, encode_log, pause, every), b"\x12")
