"""opentelemetry-instrument with zero code changes, double set-up, and worker processes."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from _otlp_receiver import OTLPReceiver
from _procs import clean_env, free_port, start, stop, wait_http
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration
BIN = Path(os.environ.get("VIRTUAL_ENV", Path(__file__).parents[2] / ".venv")) / "bin"
TRACE_ID = "5b8aa5a2d2c872e8321cf37308d69df2"

PLAIN_APP = '''
import logging
from fastapi import FastAPI

app = FastAPI()
log = logging.getLogger("plainapp")

@app.get("/api/v1/items/{item_id}")
async def item(item_id: int):
    log.info("fetching item password=hunter2", extra={"item_id": item_id})
    return {"item_id": item_id}

@app.get("/boom")
async def boom():
    raise RuntimeError("kaput")
'''

EXPLICIT_APP = '''
import hapa_telemetry
from fastapi import FastAPI

hapa_telemetry.configure()
app = FastAPI()
hapa_telemetry.instrument_fastapi(app)

@app.get("/api/v1/items/{item_id}")
async def item(item_id: int):
    hapa_telemetry.StructuredLogger("explicit").info("fetching", item_id=item_id)
    return {"item_id": item_id}
'''


def zero_code_env(tmp: Path, receiver: OTLPReceiver, **extra: str) -> dict[str, str]:
    return clean_env(
        OTEL_PYTHON_DISTRO="hapa_telemetry",
        OTEL_PYTHON_CONFIGURATOR="hapa_telemetry",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_METRIC_EXPORT_INTERVAL="500",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
        LOG_DIRECTORY=str(tmp / "logs"),
        PYTHONPATH=str(tmp),
        **extra,
    )


def wait_for(cond: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def scrape(base: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    text = httpx.get(base + "/metrics", timeout=10).text
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_plain_app_under_opentelemetry_instrument_gets_everything(tmp_path: Path) -> None:
    """An app that never imports hapa_telemetry gets lines, trace ids, metrics, OTLP."""
    (tmp_path / "plainapp.py").write_text(PLAIN_APP)
    port = free_port()
    with OTLPReceiver() as rx:
        proc = start(
            [str(BIN / "opentelemetry-instrument"), str(BIN / "uvicorn"), "plainapp:app",
             "--port", str(port)],
            zero_code_env(tmp_path, rx), tmp_path, tmp_path / "out.txt",
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/health", proc)
            r = httpx.get(base + "/api/v1/items/9",
                          headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"})
            assert r.status_code == 200 and r.headers["x-request-id"]
            assert httpx.get(base + "/boom").status_code == 500
            samples = scrape(base)
            health = httpx.get(base + "/health")
            wait_for(lambda: len(rx.received.spans()) >= 2 and len(rx.received.log_records()) > 3)
            wait_for(lambda: "api_requests_total" in rx.received.metric_names())
        finally:
            stop(proc)
    out = (tmp_path / "out.txt").read_text()
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    mine = [x for x in lines if x.get("trace_id") == TRACE_ID]
    assert {x.get("event_type") for x in mine} >= {"request_start", "request_end"}
    item_line = next(x for x in mine if x["logger"] == "plainapp")
    assert item_line["item_id"] == 9 and "hunter2" not in json.dumps(item_line)
    assert "hunter2" not in out
    assert any(x.get("error_type") == "RuntimeError" for x in lines)
    assert health.status_code in (200, 503) and "checks" in health.json()
    requests = {(lb["endpoint"], lb["status"]): v for lb, v in samples["api_requests_total"]}
    assert requests == {("/api/v1/items/{item_id}", "200"): 1, ("/boom", "500"): 1}
    assert samples["api_errors_total"] == [({"error_type": "RuntimeError"}, 1.0)]
    assert list((tmp_path / "logs").glob("hapa_*.log"))
    server_spans = [s for _, s in rx.received.spans() if s.kind == 2]  # SPAN_KIND_SERVER
    assert len(server_spans) == 2
    assert any(s.trace_id.hex() == TRACE_ID for s in server_spans)
    assert any(r.trace_id.hex() == TRACE_ID for _, r in rx.received.log_records())
    assert {"api_requests_total", "api_request_duration_seconds"} <= rx.received.metric_names()


def test_explicit_setup_under_opentelemetry_instrument_is_not_doubled(tmp_path: Path) -> None:
    """configure()+instrument_fastapi under opentelemetry-instrument: one of everything."""
    (tmp_path / "explicitapp.py").write_text(EXPLICIT_APP)
    port = free_port()
    n = 5
    with OTLPReceiver() as rx:
        proc = start(
            [str(BIN / "opentelemetry-instrument"), str(BIN / "uvicorn"), "explicitapp:app",
             "--port", str(port)],
            zero_code_env(tmp_path, rx), tmp_path, tmp_path / "out.txt",
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/health", proc)
            for i in range(n):
                assert httpx.get(f"{base}/api/v1/items/{i}").status_code == 200
            samples = scrape(base)
            wait_for(lambda: len(rx.received.spans()) >= n)
            time.sleep(1.0)  # let a doubled exporter, if any, deliver too
        finally:
            stop(proc)
    out = (tmp_path / "out.txt").read_text()
    assert out.count('"event_type":"request_end"') == n
    assert out.count('"message":"fetching"') == n
    assert sum(v for _, v in samples["api_requests_total"]) == n
    server_spans = [s for _, s in rx.received.spans() if s.kind == 2]
    assert len(server_spans) == n
    bodies = [r.body.string_value for _, r in rx.received.log_records()]
    assert bodies.count("fetching") == n


@pytest.mark.parametrize("server", ["uvicorn", "gunicorn"])
def test_workers_each_have_an_identity_and_metrics_sum_over_workers(
    tmp_path: Path, server: str
) -> None:
    """With several workers, /metrics sums every worker and OTLP sees each worker apart."""
    (tmp_path / "plainapp.py").write_text(PLAIN_APP)
    port = free_port()
    workers = 4 if server == "uvicorn" else 2
    mp = tmp_path / "prom"
    mp.mkdir()
    if server == "uvicorn":
        cmd = [str(BIN / "uvicorn"), "plainapp:app", "--port", str(port),
               "--workers", str(workers)]
    else:
        cmd = [str(BIN / "gunicorn"), "plainapp:app", "-b", f"127.0.0.1:{port}",
               "-w", str(workers), "-k", "uvicorn.workers.UvicornWorker"]
    n = 120
    with OTLPReceiver() as rx:
        proc = start(
            [str(BIN / "opentelemetry-instrument"), *cmd],
            zero_code_env(tmp_path, rx, PROMETHEUS_MULTIPROC_DIR=str(mp), LOG_TO_STDOUT="false"),
            tmp_path, tmp_path / "out.txt",
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/health", proc, timeout=60)
            time.sleep(2.0)  # every worker up
            for i in range(n):
                with httpx.Client() as c:  # a new connection each time spreads the workers
                    assert c.get(f"{base}/api/v1/items/{i}").status_code == 200
            totals = []
            for _ in range(3):  # whichever worker answers the scrape, the same total
                samples = scrape(base)
                totals.append(sum(v for _, v in samples["api_requests_total"]))
                assert [v for _, v in samples["active_connections"]] == [0.0]
            wait_for(lambda: len({r.get("service.instance.id")
                                  for r in rx.received.resources()}) >= 2, timeout=30)
        finally:
            stop(proc)
    assert totals == [n, n, n]
    pids_to_ids: dict[object, set[object]] = {}
    for res in rx.received.resources():
        pids_to_ids.setdefault(res.get("process.pid"), set()).add(res.get("service.instance.id"))
    assert all(len(ids) == 1 for ids in pids_to_ids.values())
    all_ids = {next(iter(ids)) for ids in pids_to_ids.values()}
    assert len(all_ids) == len(pids_to_ids) >= 2
