"""Variants ``hapa-*``: this package's two lines; everything else comes from the env
(OTLP endpoint, sampler, log directory) that the bench sets per variant."""

from common import add_routes
from fastapi import FastAPI

import hapa_telemetry

hapa_telemetry.configure()
app = add_routes(FastAPI())
hapa_telemetry.instrument_fastapi(app)
