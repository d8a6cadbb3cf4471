"""The request path as a user meets it: every seed family from the first scrape, failures
inside telemetry that never reach the request, one builder for the request lines, and
contrib's FastAPI settings (excluded URLs, captured headers)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Harness
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from opentelemetry import propagate
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from prometheus_client.parser import text_string_to_metric_families

import hapa_telemetry
from hapa_telemetry import names, runtime
from hapa_telemetry.settings import Settings, SettingsError
from hapa_telemetry.testing import reset as reset_telemetry

SEED = {
    "api_requests": "counter",
    "api_request_duration_seconds": "histogram",
    "ai_inference_duration_seconds": "histogram",
    "active_connections": "gauge",
    "api_errors": "counter",
    "cache_hit_rate": "gauge",
}


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/api/v1/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return {"item_id": item_id}

    @app.get("/ping")
    async def ping() -> dict[str, Any]:
        return {"pong": True}

    @app.get("/headers")
    async def headers() -> Any:
        return JSONResponse(
            {}, headers={"X-Model-Version": "v7", "Set-Cookie": "sid=abc123", "X-Cost": "3"}
        )

    hapa_telemetry.instrument_fastapi(app)
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def ends(h: Harness) -> list[dict[str, Any]]:
    return [x for x in h.lines() if x.get("event_type") == "request_end"]


def server_spans(h: Harness) -> list[Any]:
    return [s for s in h.spans.get_finished_spans() if s.kind.name == "SERVER"]


# -- 9.4: the six families from the first scrape -------------------------------------------
async def test_first_scrape_of_a_fresh_app_shows_all_six_seed_families(harness: Harness) -> None:
    """Before any request or event: HELP/TYPE for all six, zero for the unlabeled gauges."""
    async with client(make_app()) as c:
        r = await c.get("/metrics")
    assert r.status_code == 200
    fams = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert {name: fams[name].type for name in SEED if name in fams} == SEED
    for name in ("active_connections", "cache_hit_rate"):
        assert [(s.name, s.value) for s in fams[name].samples] == [(name, 0.0)]
    for name in SEED:
        assert f"# HELP {name}" in r.text and f"# TYPE {name}" in r.text
    # and the real samples replace the placeholders once events happen
    async with client(make_app()) as c:
        await c.get("/api/v1/items/1")
        r = await c.get("/metrics", headers={"accept": "application/openmetrics-text"})
    assert r.text.count("# TYPE api_requests counter") == 1
    assert 'api_requests_total{endpoint="/api/v1/items/{item_id}"' in r.text


def test_otlp_path_has_the_unlabeled_families_from_the_first_collection(
    tmp_path: Path,
) -> None:
    """A reader attached at configure() sees active_connections and cache_hit_rate at once."""
    reset_telemetry()
    reader = InMemoryMetricReader()
    try:
        runtime.configure(set_global=False, log_directory=None, log_to_stdout=False,
                          metric_readers=(reader,))
        data = reader.get_metrics_data()
        assert data is not None
        found = {
            m.name: [p.value for p in m.data.data_points]
            for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
        }
        assert found[names.ACTIVE_CONNECTIONS] == [0]
        assert found[names.CACHE_HIT_RATE] == [0.0]
    finally:
        reset_telemetry()


# -- 9.6: failures inside telemetry never reach the request ---------------------------------
class _BrokenPropagator(TextMapPropagator):
    def extract(self, carrier: Any, context: Any = None, getter: Any = None) -> Any:
        raise RuntimeError("propagator exploded")

    def inject(self, carrier: Any, context: Any = None, setter: Any = None) -> None:
        raise RuntimeError("propagator exploded")

    @property
    def fields(self) -> set[str]:
        return {"traceparent"}


class _BrokenExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        raise RuntimeError("exporter exploded")


def _boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("injected failure")


@pytest.fixture
def stderr_reports(harness: Harness) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    harness.telemetry.internal_errors.stream = stream
    yield stream


@pytest.mark.parametrize(
    "part", ["propagator", "log handler", "writer", "exporter", "instrument", "everything"]
)
async def test_injected_failures_never_reach_the_request(
    harness: Harness, stderr_reports: io.StringIO, monkeypatch: pytest.MonkeyPatch, part: str
) -> None:
    """Whatever part of telemetry fails, the request answers normally (same status, body
    and request id), the failure is counted for /health and reported once with its
    traceback on stderr."""
    t = harness.telemetry
    if part in ("propagator", "everything"):
        monkeypatch.setattr(propagate, "_HTTP_TEXT_FORMAT", _BrokenPropagator())
    if part in ("log handler", "everything"):
        monkeypatch.setattr(t.pipeline.builder, "build_trusted", _boom)
        monkeypatch.setattr(t.pipeline.builder, "build_event", _boom)
    if part in ("writer", "everything"):
        monkeypatch.setattr(t.pipeline.writer, "submit", _boom)
    if part in ("exporter", "everything"):
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        t.providers.tracer_provider.add_span_processor(  # type: ignore[attr-defined]
            SimpleSpanProcessor(_BrokenExporter())
        )
    if part in ("instrument", "everything"):
        for name in ("request_started", "request_finished", "error"):
            monkeypatch.setattr(t.instruments, name, _boom)
    app = make_app()
    async with client(app) as c:
        for _ in range(3):
            r = await c.get(
                "/api/v1/items/9",
                headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                         "x-request-id": "req-1"},
            )
            assert r.status_code == 200 and r.json() == {"item_id": 9}
            assert r.headers["x-request-id"] == "req-1"
        health = (await c.get("/health")).json()
    telemetry = health["telemetry"]
    failures = sum(telemetry["internal_errors"].values()) + telemetry["log_errors"]
    if part != "exporter":  # the SDK itself catches and logs exporter exceptions
        assert failures >= 3
        report = stderr_reports.getvalue()
        assert "hapa-telemetry: internal error in" in report
        assert "Traceback (most recent call last)" in report
        assert "RuntimeError" in report
        # rate-limited: one report per place, not one per request
        places = [line for line in report.splitlines() if line.startswith("hapa-telemetry:")]
        assert len(places) == len(set(places))
        assert len(places) <= len(telemetry["internal_errors"]) + 1
    if part == "propagator":
        assert len(server_spans(harness)) == 3  # a new trace instead of none


async def test_a_failing_middleware_step_before_the_app_still_serves(
    harness: Harness, stderr_reports: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even the request-id and context steps failing leave the request untouched."""
    from hapa_telemetry import context

    monkeypatch.setattr(context, "sane_request_id", _boom)
    async with client(make_app()) as c:
        r = await c.get("/api/v1/items/3")
    assert r.status_code == 200 and r.json() == {"item_id": 3}
    assert harness.telemetry.internal_errors.total == 1
    assert "middleware (request start)" in stderr_reports.getvalue()


