"""Every PromQL expression of the alert rules and of the Grafana dashboard returns data
after demo traffic, on BOTH paths by which the app's families reach Prometheus, with the
repo's files as they are - so a renamed metric or label, or a rule bound to one path,
breaks this test instead of a dashboard in production:

- collector path: the local stack's Prometheus (`scripts/stack up`,
  HAPA_STACK_PROMETHEUS_URL, default http://127.0.0.1:9090) scrapes the collector's
  Prometheus exporter with honor_labels: the series carry job = service.name and
  instance = the demo's service.instance.id, and each request is counted once;
- direct path: a Prometheus this test starts scrapes the demo's own /metrics with the
  seed's scrape config (job "hapa-backend"): job = service name, instance = host:port.

The demo app is used if it already answers on HAPA_DEMO_URL (default
http://127.0.0.1:8000, the port prometheus.yml scrapes); otherwise the test starts it
there itself with OTLP to the collector (HAPA_DEMO_OTLP_ENDPOINT, default
http://127.0.0.1:4318, OTLP/HTTP) and stops it afterwards."""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _query(expr: str, prometheus: str = PROMETHEUS) -> list[Any]:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
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
        running = ps.answers(f"{DEMO}/metrics")
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
        ps.wait_until(lambda: ps.answers(f"{DEMO}/metrics"), 30, f"demo at {DEMO}/metrics")
        yield DEMO
    finally:
        ps.stop_process(proc)


def _live_exprs(collector_self: bool) -> list[tuple[str, str]]:
    """(name, PromQL) of every rule's measured part and every dashboard query (with $job =
    the service); without ``collector_self``, only those on the app's families and `up`."""
    out = [(f"rule {e.name}", ps.signal_part(e.expr)) for e in ps.rule_exprs()]
    out += [(f"dashboard {e.name}", ps.with_grafana_vars(e.expr)) for e in ps.dashboard_exprs()]
    if not collector_self:
        out = [(n, e) for n, e in out if not ps.metric_names(e) & ps.COLLECTOR_SELF_METRICS]
    return out


def _empty_results(prometheus: str, exprs: list[tuple[str, str]]) -> list[str]:
    empty = []
    for name, expr in exprs:
        metrics = ps.metric_names(expr)
        if metrics and metrics <= EVENT_ONLY:
            _query(expr, prometheus)  # valid PromQL; data only after a failure
            if not _query('up{job="otel-collector"} == 1', prometheus):
                empty.append(f"{name}: collector self-telemetry not scraped")
        elif not _query(expr, prometheus):
            empty.append(f"{name}: {expr}")
    return empty


def _wait_for_all(prometheus: str, exprs: list[tuple[str, str]]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        empty = _empty_results(prometheus, exprs)
        if not empty or time.monotonic() > deadline:
            break
        time.sleep(5)
    assert empty == [], "\n".join(empty)


def _own_requests(demo: str) -> tuple[str, float]:
    """The demo's service.instance.id (from its target_info) and its request count, as
    its own /metrics says."""
    with urllib.request.urlopen(f"{demo}/metrics", timeout=10) as response:
        text = response.read().decode()
    instance = re.search(r'target_info\{[^}]*service_instance_id="([^"]+)"', text)
    assert instance, "no service_instance_id in the demo's target_info"
    total = sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
        if line.startswith("api_requests_total{")
    )
    return instance.group(1), total


@pytest.mark.e2e
def test_collector_path_queries_identity_and_single_count(demo: str) -> None:
    """Through the collector (stack Prometheus): every rule and dashboard query returns
    data; the app's series carry job = service name and instance = the demo's
    service.instance.id; the demo's /metrics is not scraped for families a second time,
    so Prometheus counts exactly the requests the demo itself counted."""
    assert ps.answers(f"{PROMETHEUS}/-/ready"), f"no Prometheus at {PROMETHEUS}"
    _demo_traffic()
    _wait_for_all(PROMETHEUS, _live_exprs(collector_self=True))
    series = _query("count by (job, instance) (api_requests_total)")
    ours = [r["metric"] for r in series if r["metric"].get("job") == ps.SERVICE_JOB]
    assert ours and all(UUID.match(m.get("instance", "")) for m in ours), series
    # no copy under the scrape jobs' names, none with the identity moved aside
    assert not [r for r in series if r["metric"].get("job") in ("hapa-app", ps.COLLECTOR_JOB)]
    assert not _query('{__name__=~"api_.*", exported_job!=""}')
    instance, _ = _own_requests(demo)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        _, own = _own_requests(demo)
        seen = _query(f'sum(api_requests_total{{job="{ps.SERVICE_JOB}", instance="{instance}"}})')
        in_prometheus = float(seen[0]["value"][1]) if seen else -1.0
        if in_prometheus == own or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert in_prometheus == own, f"Prometheus {in_prometheus} vs the demo's own {own}"


@pytest.mark.e2e
def test_direct_scrape_queries_with_the_seeds_job(demo: str, tmp_path: Path) -> None:
    """Without the collector (a Prometheus scraping the demo's /metrics with the seed's
    job "hapa-backend", the repo's rule files unchanged): every rule and dashboard query on
    the app's families returns data, and the series carry job = service name."""
    target = urllib.parse.urlsplit(demo).netloc
    port = ps.free_port()
    config = ps.render_prometheus(
        tmp_path / "prom", targets={ps.SERVICE_JOB: [target]}, alertmanager=None,
        scrape_interval="1s", evaluation_interval="1s",
    )
    proc = ps.start_process(
        [ps.require_binary("prometheus"), f"--config.file={config}",
         f"--storage.tsdb.path={tmp_path / 'prom-data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        tmp_path / "prometheus.log",
    )
    prometheus = f"http://127.0.0.1:{port}"
    try:
        ps.wait_until(lambda: ps.answers(f"{prometheus}/-/ready"), 30, "Prometheus ready")
        ps.wait_until(lambda: bool(_query(f'up{{job="{ps.SERVICE_JOB}"}} == 1', prometheus)),
                      30, "the demo scraped")
        _demo_traffic()
        time.sleep(3)  # a few scrapes after the traffic: rate() needs two samples
        _wait_for_all(prometheus, _live_exprs(collector_self=False))
        series = _query("count by (job, instance) (api_requests_total)", prometheus)
        assert [(r["metric"]["job"], r["metric"]["instance"]) for r in series] == [
            (ps.SERVICE_JOB, target)
        ]
    finally:
        ps.stop_process(proc)
