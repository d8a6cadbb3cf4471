"""Variant ``otel-instrument``: an app with no telemetry code, run under
``opentelemetry-instrument`` (opentelemetry-distro + contrib's FastAPI instrumentation)."""

from common import add_routes
from fastapi import FastAPI

app = add_routes(FastAPI())
