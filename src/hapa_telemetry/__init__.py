"""hapa-telemetry: OpenTelemetry logs, metrics and traces for FastAPI AI-inference backends.

Two lines::

    import hapa_telemetry
    hapa_telemetry.configure()
    hapa_telemetry.instrument_fastapi(app)

The public names are imported on first use, so tools that need none of the OTel SDK
(``hapa-telemetry logs``) start quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from hapa_telemetry._version import __version__

_EXPORTS = {
    "APIMonitor": "hapa_telemetry.monitors",
    "PerformanceMonitor": "hapa_telemetry.monitors",
    "StructuredFormatter": "hapa_telemetry.monitors",
    "StructuredLogger": "hapa_telemetry.monitors",
    "get_prometheus_metrics": "hapa_telemetry.monitors",
    "setup_logging": "hapa_telemetry.monitors",
    "Telemetry": "hapa_telemetry.runtime",
    "configure": "hapa_telemetry.runtime",
    "Settings": "hapa_telemetry.settings",
    "SettingsError": "hapa_telemetry.settings",
    "bind": "hapa_telemetry.context",
    "bound": "hapa_telemetry.context",
    "unbind": "hapa_telemetry.context",
    "inference": "hapa_telemetry.genai",
    "instrument_fastapi": "hapa_telemetry.fastapi",
}

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

if TYPE_CHECKING:
    from hapa_telemetry.context import bind, bound, unbind
    from hapa_telemetry.fastapi import instrument_fastapi
    from hapa_telemetry.genai import inference
    from hapa_telemetry.monitors import (
        APIMonitor,
        PerformanceMonitor,
        StructuredFormatter,
        StructuredLogger,
        get_prometheus_metrics,
        setup_logging,
    )
    from hapa_telemetry.runtime import Telemetry, configure
    from hapa_telemetry.settings import Settings, SettingsError


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hapa_telemetry' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
