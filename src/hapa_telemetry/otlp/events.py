"""The package's own log events -> OTLP ``LogRecord`` bytes, without SDK log objects.

Every line the pipeline writes is already an event dict (``logs/pipeline.py``). Turning
it into an SDK ``LogRecord`` (``Logger.emit``: ``BoundedAttributes`` with a lock and a
per-value check, a context copy, ``ReadableLogRecord``) cost more on the request thread
than building and rendering the line itself. Here the request thread keeps a tuple
``(levelno, created, observed_ns, event)``; the exporter thread projects the event to
attributes and writes the protobuf directly. :func:`event_attributes` is the one
projection for both this path and the SDK bridge, so both send the same record
(tests/unit/test_otlp_events.py compares them field by field).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from hapa_telemetry import names
from hapa_telemetry.otlp._wire import (
    attributes,
    field_bytes,
    pack_fixed32,
    request,
    text,
    varint,
)

EventItem = tuple[int, float, int, Mapping[str, Any]]
"""What the request thread queues: (levelno, created (s), observed time (ns), event)."""

SEVERITY = {
    logging.DEBUG: 5,  # SeverityNumber.DEBUG
    logging.INFO: 9,  # INFO
    logging.WARNING: 13,  # WARN
    logging.ERROR: 17,  # ERROR
    logging.CRITICAL: 21,  # FATAL
}
_PRIMITIVE = (str, bool, int, float)
# Fields an OTel log record carries elsewhere: timestamp, severity, body and trace context
# have their own fields; service and environment are resource attributes.
NOT_ATTRIBUTES = frozenset(
    {"timestamp", "level", "message", "trace_id", "span_id", "trace_flags", "service",
     "environment", names.FIELD_SERVICE_VERSION, names.FIELD_SERVICE_INSTANCE_ID}
)
_LOCATION = ("module", "function", "line")


def event_attributes(event: Mapping[str, Any]) -> dict[str, Any]:
    """The log record attributes of one event: its fields minus those OTLP has elsewhere.

    Values that are not str/bool/int/float become their JSON text; ``None`` values are
    left out; the middleware's own lines (``line == 0``) carry no code location.
    """
    out: dict[str, Any] = {}
    for key, value in event.items():
        if key in NOT_ATTRIBUTES or value is None:
            continue
        if isinstance(value, _PRIMITIVE):
            out[key] = value
        else:
            try:
                out[key] = orjson.dumps(value, default=str).decode()
            except Exception:
                out[key] = str(value)
    if event.get("line") == 0:
        for key in _LOCATION:
            out.pop(key, None)
    return out


_TIMES = struct.Struct("<BQBQ").pack
_SEVERITY_FIELD = [b"\x10" + bytes((n,)) for n in range(25)]


class EventEncoder:
    """Encodes queued events, honouring the SDK's log record attribute limits."""

    def __init__(self, max_attributes: int | None = 128, max_length: int | None = None) -> None:
        self.max_attributes = max_attributes
        self.max_length = max_length

    def encode(self, item: EventItem) -> bytes:
        """One ``LogRecord`` message body."""
        levelno, created, observed, event = item
        parts = [_TIMES(0x09, int(created * 1e9), 0x59, observed)]
        number = SEVERITY.get(levelno, 0)
        if number:
            parts.append(_SEVERITY_FIELD[number])
        level = event.get("level")
        if level:
            parts.append(text(b"\x1a", str(level)))
        body = event.get("message")
        data = (body if isinstance(body, str) else str(body)).encode("utf-8", "replace")
        parts.append(field_bytes(b"\x2a", b"\x0a" + varint(len(data)) + data))
        attrs = event_attributes(event)
        dropped = 0
        limit = self.max_attributes
        if limit is not None and len(attrs) > limit:  # the SDK keeps the newest ones
            dropped = len(attrs) - limit
            attrs = dict(list(attrs.items())[dropped:])
        if self.max_length is not None:
            cut = self.max_length
            attrs = {k: v[:cut] if type(v) is str else v for k, v in attrs.items()}
        if attrs:
            parts.append(attributes(b"\x32", attrs))
        if dropped:
            parts.append(b"\x38" + varint(dropped))
        trace_id = event.get("trace_id")
        if trace_id:
            flags = int(event.get("trace_flags") or "0", 16)
            if flags:
                parts.append(b"\x45" + pack_fixed32(flags))
            parts.append(b"\x4a\x10" + bytes.fromhex(trace_id))
            span_id = event.get("span_id")
            if span_id:
                parts.append(b"\x52\x08" + bytes.fromhex(span_id))
        event_type = event.get("event_type")
        if isinstance(event_type, str) and event_type:
            parts.append(text(b"\x62", event_type))
        return b"".join(parts)

    def encode_request(
        self,
        items: Sequence[EventItem],
        resource: Any,
        scope: Any,
        pause: Callable[[], None] | None = None,
        every: int = 64,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> bytes:
        """A serialized ``ExportLogsServiceRequest`` of one resource and scope.

        ``pause()`` runs every ``every`` items; an item that cannot be encoded is left
        out and reported to ``on_error`` (else its exception propagates).
        """
        encoded: list[bytes] = []
        encode = self.encode
        for i, item in enumerate(items):
            if pause is not None and i and i % every == 0:
                pause()
            try:
                encoded.append(encode(item))
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(exc)
        if not encoded:
            return b""
        return request([(resource, scope, encoded)], b"\x12")
