"""Opt-in server span from contrib's FastAPI instrumentation (hooks, excluded URLs)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.trace import SpanKind

from hapa_telemetry.fastapi.contrib_span import instrument_fastapi_contrib
from hapa_telemetry.testing import Capture

ROUTE = "/items/{item_id}"


def _app() -> FastAPI:
    app = FastAPI()

    @app.get(ROUTE)
    async def item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.get("/ping")
    async def ping() -> str:
        return "pong"

    return app


def test_contrib_makes_the_one_server_span_with_the_users_hook(hapa_capture: Capture) -> None:
    """One server span per request, made by contrib, tagged by the user's hook; the
    package's request_end line carries that span's trace id and the seed metric counts."""
    paths: list[str] = []

    def hook(span: Any, scope: dict[str, Any]) -> None:
        span.set_attribute("app.tenant", "t1")
        paths.append(scope["path"])

    app = instrument_fastapi_contrib(_app(), server_request_hook=hook)
    assert TestClient(app).get("/items/3").status_code == 200
    server = [s for s in hapa_capture.spans() if s.kind is SpanKind.SERVER]
    assert len(server) == 1
    span = server[0]
    assert span.name == f"GET {ROUTE}"
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "opentelemetry.instrumentation.fastapi"
    assert span.attributes is not None and span.attributes["app.tenant"] == "t1"
    assert paths == ["/items/3"]
    (end,) = hapa_capture.lines(event_type="request_end", endpoint=ROUTE)
    assert end["trace_id"] == format(span.context.trace_id, "032x")
    assert hapa_capture.metric("api_requests_total", endpoint=ROUTE, status="200") == 1


def test_excluded_urls_and_health_get_no_span_but_are_still_served(
    hapa_capture: Capture,
) -> None:
    """excluded_urls, /health and /metrics make no span; the package still answers them
    and still logs the excluded route's request."""
    app = instrument_fastapi_contrib(_app(), excluded_urls="/ping$")
    client = TestClient(app)
    assert client.get("/ping").status_code == 200
    assert client.get("/health").status_code in (200, 503)
    assert client.get("/metrics").status_code == 200
    assert hapa_capture.spans() == []
    assert hapa_capture.lines(event_type="request_end", endpoint="/ping")


def test_contribs_excluded_urls_environment_variable_still_applies(
    hapa_capture: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OTEL_PYTHON_FASTAPI_EXCLUDED_URLS (contrib's own setting) excludes routes too."""
    monkeypatch.setenv("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", "/ping")
    client = TestClient(instrument_fastapi_contrib(_app()))
    client.get("/ping")
    client.get("/items/2")
    assert [s.name for s in hapa_capture.spans()] == [f"GET {ROUTE}"]


def test_contrib_http_metrics_stay_off_and_a_second_call_changes_nothing(
    hapa_capture: Capture,
) -> None:
    """Contrib records no HTTP metrics of its own (only the package's families exist),
    and instrumenting twice keeps one span per request."""
    app = instrument_fastapi_contrib(_app())
    instrument_fastapi_contrib(app)
    TestClient(app).get("/items/1")
    assert len([s for s in hapa_capture.spans() if s.kind is SpanKind.SERVER]) == 1
    metrics = hapa_capture.metric_reader.get_metrics_data()
    assert metrics is not None
    recorded = {m.name for rm in metrics.resource_metrics for sm in rm.scope_metrics
                for m in sm.metrics}
    assert not [name for name in recorded if name.startswith("http.")]
