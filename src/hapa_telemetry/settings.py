"""One frozen settings object, read once: arguments → seed env vars / ``OTEL_*`` → defaults.

Every component receives this object; nothing else reads the environment. A bad value
stops start-up with :class:`SettingsError` naming the variable and the value.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hapa_telemetry import names

ClientIpPolicy = Literal["keep", "anonymize", "drop"]
LogFormat = Literal["json", "plain"]

_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f", ""})
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the variable and the value."""

    def __init__(self, variable: str, value: object, expected: str) -> None:
        super().__init__(f"invalid {variable}={value!r}: expected {expected}")
        self.variable = variable
        self.value = value


@dataclass(frozen=True)
class Settings:
    """Everything hapa-telemetry's components need to know, resolved once."""

    service_name: str = names.DEFAULT_SERVICE_NAME
    service_version: str = "unknown"
    debug: bool = False
    environment: str = "production"
    log_level: str = "INFO"
    log_format: LogFormat = "json"
    log_to_stdout: bool = True
    log_directory: str | None = "logs"
    log_max_bytes: int = 10 * 1024 * 1024
    log_backup_count: int = 5
    log_queue_size: int = 10_000
    log_max_value_chars: int = 32_768
    enable_metrics: bool = True
    metrics_port: int = 8000
    metrics_host: str = "0.0.0.0"
    metrics_path: str = "/metrics"
    metrics_token: str | None = None
    health_path: str = "/health"
    redact_keys: tuple[str, ...] = ()
    redact_patterns: tuple[str, ...] = ()
    client_ip: ClientIpPolicy = "keep"
    cpu_threshold: float = 80.0
    memory_threshold: float = 80.0
    error_rate_threshold: float = 0.05
    operation_spans: bool = False
    otlp_traces_endpoint: str | None = None
    otlp_metrics_endpoint: str | None = None
    otlp_logs_endpoint: str | None = None
    otlp_protocol: str = "http/protobuf"
    otlp_logs_trace_based: bool = True
    metric_export_interval_ms: int = 60_000
    multiprocess_dir: str | None = None
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    # -- contrib's FastAPI/HTTP instrumentation settings (the package replaces contrib) --
    # OTEL_PYTHON_FASTAPI_EXCLUDED_URLS, else OTEL_PYTHON_EXCLUDED_URLS: regexes searched
    # in scheme://host/path; matching requests get no span, no lines, no counts.
    excluded_urls: tuple[str, ...] = ()
    # OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST / _SERVER_RESPONSE: regexes
    # fully matched against header names; captured as http.{request,response}.header.*.
    capture_request_headers: tuple[str, ...] = ()
    capture_response_headers: tuple[str, ...] = ()
    # OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS: regexes searched in
    # captured header names; their values become [REDACTED].
    capture_sanitize_fields: tuple[str, ...] = ()
    # -- METRICS_PORT given explicitly (env or argument): only then may it get a listener
    # of its own; unset keeps the seed's meaning "the app's own port".
    metrics_port_explicit: bool = False

    @property
    def log_levelno(self) -> int:
        """The numeric ``logging`` level of :attr:`log_level`."""
        return _LEVELS.index(self.log_level) * 10 + 10

    @property
    def otlp_enabled(self) -> bool:
        """True when any signal has an OTLP endpoint."""
        return bool(
            self.otlp_traces_endpoint or self.otlp_metrics_endpoint or self.otlp_logs_endpoint
        )

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Resolve settings: keyword overrides, then the environment, then defaults."""
        env = os.environ if environ is None else environ
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        r = _Reader(env)
        debug = r.boolean("DEBUG", False)
        resource = _resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
        environment = resource.get(
            "deployment.environment.name",
            resource.get("deployment.environment", "development" if debug else "production"),
        )
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None
        protocol = r.choice(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", ("grpc", "http/protobuf")
        )
        values: dict[str, Any] = {
            "service_name": env.get("OTEL_SERVICE_NAME")
            or resource.get("service.name")
            or names.DEFAULT_SERVICE_NAME,
            "service_version": env.get("SERVICE_VERSION")
            or resource.get("service.version")
            or "unknown",
            "debug": debug,
            "environment": env.get("ENVIRONMENT") or environment,
            "log_level": r.level("LOG_LEVEL", "INFO"),
            "log_format": r.choice("LOG_FORMAT", "plain" if debug else "json", ("json", "plain")),
            "log_to_stdout": r.boolean("LOG_TO_STDOUT", True),
            "log_directory": _directory(env.get("LOG_DIRECTORY", "logs")),
            "log_max_bytes": r.size("LOG_MAX_SIZE", 10 * 1024 * 1024),
            "log_backup_count": r.integer("LOG_BACKUP_COUNT", 5, minimum=0),
            "log_queue_size": r.integer("LOG_QUEUE_SIZE", 10_000, minimum=1),
            "enable_metrics": r.boolean("ENABLE_METRICS", True),
            "metrics_port": r.integer("METRICS_PORT", 8000, minimum=0, maximum=65535),
            "metrics_host": env.get("METRICS_HOST") or "0.0.0.0",
            "metrics_token": env.get("METRICS_TOKEN") or None,
            "redact_keys": r.csv("LOG_REDACT_KEYS"),
            "redact_patterns": r.patterns("LOG_REDACT_PATTERNS"),
            "client_ip": r.choice("LOG_CLIENT_IP", "keep", ("keep", "anonymize", "drop")),
            "cpu_threshold": r.number("HEALTH_CPU_THRESHOLD", 80.0, 0.0, 100.0),
            "memory_threshold": r.number("HEALTH_MEMORY_THRESHOLD", 80.0, 0.0, 100.0),
            "error_rate_threshold": r.number("HEALTH_ERROR_RATE_THRESHOLD", 0.05, 0.0, 1.0),
            "operation_spans": r.boolean("HAPA_OPERATION_SPANS", False),
            "otlp_traces_endpoint": _signal_endpoint(env, "TRACES", base, protocol),
            "otlp_metrics_endpoint": _signal_endpoint(env, "METRICS", base, protocol),
            "otlp_logs_endpoint": _signal_endpoint(env, "LOGS", base, protocol),
            "otlp_protocol": protocol,
            "otlp_logs_trace_based": r.boolean("HAPA_OTLP_LOGS_TRACE_BASED", True),
            "metric_export_interval_ms": r.integer(
                "OTEL_METRIC_EXPORT_INTERVAL", 60_000, minimum=1
            ),
            "multiprocess_dir": env.get("PROMETHEUS_MULTIPROC_DIR") or None,
            "resource_attributes": resource,
            # -- contrib's FastAPI/HTTP instrumentation settings --------------------------
            "excluded_urls": r.patterns(
                "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS"
                if "OTEL_PYTHON_FASTAPI_EXCLUDED_URLS" in env
                else "OTEL_PYTHON_EXCLUDED_URLS"
            ),
            "capture_request_headers": r.patterns(
                "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST"
            ),
            "capture_response_headers": r.patterns(
                "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE"
            ),
            "capture_sanitize_fields": r.patterns(
                "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
            ),
            "metrics_port_explicit": bool((env.get("METRICS_PORT") or "").strip()),
        }
        # Validate the standard OTEL_* variables we do not consume ourselves but that the
        # SDK would otherwise reject with a warning and a silent fallback.
        r.choice(
            "OTEL_TRACES_SAMPLER",
            "parentbased_always_on",
            (
                "always_on",
                "always_off",
                "traceidratio",
                "parentbased_always_on",
                "parentbased_always_off",
                "parentbased_traceidratio",
            ),
            lower=True,
        )
        if "OTEL_TRACES_SAMPLER_ARG" in env:
            r.number("OTEL_TRACES_SAMPLER_ARG", 1.0, 0.0, 1.0)
        values.update(overrides)
        if "metrics_port" in overrides and "metrics_port_explicit" not in overrides:
            values["metrics_port_explicit"] = True
        settings = cls(**values)
        settings._validate()
        return settings

    def _validate(self) -> None:
        if self.log_level not in _LEVELS:
            raise SettingsError("log_level", self.log_level, "one of " + ", ".join(_LEVELS))
        if self.client_ip not in ("keep", "anonymize", "drop"):
            raise SettingsError("client_ip", self.client_ip, "keep, anonymize or drop")
        if self.log_format not in ("json", "plain"):
            raise SettingsError("log_format", self.log_format, "json or plain")


class _Reader:
    """Typed accessors over an environment mapping that raise :class:`SettingsError`."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def _raw(self, name: str) -> str | None:
        value = self.env.get(name)
        return None if value is None else value.strip()

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._raw(name)
        if raw is None:
            return default
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise SettingsError(name, raw, "true or false")

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        raw = self._raw(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(name, raw, "an integer") from None
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise SettingsError(name, raw, f"an integer in [{minimum}, {maximum}]")
        return value

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        raw = self._raw(name)
        if raw is None or raw == "":
            return default
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(name, raw, "a number") from None
        if not minimum <= value <= maximum:
            raise SettingsError(name, raw, f"a number in [{minimum}, {maximum}]")
        return value

    def level(self, name: str, default: str) -> str:
        raw = self._raw(name)
        if raw is None or raw == "":
            return default
        up = raw.upper()
        if up == "WARN":
            up = "WARNING"
        if up not in _LEVELS:
            raise SettingsError(name, raw, "one of " + ", ".join(_LEVELS))
        return up

    def size(self, name: str, default: int) -> int:
        raw = self._raw(name)
        if raw is None or raw == "":
            return default
        return parse_size(raw, name)

    def choice(
        self, name: str, default: str, options: tuple[str, ...], *, lower: bool = True
    ) -> Any:
        raw = self._raw(name)
        if raw is None or raw == "":
            return default
        value = raw.lower() if lower else raw
        if value not in options:
            raise SettingsError(name, raw, "one of " + ", ".join(options))
        return value

    def csv(self, name: str) -> tuple[str, ...]:
        raw = self._raw(name) or ""
        return tuple(part.strip() for part in raw.split(",") if part.strip())

    def patterns(self, name: str) -> tuple[str, ...]:
        parts = self.csv(name)
        for part in parts:
            try:
                re.compile(part)
            except re.error as exc:
                raise SettingsError(name, part, f"a valid regular expression ({exc})") from None
        return parts


def parse_size(raw: str, variable: str = "LOG_MAX_SIZE") -> int:
    """Parse ``10MB``, ``512KB``, ``1GiB`` or a plain byte count into bytes."""
    match = _SIZE.match(raw)
    if not match:
        raise SettingsError(variable, raw, "a size like 10MB, 512KB or 1048576")
    number, unit = match.groups()
    key = (unit or "").upper().rstrip("B").rstrip("I")
    if key not in _SIZE_UNITS:
        raise SettingsError(variable, raw, "a size like 10MB, 512KB or 1048576")
    return int(float(number) * _SIZE_UNITS[key])


def _directory(raw: str) -> str | None:
    raw = raw.strip()
    return None if raw.lower() in ("", "none", "off", "-") else raw


def _resource_attributes(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in raw.split(","):
        if "=" not in item:
            if item.strip():
                raise SettingsError("OTEL_RESOURCE_ATTRIBUTES", raw, "key=value pairs")
            continue
        key, _, value = item.partition("=")
        from urllib.parse import unquote

        out[key.strip()] = unquote(value.strip())
    return out


def _signal_endpoint(
    env: Mapping[str, str], signal: str, base: str | None, protocol: str
) -> str | None:
    """The full OTLP endpoint URL for one signal, or None when its exporter is off.

    As the OTel spec says: a signal-specific variable is used as is; the base endpoint
    gets ``/v1/<signal>`` appended for OTLP/HTTP.
    """
    exporter = env.get(f"OTEL_{signal}_EXPORTER", "").strip().lower()
    if exporter and "otlp" not in exporter.split(","):
        return None
    specific = env.get(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")
    if specific:
        _check_url(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", specific)
        return specific
    if not base:
        return None
    _check_url("OTEL_EXPORTER_OTLP_ENDPOINT", base)
    if protocol == "grpc":
        return base
    return base.rstrip("/") + "/v1/" + signal.lower()


def _check_url(variable: str, value: str) -> None:
    if not re.match(r"^https?://[^\s/]+", value.strip()):
        raise SettingsError(variable, value, "a URL like http://127.0.0.1:4318")