# -- 9.7: one builder for the request lines ---------------------------------------------------
async def test_api_monitor_and_middleware_write_the_same_request_lines(harness: Harness) -> None:
    """APIMonitor.log_request_* and the middleware produce the same fields, message format
    and duration rounding."""
    async with client(make_app()) as c:
        await c.get("/ping")
    mw_start, mw_end = [x for x in harness.lines() if x.get("endpoint") == "/ping"]
    monitor = hapa_telemetry.APIMonitor()
    monitor.log_request_start("GET", "/ping", client_ip="127.0.0.1")
    monitor.log_request_end("GET", "/ping", 200, 0.12345678, client_ip="127.0.0.1")
    lines = harness.lines()
    api_start = [x for x in lines if x.get("event_type") == "request_start"][-1]
    api_end = [x for x in lines if x.get("event_type") == "request_end"][-1]
    request_keys = ("method", "endpoint", "client_ip", "event_type")
    assert {k: api_start[k] for k in request_keys} == {k: mw_start[k] for k in request_keys}
    assert api_start["message"] == mw_start["message"] == "API request start: GET /ping"
    assert api_end["duration"] == 0.123457
    assert api_end["message"] == "API request end: GET /ping - 200 (0.1235s)"
    assert [k for k in mw_end if k in api_end] == [k for k in api_end if k in mw_end]
    assert round(mw_end["duration"], 6) == mw_end["duration"]


