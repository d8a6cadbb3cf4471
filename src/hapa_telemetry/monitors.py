"""The seed's API — StructuredLogger, StructuredFormatter, setup_logging, APIMonitor,
PerformanceMonitor, get_prometheus_metrics — as thin faces over the configured pipeline
and instruments (no second system). They configure from the environment on first use if
:func:`hapa_telemetry.configure` has not been called.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from datetime import datetime, timezone
from typing import Any

import psutil

from hapa_telemetry import names, runtime
from hapa_telemetry.instruments import fold_method
from hapa_telemetry.logs.pipeline import (
    FIELDS_ATTR,
    EventBuilder,
    request_end_line,
    request_start_line,
)
from hapa_telemetry.logs.render import render_json
from hapa_telemetry.settings import Settings

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_DEMO_DIR = os.path.join(_PACKAGE_DIR, "demo")
_SKIP_FILES = (contextlib.__file__,)


def _caller() -> tuple[str, int, str]:
    """The first frame outside this package: the code location of a log line."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        ours = filename.startswith(_PACKAGE_DIR) and not filename.startswith(_DEMO_DIR)
        if not ours and filename not in _SKIP_FILES:
            return filename, frame.f_lineno, frame.f_code.co_name
        frame = frame.f_back  # type: ignore[assignment]
    return "(unknown file)", 0, "(unknown function)"


