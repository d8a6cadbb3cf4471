"""Exemplars: a sampled request's trace and span id on the bucket it fell in (/metrics)."""

from __future__ import annotations

from typing import Any

from conftest import Harness
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from test_http import PARENT, TRACE_ID, client, events, make_app

import hapa_telemetry
from hapa_telemetry import names

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


async def _scrape(app: Any, accept: str | None) -> tuple[str, str]:
    headers = {"accept": accept} if accept else {}
    async with client(app) as c:
        r = await c.get("/metrics", headers=headers)
    return r.headers["content-type"], r.text


def _exemplars(text: str, family: str) -> list[tuple[dict[str, str], Any]]:
    out = []
    for fam in text_string_to_metric_families(text):
        if fam.name == family:
            out += [(s.labels, s.exemplar) for s in fam.samples if s.exemplar is not None]
    return out


async def test_openmetrics_scrape_has_the_request_trace_on_its_bucket(harness: Harness) -> None:
    """A traced request's trace and server-span id appear as the exemplar of the bucket
    its duration fell in, on the OpenMetrics scrape; the line has the same trace id."""
    app = make_app()
    async with client(app) as c:
        await c.get("/api/v1/items/1", headers={"traceparent": PARENT})
    _, text = await _scrape(app, OPENMETRICS)
    found = _exemplars(text, names.API_REQUEST_DURATION_SECONDS)
    assert len(found) == 1, text
    labels, exemplar = found[0]
    assert labels["endpoint"] == "/api/v1/items/{item_id}"
    assert exemplar.labels["trace_id"] == TRACE_ID
    server = [s for s in harness.spans.get_finished_spans() if s.kind.name == "SERVER"][0]
    assert exemplar.labels["span_id"] == format(server.context.span_id, "016x")
    line = events(harness, "request_end")[0]
    assert line["trace_id"] == TRACE_ID
    assert abs(exemplar.value - line["duration"]) < 1e-3
    le = float(labels["le"])
    assert exemplar.value <= le
    lower = [b for b in names.REQUEST_DURATION_BUCKETS if b < le]
    assert not lower or exemplar.value > max(lower)  # the bucket it fell in, not a later one


async def test_plain_text_scrape_is_unchanged(harness: Harness) -> None:
    """Without the OpenMetrics Accept header, /metrics stays Prometheus text 0.0.4 with
    no exemplar syntax at all."""
    app = make_app()
    async with client(app) as c:
        await c.get("/api/v1/items/1", headers={"traceparent": PARENT})
    content_type, text = await _scrape(app, None)
    assert content_type.startswith("text/plain")
    assert TRACE_ID not in text and " # {" not in text


async def test_unsampled_requests_leave_no_exemplar(harness: Harness) -> None:
    """A request whose trace was not sampled (flags 00) gets no exemplar: the filter is
    trace-based, so nothing points at a trace that was never recorded."""
    app = make_app()
    async with client(app) as c:
        await c.get("/api/v1/items/1", headers={"traceparent": PARENT[:-2] + "00"})
    _, text = await _scrape(app, OPENMETRICS)
    assert _exemplars(text, names.API_REQUEST_DURATION_SECONDS) == []


async def test_exemplar_is_kept_across_scrapes_and_replaced_by_newer(harness: Harness) -> None:
    """The newest exemplar per bucket stays on later scrapes (cumulative histogram) until
    a newer request in the same bucket replaces it."""
    app = make_app()
    other = "0af7651916cd43dd8448eb211c80319c"
    async with client(app) as c:
        await c.get("/api/v1/items/1", headers={"traceparent": PARENT})
    await _scrape(app, OPENMETRICS)
    _, text = await _scrape(app, OPENMETRICS)
    assert [e.labels["trace_id"] for _, e in _exemplars(
        text, names.API_REQUEST_DURATION_SECONDS)] == [TRACE_ID]
    async with client(app) as c:
        await c.get("/api/v1/items/2", headers={"traceparent": f"00-{other}-00f067aa0ba902b7-01"})
    _, text = await _scrape(app, OPENMETRICS)
    ids = {e.labels["trace_id"] for _, e in _exemplars(text, names.API_REQUEST_DURATION_SECONDS)}
    assert other in ids


async def test_inference_histogram_carries_the_inference_span(harness: Harness) -> None:
    """An uncached inference inside a traced request puts its own span's ids on the
    ai_inference_duration_seconds bucket."""
    with hapa_telemetry.inference(model="m1", prompt="p") as call:
        call.response_length = 1
    app = make_app()
    _, text = await _scrape(app, OPENMETRICS)
    found = _exemplars(text, names.AI_INFERENCE_DURATION_SECONDS)
    span = [
        s for s in harness.spans.get_finished_spans()
        if (s.attributes or {}).get("gen_ai.request.model") == "m1"
    ]
    assert span, [s.name for s in harness.spans.get_finished_spans()]
    assert len(found) == 1
    labels, exemplar = found[0]
    assert labels["model"] == "m1"
    assert exemplar.labels["trace_id"] == format(span[0].context.trace_id, "032x")
    assert exemplar.labels["span_id"] == format(span[0].context.span_id, "016x")
