"""Alerting end to end driven by the REAL demo app, every part a real process on 127.0.0.1.

The demo (``uvicorn hapa_telemetry.demo.app:app``, no OTLP endpoint) serves its own
/metrics; Debian's Prometheus scrapes it directly with the seed's scrape config (job
``hapa-backend``, a deployment without the collector), every second. The repo's rules are
used as they are - they select no job and work on either path - only with ``for:``
shortened to 3 s and the 5 m windows to 10 s. Alertmanager (overlay: the deployed routes,
1 s grouping waits) posts to a webhook receiver served by this test. A thread sends
bounded traffic to /api/v1/items/{id}; the demo's chaos knob (POST /api/v1/demo/chaos)
makes it slow, then failing, then healthy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import promstack as ps

SCRAPE_JOB = ps.SERVICE_JOB
SLOW_DELAY = 2.5  # seconds added to every request: p95 well above the 2 s threshold
WORKERS = 8  # concurrent clients: with 2.5 s requests still ~3 completions per second
PACE = 0.5  # each client sends at most one request per PACE seconds
CLIENT_TIMEOUT = 10.0
LOAD_MAX_SECONDS = 220.0  # the load thread stops by itself after this, whatever happens
LOAD_MAX_REQUESTS = 3000  # per client
TEST_BUDGET = 240.0
DIAGNOSTIC_QUERIES = (
    f'up{{job="{SCRAPE_JOB}"}}',
    "ALERTS",
    f'sum by (le) (rate(api_request_duration_seconds_bucket{{job="{SCRAPE_JOB}"}}[10s]))',
    f'sum by (status) (rate(api_requests_total{{job="{SCRAPE_JOB}"}}[10s]))',
)


# ---------------------------------------------------------------------------- the demo
def _demo_env(log_dir: Path) -> dict[str, str]:
    """The environment of the demo process: logs into a temp folder, no stdout logs, a
    fast fake model, no OTLP export and /metrics on the app's own port."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("OTEL_") and k not in ("METRICS_PORT", "METRICS_TOKEN")
    }
    env.update(LOG_DIRECTORY=str(log_dir), LOG_TO_STDOUT="false", DEMO_MODEL_DELAY="0.001")
    return env


