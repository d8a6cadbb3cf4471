"""The real demo app (hapa_telemetry.demo.app under uvicorn) exporting OTLP to the stack."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _stack
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hapa_telemetry import names

pytestmark = pytest.mark.e2e

SCRAPE_LABELS = {"__name__", "job", "instance", "exported_job", "exported_instance"}


class Demo:
    """A running demo app: its base URL and the unique service name it reports."""

    def __init__(self, url: str, service: str, proc: subprocess.Popen[bytes]) -> None:
        self.url, self.service, self.proc = url, service, proc

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, float]:
        """One request; returns (status, seconds)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        for key, value in (headers or {}).items():
            req.add_header(key, value)
        started = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
                status = resp.status
        except urllib.error.HTTPError as err:
            status = err.code
        return status, time.monotonic() - started


@pytest.fixture
def demo(stack_up: None, tmp_path: Path) -> Iterator[Demo]:
    """uvicorn hapa_telemetry.demo.app:app with OTLP/HTTP pointed at the stack's collector."""
    with _stack.demo_app(tmp_path, "hapa-demo-e2e") as app:
        yield Demo(app.url, app.service, app.proc)


def test_demo_request_is_one_trace_in_es_and_six_families_in_prometheus(demo: Demo) -> None:
    """Traffic on the demo app shows up through the collector: the request's log lines and
    spans in Elasticsearch under the caller's trace id (logs in hapa-backend-<today>), and the
    six seed families in Prometheus with the same labels as the app's own /metrics."""
    trace_id = uuid.uuid4().hex
    parent = uuid.uuid4().hex[:16]
    status, _ = demo.request(
        "POST",
        "/api/v1/code/generate",
        {"prompt": "sort a list", "user_id": "u-demo-e2e"},
        headers={"traceparent": f"00-{trace_id}-{parent}-01"},
    )
    assert status == 200
    assert demo.request("POST", "/api/v1/code/generate", {"prompt": "sort a list"})[0] == 200
    assert demo.request("GET", "/api/v1/items/7")[0] == 200
    assert demo.request("GET", "/api/v1/fail")[0] == 500

    # (b) + (c): logs and spans of the request share its trace id
    logs = _stack.wait_for_docs(
        _stack.today_log_index(), {"term": {"TraceId.keyword": trace_id}}, 2, 90
    )
    spans = _stack.wait_for_docs(
        f"{_stack.TRACE_INDEX_PREFIX}-*", {"term": {"TraceId.keyword": trace_id}}, 1, 90
    )
    assert {d["Resource.service.name"] for d in logs + spans} == {demo.service}
    assert all(d["_index"] == _stack.today_log_index() for d in logs)
    assert {d["SpanId"] for d in logs} <= {d["SpanId"] for d in spans}
    assert any(d.get("ParentSpanId") == parent for d in spans)
    events = {d.get("event_type") for d in logs}
    assert names.EVENT_REQUEST_END in events
    assert any(d.get("user_id") == "u-demo-e2e" for d in logs)

    # (a): the six families, labelled like the local /metrics
    sel = f'{{job="{demo.service}"}}'  # honor_labels: job = service.name
    wanted = [
        names.API_REQUESTS_TOTAL,
        f"{names.API_REQUEST_DURATION_SECONDS}_bucket",
        f"{names.AI_INFERENCE_DURATION_SECONDS}_bucket",
        names.ACTIVE_CONNECTIONS,
        names.API_ERRORS_TOTAL,
        names.CACHE_HIT_RATE,
    ]
    found: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(found) < len(wanted):
        for family in wanted:
            if family not in found and (result := _stack.prom_query(family + sel)):
                found[family] = result
        time.sleep(1)
    assert sorted(found) == sorted(wanted), f"missing: {set(wanted) - set(found)}"

    with urllib.request.urlopen(demo.url + "/metrics", timeout=10) as resp:
        local_text = resp.read().decode()
    local: dict[str, set[frozenset[str]]] = {}
    for family in text_string_to_metric_families(local_text):
        for sample in family.samples:
            local.setdefault(sample.name, set()).add(frozenset(sample.labels))
    for family, series in found.items():
        via_collector = {frozenset(set(s["metric"]) - SCRAPE_LABELS) for s in series}
        assert via_collector <= local[family], (family, via_collector, local[family])
    paths = {s["metric"][names.LABEL_ENDPOINT] for s in found[names.API_REQUESTS_TOTAL]}
    assert "/api/v1/items/{item_id}" in paths and "/api/v1/items/7" not in paths
    errors = {s["metric"][names.LABEL_ERROR_TYPE] for s in found[names.API_ERRORS_TOTAL]}
    assert "ValueError" in errors


def test_demo_keeps_serving_while_collector_is_killed_and_resumes_after_restart(
    demo: Demo,
) -> None:
    """SIGKILL of the collector neither fails nor slows the app's requests noticeably, and
    after `scripts/stack up collector` the same app process (not restarted) gets its logs
    into Elasticsearch again."""

    def latencies(n: int) -> list[float]:
        out = []
        for i in range(n):
            status, seconds = demo.request("GET", f"/api/v1/items/{i}")
            assert status == 200
            out.append(seconds)
        return out

    before = statistics.median(latencies(30))
    pid = int(_stack.pid_file("collector").read_text())
    os.kill(pid, signal.SIGKILL)
    try:
        _stack.wait_until(lambda: not _stack.answers(_stack.COLLECTOR_HEALTH), 30, "collector down")
        time.sleep(2)  # let the exporters hit the closed port at least once
        during = statistics.median(latencies(30))
    finally:
        _stack.stack("up", "collector", timeout=300)
    assert during < before * 3 + 0.05, (before, during)

    trace_id = uuid.uuid4().hex
    status, _ = demo.request(
        "GET",
        "/api/v1/items/99",
        headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"},
    )
    assert status == 200
    docs = _stack.wait_for_docs(
        f"{_stack.LOG_INDEX_PREFIX}-*", {"term": {"TraceId.keyword": trace_id}}, 1, 90
    )
    assert {d["Resource.service.name"] for d in docs} == {demo.service}
