"""FastAPI integration: ``instrument_fastapi(app)`` — idempotent, one server span source."""

from __future__ import annotations

from hapa_telemetry.fastapi.integration import instrument_fastapi
from hapa_telemetry.fastapi.middleware import TelemetryMiddleware, route_template

__all__ = ["TelemetryMiddleware", "instrument_fastapi", "route_template"]
