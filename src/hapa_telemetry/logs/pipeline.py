"""One log event, end to end: enrich → redact → make safe → render once → sinks.

A :class:`HapaHandler` on the root logger turns every ``logging`` record (ours, the
app's, uvicorn's) into one event dict with the SPEC's fields in the SPEC's order, adds
the bound request context and the active span's trace context *on the calling thread*,
redacts secrets, renders the JSON line once and hands the bytes to a bounded queue
whose writer thread feeds stdout and the daily files. The same event becomes an OTel
log record when a LoggerProvider is configured. Nothing here raises into the caller.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry._logs import Logger as OTelLogger
from opentelemetry._logs import SeverityNumber

from hapa_telemetry import _state, context, names
from hapa_telemetry.logs.files import DailySizeRotatingFile
from hapa_telemetry.logs.redact import Redactor, anonymize_ip
from hapa_telemetry.logs.render import render_dev, render_json
from hapa_telemetry.logs.writer import QueueWriter, StreamSink
from hapa_telemetry.otlp.events import event_attributes
from hapa_telemetry.resource import instance_id
from hapa_telemetry.settings import Settings

if TYPE_CHECKING:
    from hapa_telemetry.otlp.batcher import EventLogBatcher

FIELDS_ATTR = "hapa_fields"
"""The LogRecord attribute under which :class:`StructuredLogger` passes its fields."""

# Keys the pipeline itself writes; a caller field with one of these names is kept
# under ``field_<name>`` instead of overwriting (or crashing, as the seed did).
RESERVED = frozenset(
    {
        "timestamp", "level", "logger", "message", "module", "function", "line",
        "service", "environment", "trace_id", "span_id", "trace_flags",
    }
)
# Attributes every LogRecord has; anything else in record.__dict__ came from extra=.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__
) | {"message", "asctime", FIELDS_ATTR, "taskName", "color_message"} | {
    # added by contrib's logging instrumentation; we write trace_id/span_id ourselves
    "otelSpanID", "otelTraceID", "otelTraceSampled", "otelServiceName",
}
_N_STANDARD = len(logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__)

_SEVERITY = {
    logging.DEBUG: SeverityNumber.DEBUG,
    logging.INFO: SeverityNumber.INFO,
    logging.WARNING: SeverityNumber.WARN,
    logging.ERROR: SeverityNumber.ERROR,
    logging.CRITICAL: SeverityNumber.FATAL,
}


_iso_second: tuple[int, str] = (-1, "")  # (second, formatted date-time): a cache
_DIGITS3 = tuple(f"{i:03d}" for i in range(1000))  # the microseconds, three digits at a time


def _reset() -> None:
    global _iso_second
    _iso_second = (-1, "")


_state.register(__name__, _reset)


def _iso(created: float) -> str:
    """``datetime.isoformat()`` in UTC, with the date-time part formatted once a second."""
    global _iso_second
    second = int(created)
    cached = _iso_second
    if cached[0] != second or created < 0:
        text = datetime.fromtimestamp(second, timezone.utc).isoformat()[:-6]
        cached = _iso_second = (second, text)
    micros = round((created - second) * 1e6)
    if micros == 0:
        return cached[1] + "+00:00"
    if micros >= 1_000_000 or micros < 0:  # rounds up into the next second; before 1970
        return datetime.fromtimestamp(created, timezone.utc).isoformat()
    ms, us = divmod(micros, 1000)  # two table lookups: cheaper than formatting an int
    return f"{cached[1]}.{_DIGITS3[ms]}{_DIGITS3[us]}+00:00"


# -- the request lines: one builder for the middleware and APIMonitor --------------------
def request_start_line(
    method: str, endpoint: str, client_ip: str | None
) -> tuple[str, dict[str, Any]]:
    """Message and fields of a ``request_start`` line."""
    return f"API request start: {method} {endpoint}", {
        "method": method,
        "endpoint": endpoint,
        "client_ip": client_ip,
        "event_type": names.EVENT_REQUEST_START,
    }


def request_end_line(
    method: str, endpoint: str, status_code: int, duration: float, client_ip: str | None
) -> tuple[str, dict[str, Any]]:
    """Message and fields of a ``request_end`` line (``duration`` in seconds, 6 decimals)."""
    return f"API request end: {method} {endpoint} - {status_code} ({duration:.4f}s)", {
        "method": method,
        "endpoint": endpoint,
        "status_code": status_code,
        "duration": round(duration, 6),
        "client_ip": client_ip,
        "event_type": names.EVENT_REQUEST_END,
    }


def trace_fields_of(span: trace.Span) -> tuple[str, str, str] | None:
    """A span's trace id, span id and flags as the lines write them (None: no span)."""
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    # %-formatting: about twice as fast as format() here (TraceFlags is an int subclass)
    return "%032x" % ctx.trace_id, "%016x" % ctx.span_id, "%02x" % ctx.trace_flags  # noqa: UP031


