"""The demo under a real uvicorn on 127.0.0.1: logs, files, /metrics, /health, shutdown."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from _procs import PYTHON, clean_env, free_port, start, stop, wait_http
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def test_demo_end_to_end_on_embedded_default(tmp_path: Path) -> None:
    """A real server writes trace-linked lines to stdout and files and serves /metrics."""
    port = free_port()
    logdir = tmp_path / "logs"
    proc = start(
        [PYTHON, "-m", "uvicorn", "hapa_telemetry.demo.app:app", "--port", str(port)],
        clean_env(LOG_DIRECTORY=str(logdir), DEMO_MODEL_DELAY="0.01"),
        tmp_path,
        tmp_path / "stdout.txt",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/health", proc)
        n = 0
        with httpx.Client(base_url=base, timeout=10) as c:
            for i in range(20):
                r = c.post("/api/v1/code/generate", json={"prompt": f"p{i % 5}", "user_id": "u7"})
                assert r.status_code == 200
                n += 1
            r = c.get(
                "/api/v1/items/5",
                headers={"traceparent": f"00-{TRACE_ID}-b7ad6b7169203331-01"},
            )
            assert r.status_code == 200
            n += 1
            # uvicorn drops the keep-alive connection after an unhandled exception
            assert c.get("/api/v1/fail", headers={"connection": "close"}).status_code == 500
            n += 1
            metrics = c.get("/metrics").text
            health = c.get("/health").json()
    finally:
        code = stop(proc)
    assert code in (0, -15)  # uvicorn re-raises SIGTERM after its graceful shutdown
    fams = {f.name: f for f in text_string_to_metric_families(metrics)}
    requests = {
        (s.labels["endpoint"], s.labels["status"]): s.value
        for s in fams["api_requests"].samples
        if s.name == "api_requests_total"
    }
    assert requests[("/api/v1/code/generate", "200")] == 20
    assert requests[("/api/v1/items/{item_id}", "200")] == 1
    assert requests[("/api/v1/fail", "500")] == 1
    inf = [s for s in fams["ai_inference_duration_seconds"].samples if s.name.endswith("_count")]
    assert inf[0].value == 5  # 5 distinct prompts; 15 cache hits are not recorded
    assert [s.value for s in fams["cache_hit_rate"].samples] == [75.0]
    assert fams["active_connections"].samples[0].value == 0
    assert health["application"]["requests_per_minute"] == n
    lines = [json.loads(x) for x in next(logdir.glob("hapa_*.log")).read_text().splitlines()]
    ends = [x for x in lines if x.get("event_type") == "request_end"]
    assert len(ends) == n
    traced = [x for x in lines if x.get("trace_id") == TRACE_ID]
    assert {x["event_type"] for x in traced} == {"request_start", "request_end"}
    assert all(x["user_id"] == "u7" for x in ends if x["endpoint"] == "/api/v1/code/generate")
    errors = [json.loads(x) for x in next(logdir.glob("error_*.log")).read_text().splitlines()]
    assert [e["error_type"] for e in errors] == ["ValueError"]
    stdout = (tmp_path / "stdout.txt").read_text()
    assert stdout.count('"event_type":"request_end"') == n
    assert "Exception in ASGI application" not in stdout
    assert "Application shutdown complete" in stdout  # lines after SIGTERM are flushed


def test_every_line_is_flushed_on_normal_shutdown(tmp_path: Path) -> None:
    """N lines logged then a normal exit leaves exactly N lines in the file."""
    script = tmp_path / "burst.py"
    script.write_text(
        "import hapa_telemetry\n"
        "hapa_telemetry.configure()\n"
        "log = hapa_telemetry.StructuredLogger('burst')\n"
        "for i in range(20000):\n"
        "    log.info('line', i=i)\n"
    )
    env = clean_env(LOG_DIRECTORY=str(tmp_path / "logs"), LOG_TO_STDOUT="false",
                    LOG_QUEUE_SIZE="100000")
    started = time.monotonic()
    proc = start([PYTHON, str(script)], env, tmp_path, tmp_path / "out.txt")
    assert proc.wait(60) == 0, (tmp_path / "out.txt").read_text()
    assert time.monotonic() - started < 60
    lines = next((tmp_path / "logs").glob("hapa_*.log")).read_text().splitlines()
    numbers = sorted(json.loads(x)["i"] for x in lines)
    assert numbers == list(range(20000))
