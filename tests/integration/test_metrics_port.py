"""METRICS_PORT decided from the port the server really listens on (real uvicorn)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
from _procs import PYTHON, clean_env, free_port, start, stop

pytestmark = pytest.mark.integration

APP = """
from fastapi import FastAPI
import hapa_telemetry

hapa_telemetry.configure()
app = FastAPI()

@app.get("/ping")
async def ping():
    return {"pong": True}

hapa_telemetry.instrument_fastapi(app)
"""


def _wait_tcp(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("server exited before it listened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


def _serve(tmp_path: Path, port: int, metrics_port: int) -> subprocess.Popen[bytes]:
    (tmp_path / "app.py").write_text(APP)
    return start(
        [PYTHON, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)],
        clean_env(METRICS_PORT=str(metrics_port), METRICS_HOST="127.0.0.1",
                  LOG_DIRECTORY="none", LOG_TO_STDOUT="false"),
        tmp_path,
        tmp_path / "stdout.txt",
    )


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("seed_port", [False, True], ids=["any-port", "seed-8000"])
def test_app_on_another_port_gets_the_metrics_listener_without_any_request(
    tmp_path: Path, seed_port: bool
) -> None:
    """App on port A, METRICS_PORT=B (also the seed's 8000 with the app on another port):
    /metrics answers on B once the server started — before any request reached the app
    (decided after the lifespan startup)."""
    app_port, metrics_port = free_port(), free_port()
    if seed_port:
        metrics_port = 8000
        if not _port_free(8000):
            pytest.skip("port 8000 is in use on this machine (a running demo?)")
    proc = _serve(tmp_path, app_port, metrics_port)
    try:
        _wait_tcp(app_port, proc)
        deadline = time.monotonic() + 15
        body = None
        while time.monotonic() < deadline and body is None:
            try:
                r = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2)
                body = r.text if r.status_code == 200 else None
            except httpx.HTTPError:
                time.sleep(0.1)
        assert body is not None, (tmp_path / "stdout.txt").read_text()
        assert "# TYPE api_requests_total counter" in body or "# TYPE api_requests counter" in body
        ping = httpx.get(f"http://127.0.0.1:{app_port}/ping", timeout=5)
        assert ping.status_code == 200
        listening = {
            c.laddr.port for c in psutil.Process(proc.pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {app_port, metrics_port}
    finally:
        stop(proc)


def test_app_on_the_metrics_port_is_not_bound_twice(tmp_path: Path) -> None:
    """App on port A with METRICS_PORT=A: the server starts normally, /metrics is the app's
    own route, and nothing else listens."""
    port = free_port()
    proc = _serve(tmp_path, port, port)
    try:
        _wait_tcp(port, proc)
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        assert r.status_code == 200 and "active_connections 0.0" in r.text
        time.sleep(1.0)  # time for a wrong decision to show
        assert proc.poll() is None
        listening = {
            c.laddr.port for c in psutil.Process(proc.pid).net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN
        }
        assert listening == {port}
        assert "address already in use" not in (tmp_path / "stdout.txt").read_text().lower()
    finally:
        stop(proc)


def test_workers_with_inherited_sockets_get_the_listener_without_any_request(
    tmp_path: Path,
) -> None:
    """uvicorn --workers 2 binds the app's socket before the workers start: one worker
    still opens METRICS_PORT after its startup, before any request."""
    app_port, metrics_port = free_port(), free_port()
    (tmp_path / "app.py").write_text(APP)
    proc = start(
        [PYTHON, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(app_port),
         "--workers", "2"],
        clean_env(METRICS_PORT=str(metrics_port), METRICS_HOST="127.0.0.1",
                  LOG_DIRECTORY="none", LOG_TO_STDOUT="false"),
        tmp_path,
        tmp_path / "stdout.txt",
    )
    try:
        deadline = time.monotonic() + 40
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                r = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2)
                status = r.status_code
            except httpx.HTTPError:
                time.sleep(0.2)
        assert status == 200, (tmp_path / "stdout.txt").read_text()
        assert httpx.get(f"http://127.0.0.1:{app_port}/ping", timeout=5).status_code == 200
    finally:
        stop(proc)
