"""A SIGKILLed worker's in-flight requests leave the multi-process active_connections sum
when the next worker starts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hapa_telemetry.multiproc import remove_dead_workers

pytestmark = pytest.mark.integration

BUSY_WORKER = textwrap.dedent(
    """
    import sys, time
    from hapa_telemetry.multiproc import PromMirror
    m = PromMirror(sys.argv[1])
    m.active.inc(3)          # three requests in flight ...
    m.child(m.requests, ("GET", "/a", "200")).inc()
    print("busy", flush=True)
    time.sleep(60)           # ... when the OOM killer strikes
    """
)
READER = textwrap.dedent(
    """
    import sys
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector
    if sys.argv[2] == "start":
        from hapa_telemetry.multiproc import PromMirror
        PromMirror(sys.argv[1])  # a new worker starting
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=sys.argv[1])
    print(registry.get_sample_value("active_connections"),
          registry.get_sample_value("api_requests_total",
                                    {"method": "GET", "endpoint": "/a", "status": "200"}))
    """
)


def _run(script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    out = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    return out.stdout.strip()


def test_killed_workers_gauge_is_removed_at_the_next_worker_start(tmp_path: Path) -> None:
    """SIGKILL a worker with 3 requests in flight: its 3 stay in active_connections until a
    worker starts; then the sum is 0 while its finished requests still count."""
    directory = str(tmp_path / "prom")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    busy = subprocess.Popen([sys.executable, "-c", BUSY_WORKER, directory], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert busy.stdout is not None and busy.stdout.readline().strip() == "busy"
    finally:
        busy.send_signal(signal.SIGKILL)
        busy.wait(10)
    assert _run(READER, directory, "read-only") == "3.0 1.0"  # the stale value
    assert _run(READER, directory, "start") == "0.0 1.0"
    assert not list(Path(directory).glob(f"gauge_livesum_{busy.pid}.db"))


def test_remove_dead_workers_keeps_live_pids_and_counters(tmp_path: Path) -> None:
    """Only live-gauge files of pids that are gone are removed; running workers' files and
    every counter/histogram/mostrecent file stay; a second pass finds nothing to do."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(10)
    alive = os.getppid()
    for name in (f"gauge_livesum_{gone.pid}.db", f"gauge_liveall_{gone.pid}.db",
                 f"counter_{gone.pid}.db", f"gauge_mostrecent_{gone.pid}.db",
                 f"gauge_livesum_{alive}.db", f"gauge_livesum_{os.getpid()}.db"):
        (tmp_path / name).write_bytes(b"")
    assert remove_dead_workers(str(tmp_path)) == [gone.pid]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{gone.pid}.db", f"gauge_mostrecent_{gone.pid}.db",
         f"gauge_livesum_{alive}.db", f"gauge_livesum_{os.getpid()}.db"]
    )
    assert remove_dead_workers(str(tmp_path)) == []
    assert remove_dead_workers(str(tmp_path / "missing")) == []
