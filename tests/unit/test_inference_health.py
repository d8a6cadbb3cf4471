"""The inference helper's span/metric/log, and /health's codes and structure."""

from __future__ import annotations

import time

import httpx
import pytest
from conftest import Harness
from fastapi import FastAPI

import hapa_telemetry
from hapa_telemetry import names, runtime
from hapa_telemetry.testing import reset as reset_telemetry


def test_inference_span_has_genai_attributes_and_uncached_duration(harness: Harness) -> None:
    """An inference opens a GenAI span, records the histogram unless cached, logs the line."""
    with hapa_telemetry.inference(model="codegen", prompt="abc") as call:
        call.response_length = 10
        call.usage(input_tokens=3, output_tokens=7)
    with hapa_telemetry.inference(model="codegen", prompt="abc") as call:
        call.cached = True
    spans = [s for s in harness.spans.get_finished_spans() if s.name == "text_completion codegen"]
    assert len(spans) == 2
    attrs = spans[0].attributes or {}
    assert attrs["gen_ai.operation.name"] == "text_completion"
    assert attrs["gen_ai.request.model"] == "codegen"
    assert attrs["gen_ai.usage.input_tokens"] == 3 and attrs["gen_ai.usage.output_tokens"] == 7
    assert harness.sample(names.AI_INFERENCE_DURATION_SECONDS, "_count", model="codegen") == 1
    lines = [x for x in harness.lines() if x.get("event_type") == "ai_inference"]
    assert [x["cached"] for x in lines] == [False, True]
    assert lines[0]["prompt_length"] == 3 and lines[0]["response_length"] == 10
    assert lines[0]["trace_id"] == format(spans[0].context.trace_id, "032x")


async def test_inference_decorator_and_errors(harness: Harness) -> None:
    """As a decorator it times each call; an exception marks the span and propagates."""

    @hapa_telemetry.inference(model="m")
    async def call() -> str:
        return "ok"

    @hapa_telemetry.inference(model="m")
    def broken() -> None:
        raise TimeoutError("slow model")

    assert await call() == "ok"
    with pytest.raises(TimeoutError):
        broken()
    spans = harness.spans.get_finished_spans()
    assert spans[-1].status.status_code.name == "ERROR"
    assert harness.sample(names.AI_INFERENCE_DURATION_SECONDS, "_count", model="m") == 1


def _app() -> FastAPI:
    app = FastAPI()
    hapa_telemetry.instrument_fastapi(app)
    return app


async def test_health_endpoint_structure_and_200(harness: Harness) -> None:
    """/health has the seed's structure and answers 200 when healthy."""
    reset_telemetry()
    runtime.configure(set_global=False, log_directory=None, log_to_stdout=False,
                      cpu_threshold=100.0, memory_threshold=100.0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app()), base_url="http://t"
    ) as c:
        r = await c.get("/health")
    body = r.json()
    assert r.status_code == 200 and body["status"] == "healthy"
    assert set(body["system"]) == {"cpu_percent", "memory_percent", "disk_percent"}
    assert {"requests_per_minute", "average_response_time", "error_rate", "cache_hit_rate"} <= set(
        body["application"]
    )
    assert set(body["checks"]) == {"high_cpu", "high_memory", "high_error_rate"}
    assert 0.0 <= body["system"]["cpu_percent"] <= 100.0


async def test_health_503_when_a_threshold_is_crossed(harness: Harness) -> None:
    """A crossed threshold makes /health answer 503 with the failing check true."""
    reset_telemetry()
    runtime.configure(set_global=False, log_directory=None, log_to_stdout=False,
                      memory_threshold=0.0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app()), base_url="http://t"
    ) as c:
        r = await c.get("/health")
    assert r.status_code == 503 and r.json()["checks"]["high_memory"] is True


async def test_metrics_disabled_and_token(harness: Harness) -> None:
    """ENABLE_METRICS=False removes /metrics; METRICS_TOKEN demands a bearer token."""
    reset_telemetry()
    runtime.configure(set_global=False, log_directory=None, log_to_stdout=False,
                      enable_metrics=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app()), base_url="http://t"
    ) as c:
        assert (await c.get("/metrics")).status_code == 404
    reset_telemetry()
    runtime.configure(set_global=False, log_directory=None, log_to_stdout=False,
                      metrics_token="s3cret")
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app()), base_url="http://t"
    ) as c:
        assert (await c.get("/metrics")).status_code == 401
        wrong = await c.get("/metrics", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = await c.get("/metrics", headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and "target_info" in ok.text


def test_metrics_port_without_an_app_gets_its_own_listener(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process with no instrumented app (a worker, a script) gets METRICS_PORT=<other>
    as its own listener once the grace period for an app has passed, with the token rule;
    an unset METRICS_PORT (the seed's "app's own port") never gets one."""
    import socket

    from hapa_telemetry import exposition
    from hapa_telemetry.exposition import MetricsListener

    assert harness.telemetry.metrics_listener is None  # METRICS_PORT unset
    monkeypatch.setattr(exposition, "_SERVER_MODULES", ())  # pytest may have imported one

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    reset_telemetry()
    t = runtime.configure(set_global=False, log_directory=None, log_to_stdout=False,
                          metrics_port=port, metrics_host="127.0.0.1", metrics_token="t0k")
    assert t.metrics_listener is not None and t.metrics_listener.server is None  # not yet
    t.metrics_listener.close()
    t.metrics_listener = MetricsListener(t, "127.0.0.1", port, grace=0.05)
    t.metrics_listener.start()
    deadline = time.monotonic() + 10
    while t.metrics_listener.server is None and time.monotonic() < deadline:
        time.sleep(0.02)
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"authorization": "Bearer t0k"})
    assert r.status_code == 200 and "system_cpu_percent" in r.text
    assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 401
    reset_telemetry()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics")
