"""Opt-in: contrib's FastAPI instrumentation makes the server span; the package the rest.

For users who want upstream's span (``opentelemetry-instrumentation-fastapi``: its
``server_request_hook`` / client hooks, ``excluded_urls``, captured headers)::

    from hapa_telemetry.fastapi.contrib_span import instrument_fastapi_contrib

    instrument_fastapi_contrib(app, server_request_hook=tag_tenant, excluded_urls="/ping")

Still exactly one server span per request: contrib's middleware wraps the whole stack and
:func:`hapa_telemetry.instrument_fastapi` sees the app is contrib-instrumented, so the
package's middleware makes no span of its own and writes its lines, metrics, ``/metrics``
and ``/health`` inside contrib's span (same trace id). Contrib's HTTP metrics are switched
off (a no-op meter provider): the package records the seed's metrics. ``/metrics`` and
``/health`` are excluded from spans, like the package's own span does.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from hapa_telemetry import runtime
from hapa_telemetry.fastapi.integration import instrument_fastapi

Hook = Callable[..., None] | None


def instrument_fastapi_contrib(
    app: Any,
    *,
    server_request_hook: Hook = None,
    client_request_hook: Hook = None,
    client_response_hook: Hook = None,
    excluded_urls: str | Sequence[str] | None = None,
    http_capture_headers_server_request: list[str] | None = None,
    http_capture_headers_server_response: list[str] | None = None,
    exclude_spans: Sequence[str] = ("receive", "send"),
    **overrides: Any,
) -> Any:
    """Instrument ``app`` with contrib's server span, then the package (idempotent).

    ``excluded_urls``: contrib's regular expressions (a comma-separated string or a
    list), searched in the full URL, added to those of ``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS``
    (or ``OTEL_PYTHON_EXCLUDED_URLS``) and to ``/health`` and ``/metrics``.
    ``exclude_spans``: contrib's internal per-message ``receive``/``send`` spans, left
    out by default. ``overrides`` go to
    :func:`hapa_telemetry.configure` like :func:`hapa_telemetry.instrument_fastapi`'s.
    """
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.metrics import NoOpMeterProvider

    t = runtime.get() if not overrides else runtime.configure(**overrides)
    s = t.settings
    patterns = [re.escape(path) + "$" for path in (s.health_path, s.metrics_path)]
    # contrib reads its environment only when no excluded_urls are passed: keep its rule
    from_env = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS") or os.environ.get(
        "OTEL_PYTHON_EXCLUDED_URLS", ""
    )
    patterns += [p.strip() for p in from_env.split(",") if p.strip()]
    if isinstance(excluded_urls, str):
        patterns += [p.strip() for p in excluded_urls.split(",") if p.strip()]
    elif excluded_urls is not None:
        patterns += list(excluded_urls)
    FastAPIInstrumentor.instrument_app(
        app,
        server_request_hook=server_request_hook,
        client_request_hook=client_request_hook,
        client_response_hook=client_response_hook,
        # The global provider is looked up per request; a private one is passed.
        tracer_provider=None if t.global_providers else t.providers.tracer_provider,
        meter_provider=NoOpMeterProvider(),
        excluded_urls=",".join(patterns),
        http_capture_headers_server_request=http_capture_headers_server_request,
        http_capture_headers_server_response=http_capture_headers_server_response,
        exclude_spans=list(exclude_spans),  # type: ignore[arg-type]
    )
    return instrument_fastapi(app)