async def test_lines_nobody_reads_are_not_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no sink for INFO lines, the request lines are skipped entirely."""
    reset_telemetry()
    try:
        t = runtime.configure(set_global=False, log_directory=None, log_to_stdout=False)
        assert not t.pipeline.accepts(logging.INFO)
        monkeypatch.setattr(t.pipeline.builder, "build_trusted", _boom)
        async with client(make_app()) as c:
            assert (await c.get("/ping")).status_code == 200
        assert t.pipeline.errors == 0 and t.internal_errors.total == 0
    finally:
        reset_telemetry()


# -- 9.11: contrib's FastAPI settings ---------------------------------------------------------
def _configure(tmp_path: Path, **env: str) -> tuple[runtime.Telemetry, Harness]:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    reset_telemetry()
    spans, logs, stream = InMemorySpanExporter(), InMemoryLogRecordExporter(), io.StringIO()
    t = runtime.configure(
        settings=Settings.load(env, log_directory=str(tmp_path / "logs")),
        set_global=False, span_exporter=spans, log_exporter=logs, log_stream=stream,
    )
    return t, Harness(t, spans, logs, stream, tmp_path / "logs")


@pytest.mark.parametrize(
    ("env", "excluded"),
    [
        ({"OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "ping,items/7$"}, {"/ping", "/api/v1/items/7"}),
        ({"OTEL_PYTHON_EXCLUDED_URLS": "test/ping"}, {"/ping"}),  # host is part of the URL
        ({"OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "items", "OTEL_PYTHON_EXCLUDED_URLS": "ping"},
         {"/api/v1/items/7", "/api/v1/items/70"}),  # the FastAPI-specific one wins
    ],
)
async def test_excluded_urls_get_no_span_no_lines_no_counts(
    tmp_path: Path, env: dict[str, str], excluded: set[str]
) -> None:
    """Contrib's excluded-URL variables: matching requests are served but not recorded."""
    _t, h = _configure(tmp_path, **env)
    try:
        paths = ["/ping", "/api/v1/items/7", "/api/v1/items/70"]
        async with client(make_app()) as c:
            for path in paths:
                assert (await c.get(path + "?x=1")).status_code == 200
            metrics = (await c.get("/metrics")).text
        recorded = set(paths) - excluded
        assert {s.attributes["url.path"] for s in server_spans(h)} == recorded
        lines = [x for x in h.lines() if x.get("event_type", "").startswith("request_")]
        assert len(lines) == 2 * len(recorded)
        assert ("/ping" in {x["endpoint"] for x in lines}) == ("/ping" in recorded)
        n = sum(
            s.value for f in text_string_to_metric_families(metrics)
            if f.name == "api_requests" for s in f.samples if s.name == "api_requests_total"
        )
        assert n == len(recorded)
    finally:
        reset_telemetry()


async def test_captured_headers_become_span_attributes_redacted(tmp_path: Path) -> None:
    """Contrib's header-capture variables: lists of values, names lower-cased with _,
    full-match regexes, sanitized fields and the package's own redaction."""
    _t, h = _configure(
        tmp_path,
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST="x-tenant.*,Authorization,"
        "x-note,accept",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_RESPONSE="x-model-version,set-cookie,"
        "x-cost",
        OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS="tenant-secret,COST",
    )
    try:
        async with client(make_app()) as c:
            r = await c.get(
                "/headers",
                headers=[
                    ("X-Tenant-Id", "t1"), ("x-tenant-id", "t2"), ("x-tenant-secret", "s"),
                    ("authorization", "Bearer abcdefghijklmnop"),
                    ("x-note", "token=supersecretvalue123"), ("x-notes", "not captured"),
                    ("accept-language", "not captured either"),
                ],
            )
        assert r.status_code == 200
        attrs = dict(server_spans(h)[0].attributes)
        captured = {k: list(v) for k, v in attrs.items() if ".header." in k}
        assert captured == {
            "http.request.header.x_tenant_id": ["t1", "t2"],
            "http.request.header.x_tenant_secret": ["[REDACTED]"],
            "http.request.header.authorization": ["[REDACTED]"],
            "http.request.header.x_note": ["token=[REDACTED]"],
            "http.request.header.accept": ["*/*"],
            "http.response.header.x_model_version": ["v7"],
            "http.response.header.set_cookie": ["[REDACTED]"],
            "http.response.header.x_cost": ["[REDACTED]"],
        }
    finally:
        reset_telemetry()


