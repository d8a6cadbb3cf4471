"""Helpers for the gateway-topology fault tests (tests/e2e/test_tier_*.py).

Three load sources run side by side at fixed rates, each counted at Elasticsearch by id:

* ``AckedSender``: OTLP/HTTP JSON log batches posted to the agent; it records which records
  the agent acknowledged (HTTP 200), so "lost" is exact: acknowledged but never indexed.
* ``telemetrygen`` (the collector project's load generator, built by scripts/build-collector at
  the agent's release): spans over OTLP/gRPC, counted by span id.
* the package's demo app (uvicorn, OTLP/HTTP to the agent), driven by ``DemoDriver`` with one
  W3C trace id per request, counted by trace id; its latencies give the app's p99.

Every loop is bounded in count and time; every target is 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _stack
import pytest

ROOT = _stack.ROOT
STACK_DIR = _stack.STACK_DIR
AGENT_STORAGE = STACK_DIR / "agent"
TELEMETRYGEN = STACK_DIR / "bin" / "telemetrygen"
RESULTS = STACK_DIR / "tier-results.jsonl"
ES2 = f"http://127.0.0.1:{_stack._port('HAPA_STACK_ES2_PORT', 9201)}"
AGENT_HEALTH = _stack.COLLECTOR_HEALTH
AGENT_TELEMETRY = (
    f"http://127.0.0.1:{_stack._port('HAPA_STACK_COLLECTOR_TELEMETRY_PORT', 8888)}/metrics"
)
GATEWAY_HEALTH = {
    1: f"http://127.0.0.1:{_stack._port('HAPA_STACK_GATEWAY1_HEALTH_PORT', 13134)}/",
    2: f"http://127.0.0.1:{_stack._port('HAPA_STACK_GATEWAY2_HEALTH_PORT', 13135)}/",
}
GATEWAY_TELEMETRY = {
    1: f"http://127.0.0.1:{_stack._port('HAPA_STACK_GATEWAY1_TELEMETRY_PORT', 8896)}/metrics",
    2: f"http://127.0.0.1:{_stack._port('HAPA_STACK_GATEWAY2_TELEMETRY_PORT', 8897)}/metrics",
}
GATEWAY_PROM = {
    1: f"http://127.0.0.1:{_stack._port('HAPA_STACK_GATEWAY1_PROM_PORT', 8891)}/metrics",
    2: f"http://127.0.0.1:{_stack._port('HAPA_STACK_GATEWAY2_PROM_PORT', 8892)}/metrics",
}
LOGS = f"{_stack.LOG_INDEX_PREFIX}-*"
TRACES = f"{_stack.TRACE_INDEX_PREFIX}-*"


@pytest.fixture(scope="module")
def tier() -> Iterator[None]:
    """The gateway topology answering (started here if scripts/test has not)."""
    running = _stack.stack("status", "--topology", "gateway").returncode == 0
    if not running:
        stack_gw("up", timeout=1500)
    yield
    if not running:
        stack_gw("down", timeout=300)


def stack_gw(*args: str, timeout: float = 600) -> None:
    """scripts/stack with the gateway topology."""
    _stack.stack(*args, "--topology", "gateway", timeout=timeout)


def pid_of(part: str) -> int:
    """PID of a running stack part (from scripts/stack's PID file)."""
    return int(_stack.pid_file(part).read_text())


def sigkill(part: str) -> int:
    """SIGKILL one stack part; returns its PID once the process is gone."""
    pid = pid_of(part)
    os.kill(pid, signal.SIGKILL)
    _stack.wait_until(lambda: not Path(f"/proc/{pid}").exists() or None, 30, f"{part} gone")
    return pid


def rss_mib(part: str) -> float:
    """Resident memory of a running part in MiB (0 when it is not running)."""
    try:
        for line in Path(f"/proc/{pid_of(part)}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def disk_mib(path: Path = AGENT_STORAGE) -> float:
    """Bytes on disk under path (the agent's queue and offsets), in MiB."""
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_blocks * 512
        except OSError:
            pass
    return total / (1 << 20)


def agent_queue() -> tuple[float, float]:
    """(items queued, capacity) of the agent's persistent log/span queue, from its telemetry."""
    size = cap = 0.0
    try:
        status, text = _stack.http("GET", AGENT_TELEMETRY, timeout=3)
    except (OSError, urllib.error.URLError):  # the agent is down
        return size, cap
    if status != 200:
        return size, cap
    for line in str(text).splitlines():
        if 'exporter="otlp/spool"' not in line or line.startswith("#"):
            continue
        if line.startswith("otelcol_exporter_queue_size"):
            size += float(line.rsplit(" ", 1)[1])
        elif line.startswith("otelcol_exporter_queue_capacity"):
            cap += float(line.rsplit(" ", 1)[1])
    return size, cap


ACCEPTED = ("otelcol_receiver_accepted_log_records", "otelcol_receiver_accepted_spans")


def gateway_accepted(gateway: int) -> float:
    """Log records + spans one gateway's OTLP receiver has accepted since it started (its own
    telemetry); -1 when it does not answer."""
    try:
        status, text = _stack.http("GET", GATEWAY_TELEMETRY[gateway], timeout=3)
    except (OSError, urllib.error.URLError):
        return -1.0
    if status != 200:
        return -1.0
    total = 0.0
    for line in str(text).splitlines():
        if line.startswith(ACCEPTED):
            total += float(line.rsplit(" ", 1)[1])
    return total


# --- counting at Elasticsearch -----------------------------------------------------------


def id_counts(index: str, filters: list[dict[str, Any]], id_field: str) -> dict[str, int]:
    """How many documents carry each id (exact: a terms aggregation over all of them)."""
    _stack.http("POST", f"{_stack.ES}/{index}/_refresh")
    body = {
        "size": 0,
        "query": {"bool": {"filter": filters}},
        "aggs": {"ids": {"terms": {"field": id_field, "size": 60000}}},
    }
    status, resp = _stack.http(
        "POST", f"{_stack.ES}/{index}/_search?ignore_unavailable=true&allow_no_indices=true", body
    )
    if status != 200 or "aggregations" not in resp:
        return {}
    return {str(b["key"]): int(b["doc_count"]) for b in resp["aggregations"]["ids"]["buckets"]}


@dataclass
class Tally:
    """sent / acknowledged / received / lost / duplicated for one load source."""

    source: str
    sent: int
    acked: int
    received: int
    lost: int
    duplicated: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def tally(source: str, sent: set[str], acked: set[str], counts: dict[str, int]) -> Tally:
    """Compare what was sent/acknowledged with what Elasticsearch holds."""
    got = {k for k in counts if k in sent}
    return Tally(
        source=source,
        sent=len(sent),
        acked=len(acked),
        received=len(got),
        lost=len(acked - got),
        duplicated=sum(counts[k] - 1 for k in got),
    )


# --- load sources --------------------------------------------------------------------------


class AckedSender(threading.Thread):
    """Fixed-rate OTLP/HTTP JSON log batches to the agent; remembers acknowledged ids."""

    def __init__(self, run: str, rate: int = 100, batch: int = 10, max_seconds: float = 400):
        super().__init__(daemon=True, name=f"acked-sender-{run}")
        self.run_id, self.rate, self.batch, self.max_seconds = run, rate, batch, max_seconds
        self.sent: set[str] = set()
        self.acked: set[str] = set()
        self._lock = threading.Lock()
        self.refused = 0
        self._halt = threading.Event()
        self._seq = 0

    def _body(self, seqs: list[int]) -> bytes:
        now = time.time_ns()
        records = [
            {
                "timeUnixNano": str(now),
                "severityText": "INFO",
                "severityNumber": 9,
                "traceId": f"{random.getrandbits(128):032x}",
                "spanId": f"{random.getrandbits(64):016x}",
                "body": {"stringValue": "tier load"},
                "attributes": [
                    {"key": "tier_run", "value": {"stringValue": self.run_id}},
                    {"key": "seq", "value": {"intValue": str(s)}},
                ],
            }
            for s in seqs
        ]
        resource = [{"key": "service.name", "value": {"stringValue": "hapa-tier-e2e"}}]
        return json.dumps(
            {
                "resourceLogs": [
                    {
                        "resource": {"attributes": resource},
                        "scopeLogs": [{"scope": {"name": "tier"}, "logRecords": records}],
                    }
                ]
            }
        ).encode()

    def run(self) -> None:
        interval = self.batch / self.rate
        deadline = time.monotonic() + self.max_seconds
        next_at = time.monotonic()
        while not self._halt.is_set() and time.monotonic() < deadline:
            seqs = list(range(self._seq, self._seq + self.batch))
            self._seq += self.batch
            ids = {str(s) for s in seqs}
            with self._lock:
                self.sent |= ids
            req = urllib.request.Request(
                f"{_stack.OTLP_HTTP}/v1/logs", data=self._body(seqs), method="POST"
            )
            req.add_header("content-type", "application/json")
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    if resp.status == 200:
                        with self._lock:
                            self.acked |= ids
            except (OSError, urllib.error.URLError):
                self.refused += 1
            next_at += interval
            self._halt.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._halt.set()
        self.join(15)

    @property
    def next_seq(self) -> int:
        """The sequence number of the next record to be sent."""
        return self._seq

    def acked_from(self, first_seq: int) -> set[str]:
        """Acknowledged ids with a sequence number >= first_seq (a consistent copy)."""
        with self._lock:
            return {i for i in self.acked if int(i) >= first_seq}

    def counts(self) -> dict[str, int]:
        return id_counts(LOGS, [{"term": {"tier_run.keyword": self.run_id}}], "seq")


class Telemetrygen:
    """telemetrygen traces at a fixed rate to the agent's OTLP/gRPC port."""

    def __init__(self, run: str, rate: int, seconds: int, log: Path) -> None:
        self.service = f"tier-tg-{run}"
        self.traces = rate * seconds
        self.log = log.open("wb")
        self.proc = subprocess.Popen(
            [
                str(TELEMETRYGEN),
                "traces",
                "--otlp-endpoint",
                _stack.OTLP_GRPC,
                "--otlp-insecure",
                "--service",
                self.service,
                "--rate",
                str(rate),
                "--traces",
                str(self.traces),
                "--workers",
                "1",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()

    def counts(self) -> dict[str, int]:
        return id_counts(
            TRACES, [{"term": {"Resource.service.name.keyword": self.service}}], "SpanId.keyword"
        )

    @property
    def spans_sent(self) -> int:
        return self.traces * 2  # one parent and one child span per trace (the default)


def _free_port() -> int:
    return _stack.free_port()


@dataclass
class DemoDriver:
    """The demo app exporting to the agent, requests at a fixed rate with known trace ids."""

    url: str
    service: str
    proc: subprocess.Popen[bytes]
    rate: float = 10.0
    trace_ids: list[str] = field(default_factory=list)
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, seconds)
    errors: int = 0
    _halt: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _loop(self, max_seconds: float) -> None:
        deadline = time.monotonic() + max_seconds
        next_at = time.monotonic()
        i = 0
        while not self._halt.is_set() and time.monotonic() < deadline:
            tid = f"{random.getrandbits(128):032x}"
            req = urllib.request.Request(f"{self.url}/api/v1/items/{i}")
            req.add_header("traceparent", f"00-{tid}-{random.getrandbits(64):016x}-01")
            started = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    resp.read()
                self.trace_ids.append(tid)
                self.latencies.append((started, time.monotonic() - started))
            except (OSError, urllib.error.URLError):
                self.errors += 1
            i += 1
            next_at += 1 / self.rate
            self._halt.wait(max(0.0, next_at - time.monotonic()))

    def start(self, max_seconds: float = 400) -> None:
        self._thread = threading.Thread(target=self._loop, args=(max_seconds,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread:
            self._thread.join(15)

    def request_once(self, path: str, body: Any = None) -> int:
        """One request (POST with a JSON body, else GET); the HTTP status."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data)
        req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                resp.read()
                return int(resp.status)
        except urllib.error.HTTPError as err:
            return int(err.code)

    def metrics_text(self) -> str:
        """The app's own /metrics."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as resp:
            return str(resp.read().decode())

    def p99(self, start: float = 0.0, end: float = float("inf")) -> float:
        xs = sorted(s for t, s in self.latencies if start <= t < end)
        return xs[min(len(xs) - 1, int(len(xs) * 0.99))] if xs else float("nan")

    def counts(self, id_field: str = "TraceId.keyword") -> dict[str, int]:
        """The app's span documents per trace id (or per span id)."""
        return id_counts(
            TRACES, [{"term": {"Resource.service.name.keyword": self.service}}], id_field
        )


@contextmanager
def demo_app(tmp_path: Path, rate: float = 10.0) -> Iterator[DemoDriver]:
    """uvicorn hapa_telemetry.demo.app:app with OTLP/HTTP to the agent, driven at ``rate``."""
    with _stack.demo_app(
        tmp_path, "hapa-demo-tier", {"OTEL_METRIC_EXPORT_INTERVAL": "2000"}
    ) as app:
        driver = DemoDriver(app.url, app.service, app.proc, rate=rate)
        try:
            yield driver
        finally:
            driver.stop()


def record(test: str, figures: dict[str, Any]) -> None:
    """Append one test's figures to .stack/tier-results.jsonl and print them."""
    line = json.dumps(
        {"test": test, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **figures}
    )
    print(line)
    with RESULTS.open("a") as fh:
        fh.write(line + "\n")
