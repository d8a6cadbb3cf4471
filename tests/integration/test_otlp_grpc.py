"""OTLP over gRPC from a real app process to a real gRPC receiver on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from _otlp_grpc_receiver import OTLPGrpcReceiver
from _procs import PYTHON, clean_env, free_port, start, stop, wait_http

pytestmark = pytest.mark.integration


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _receiver() -> tuple[OTLPGrpcReceiver, bool]:
    """A gRPC receiver on 4317 when that port is free here, else on a free port."""
    if _free(4317):
        try:
            return OTLPGrpcReceiver(4317), True
        except (OSError, RuntimeError):  # lost a race for the port
            pass
    return OTLPGrpcReceiver(0), False


def _wait(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_app_exports_spans_logs_and_metrics_over_grpc(tmp_path: Path) -> None:
    """The demo app exports all three signals to a gRPC OTLP receiver. On 4317 (free on
    CI's machine) only OTEL_EXPORTER_OTLP_ENDPOINT is set: the port selects gRPC and one
    stderr line says so. When 4317 is held by another process here, the same gRPC path
    runs on a free port with OTEL_EXPORTER_OTLP_PROTOCOL=grpc (the port rule itself is
    covered by tests/unit/test_settings_otlp.py)."""
    receiver, on_4317 = _receiver()
    port = free_port()
    extra = {} if on_4317 else {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    with receiver as rx:
        proc = start(
            [PYTHON, "-m", "uvicorn", "hapa_telemetry.demo.app:app", "--port", str(port)],
            clean_env(
                OTEL_EXPORTER_OTLP_ENDPOINT=rx.endpoint,
                OTEL_BSP_SCHEDULE_DELAY="100",
                OTEL_BLRP_SCHEDULE_DELAY="100",
                OTEL_METRIC_EXPORT_INTERVAL="300",
                LOG_DIRECTORY=str(tmp_path / "logs"),
                DEMO_MODEL_DELAY="0.001",
                **extra,
            ),
            tmp_path,
            tmp_path / "out.txt",
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/health", proc)
            for i in range(5):
                assert httpx.get(f"{base}/api/v1/items/{i}").status_code == 200
            _wait(lambda: len(rx.received.spans()) >= 5 and len(rx.received.log_records()) >= 10)
            _wait(lambda: "api_requests_total" in rx.received.metric_names())
            exporters = httpx.get(base + "/health").json()["telemetry"]["exporters"]
        finally:
            stop(proc)
    routes = {s.name for _, s in rx.received.spans()}
    assert "GET /api/v1/items/{item_id}" in routes
    assert {r["service.name"] for r in rx.received.resources()} == {"hapa-backend"}
    assert all(v["status"] != "failing" for v in exporters.values())
    out = (tmp_path / "out.txt").read_text()
    assert "export failed" not in out and "BadStatusLine" not in out
    notices = [line for line in out.splitlines() if "OTLP protocol chosen" in line]
    if on_4317:
        assert len(notices) == 1 and "traces, metrics, logs over grpc" in notices[0]
    else:
        assert notices == []  # the protocol was chosen: nothing inferred