class EventBuilder:
    """Turns a LogRecord into the event dict: enrich, add context, redact (no I/O)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.redactor = Redactor(
            extra_keys=settings.redact_keys, extra_patterns=settings.redact_patterns
        )
        self._service = settings.service_name
        self._environment = settings.environment
        # HAPA_LOGS_EXPORT=files: the line is the log record, so it also names the service
        # version and this worker's service.instance.id (trailing, after the trace fields).
        self._identity = settings.logs_export == "files"
        self._reserved = RESERVED | (
            {names.FIELD_SERVICE_VERSION, names.FIELD_SERVICE_INSTANCE_ID}
            if self._identity else set()
        )
        # the bound mapping redacted last (mappings are immutable: identity is enough)
        self._last_bound: tuple[object, Mapping[str, Any]] = (None, {})

    # -- the event --------------------------------------------------------------------------
    def build_event(self, record: logging.LogRecord) -> dict[str, Any]:
        """The event dict for one LogRecord: fixed fields, context, caller fields, trace."""
        try:
            message = record.getMessage()
        except Exception:  # bad %-args from a third-party caller: keep what we have
            message = f"{record.msg!s} {record.args!r}"
        fields: dict[str, Any] = {}
        bound = context.bound_fields()
        if bound:
            fields.update(bound)
        extra = getattr(record, FIELDS_ATTR, None)
        if extra:
            fields.update(extra)
        if len(record.__dict__) > _N_STANDARD:
            for key, value in record.__dict__.items():
                if key not in _STANDARD_ATTRS:
                    fields[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            fields.setdefault("error_type", type(exc).__name__)
            fields.setdefault("error_message", str(exc))
            fields["exception"] = "".join(traceback.format_exception(*record.exc_info))
        elif record.exc_text:
            fields["exception"] = record.exc_text
        if record.stack_info:
            fields["stack_info"] = record.stack_info
        return self.build(
            record.created, record.levelname, record.name, message,
            record.module, record.funcName, record.lineno, fields,
        )

    def build(
        self,
        created: float,
        levelname: str,
        name: str,
        message: str,
        module: str | None,
        function: str | None,
        line: int,
        fields: dict[str, Any],
    ) -> dict[str, Any]:
        """The event dict from its parts (``fields`` already holds the bound context)."""
        event: dict[str, Any] = {
            "timestamp": _iso(created),
            "level": levelname,
            "logger": name,
            "message": self.redactor.redact_text(message) if message else message,
            "module": module,
            "function": function,
            "line": line,
            "service": self._service,
            "environment": self._environment,
        }
        if fields:
            if "client_ip" in fields:
                self._client_ip(fields)
            fields = self.redactor.redact_mapping(fields)
            for key, value in fields.items():
                event["field_" + key if key in self._reserved else key] = value
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            event["trace_id"] = format(ctx.trace_id, "032x")
            event["span_id"] = format(ctx.span_id, "016x")
            event["trace_flags"] = format(ctx.trace_flags, "02x")
        if self._identity:
            event[names.FIELD_SERVICE_VERSION] = self.settings.service_version
            event[names.FIELD_SERVICE_INSTANCE_ID] = instance_id()
        return event

    def build_trusted(
        self,
        created: float,
        levelname: str,
        name: str,
        message: str,
        bound: Mapping[str, Any],
        fields: dict[str, Any],
        trace_fields: tuple[str, str, str] | None = None,
    ) -> dict[str, Any]:
        """The event of one of the package's own lines (the request lines).

        ``message`` and ``fields`` are made by the package from the route template,
        method, status and numbers, so only the bound context is redacted (a request's
        two lines usually share one bound mapping: redacted once); the client-IP policy
        still applies. ``trace_fields`` are the request span's trace id, span id and
        flags, formatted once per request (else the current span's). Same fields, same
        order as :meth:`build`.
        """
        event: dict[str, Any] = {
            "timestamp": _iso(created),
            "level": levelname,
            "logger": name,
            "message": message,
            "module": "middleware",
            "function": "dispatch",
            "line": 0,
            "service": self._service,
            "environment": self._environment,
        }
        if bound:
            last = self._last_bound
            if last[0] is bound:
                redacted = last[1]
            else:
                redacted = self.redactor.redact_mapping(bound)
                self._last_bound = (bound, redacted)
            for key, value in redacted.items():
                event["field_" + key if key in self._reserved else key] = value
        if "client_ip" in fields and self.settings.client_ip != "keep":
            self._client_ip(fields)
        event.update(fields)
        if trace_fields is None:
            trace_fields = trace_fields_of(trace.get_current_span())
        if trace_fields is not None:
            event["trace_id"], event["span_id"], event["trace_flags"] = trace_fields
        if self._identity:
            event[names.FIELD_SERVICE_VERSION] = self.settings.service_version
            event[names.FIELD_SERVICE_INSTANCE_ID] = instance_id()
        return event

    def _client_ip(self, fields: dict[str, Any]) -> None:
        policy = self.settings.client_ip
        if policy == "drop":
            del fields["client_ip"]
        elif policy == "anonymize" and isinstance(fields["client_ip"], str):
            fields["client_ip"] = anonymize_ip(fields["client_ip"])


class LogPipeline:
    """An :class:`EventBuilder` plus rendering, the sinks and the OTel bridge."""

    def __init__(self, settings: Settings, *, stream: Any = None) -> None:
        self.settings = settings
        self.builder = EventBuilder(settings)
        self.otel_logger: OTelLogger | None = None
        # Set by configure() when the package's own OTLP encoder sends the log records.
        self.otel_batcher: EventLogBatcher | None = None
        self.errors = 0
        # Set by configure(): reports a failure (counted, on stderr with its traceback).
        self.on_error: Callable[[str, BaseException], None] | None = None
        self._lowest_sink_level: int | None = None
        self._max = settings.log_max_value_chars
        self._plain = settings.log_format == "plain"
        self._trace_based = settings.otlp_logs_trace_based
        self._init_sinks(stream)

    def _init_sinks(self, stream: Any) -> None:
        settings = self.settings
        out = stream if stream is not None else sys.stdout
        file_sinks: list[tuple[Any, int]] = []
        if settings.log_directory:
            file_sinks.append(
                (
                    DailySizeRotatingFile(
                        settings.log_directory,
                        names.LOG_FILE_PREFIX,
                        settings.log_max_bytes,
                        settings.log_backup_count,
                        retention_days=settings.log_retention_days,
                    ),
                    settings.log_levelno,
                )
            )
            file_sinks.append(
                (
                    DailySizeRotatingFile(
                        settings.log_directory,
                        names.ERROR_FILE_PREFIX,
                        settings.log_max_bytes,
                        settings.log_backup_count,
                        retention_days=settings.log_retention_days,
                    ),
                    logging.ERROR,
                )
            )
        stdout_sinks = [(StreamSink(out), settings.log_levelno)] if settings.log_to_stdout else []
        if self._plain:
            # Development: the seed's plain line on stdout; files stay JSON for tools.
            self.writer = QueueWriter(file_sinks, max_queue=settings.log_queue_size)
            self.console: QueueWriter | None = QueueWriter(
                stdout_sinks, max_queue=settings.log_queue_size
            )
        else:
            self.writer = QueueWriter(stdout_sinks + file_sinks, max_queue=settings.log_queue_size)
            self.console = None

    @property
    def _otel(self) -> bool:
        """True when log records go to OTLP (the SDK bridge or the package's batcher)."""
        return self.otel_logger is not None or self.otel_batcher is not None

    def handle(self, record: logging.LogRecord) -> None:
        """Process one LogRecord; never raises (failures are counted in ``errors``)."""
        try:
            event = self.builder.build_event(record)
            self.write(record.levelno, record.name, record.created, event)
        except Exception as exc:
            self.failed("log handler", exc)

    def failed(self, where: str, error: BaseException) -> None:
        """Count a failure of the pipeline and report it (never raises)."""
        self.errors += 1
        report = self.on_error
        if report is not None:
            report(where, error)

    def accepts(self, levelno: int) -> bool:
        """True when some sink (stdout, files, OTLP) would take a line of this level."""
        if self._otel:
            return True
        lowest = self._lowest_sink_level
        if lowest is None:
            writers = (self.writer,) if self.console is None else (self.writer, self.console)
            levels = [level for w in writers for _, level in w.sinks]
            lowest = self._lowest_sink_level = min(levels) if levels else logging.CRITICAL + 1
        return levelno >= lowest

    def write(self, levelno: int, name: str, created: float, event: dict[str, Any]) -> None:
        """Render an event once and hand it to the sinks and the OTel bridge."""
        self.writer.submit(levelno, render_json(event, max_value_chars=self._max))
        if self.console is not None:
            self.console.submit(
                levelno, render_dev(created, name, event["level"], event["message"])
            )
        if self._otel and not name.startswith("opentelemetry"):
            self._emit_otel(levelno, created, event)

    def _emit_otel(self, levelno: int, created: float, event: Mapping[str, Any]) -> None:
        if self._trace_based and levelno < logging.WARNING:
            # Trace-based: below WARNING, a record of a request whose trace was sampled
            # out is not exported (its line is still on stdout and in the files).
            ctx = trace.get_current_span().get_span_context()
            if ctx.is_valid and not ctx.trace_flags.sampled:
                return
        batcher = self.otel_batcher
        if batcher is not None:  # the package's encoder: no SDK log objects at all
            batcher.emit(levelno, created, event)
            return
        assert self.otel_logger is not None
        attributes = event_attributes(event)
        event_type = attributes.get("event_type")
        self.otel_logger.emit(
            timestamp=int(created * 1e9),
            observed_timestamp=time.time_ns(),
            severity_number=_SEVERITY.get(levelno, SeverityNumber.UNSPECIFIED),
            severity_text=event["level"],
            body=event["message"],
            attributes=attributes,
            event_name=event_type if isinstance(event_type, str) else None,
        )

    # -- lifecycle ------------------------------------------------------------------------
    def flush(self, timeout: float = 5.0) -> bool:
        """Write every line submitted so far; False if that took longer than ``timeout``."""
        ok = self.writer.flush(timeout)
        if self.console is not None:
            ok = self.console.flush(timeout) and ok
        return ok

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush and stop the writer threads (idempotent)."""
        self.writer.shutdown(timeout)
        if self.console is not None:
            self.console.shutdown(timeout)


class HapaHandler(logging.Handler):
    """The ``logging.Handler`` that feeds a :class:`LogPipeline` (on the root logger)."""

    def __init__(self, pipeline: LogPipeline) -> None:
        super().__init__(level=pipeline.settings.log_levelno)
        self.pipeline = pipeline

    def emit(self, record: logging.LogRecord) -> None:
        self.pipeline.handle(record)

    def flush(self) -> None:
        self.pipeline.flush(1.0)

    # logging.Handler takes a lock around emit(); the pipeline is thread-safe without it.
    def acquire(self) -> None:
        return None

    def release(self) -> None:
        return None
