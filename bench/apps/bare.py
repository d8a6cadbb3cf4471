"""Variant ``bare``: FastAPI with no telemetry at all (the 1.0x reference)."""

from common import add_routes
from fastapi import FastAPI

app = add_routes(FastAPI())
