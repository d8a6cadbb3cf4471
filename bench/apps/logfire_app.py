"""Variant ``logfire``: Logfire's ``instrument_fastapi`` with ``send_to_logfire=False``
(its other defaults kept, including its console output, which the bench sends to
/dev/null like every variant's stdout)."""

import logfire
from common import add_routes
from fastapi import FastAPI

logfire.configure(send_to_logfire=False, service_name="bench")
app = add_routes(FastAPI())
logfire.instrument_fastapi(app)
