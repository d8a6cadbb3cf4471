"""Variant ``hapa-contrib``: this package with contrib's OpenTelemetryMiddleware owning the
server span (as under ``opentelemetry-instrument``) instead of FastAPI's native telemetry."""

from common import add_routes
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.metrics import NoOpMeterProvider

import hapa_telemetry

t = hapa_telemetry.configure()
app = add_routes(FastAPI())
FastAPIInstrumentor.instrument_app(
    app,
    tracer_provider=t.providers.tracer_provider,
    meter_provider=NoOpMeterProvider(),
    excluded_urls="/metrics,/health",
)
hapa_telemetry.instrument_fastapi(app)
