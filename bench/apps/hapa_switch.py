"""Variant ``hapa-switch`` (experiment): as ``hapa.py`` with the interpreter's GIL switch
interval cut from 5 ms to 0.5 ms, to see how much of the p99 is the event loop waiting
for the GIL while an exporter thread encodes a batch."""

import sys

from common import add_routes
from fastapi import FastAPI

import hapa_telemetry

sys.setswitchinterval(0.0005)
hapa_telemetry.configure()
app = add_routes(FastAPI())
hapa_telemetry.instrument_fastapi(app)