def test_contrib_settings_are_validated() -> None:
    """A bad regular expression in contrib's variables stops start-up with a clear error."""
    with pytest.raises(SettingsError, match="OTEL_PYTHON_FASTAPI_EXCLUDED_URLS"):
        Settings.load({"OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "ok,(unclosed"})
    with pytest.raises(SettingsError, match="CAPTURE_HEADERS_SERVER_REQUEST"):
        Settings.load({"OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST": "["})
    s = Settings.load({"OTEL_PYTHON_EXCLUDED_URLS": " a , b ,"})
    assert s.excluded_urls == ("a", "b")


def test_only_an_explicit_metrics_port_may_get_a_listener() -> None:
    """Unset METRICS_PORT keeps the seed's "app's own port" (no listener); set by the
    environment or by configure(metrics_port=...), it is explicit."""
    assert Settings.load({}).metrics_port_explicit is False
    assert Settings.load({"METRICS_PORT": "8000"}).metrics_port_explicit is True
    assert Settings.load({}, metrics_port=9100).metrics_port_explicit is True


async def test_a_custom_sampler_still_sees_the_request_attributes(harness: Harness) -> None:
    """The span's request attributes are given at creation, so a sampler can decide on
    them (semantic conventions: sampling-relevant attributes)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    seen: list[dict[str, Any]] = []

    class OnlyItems(Sampler):
        def should_sample(self, parent_context: Any, trace_id: int, name: str,
                          kind: Any = None, attributes: Any = None, links: Any = None,
                          trace_state: Any = None) -> SamplingResult:
            seen.append(dict(attributes or {}))
            keep = str((attributes or {}).get("url.path", "")).startswith("/api/")
            decision = Decision.RECORD_AND_SAMPLE if keep else Decision.DROP
            return SamplingResult(decision, attributes)  # as the SDK's samplers do

        def get_description(self) -> str:
            return "only /api/"

    provider = TracerProvider(sampler=OnlyItems())
    provider.add_span_processor(SimpleSpanProcessor(harness.spans))
    harness.telemetry.tracer = provider.get_tracer("test")
    async with client(make_app()) as c:
        await c.get("/api/v1/items/5")
        await c.get("/ping")
    assert [s["url.path"] for s in seen] == ["/api/v1/items/5", "/ping"]
    assert seen[0]["http.request.method"] == "GET" and seen[0]["url.scheme"] == "http"
    spans = server_spans(harness)
    assert [s.attributes["url.path"] for s in spans] == ["/api/v1/items/5"]
    assert spans[0].attributes["http.route"] == "/api/v1/items/{item_id}"


async def test_with_no_span_processor_the_server_span_is_context_only(tmp_path: Path) -> None:
    """Embedded default (no traces endpoint, no exporter): nothing would receive the
    server span, so none is recorded — but the request still gets the ids and sampling
    decision the SDK would give it: its lines carry them, an incoming traceparent is
    continued (and its not-sampled flag kept), and a span processor added later gets
    recorded server spans from the next request on."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    reset_telemetry()
    try:
        stream = io.StringIO()
        t = runtime.configure(
            settings=Settings.load({}, log_directory=str(tmp_path / "logs")),
            set_global=False, log_stream=stream,
        )
        h = Harness(t, InMemorySpanExporter(), None, stream, tmp_path / "logs")  # type: ignore[arg-type]
        remote = "0af7651916cd43dd8448eb211c80319c"
        started: list[str] = []
        real_start = t.tracer.start_span
        t.tracer.start_span = lambda *a, **k: started.append(a[0]) or real_start(*a, **k)  # type: ignore[method-assign]
        async with client(make_app()) as c:
            assert (await c.get("/ping")).status_code == 200
            await c.get("/ping", headers={"traceparent": f"00-{remote}-b7ad6b7169203331-00"})
            assert started == []  # no SDK span made while nothing would receive it
            t.providers.tracer_provider.add_span_processor(  # type: ignore[attr-defined]
                SimpleSpanProcessor(h.spans))
            await c.get("/api/v1/items/3")
        t.pipeline.flush(5.0)
        first, continued, observed = ends(h)
        assert len(first["trace_id"]) == 32 and first["trace_flags"] == "03"  # sampled, random
        assert continued["trace_id"] == remote and continued["trace_flags"] == "00"
        assert continued["span_id"] != "b7ad6b7169203331"
        spans = server_spans(h)
        assert len(spans) == 1 and spans[0].attributes["url.path"] == "/api/v1/items/3"
        assert format(spans[0].context.trace_id, "032x") == observed["trace_id"]
    finally:
        reset_telemetry()
