"""Every PromQL expression of the alert rules and of the Grafana dashboard returns data
from the live Prometheus of the local stack after demo traffic, so a renamed metric or
label breaks this test instead of a dashboard in production.

Needs `scripts/stack up` (collector, Prometheus, ...; HAPA_STACK_PROMETHEUS_URL, default
http://127.0.0.1:9090). The demo app is used if it already answers on HAPA_DEMO_URL
(default http://127.0.0.1:8000, the port prometheus.yml scrapes); otherwise the test
starts it there itself with OTLP to the collector (HAPA_DEMO_OTLP_ENDPOINT, default
http://127.0.0.1:4318, OTLP/HTTP) and stops it afterwards."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from . import promstack as ps

PROMETHEUS = os.environ.get("HAPA_STACK_PROMETHEUS_URL", "http://127.0.0.1:9090").rstrip("/")
DEMO = os.environ.get("HAPA_DEMO_URL", "http://127.0.0.1:8000").rstrip("/")
WAIT_SECONDS = float(os.environ.get("HAPA_LIVE_QUERY_WAIT", "180"))
DEMO_OTLP = os.environ.get("HAPA_DEMO_OTLP_ENDPOINT", "http://127.0.0.1:4318")

# Collector counters that exist only once the event happened (the collector creates the
# series on the first failed enqueue): for expressions made only of these, the live check
# is that Prometheus accepts the query and scrapes the collector's self-telemetry.
EVENT_ONLY = frozenset(n for n in ps.COLLECTOR_SELF_METRICS if "enqueue_failed" in n)


def _query(expr: str) -> list[object]:
    url = f"{PROMETHEUS}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = ps.http_get_json(url, timeout=10)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def _post(path: str, payload: dict[str, object] | None = None) -> int:
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(
        DEMO + path, data=data, method="POST" if data else "GET",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()  # a streamed (SSE) answer is only complete once read
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _demo_traffic() -> None:
    """A bounded burst: uncached and cached generations, a path-parameter route, a 404
    and failures (about 40 requests)."""
    run = uuid.uuid4().hex[:8]
    statuses = []
    for i in range(10):
        prompt = {"prompt": f"live-query check {run} {i % 5}", "user_id": "live-test"}
        statuses.append(_post("/api/v1/code/generate", prompt))
    for i in range(3):  # streamed (SSE) answers: the GenAI TTFT / time-per-token families
        stream = {"prompt": f"live-query stream {run} {i}", "stream": True}
        statuses.append(_post("/api/v1/code/generate", stream))
    for i in range(20):
        statuses.append(_post(f"/api/v1/items/{i - 2}"))
    for _ in range(5):
        statuses.append(_post("/api/v1/fail"))
    assert statuses.count(200) >= 25 and 500 in statuses and 404 in statuses, statuses


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    """The demo app's URL: the running one, or one this fixture starts and stops."""
    try:
        running = ps.answers(f"{DEMO}/health")
    except OSError:
        running = False
    if running:
        yield DEMO
        return
    parsed = urllib.parse.urlsplit(DEMO)
    env = {
        **os.environ,
        "LOG_DIRECTORY": str(tmp_path / "logs"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": DEMO_OTLP,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRIC_EXPORT_INTERVAL": "2000",
    }
    proc = ps.start_process(
        [sys.executable, "-m", "uvicorn", "hapa_telemetry.demo.app:app",
         "--host", parsed.hostname or "127.0.0.1", "--port", str(parsed.port or 8000)],
        tmp_path / "demo.log",
        env=env,
    )
    try:
        ps.wait_until(lambda: ps.answers(f"{DEMO}/health"), 30, f"demo at {DEMO}")
        yield DEMO
    finally:
        ps.stop_process(proc)


def _live_exprs() -> list[tuple[str, str]]:
    out = [(f"rule {e.name}", ps.signal_part(e.expr)) for e in ps.rule_exprs()]
    for e in ps.dashboard_exprs():
        jobs = ("hapa-collector", "hapa-app") if "$job" in e.expr else ("-",)
        out += [(f"dashboard[{job}] {e.name}", ps.with_grafana_vars(e.expr, job=job))
                for job in jobs]
    return out


@pytest.mark.e2e
def test_every_rule_and_dashboard_query_returns_data(demo: str) -> None:
    """After demo traffic, each rule's measured expression (without its threshold) and
    each dashboard query (for both sources, via the collector and direct) is non-empty."""
    assert ps.answers(f"{PROMETHEUS}/-/ready"), f"no Prometheus at {PROMETHEUS}"
    _demo_traffic()
    exprs = _live_exprs()
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        empty = []
        for name, expr in exprs:
            metrics = ps.metric_names(expr)
            if metrics and metrics <= EVENT_ONLY:
                _query(expr)  # valid PromQL; data only after a failure
                if not _query('up{job="otel-collector"} == 1'):
                    empty.append(f"{name}: collector self-telemetry not scraped")
            elif not _query(expr):
                empty.append(f"{name}: {expr}")
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert empty == [], "\n".join(empty)