class StructuredLogger:
    """``StructuredLogger(name).info(message, **fields)`` → one structured log event.

    ``message`` is positional-only, so a field named ``message`` is accepted (it is kept
    as ``field_message``). ``error()`` also counts ``api_errors_total{error_type}``, as in
    the seed.
    """

    __slots__ = ("logger", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.logger = logging.getLogger(name)

    def _log(self, level: int, message: str, fields: dict[str, Any], exc_info: Any = None) -> None:
        if runtime.current() is None:
            runtime.get()
        logger = self.logger
        if not logger.isEnabledFor(level):
            return
        if exc_info is True:
            exc_info = sys.exc_info()
        pathname, lineno, func = _caller()
        record = logger.makeRecord(
            logger.name, level, pathname, lineno, message, (), exc_info, func,
            {FIELDS_ATTR: fields},
        )
        logger.handle(record)

    def debug(self, message: str, /, **fields: Any) -> None:
        """Log at DEBUG."""
        self._log(logging.DEBUG, message, fields)

    def info(self, message: str, /, **fields: Any) -> None:
        """Log at INFO."""
        self._log(logging.INFO, message, fields)

    def warning(self, message: str, /, **fields: Any) -> None:
        """Log at WARNING."""
        self._log(logging.WARNING, message, fields)

    def error(self, message: str, /, **fields: Any) -> None:
        """Log at ERROR and count ``api_errors_total{error_type}`` (default ``unknown``)."""
        self._log(logging.ERROR, message, fields)
        error_type = fields.get("error_type") or "unknown"
        runtime.get().instruments.error(str(error_type))

    def exception(self, message: str, /, **fields: Any) -> None:
        """Log at ERROR with the current exception's stack trace."""
        self._log(logging.ERROR, message, fields, exc_info=True)

    def critical(self, message: str, /, **fields: Any) -> None:
        """Log at CRITICAL."""
        self._log(logging.CRITICAL, message, fields)


class StructuredFormatter(logging.Formatter):
    """A ``logging.Formatter`` producing the JSON line (for dictConfig users).

    Same fields, redaction and safety as the package's own pipeline.
    """

    def __init__(self, *args: Any, settings: Settings | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        current = runtime.current()
        self._settings = settings or (current.settings if current else Settings.load())
        self._builder = EventBuilder(self._settings)

    def format(self, record: logging.LogRecord) -> str:
        try:
            event = self._builder.build_event(record)
            line = render_json(event, max_value_chars=self._settings.log_max_value_chars)
            return line.decode("utf-8").rstrip("\n")
        except Exception as exc:  # never crash the caller
            return f'{{"level":"ERROR","message":"unformattable log record: {type(exc).__name__}"}}'


def setup_logging(**overrides: Any) -> None:
    """The seed's ``setup_logging()``: root, uvicorn and fastapi loggers → the pipeline."""
    runtime.configure(**overrides)


def get_prometheus_metrics(accept: str | None = None) -> bytes:
    """The Prometheus text exposition of this process's (or all workers') metrics."""
    from hapa_telemetry.exposition import render_metrics

    body, _ = render_metrics(runtime.get(), accept)
    return body


class APIMonitor:
    """The seed's API monitor: each call writes the log line AND updates instruments."""

    def __init__(self) -> None:
        self.logger = StructuredLogger("api_monitor")

    def log_request_start(
        self, method: str, endpoint: str, client_ip: str | None = None, **fields: Any
    ) -> None:
        """A request began: log ``request_start`` and count it in active_connections."""
        message, line = request_start_line(method, endpoint, client_ip)
        self.logger.info(message, **{**fields, **line})
        runtime.get().instruments.request_started()

    def log_request_end(
        self,
        method: str,
        endpoint: str,
        status_code: int,
        duration: float,
        client_ip: str | None = None,
        **fields: Any,
    ) -> None:
        """A request ended: log ``request_end``, count and time it, end active_connections."""
        message, line = request_end_line(method, endpoint, status_code, duration, client_ip)
        self.logger.info(message, **{**fields, **line})
        t = runtime.get()
        t.instruments.request_finished(fold_method(method), endpoint, int(status_code), duration)
        t.stats.record(duration, int(status_code) >= 500)

    def log_ai_inference(
        self,
        duration: float,
        prompt_length: int,
        response_length: int,
        cached: bool = False,
        **fields: Any,
    ) -> None:
        """Log ``ai_inference``; record the duration unless the result came from cache."""
        self.logger.info(
            f"AI inference done: {duration:.4f}s (prompt {prompt_length} chars, "
            f"response {response_length} chars, cached: {cached})",
            duration=duration,
            prompt_length=prompt_length,
            response_length=response_length,
            cached=cached,
            event_type=names.EVENT_AI_INFERENCE,
            **fields,
        )
        if not cached:
            model = fields.get("model")
            runtime.get().instruments.inference(duration, model if isinstance(model, str) else None)

    def log_error(self, error: BaseException, context: dict[str, Any] | None = None) -> None:
        """Log an ``error`` line with type, message and stack; count api_errors_total."""
        exc_info = (type(error), error, error.__traceback__) if error.__traceback__ else None
        self.logger._log(
            logging.ERROR,
            f"Error: {type(error).__name__}: {error}",
            {
                "error_type": type(error).__name__,
                "error_message": str(error),
                "context": context or {},
                "event_type": names.EVENT_ERROR,
            },
            exc_info=exc_info,
        )
        runtime.get().instruments.error(type(error).__name__)

    def log_cache_metrics(self, hit_rate: float, cache_size: int) -> None:
        """Log ``cache_metrics`` and set the cache_hit_rate gauge (hit_rate 0–1 → %)."""
        self.logger.info(
            f"Cache: hit rate {hit_rate:.2%}, size {cache_size}",
            hit_rate=hit_rate,
            cache_size=cache_size,
            event_type=names.EVENT_CACHE_METRICS,
        )
        runtime.get().instruments.set_cache_hit_rate(hit_rate * 100.0)


class PerformanceMonitor:
    """The seed's performance monitor: figures, system resources, health checks."""

    def __init__(self) -> None:
        self.logger = StructuredLogger("performance_monitor")
        self.metrics: dict[str, Any] = {
            "requests_per_minute": 0,
            "average_response_time": 0.0,
            "error_rate": 0.0,
            "cache_hit_rate": 0.0,
        }

    def update_metrics(self, **kwargs: Any) -> None:
        """Merge figures in and log a ``performance_update`` line."""
        self.metrics.update(kwargs)
        self.logger.info(
            "Performance metrics updated",
            metrics=dict(self.metrics),
            event_type=names.EVENT_PERFORMANCE_UPDATE,
        )

    def application(self) -> dict[str, Any]:
        """Figures from live traffic (last minute), falling back to update_metrics values."""
        t = runtime.get()
        figures = dict(self.metrics)
        live = t.stats.snapshot()
        if live["requests_per_minute"]:
            figures.update(live)
        rate = t.instruments.cache_hit_rate
        if rate is not None:
            figures["cache_hit_rate"] = round(rate / 100.0, 6)
        return figures

    def get_health_status(self) -> dict[str, Any]:
        """status, timestamp, system, application, checks (and exporter state)."""
        t = runtime.get()
        s = t.settings
        cpu = t.instruments.cpu.percent()
        memory = psutil.virtual_memory().percent
        disk = psutil.disk_usage("/").percent
        application = self.application()
        checks = {
            "high_cpu": cpu > s.cpu_threshold,
            "high_memory": memory > s.memory_threshold,
            "high_error_rate": float(application.get("error_rate", 0.0)) > s.error_rate_threshold,
        }
        return {
            "status": "unhealthy" if any(checks.values()) else "healthy",
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "system": {"cpu_percent": cpu, "memory_percent": memory, "disk_percent": disk},
            "application": application,
            "checks": checks,
            "telemetry": {
                "exporters": t.providers.health.status(),
                "log_lines_dropped": t.pipeline.writer.dropped,
                "log_errors": t.pipeline.errors,
                "internal_errors": t.internal_errors.counts(),
            },
        }
