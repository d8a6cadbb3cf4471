"""``configure()``: build everything once from one Settings object; idempotent.

Holds the process-wide :class:`Telemetry` handle. Telemetry must never break the app:
a failure while *configuring* is a clear error only for bad settings (which should stop
start-up); everything else degrades to a working, quieter setup.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry

from hapa_telemetry import _state
from hapa_telemetry._version import __version__
from hapa_telemetry.exporting import ExportHealth
from hapa_telemetry.instruments import Instruments
from hapa_telemetry.internal_errors import InternalErrors
from hapa_telemetry.livestats import LiveStats
from hapa_telemetry.logs.pipeline import HapaHandler, LogPipeline
from hapa_telemetry.providers import Providers, build_providers
from hapa_telemetry.resource import build_resource
from hapa_telemetry.settings import Settings


@dataclass
class Telemetry:
    """The configured telemetry of this process; returned by :func:`configure`."""

    settings: Settings
    providers: Providers
    instruments: Instruments
    pipeline: LogPipeline
    stats: LiveStats
    tracer: trace.Tracer
    handler: HapaHandler
    global_providers: bool = True
    metrics_registry: CollectorRegistry | None = None
    mirror: Any = None
    metrics_listener: Any = None  # exposition.MetricsListener when METRICS_PORT is set
    internal_errors: InternalErrors = field(default_factory=InternalErrors)
    _closed: bool = field(default=False, repr=False)

    def force_flush(self, timeout: float = 5.0) -> bool:
        """Write every queued log line and export every pending span/record/metric.

        Returns within about ``timeout`` seconds (False if something was left).
        """
        deadline = time.monotonic() + timeout
        ok = self.pipeline.flush(timeout)
        providers = self.providers
        result: list[bool] = []
        worker = threading.Thread(
            target=lambda: result.append(
                providers.force_flush(int(max(0.1, deadline - time.monotonic()) * 1000))
            ),
            name="hapa-flush",
            daemon=True,
        )
        worker.start()
        worker.join(max(0.1, deadline - time.monotonic()))
        return ok and bool(result) and result[0]

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush and stop writers and exporters, within ``timeout`` seconds (idempotent).

        Local log lines are written first. Exporters then get what is left of the time
        in a daemon thread: the SDK's batch processors do not bound their flush (each
        queued batch may wait for the exporter's own timeout), so a dead collector must
        not hold the process for minutes. When exports are failing, the flush is skipped.
        """
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        if self.metrics_listener is not None:
            self.metrics_listener.close()
        if self.mirror is not None:
            self.mirror.process_exit()
        self.pipeline.shutdown(max(0.5, timeout / 2))
        providers = self.providers

        def stop_exporters() -> None:
            if providers.health.healthy():
                providers.force_flush(int(max(0.1, deadline - time.monotonic()) * 1000))
            providers.shutdown()

        worker = threading.Thread(target=stop_exporters, name="hapa-shutdown", daemon=True)
        worker.start()
        worker.join(max(0.1, deadline - time.monotonic()))


_lock = threading.RLock()
_current: Telemetry | None = None


def current() -> Telemetry | None:
    """The configured Telemetry, or None before :func:`configure`."""
    return _current


def get() -> Telemetry:
    """The configured Telemetry, configuring from the environment on first use."""
    return _current if _current is not None else configure()