def _post_json(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


@dataclass
class Load:
    """WORKERS threads sending GET /api/v1/items/{i}, bounded in count and time."""

    base: str
    stop: threading.Event = field(default_factory=threading.Event)
    outcomes: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def _work(self, worker: int) -> None:
        deadline = time.monotonic() + LOAD_MAX_SECONDS
        for n in range(LOAD_MAX_REQUESTS):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            began = time.monotonic()
            try:
                with urllib.request.urlopen(
                    f"{self.base}/api/v1/items/{worker * 10_000 + n}", timeout=CLIENT_TIMEOUT
                ) as response:
                    outcome = str(response.status)
            except urllib.error.HTTPError as exc:
                outcome = str(exc.code)
            except OSError as exc:
                outcome = type(exc).__name__
            with self.lock:
                self.outcomes[outcome] += 1
            self.stop.wait(max(0.0, PACE - (time.monotonic() - began)))

    def start(self) -> None:
        for worker in range(WORKERS):
            thread = threading.Thread(target=self._work, args=(worker,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=CLIENT_TIMEOUT + 2)

    def counts(self) -> dict[str, int]:
        with self.lock:
            return dict(self.outcomes)


@dataclass
class Stack:
    demo: str
    prometheus: str
    receiver: ps.Receiver
    load: Load
    logs: list[Path]

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        return list(ps.http_get_json(url)["data"]["result"])

    def chaos(self, delay: float, error_rate: float) -> None:
        applied = _post_json(f"{self.demo}/api/v1/demo/chaos",
                             {"delay": delay, "error_rate": error_rate})
        assert applied == {"delay": delay, "error_rate": error_rate}

    def tails(self) -> str:
        """What a failure message needs: process logs, client outcomes, Prometheus' view."""
        out = [f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self.logs]
        out.append(f"--- client outcomes: {self.load.counts()}")
        for promql in DIAGNOSTIC_QUERIES:
            try:
                out.append(f"--- {promql}: {self.query(promql)}")
            except OSError as exc:
                out.append(f"--- {promql}: {exc!r}")
        try:
            groups = ps.http_get_json(f"{self.prometheus}/api/v1/rules")["data"]["groups"]
            for rule in (r for g in groups for r in g["rules"]):
                if rule["name"] in ("HighResponseTime", "HighErrorRate"):
                    out.append(f"--- rule {rule['name']}: {rule['health']} "
                               f"{rule.get('lastError', '')} {rule['query']}")
        except OSError as exc:
            out.append(f"--- rules: {exc!r}")
        return "\n".join(out)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """Demo app, Prometheus and Alertmanager (processes), webhook receiver and load
    (threads); everything stopped by PID / joined on the way out."""
    receiver = ps.Receiver()
    server = ps.webhook_server(receiver)
    webhook = f"http://127.0.0.1:{server.server_address[1]}"
    demo_port, am_port, prom_port = ps.free_port(), ps.free_port(), ps.free_port()
    demo = f"http://127.0.0.1:{demo_port}"
    am_config = ps.render_alertmanager(tmp_path / "am", webhook_base=webhook)
    prom_config = ps.render_prometheus(
        tmp_path / "prom",
        targets={SCRAPE_JOB: [f"127.0.0.1:{demo_port}"]},
        alertmanager=f"127.0.0.1:{am_port}",
        rules_dir=ps.shorten_rules(tmp_path / "rules", for_="3s", window="10s"),
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    (tmp_path / "demo-logs").mkdir()
    logs = [tmp_path / "demo.log", tmp_path / "alertmanager.log", tmp_path / "prometheus.log"]
    load = Load(demo)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(ps.start_process(
            [sys.executable, "-m", "uvicorn", "hapa_telemetry.demo.app:app",
             "--host", "127.0.0.1", "--port", str(demo_port), "--no-access-log"],
            logs[0], env=_demo_env(tmp_path / "demo-logs"), cwd=tmp_path))
        procs.append(ps.start_process(
            [ps.require_binary("prometheus-alertmanager"), f"--config.file={am_config}",
             f"--storage.path={tmp_path / 'am-data'}",
             f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
            logs[1]))
        procs.append(ps.start_process(
            [ps.require_binary("prometheus"), f"--config.file={prom_config}",
             f"--storage.tsdb.path={tmp_path / 'prom-data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}",
             "--rules.alert.resend-delay=1s"],
            logs[2]))
        s = Stack(demo, f"http://127.0.0.1:{prom_port}", receiver, load, logs)
        try:
            ps.wait_until(lambda: ps.answers(f"{demo}/api/v1/items/0"), 30, "demo answering")
            ps.wait_until(lambda: ps.answers(f"http://127.0.0.1:{am_port}/-/ready"), 30,
                          "Alertmanager ready")
            ps.wait_until(lambda: ps.answers(f"{s.prometheus}/-/ready"), 30, "Prometheus ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{s.tails()}") from exc
        yield s
    finally:
        load.close()
        for proc in reversed(procs):
            ps.stop_process(proc)
        server.shutdown()
        server.server_close()


@pytest.mark.e2e
def test_demo_slow_then_failing_alerts_and_recovers(stack: Stack) -> None:
    """The real demo made slow raises HighResponseTime (warning route), made failing
    raises HighErrorRate (critical route), and after recovery both arrive resolved at the
    webhook - all within four minutes."""
    started = time.monotonic()
    marks: dict[str, float] = {}

    def mark(what: str) -> None:
        marks[what] = round(time.monotonic() - started, 1)

    def arrived(alertname: str, status: str) -> Callable[[], bool]:
        return lambda: bool(stack.receiver.notifications(alertname, status))

    try:
        # Normal: real traffic, fast, no errors - Prometheus sees it and nothing fires.
        stack.load.start()
        ps.wait_until(
            lambda: float(stack.query(
                f'sum(rate(api_requests_total{{job="{SCRAPE_JOB}",status="200"}}[10s]))'
            )[0]["value"][1]) > 1,
            30, "the demo's requests counted by Prometheus")
        mark("traffic seen")
        time.sleep(8)  # > window/for: a false alarm on normal traffic would have fired
        assert stack.receiver.notifications("HighResponseTime", "firing") == []
        assert stack.receiver.notifications("HighErrorRate", "firing") == []
        mark("normal ok")

        # Slow: every request takes >= 2.5 s.
        stack.chaos(delay=SLOW_DELAY, error_rate=0.0)
        ps.wait_until(arrived("HighResponseTime", "firing"), 60, "HighResponseTime at the webhook")
        mark("HighResponseTime firing")
        _, path, alert = stack.receiver.notifications("HighResponseTime", "firing")[0]
        assert path == "/alerts hapa-webhook"
        assert alert["labels"]["severity"] == "warning"
        assert alert["labels"]["job"] == SCRAPE_JOB  # the service, as on the collector path
        description = alert["annotations"]["description"]
        assert "(threshold 2s)" in description
        p95 = float(description.split(" is ")[1].split("s ")[0])
        assert SLOW_DELAY <= p95 <= 3.0, description  # the (2.5, 3] bucket
        assert stack.receiver.notifications("HighErrorRate", "firing") == []

        # Failing: no extra delay, every request answered 500.
        stack.chaos(delay=0.0, error_rate=1.0)
        ps.wait_until(arrived("HighErrorRate", "firing"), 60, "HighErrorRate at the webhook")
        mark("HighErrorRate firing")
        _, path, alert = stack.receiver.notifications("HighErrorRate", "firing")[0]
        assert path == "/alerts/critical hapa-critical"
        assert alert["labels"]["severity"] == "critical"
        share = alert["annotations"]["description"].split(" of API")[0]
        assert share.endswith("%") and float(share.rstrip("%")) > 10, share

        # Recovered: both resolve (send_resolved) on their own routes.
        stack.chaos(delay=0.0, error_rate=0.0)
        for alertname, route in (("HighResponseTime", "/alerts hapa-webhook"),
                                 ("HighErrorRate", "/alerts/critical hapa-critical")):
            ps.wait_until(arrived(alertname, "resolved"), 60, f"{alertname} resolved")
            mark(f"{alertname} resolved")
            assert {p for _, p, _ in stack.receiver.notifications(alertname, "resolved")} \
                == {route}
        counts = stack.load.counts()
        assert counts.get("200", 0) > 0 and counts.get("500", 0) > 0, counts
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nmarks: {marks}\n{stack.tails()}") from exc
    print(f"\nphase marks (s since start): {marks}; client outcomes: {stack.load.counts()}")
    assert time.monotonic() - started < TEST_BUDGET
