"""One frozen settings object, from one table: argument → environment → default.

Each field of :class:`Settings` is one row of the table: its name (the keyword argument
of ``configure()``), its environment variable(s), its kind (parser and check, see
:mod:`.kinds`) and its default — a value, or a rule over other settings. Resolution
takes the keyword argument when given (the environment variable is then not even
parsed), else the first environment variable that is set and not empty, else the
default. Every value is checked by the same kind however it arrived; a bad one stops
start-up with :class:`SettingsError` naming the variable or argument and the value.

This module is the only place in the package that reads the process environment.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hapa_telemetry import names
from hapa_telemetry.settings import otlp
from hapa_telemetry.settings.kinds import (
    LEVELS,
    Bool,
    Choice,
    Float,
    GenAICapture,
    Int,
    Invalid,
    Kind,
    Level,
    Optional,
    Pairs,
    Patterns,
    Size,
    Text,
    Url,
    Words,
)
from hapa_telemetry.settings.kinds import parse_size as _parse_size
from hapa_telemetry.settings.resolve import Derive, Finish, Resolver, Row, SettingsError

ClientIpPolicy = Literal["keep", "anonymize", "drop"]
LogFormat = Literal["json", "plain"]

__all__ = ["Settings", "SettingsError", "default_of", "parse_size", "setting_from_env"]


def _setting(
    default: Any,
    *env: str,
    kind: Kind,
    derive: Derive | None = None,
    finish: Finish | None = None,
) -> Any:
    """One row of the table (a dataclass field carrying its variables and kind)."""
    meta = {"row": Row(env, kind, derive, finish)}
    if isinstance(default, (dict, list)):
        frozen = default
        return field(default_factory=lambda: type(frozen)(frozen), metadata=meta)
    return field(default=default, metadata=meta)


def _resource(key: str) -> Derive:
    """Rule: the value of an ``OTEL_RESOURCE_ATTRIBUTES`` key (else the default)."""
    return lambda r: r.get("resource_attributes").get(key) or None


def _environment(r: Resolver) -> str | None:
    attrs = r.get("resource_attributes")
    found = attrs.get("deployment.environment.name") or attrs.get("deployment.environment")
    return str(found) if found else ("development" if r.get("debug") else None)


def _signal(signal: str) -> tuple[Any, Any, Any]:
    """The three rows of one OTLP signal: exporter list, protocol, endpoint."""
    up = signal.upper()
    exporter = _setting(("otlp",), f"OTEL_{up}_EXPORTER", kind=Words(lower=True))
    protocol = _setting(
        otlp.DEFAULT_PROTOCOL,
        f"OTEL_EXPORTER_OTLP_{up}_PROTOCOL",
        kind=Choice(*otlp.PROTOCOLS),
        derive=lambda r: otlp.protocol(r, signal),
    )
    endpoint = _setting(
        None,
        f"OTEL_EXPORTER_OTLP_{up}_ENDPOINT",
        kind=Optional(Url()),
        derive=lambda r: otlp.endpoint(r, signal),
        finish=lambda r, v: otlp.exporter_on(r, signal, v),
    )
    return exporter, protocol, endpoint


_TRACES, _METRICS, _LOGS = (_signal(s) for s in otlp.SIGNALS)
_PERCENT = Float(0.0, 100.0)
_SAMPLERS = (
    "always_on", "always_off", "traceidratio",
    "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio",
)  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """Everything hapa-telemetry's components need to know, resolved once.

    Build it with :meth:`load` (what ``configure(**kwargs)`` does). ``Settings(...)``
    with keyword values is checked the same way.
    """

    # -- who is emitting ------------------------------------------------------------------
    resource_attributes: Mapping[str, str] = _setting(
        {}, "OTEL_RESOURCE_ATTRIBUTES", kind=Pairs()
    )
    resource_detectors: tuple[str, ...] = _setting(
        (), "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", kind=Words()
    )
    service_name: str = _setting(
        names.DEFAULT_SERVICE_NAME, "OTEL_SERVICE_NAME", kind=Text(),
        derive=_resource("service.name"),
    )  # fmt: skip
    service_version: str = _setting(
        "unknown", "SERVICE_VERSION", kind=Text(), derive=_resource("service.version")
    )
    debug: bool = _setting(False, "DEBUG", kind=Bool())
    environment: str = _setting("production", "ENVIRONMENT", kind=Text(), derive=_environment)
    # -- log lines ------------------------------------------------------------------------
    log_level: str = _setting("INFO", "LOG_LEVEL", kind=Level())
    log_format: LogFormat = _setting(  # noqa: RUF009
        "json", "LOG_FORMAT", kind=Choice("json", "plain"),
        derive=lambda r: "plain" if r.get("debug") else None,
    )  # fmt: skip
    log_to_stdout: bool = _setting(True, "LOG_TO_STDOUT", kind=Bool())
    log_directory: str | None = _setting(
        "logs", "LOG_DIRECTORY", kind=Optional(Text(), "none", "off", "-", "")
    )
    log_max_bytes: int = _setting(10 * 1024 * 1024, "LOG_MAX_SIZE", kind=Size())
    log_backup_count: int = _setting(5, "LOG_BACKUP_COUNT", kind=Int(0))
    log_retention_days: int = _setting(14, "LOG_RETENTION_DAYS", kind=Int(0))
    log_queue_size: int = _setting(10_000, "LOG_QUEUE_SIZE", kind=Int(1))
    log_max_value_chars: int = _setting(32_768, kind=Int(64))
    log_access: bool = _setting(False, "LOG_ACCESS", kind=Bool())
    redact_keys: tuple[str, ...] = _setting((), "LOG_REDACT_KEYS", kind=Words())
    redact_patterns: tuple[str, ...] = _setting((), "LOG_REDACT_PATTERNS", kind=Patterns())
    client_ip: ClientIpPolicy = _setting(  # noqa: RUF009
        "keep", "LOG_CLIENT_IP", kind=Choice("keep", "anonymize", "drop")
    )
    logs_export: Literal["otlp", "files"] = _setting(
        "otlp", "HAPA_LOGS_EXPORT", kind=Choice("otlp", "files")
    )
    # -- /metrics, /health ----------------------------------------------------------------
    enable_metrics: bool = _setting(True, "ENABLE_METRICS", kind=Bool())
    metrics_port: int = _setting(
        8000, "METRICS_PORT", kind=Int(0, 65535, expected="a port 0-65535")
    )
    # METRICS_PORT given (env or argument): only then may it get a listener of its own;
    # unset keeps the seed's meaning "the app's own port"
    metrics_port_explicit: bool = _setting(
        False, kind=Bool(), derive=lambda r: True if r.origin("metrics_port") else None
    )
    metrics_host: str = _setting("0.0.0.0", "METRICS_HOST", kind=Text())
    metrics_path: str = _setting("/metrics", kind=Text())
    metrics_token: str | None = _setting(None, "METRICS_TOKEN", kind=Optional(Text()))
    health_path: str = _setting("/health", kind=Text())
    cpu_threshold: float = _setting(80.0, "HEALTH_CPU_THRESHOLD", kind=_PERCENT)
    memory_threshold: float = _setting(80.0, "HEALTH_MEMORY_THRESHOLD", kind=_PERCENT)
    error_rate_threshold: float = _setting(
        0.05, "HEALTH_ERROR_RATE_THRESHOLD", kind=Float(0.0, 1.0)
    )
    multiprocess_dir: str | None = _setting(
        None, "PROMETHEUS_MULTIPROC_DIR", kind=Optional(Text())
    )
    # -- requests (the names contrib's FastAPI instrumentation reads) ---------------------
    operation_spans: bool = _setting(False, "HAPA_OPERATION_SPANS", kind=Bool())
    excluded_urls: tuple[str, ...] = _setting(
        (), "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS", kind=Patterns()
    )
    capture_request_headers: tuple[str, ...] = _setting(
        (), "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", kind=Patterns()
    )
    capture_response_headers: tuple[str, ...] = _setting(
        (), "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE", kind=Patterns()
    )
    sanitize_header_fields: tuple[str, ...] = _setting(
        (), "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS", kind=Patterns()
    )
    genai_capture_content: bool = _setting(
        False, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", kind=GenAICapture()
    )
    # -- traces ---------------------------------------------------------------------------
    traces_sampler: str = _setting(
        "parentbased_always_on", "OTEL_TRACES_SAMPLER", kind=Choice(*_SAMPLERS)
    )
    traces_sampler_arg: float | None = _setting(
        None, "OTEL_TRACES_SAMPLER_ARG", kind=Optional(Float(0.0, 1.0))
    )
    # -- OTLP export ----------------------------------------------------------------------
    otlp_endpoint: str | None = _setting(None, "OTEL_EXPORTER_OTLP_ENDPOINT", kind=Optional(Url()))
    # None: not chosen (the port decides, see .otlp); the per-signal values are resolved
    otlp_protocol: str | None = _setting(
        None, "OTEL_EXPORTER_OTLP_PROTOCOL", kind=Optional(Choice(*otlp.PROTOCOLS))
    )
    traces_exporter: tuple[str, ...] = _TRACES[0]
    metrics_exporter: tuple[str, ...] = _METRICS[0]
    logs_exporter: tuple[str, ...] = _LOGS[0]
    otlp_traces_protocol: str = _TRACES[1]
    otlp_metrics_protocol: str = _METRICS[1]
    otlp_logs_protocol: str = _LOGS[1]
    otlp_traces_endpoint: str | None = _TRACES[2]
    otlp_metrics_endpoint: str | None = _METRICS[2]
    otlp_logs_endpoint: str | None = _LOGS[2]
    otlp_headers: Mapping[str, str] = _setting({}, "OTEL_EXPORTER_OTLP_HEADERS", kind=Pairs())
    otlp_compression: str | None = _setting(
        None, "OTEL_EXPORTER_OTLP_COMPRESSION", kind=Optional(Choice("gzip"), "none")
    )
    # seconds, as the installed SDK (1.45) reads OTEL_EXPORTER_OTLP_TIMEOUT
    otlp_timeout_s: float = _setting(
        5.0, "OTEL_EXPORTER_OTLP_TIMEOUT", kind=Float(0.0, 600.0, above=True)
    )
    otlp_encoder: str = _setting("hapa", "HAPA_OTLP_ENCODER", kind=Choice("hapa", "sdk"))
    otlp_logs_trace_based: bool = _setting(True, "HAPA_OTLP_LOGS_TRACE_BASED", kind=Bool())
    # exemplars (trace/span id per histogram bucket) from sampled spans only by default
    metrics_exemplar_filter: str = _setting(
        "trace_based",
        "OTEL_METRICS_EXEMPLAR_FILTER",
        kind=Choice("trace_based", "always_on", "always_off"),
    )
    metric_export_interval_ms: int = _setting(
        60_000, "OTEL_METRIC_EXPORT_INTERVAL", kind=Int(1)
    )
    # Encoding a batch holds the GIL; the SDK's default of 512 items stalls requests for
    # ~25-30 ms on each export (measured in bench/), 128 keeps p99 near bare's.
    bsp_max_export_batch_size: int = _setting(
        128, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", kind=Int(1)
    )
    blrp_max_export_batch_size: int = _setting(
        128, "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", kind=Int(1),
        derive=lambda r: min(r.default("blrp_max_export_batch_size"), r.get("log_queue_size")),
    )  # fmt: skip
    # Span queue and batch delay (the SDK's names and defaults).
    bsp_max_queue_size: int = _setting(2048, "OTEL_BSP_MAX_QUEUE_SIZE", kind=Int(1))
    bsp_schedule_delay_ms: int = _setting(5000, "OTEL_BSP_SCHEDULE_DELAY", kind=Int(1))
    # How long a log record waits for its batch to fill (the SDK's name and default).
    blrp_schedule_delay_ms: int = _setting(
        1000, "OTEL_BLRP_SCHEDULE_DELAY", kind=Int(1)
    )
    # gc.freeze() once the server started: full collections skip the start-up heap
    gc_freeze: bool = _setting(False, "HAPA_GC_FREEZE", kind=Bool())
    # -- not settings: what load() found worth saying once at start-up --------------------
    notices: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            row = f.metadata.get("row")
            if row is None:
                continue
            value = getattr(self, f.name)
            try:
                row.kind.check(value)
            except Invalid as exc:
                raise SettingsError(f.name, value, exc.expected, argument=True) from None
        if self.blrp_max_export_batch_size > self.log_queue_size:
            raise SettingsError(
                "blrp_max_export_batch_size",
                self.blrp_max_export_batch_size,
                f"at most log_queue_size ({self.log_queue_size})",
                argument=True,
            )

    @property
    def log_levelno(self) -> int:
        """The numeric ``logging`` level of :attr:`log_level`."""
        return LEVELS.index(self.log_level) * 10 + 10

    @property
    def otlp_enabled(self) -> bool:
        """True when any signal has an OTLP endpoint."""
        return bool(
            self.otlp_traces_endpoint or self.otlp_metrics_endpoint or self.otlp_logs_endpoint
        )

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Resolve settings: keyword overrides, then the environment, then defaults.

        ``environ`` replaces ``os.environ`` entirely (nothing else is read).
        """
        unknown = set(overrides) - set(_rows())
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        r = Resolver(_rows(), default_of, os.environ if environ is None else environ, overrides)
        values = {name: r.get(name) for name in _rows()}
        try:
            return cls(**values, notices=otlp.notices(r))
        except SettingsError as exc:  # name the variable the bad value came from
            origin = r.origin(exc.variable)
            if origin is None:
                raise
            raise SettingsError(
                origin.label, origin.raw, exc.expected, argument=origin.argument
            ) from None


def _rows() -> dict[str, Row]:
    return {f.name: f.metadata["row"] for f in dataclasses.fields(Settings) if "row" in f.metadata}


def default_of(name: str) -> Any:
    """The table's default value of one setting (rules over other settings not applied)."""
    f = Settings.__dataclass_fields__[name]
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def parse_size(raw: str, variable: str = "LOG_MAX_SIZE") -> int:
    """Parse ``10MB``, ``512KB``, ``1GiB`` or a plain byte count into bytes."""
    try:
        return _parse_size(raw)
    except Invalid as exc:
        raise SettingsError(variable, raw, exc.expected) from None


def setting_from_env(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting from the environment alone (for tools that need only that one)."""
    r = Resolver(_rows(), default_of, os.environ if environ is None else environ, {})
    value = r.get(name)
    try:
        _rows()[name].kind.check(value)
    except Invalid as exc:
        origin = r.origin(name)
        raise SettingsError(
            origin.label if origin else name, origin.raw if origin else value, exc.expected
        ) from None
    return value
