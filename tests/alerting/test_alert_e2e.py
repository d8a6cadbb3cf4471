"""Alerting end to end with real processes on 127.0.0.1: Debian's Prometheus scrapes a
/metrics target served by this test, evaluates the repo's rules (overlay: 1 s intervals,
`for: 3s`, 10 s windows) and sends to Debian's Alertmanager, which routes by severity to
a webhook receiver served by this test. The target turns slow, then failing, then
recovers; HighResponseTime and HighErrorRate must arrive and then resolve."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from . import promstack as ps

names = ps.names
ENDPOINT = "/api/v1/generate"
REQUESTS_PER_SCRAPE = 20


@dataclass
class FakeApp:
    """Cumulative request metrics in Prometheus text format; every scrape adds
    REQUESTS_PER_SCRAPE requests of the current kind (duration, share of 500s)."""

    duration: float = 0.05
    error_share: float = 0.0
    buckets: dict[float, int] = field(default_factory=dict)
    total: int = 0
    duration_sum: float = 0.0
    by_status: dict[str, int] = field(default_factory=lambda: {"200": 0, "500": 0})
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, duration: float, error_share: float) -> None:
        with self.lock:
            self.duration, self.error_share = duration, error_share

    def scrape(self) -> str:
        with self.lock:
            errors = round(REQUESTS_PER_SCRAPE * self.error_share)
            self.by_status["500"] += errors
            self.by_status["200"] += REQUESTS_PER_SCRAPE - errors
            self.total += REQUESTS_PER_SCRAPE
            self.duration_sum += REQUESTS_PER_SCRAPE * self.duration
            for le in names.REQUEST_DURATION_BUCKETS:
                if self.duration <= le:
                    self.buckets[le] = self.buckets.get(le, 0) + REQUESTS_PER_SCRAPE
            family = names.API_REQUEST_DURATION_SECONDS
            lines = [f"# TYPE {family} histogram"]
            for le in names.REQUEST_DURATION_BUCKETS:
                lines.append(f'{family}_bucket{{le="{le}"}} {self.buckets.get(le, 0)}')
            lines += [
                f'{family}_bucket{{le="+Inf"}} {self.total}',
                f"{family}_sum {self.duration_sum}",
                f"{family}_count {self.total}",
                f"# TYPE {names.API_REQUESTS_TOTAL} counter",
            ]
            for status, count in self.by_status.items():
                lines.append(
                    f'{names.API_REQUESTS_TOTAL}{{method="POST",endpoint="{ENDPOINT}",'
                    f'status="{status}"}} {count}'
                )
            return "\n".join(lines) + "\n"


@dataclass
class Stack:
    app: FakeApp
    receiver: ps.Receiver
    prometheus_url: str
    logs: list[Path]

    def tails(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.logs)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Fake app + webhook receiver (threads), Prometheus and Alertmanager (processes)."""
    app, receiver = FakeApp(), ps.Receiver()

    class MetricsHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = app.scrape().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    servers = [ps.serve(MetricsHandler), ps.webhook_server(receiver)]
    target = f"127.0.0.1:{servers[0].server_address[1]}"
    webhook = f"http://127.0.0.1:{servers[1].server_address[1]}"
    am_port, prom_port = ps.free_port(), ps.free_port()
    am_config = ps.render_alertmanager(tmp_path / "am", webhook_base=webhook)
    prom_config = ps.render_prometheus(
        tmp_path / "prom",
        targets={ps.COLLECTOR_JOB: [target]},
        alertmanager=f"127.0.0.1:{am_port}",
        rules_dir=ps.shorten_rules(tmp_path / "rules", for_="3s", window="10s"),
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    logs = [tmp_path / "alertmanager.log", tmp_path / "prometheus.log"]
    procs = [
        ps.start_process([ps.require_binary("prometheus-alertmanager"),
                          f"--config.file={am_config}",
                f"--storage.path={tmp_path / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
               logs[0]),
        ps.start_process([ps.require_binary("prometheus"), f"--config.file={prom_config}",
                f"--storage.tsdb.path={tmp_path / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
                "--rules.alert.resend-delay=1s"], logs[1]),
    ]
    s = Stack(app, receiver, f"http://127.0.0.1:{prom_port}", logs)
    try:
        ps.wait_until(lambda: ps.answers(f"http://127.0.0.1:{am_port}/-/ready"), 30,
                      "Alertmanager ready")
        ps.wait_until(lambda: ps.answers(f"{s.prometheus_url}/-/ready"), 30, "Prometheus ready")
        yield s
    finally:
        for proc in procs:
            ps.stop_process(proc)
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.mark.e2e
def test_slow_then_failing_app_alerts_and_recovers(stack: Stack) -> None:
    """A slow app raises HighResponseTime (warning route), a failing one HighErrorRate
    (critical route), each with its value in the description; after recovery both
    arrive as resolved - all within three minutes."""
    started = time.monotonic()
    try:
        # Healthy: fast, no errors - nothing may fire.
        ps.wait_until(
            lambda: ps.http_get_json(f"{stack.prometheus_url}/api/v1/query?query=up")[
                "data"]["result"][0]["value"][1] == "1", 30, "target scraped")
        time.sleep(6)
        assert stack.receiver.notifications("HighResponseTime", "firing") == []
        assert stack.receiver.notifications("HighErrorRate", "firing") == []

        stack.app.set(duration=3.0, error_share=0.0)
        ps.wait_until(lambda: bool(stack.receiver.notifications("HighResponseTime", "firing")),
                      60, "HighResponseTime at the webhook")
        _, path, alert = stack.receiver.notifications("HighResponseTime", "firing")[0]
        assert path.split()[0] == "/alerts"
        assert alert["labels"]["severity"] == "warning"
        assert "(threshold 2s)" in alert["annotations"]["description"]
        p95 = float(alert["annotations"]["description"].split(" is ")[1].split("s ")[0])
        assert 2.0 < p95 <= 3.0
        assert stack.receiver.notifications("HighErrorRate", "firing") == []

        stack.app.set(duration=3.0, error_share=0.5)
        ps.wait_until(lambda: bool(stack.receiver.notifications("HighErrorRate", "firing")),
                      60, "HighErrorRate at the webhook")
        _, path, alert = stack.receiver.notifications("HighErrorRate", "firing")[0]
        assert path.split()[0] == "/alerts/critical"
        assert alert["labels"]["severity"] == "critical"
        assert alert["annotations"]["description"].split(" of API")[0].endswith("%")

        stack.app.set(duration=0.05, error_share=0.0)
        for alertname in ("HighResponseTime", "HighErrorRate"):
            ps.wait_until(lambda a=alertname: bool(stack.receiver.notifications(a, "resolved")),
                          60, f"{alertname} resolved at the webhook")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.tails()}") from exc
    assert time.monotonic() - started < 180
