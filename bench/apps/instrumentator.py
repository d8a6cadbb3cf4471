"""Variant ``instrumentator``: prometheus-fastapi-instrumentator's defaults + /metrics."""

from common import add_routes
from fastapi import FastAPI
from prometheus_fastapi_instrumentator import Instrumentator

app = add_routes(FastAPI())
Instrumentator().instrument(app).expose(app)
