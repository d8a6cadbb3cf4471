"""hapa-telemetry: OpenTelemetry logs, metrics and traces for FastAPI AI-inference backends.

Two lines::

    import hapa_telemetry
    hapa_telemetry.configure()
    hapa_telemetry.instrument_fastapi(app)
"""

from __future__ import annotations

from typing import Any

from hapa_telemetry.context import bind, bound, unbind
from hapa_telemetry.inference import inference
from hapa_telemetry.monitors import (
    APIMonitor,
    PerformanceMonitor,
    StructuredFormatter,
    StructuredLogger,
    get_prometheus_metrics,
    setup_logging,
)
from hapa_telemetry.runtime import Telemetry, __version__, configure
from hapa_telemetry.settings import Settings, SettingsError

__all__ = [
    "APIMonitor",
    "PerformanceMonitor",
    "Settings",
    "SettingsError",
    "StructuredFormatter",
    "StructuredLogger",
    "Telemetry",
    "__version__",
    "bind",
    "bound",
    "configure",
    "get_prometheus_metrics",
    "inference",
    "instrument_fastapi",
    "setup_logging",
    "unbind",
]


def instrument_fastapi(app: Any, **overrides: Any) -> Any:
    """Instrument a FastAPI app (idempotent): server spans, metrics, logs, /metrics, /health."""
    from hapa_telemetry.fastapi import instrument_fastapi as _instrument

    return _instrument(app, **overrides)
