"""The FastAPI path: request lines, trace context, request ids, metrics, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from conftest import Harness
from fastapi import FastAPI, Request

import hapa_telemetry
from hapa_telemetry import names
from hapa_telemetry.testing import reset as reset_telemetry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        hapa_telemetry.StructuredLogger("handler").info("looking up", item_id=item_id)
        return {"item_id": item_id}

    @app.get("/boom")
    async def boom() -> dict[str, Any]:
        raise KeyError("missing")

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        hapa_telemetry.bind(user_id=request.query_params.get("u", "anon"))
        hapa_telemetry.StructuredLogger("handler").info("after bind")
        return {}

    @app.get("/slow")
    async def slow() -> dict[str, Any]:
        await asyncio.sleep(10)
        return {}

    @app.get("/teapot")
    async def teapot() -> Any:
        from fastapi.responses import JSONResponse

        return JSONResponse({"x": 1}, status_code=503)

    hapa_telemetry.instrument_fastapi(app)
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def events(h: Harness, event_type: str) -> list[dict[str, Any]]:
    return [line for line in h.lines() if line.get("event_type") == event_type]


async def test_request_start_and_end_lines_carry_template_status_duration_and_trace(
    harness: Harness,
) -> None:
    """Each request writes request_start and request_end with the route template and trace ids."""
    async with client(make_app()) as c:
        r = await c.get("/api/v1/items/42", headers={"traceparent": PARENT})
    assert r.status_code == 200
    start = events(harness, "request_start")[0]
    end = events(harness, "request_end")[0]
    for line in (start, end):
        assert line["endpoint"] == "/api/v1/items/{item_id}"
        assert line["method"] == "GET"
        assert line["trace_id"] == TRACE_ID
        assert len(line["span_id"]) == 16
        assert line["request_id"] == r.headers["x-request-id"]
    assert end["status_code"] == 200
    assert 0 <= end["duration"] < 5
    handler_line = [x for x in harness.lines() if x["message"] == "looking up"][0]
    assert handler_line["trace_id"] == TRACE_ID and handler_line["item_id"] == 42
    spans = harness.spans.get_finished_spans()
    server = [s for s in spans if s.kind.name == "SERVER"]
    assert len(server) == 1
    assert format(server[0].context.trace_id, "032x") == TRACE_ID
    assert server[0].attributes["http.route"] == "/api/v1/items/{item_id}"


async def test_json_line_field_order_matches_spec(harness: Harness) -> None:
    """The production line starts with the SPEC's fields in the SPEC's order."""
    async with client(make_app()) as c:
        await c.get("/api/v1/items/1")
    line = events(harness, "request_end")[0]
    keys = list(line)
    assert keys[:9] == [
        "timestamp", "level", "logger", "message", "module", "function", "line",
        "service", "environment",
    ]
    assert keys[-3:] == ["trace_id", "span_id", "trace_flags"]
    assert line["service"] == "hapa-backend" and line["environment"] == "production"


async def test_request_id_kept_when_sane_and_replaced_when_not(harness: Harness) -> None:
    """A sane X-Request-ID is kept and echoed; an unsafe one is replaced by a fresh id."""
    async with client(make_app()) as c:
        good = await c.get("/api/v1/items/1", headers={"x-request-id": "req-123.abc"})
        bad = await c.get("/api/v1/items/1", headers={"x-request-id": "a b\"<script>" * 20})
    assert good.headers["x-request-id"] == "req-123.abc"
    assert bad.headers["x-request-id"] != "a b\"<script>" * 20
    assert len(bad.headers["x-request-id"]) == 32
    ids = {line["request_id"] for line in events(harness, "request_end")}
    assert ids == {"req-123.abc", bad.headers["x-request-id"]}


async def test_bound_fields_reach_later_lines_and_do_not_leak(harness: Harness) -> None:
    """bind(user_id=...) adds the field to later lines of that request only."""
    async with client(make_app()) as c:
        await c.get("/whoami?u=u1")
        await c.get("/api/v1/items/7")
    after = [x for x in harness.lines() if x["message"] == "after bind"][0]
    assert after["user_id"] == "u1"
    ends = events(harness, "request_end")
    assert ends[0]["user_id"] == "u1"
    assert "user_id" not in ends[1]
    server = [s for s in harness.spans.get_finished_spans() if s.kind.name == "SERVER"]
    assert server[0].attributes.get("enduser.id") == "u1"


async def test_unhandled_exception_is_500_logged_counted_and_server_keeps_serving(
    harness: Harness,
) -> None:
    """An exception gives the client a 500, an error line with stack, and an error count."""
    async with client(make_app()) as c:
        r = await c.get("/boom")
        ok = await c.get("/api/v1/items/3")
    assert r.status_code == 500 and ok.status_code == 200
    err = events(harness, "error")[0]
    assert err["error_type"] == "KeyError"
    assert "missing" in err["error_message"]
    assert "Traceback" in err["exception"] and "boom" in err["exception"]
    assert err["endpoint"] == "/boom" and err["level"] == "ERROR"
    assert harness.sample(names.API_ERRORS_TOTAL, error_type="KeyError") == 1
    assert harness.sample(names.API_REQUESTS_TOTAL, endpoint="/boom", status="500") == 1
    assert harness.sample(names.ACTIVE_CONNECTIONS) == 0


async def test_5xx_without_exception_counts_as_request_not_error(harness: Harness) -> None:
    """A 503 returned by a handler counts in api_requests_total{status="503"} only."""
    async with client(make_app()) as c:
        await c.get("/teapot")
    assert harness.sample(names.API_REQUESTS_TOTAL, endpoint="/teapot", status="503") == 1
    assert harness.sample(names.API_ERRORS_TOTAL) is None


async def test_active_connections_returns_to_zero_after_cancellation(harness: Harness) -> None:
    """A request cancelled mid-flight (client gone, timeout) does not leak active_connections."""
    app = make_app()
    async with client(make_app()) as c:
        await c.get("/api/v1/items/1")
    async with client(app) as c:
        task = asyncio.create_task(c.get("/slow"))
        await asyncio.sleep(0.2)
        assert harness.sample(names.ACTIVE_CONNECTIONS) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert harness.sample(names.ACTIVE_CONNECTIONS) == 0
    end = [e for e in events(harness, "request_end") if e["endpoint"] == "/slow"][0]
    assert end["status_code"] == 499


async def test_ten_thousand_unknown_paths_add_one_label_value(harness: Harness) -> None:
    """Unknown paths fold into one endpoint label value; odd methods into _OTHER."""
    app = make_app()
    async with client(app) as c:
        for i in range(10_000):
            await c.get(f"/no/such/path/{i}")
        await c.request("FOO", "/api/v1/items/1")
    fam = harness.metrics()[names.API_REQUESTS_TOTAL]
    endpoints = {s.labels["endpoint"] for s in fam.samples}
    assert endpoints == {"<unmatched>", "/api/v1/items/{item_id}"}
    methods = {s.labels["method"] for s in fam.samples}
    assert methods == {"GET", "_OTHER"}


async def test_metrics_endpoint_exposes_exactly_the_seed_families(harness: Harness) -> None:
    """/metrics has the six seed families, the system gauges, target_info and the GenAI
    families of what was recorded (an uncached inference) — nothing else."""
    app = make_app()
    async with client(app) as c:
        await c.get("/api/v1/items/1")
        await c.get("/boom")
        with hapa_telemetry.inference(model="m") as call:
            call.cached = False
        hapa_telemetry.APIMonitor().log_cache_metrics(0.25, 10)
        r = await c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    from prometheus_client.parser import text_string_to_metric_families

    fams = {f.name: f.type for f in text_string_to_metric_families(r.text)}
    expected = {
        "api_requests": "counter",
        "api_request_duration_seconds": "histogram",
        "ai_inference_duration_seconds": "histogram",
        "active_connections": "gauge",
        "api_errors": "counter",
        "cache_hit_rate": "gauge",
        "system_cpu_percent": "gauge",
        "system_memory_percent": "gauge",
        "system_disk_percent": "gauge",
        "target_info": "gauge",
        "gen_ai_client_operation_duration_seconds": "histogram",
        "ai_inference_cache_lookups": "counter",
    }
    assert fams == expected
    assert "api_requests_total{" in r.text and "api_errors_total{" in r.text
    assert harness.sample(names.CACHE_HIT_RATE) == 25.0


async def test_histogram_buckets_are_seconds(harness: Harness) -> None:
    """Request durations land in second-scale buckets, so a 2 s p95 alert can fire."""
    async with client(make_app()) as c:
        await c.get("/api/v1/items/1")
    fam = harness.metrics()[names.API_REQUEST_DURATION_SECONDS]
    les = {s.labels["le"] for s in fam.samples if s.name.endswith("_bucket")}
    assert {"0.005", "0.1", "1.0", "2.0", "5.0", "+Inf"} <= les
    assert "10000.0" not in les


async def test_openmetrics_when_asked(harness: Harness) -> None:
    """A scraper asking for OpenMetrics gets it."""
    async with client(make_app()) as c:
        r = await c.get(
            "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
        )
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")


async def test_metrics_and_health_requests_are_not_counted(harness: Harness) -> None:
    """Scrapes of /metrics and /health do not inflate the request metrics."""
    async with client(make_app()) as c:
        await c.get("/metrics")
        await c.get("/health")
    assert harness.sample(names.API_REQUESTS_TOTAL) is None


async def test_instrument_twice_is_harmless(harness: Harness) -> None:
    """instrument_fastapi twice gives one span, one count and one line per request."""
    app = make_app()
    hapa_telemetry.instrument_fastapi(app)
    async with client(app) as c:
        await c.get("/api/v1/items/5")
    assert harness.sample(
        names.API_REQUESTS_TOTAL, endpoint="/api/v1/items/{item_id}", status="200"
    ) == 1
    assert len(events(harness, "request_end")) == 1
    assert len([s for s in harness.spans.get_finished_spans() if s.kind.name == "SERVER"]) == 1
    async with client(app) as c:
        body = (await c.get("/metrics")).text
    assert body.count("# TYPE api_requests_total counter") == 1


async def test_app_routes_for_metrics_and_health_win(harness: Harness) -> None:
    """An app that defines its own /health (even after instrumenting) keeps it."""
    app = make_app()

    @app.get("/health")
    async def own_health() -> dict[str, str]:
        return {"mine": "yes"}

    async with client(app) as c:
        assert (await c.get("/health")).json() == {"mine": "yes"}
        assert (await c.get("/metrics")).status_code == 200


async def test_server_span_follows_http_semantic_conventions(harness: Harness) -> None:
    """One SERVER span per request, named by route, with status and error recorded."""
    async with client(make_app()) as c:
        await c.get("/api/v1/items/3?x=1")
        await c.get("/boom")
        await c.get("/nowhere")
    spans = {s.name: s for s in harness.spans.get_finished_spans() if s.kind.name == "SERVER"}
    assert set(spans) == {"GET /api/v1/items/{item_id}", "GET /boom", "GET"}
    ok = spans["GET /api/v1/items/{item_id}"].attributes or {}
    assert ok["http.request.method"] == "GET" and ok["http.response.status_code"] == 200
    assert ok["url.path"] == "/api/v1/items/3" and ok["http.route"] == "/api/v1/items/{item_id}"
    boom = spans["GET /boom"]
    assert boom.status.status_code.name == "ERROR"
    assert (boom.attributes or {})["error.type"] == "KeyError"
    assert any(e.name == "exception" for e in boom.events)
    assert (spans["GET"].attributes or {})["http.response.status_code"] == 404


async def test_operation_spans_use_fastapi_native_telemetry(harness: Harness) -> None:
    """With operation spans wanted, FastAPI's native telemetry makes the server span
    (and its operation spans) and the package makes none of its own."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from hapa_telemetry import runtime

    reset_telemetry()
    spans = InMemorySpanExporter()
    runtime.configure(set_global=False, span_exporter=spans, log_directory=None,
                      log_to_stdout=False, operation_spans=True)
    async with client(make_app()) as c:
        assert (await c.get("/api/v1/items/4")).status_code == 200
    finished = spans.get_finished_spans()
    server = [s for s in finished if s.kind.name == "SERVER"]
    assert len(server) == 1
    assert server[0].instrumentation_scope.name == "fastapi"
    assert len(finished) > 1  # operation spans too
