"""Export failures are visible (stderr, /health, a self-metric) and never reach the client."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from _procs import PYTHON, clean_env, free_port, start, stop, wait_http

pytestmark = pytest.mark.integration


def test_closed_otlp_port_is_reported_not_raised(tmp_path: Path) -> None:
    """With OTLP at a closed port, requests succeed and the failure shows up everywhere."""
    port, dead = free_port(), free_port()
    proc = start(
        [PYTHON, "-m", "uvicorn", "hapa_telemetry.demo.app:app", "--port", str(port)],
        clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{dead}",
            OTEL_BSP_SCHEDULE_DELAY="100",
            OTEL_BLRP_SCHEDULE_DELAY="100",
            OTEL_METRIC_EXPORT_INTERVAL="300",
            LOG_DIRECTORY=str(tmp_path / "logs"),
            DEMO_MODEL_DELAY="0.001",
        ),
        tmp_path,
        tmp_path / "out.txt",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/health", proc)
        for i in range(10):
            assert httpx.get(f"{base}/api/v1/items/{i}").status_code == 200
        deadline = time.monotonic() + 30
        health: dict[str, object] = {}
        while time.monotonic() < deadline:
            health = httpx.get(base + "/health").json()
            exporters = health["telemetry"]["exporters"]  # type: ignore[index]
            if {"traces", "logs", "metrics"} <= set(exporters) and all(
                v["status"] == "failing" for v in exporters.values()
            ):
                break
            time.sleep(0.5)
        metrics = httpx.get(base + "/metrics").text
    finally:
        stop(proc)
    exporters = health["telemetry"]["exporters"]  # type: ignore[index]
    assert {k: v["status"] for k, v in exporters.items()} == {
        "traces": "failing", "logs": "failing", "metrics": "failing"
    }
    assert 'hapa_telemetry_export_total{outcome="failed",signal="traces"}' in metrics
    out = (tmp_path / "out.txt").read_text()
    assert "hapa-telemetry: traces export failed" in out
    # rate-limited: one report per signal per minute, not one per batch
    assert out.count("hapa-telemetry: traces export failed") == 1


def test_shutdown_is_bounded_when_the_collector_never_answers(tmp_path: Path) -> None:
    """A collector that accepts and never answers cannot hold SIGTERM shutdown for minutes,
    and every request's log line is still in the file."""
    import socket
    import threading

    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(64)
    accepted: list[socket.socket] = []
    stop_accepting = threading.Event()

    def accept() -> None:
        hole.settimeout(0.2)
        while not stop_accepting.is_set():
            try:
                accepted.append(hole.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    port = free_port()
    proc = start(
        [PYTHON, "-m", "uvicorn", "hapa_telemetry.demo.app:app", "--port", str(port)],
        clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{hole.getsockname()[1]}",
            LOG_DIRECTORY=str(tmp_path / "logs"),
            LOG_TO_STDOUT="false",
        ),
        tmp_path,
        tmp_path / "out.txt",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/health", proc)
        n = 50
        for i in range(n):
            assert httpx.get(f"{base}/api/v1/items/{i}").status_code == 200
        started = time.monotonic()
        stop(proc, timeout=60)
        took = time.monotonic() - started
    finally:
        stop(proc)
        stop_accepting.set()
        for conn in accepted:
            conn.close()
        hole.close()
    assert took < 8, f"shutdown took {took:.1f} s"  # 3 s SIGTERM budget + interpreter exit
    lines = next((tmp_path / "logs").glob("hapa_*.log")).read_text()
    assert lines.count('"event_type":"request_end"') == n