def configure(
    *,
    settings: Settings | None = None,
    environ: Mapping[str, str] | None = None,
    span_exporter: SpanExporter | None = None,
    log_exporter: LogRecordExporter | None = None,
    metric_readers: tuple[MetricReader, ...] = (),
    set_global: bool = True,
    log_stream: Any = None,
    **overrides: Any,
) -> Telemetry:
    """Set up traces, metrics and logs once; later calls return the same handle.

    Keyword arguments override environment variables (``LOG_LEVEL``, ``DEBUG``,
    ``OTEL_*``, …), which override defaults; see :class:`Settings`. Exporters and
    readers can be injected (tests use the SDK's in-memory ones).
    """
    global _current
    with _lock:
        if _current is not None and not _current._closed:
            return _current
        if settings is None:
            settings = Settings.load(environ, **overrides)
        elif overrides:
            raise TypeError("pass either settings= or keyword overrides, not both")
        for notice in settings.notices:  # e.g. the OTLP protocol chosen from the port
            sys.stderr.write(notice + "\n")
        resource = build_resource(settings)
        health = ExportHealth()
        providers = build_providers(
            settings,
            resource,
            health,
            span_exporter=span_exporter,
            log_exporter=log_exporter,
            metric_readers=metric_readers,
            set_global=set_global,
        )
        mirror = None
        registry = providers.registry
        if settings.multiprocess_dir:
            from hapa_telemetry.multiproc import PromMirror

            mirror = PromMirror(settings.multiprocess_dir)
        instruments = Instruments(
            providers.meter_provider.get_meter("hapa_telemetry", __version__),
            mirror=mirror,
            histograms=providers.histograms,
        )
        if mirror is not None and settings.enable_metrics:
            from hapa_telemetry.multiproc import exposition_registry

            registry = exposition_registry(
                settings.multiprocess_dir or "", instruments, resource.attributes
            )
        health._on_result = instruments.export_result
        pipeline = LogPipeline(settings, stream=log_stream)
        if providers.log_batcher is not None:
            pipeline.otel_batcher = providers.log_batcher
        elif providers.logger_provider is not None:
            pipeline.otel_logger = providers.logger_provider.get_logger(
                "hapa_telemetry", __version__
            )
        handler = install_logging(pipeline)
        telemetry = Telemetry(
            settings=settings,
            providers=providers,
            instruments=instruments,
            pipeline=pipeline,
            stats=LiveStats(),
            tracer=providers.tracer_provider.get_tracer("hapa_telemetry", __version__),
            handler=handler,
            global_providers=set_global,
            metrics_registry=registry,
            mirror=mirror,
        )
        pipeline.on_error = telemetry.internal_errors.report
        _current = telemetry
        if settings.enable_metrics and settings.metrics_port_explicit and settings.metrics_port:
            # Opened once the server's real port is known (never before: the server may
            # want that very port); see exposition.MetricsListener.
            from hapa_telemetry.exposition import MetricsListener

            telemetry.metrics_listener = MetricsListener(
                telemetry, settings.metrics_host, settings.metrics_port
            )
            telemetry.metrics_listener.start()
        if set_global:
            atexit.register(telemetry.shutdown)
            _flush_on_sigterm(telemetry)
        return telemetry


def _flush_on_sigterm(telemetry: Telemetry) -> None:
    """Flush telemetry when the process is ended by SIGTERM with the default action.

    uvicorn (0.29+) shuts down gracefully on SIGTERM and then re-raises the signal with
    the handler it found at start-up, so ``atexit`` never runs and the last queued lines
    would be lost. Installed only when nobody else handles SIGTERM.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
            return

        def on_sigterm(signum: int, frame: Any) -> None:
            try:
                telemetry.shutdown(3.0)
            finally:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGTERM, on_sigterm)
    except (ValueError, OSError):  # not the main interpreter / no signals here
        pass


def install_logging(pipeline: LogPipeline) -> HapaHandler:
    """Route root, uvicorn and fastapi loggers through one :class:`HapaHandler`.

    Replaces a handler installed earlier by this package (never adds a second one) and
    leaves other handlers of the root logger alone.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, HapaHandler)]:
        root.removeHandler(old)
        if old.pipeline is not pipeline:
            old.pipeline.shutdown(2.0)
    handler = HapaHandler(pipeline)
    root.addHandler(handler)
    root.setLevel(pipeline.settings.log_levelno)
    route_framework_loggers(pipeline.settings.log_access)
    return handler


def route_framework_loggers(log_access: bool | None = None) -> None:
    """Send uvicorn's, gunicorn's and fastapi's loggers to the root (our handler).

    ``log_access`` keeps uvicorn's access line; None: the configured ``LOG_ACCESS``.
    """
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "fastapi", "gunicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
        lg.setLevel(logging.NOTSET)
    # uvicorn's access line duplicates our request_end line (which carries the route
    # template, duration and trace context, with secrets redacted): off by default.
    if log_access is None:
        log_access = _current.settings.log_access if _current is not None else False
    if not log_access:
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    error_logger = logging.getLogger("uvicorn.error")
    if _drop_logged_asgi_exceptions not in error_logger.filters:
        error_logger.addFilter(_drop_logged_asgi_exceptions)


def _drop_logged_asgi_exceptions(record: logging.LogRecord) -> bool:
    """Drop uvicorn's 'Exception in ASGI application' when our error line has it."""
    exc = record.exc_info[1] if record.exc_info else None
    return not (exc is not None and getattr(exc, "__hapa_logged__", False))


def _reset() -> None:
    """Shut the current Telemetry down and forget it (``hapa_telemetry._state.reset``)."""
    global _current
    with _lock:
        if _current is not None:
            _current.shutdown(2.0)
            root = logging.getLogger()
            root.removeHandler(_current.handler)
        _current = None


_state.register(__name__, _reset)
