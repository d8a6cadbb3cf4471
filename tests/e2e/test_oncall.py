"""The on-call story as one test: a latency alert -> the slow requests' exemplars -> their
traces in Elasticsearch -> their log lines -> `hapa-telemetry trace`.

Every part is a real process on 127.0.0.1: the demo app exporting OTLP to the stack's
collector (scripts/stack: collector + Elasticsearch), and — started here, as in
tests/alerting/test_alert_demo_e2e.py — Debian's Prometheus with exemplar storage
(scraping, every second, the collector's Prometheus exporter with honor_labels, and the
demo's own /metrics as the seed's direct job ``hapa-backend``, both OpenMetrics), the
repo's rules with ``for:`` 3 s and 10 s windows, Alertmanager (overlay: 1 s grouping) and a webhook
receiver. The demo's chaos knob makes its requests slow; the test follows the ids from
the alert to the log lines and asserts they match at every hop.
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
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import _stack
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the alerting helpers
from alerting import promstack as ps

pytestmark = pytest.mark.e2e

THRESHOLD = 2.0  # HighResponseTime: p95 above 2 s (collector/alerting/rules/hapa.yml)
SLOW_DELAY = 2.5
WORKERS = 8
PACE = 0.4
LOAD_MAX_SECONDS = 150.0
LOAD_MAX_REQUESTS = 1000  # per client
TRACES_TO_FOLLOW = 5
# The two scrape paths, each carrying the app's identity (docs/alerting.md): the
# collector's exporter with honor_labels (job = the service name) and the seed's direct
# job (job "hapa-backend", instance = the demo's address). The test's service name differs
# from "hapa-backend", so the two paths never add up in one `sum by (job)`.
COLLECTOR_JOB, APP_JOB = ps.COLLECTOR_JOB, ps.SEED_DIRECT_JOB["job_name"]


@dataclass
class Load:
    """WORKERS threads sending GET /api/v1/items/{i}, bounded in count and time."""

    base: str
    stop: threading.Event = field(default_factory=threading.Event)
    statuses: list[int] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def _work(self, worker: int) -> None:
        deadline = time.monotonic() + LOAD_MAX_SECONDS
        for n in range(LOAD_MAX_REQUESTS):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            began = time.monotonic()
            try:
                with urllib.request.urlopen(
                    f"{self.base}/api/v1/items/{worker * 10_000 + n}", timeout=10
                ) as response:
                    self.statuses.append(response.status)
            except OSError:
                self.statuses.append(0)
            self.stop.wait(max(0.0, PACE - (time.monotonic() - began)))

    def start(self) -> None:
        for worker in range(WORKERS):
            thread = threading.Thread(target=self._work, args=(worker,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=12)


@dataclass
class OnCall:
    demo: str
    service: str
    prometheus: str
    receiver: ps.Receiver
    load: Load
    logs: list[Path]

    def exemplars(self, job: str, start: float, end: float) -> list[dict[str, Any]]:
        """query_exemplars for the request-duration buckets of one job and this demo."""
        if job == COLLECTOR_JOB:
            selector = f'job="{self.service}"'
        else:
            selector = f'job="{job}",instance="{self.demo.split("//", 1)[1]}"'
        query = urllib.parse.urlencode({
            "query": f"api_request_duration_seconds_bucket{{{selector}}}",
            "start": f"{start:.3f}", "end": f"{end:.3f}",
        })
        body = ps.http_get_json(f"{self.prometheus}/api/v1/query_exemplars?{query}")
        assert body["status"] == "success", body
        return list(body["data"])

    def tails(self) -> str:
        out = [f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in self.logs
               if p.exists()]
        statuses: dict[int, int] = {}
        for s in list(self.load.statuses):
            statuses[s] = statuses.get(s, 0) + 1
        out.append(f"--- client statuses: {statuses}")
        return "\n".join(out)


def _slow(series: list[dict[str, Any]]) -> list[tuple[str, str, float, str]]:
    """(trace_id, span_id, value, le) of the exemplars on buckets above the threshold."""
    found = []
    for entry in series:
        le = float(entry["seriesLabels"]["le"])
        if le <= THRESHOLD:
            continue
        for ex in entry["exemplars"]:
            found.append((ex["labels"]["trace_id"], ex["labels"]["span_id"],
                          float(ex["value"]), entry["seriesLabels"]["le"]))
    return found


@pytest.fixture
def oncall(stack_up: None, tmp_path: Path) -> Iterator[OnCall]:
    """Demo (OTLP to the stack), Prometheus with exemplar storage, Alertmanager, webhook."""
    receiver = ps.Receiver()
    server = ps.webhook_server(receiver)
    demo_port, am_port, prom_port = ps.free_port(), ps.free_port(), ps.free_port()
    demo = f"http://127.0.0.1:{demo_port}"
    service = f"hapa-oncall-{uuid.uuid4().hex[:8]}"
    collector = _stack.COLLECTOR_PROM.split("//", 1)[1].split("/", 1)[0]
    am_config = ps.render_alertmanager(
        tmp_path / "am", webhook_base=f"http://127.0.0.1:{server.server_address[1]}")
    prom_config = ps.render_prometheus(
        tmp_path / "prom",
        targets={COLLECTOR_JOB: [collector], APP_JOB: [f"127.0.0.1:{demo_port}"]},
        alertmanager=f"127.0.0.1:{am_port}",
        rules_dir=ps.shorten_rules(tmp_path / "rules", for_="3s", window="10s"),
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "PROMETHEUS_MULTIPROC", "METRICS_"))}
    env.update(
        OTEL_SERVICE_NAME=service,
        OTEL_EXPORTER_OTLP_ENDPOINT=_stack.OTLP_HTTP,
        OTEL_METRIC_EXPORT_INTERVAL="1000",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
        LOG_DIRECTORY=str(tmp_path / "demo-logs"),
        LOG_TO_STDOUT="false",
        DEMO_MODEL_DELAY="0.001",
    )
    logs = [tmp_path / "demo.log", tmp_path / "alertmanager.log", tmp_path / "prometheus.log"]
    load = Load(demo)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(ps.start_process(
            [sys.executable, "-m", "uvicorn", "hapa_telemetry.demo.app:app", "--host",
             "127.0.0.1", "--port", str(demo_port), "--no-access-log"],
            logs[0], env=env, cwd=tmp_path))
        procs.append(ps.start_process(
            [ps.require_binary("prometheus-alertmanager"), f"--config.file={am_config}",
             f"--storage.path={tmp_path / 'am-data'}",
             f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
            logs[1]))
        procs.append(ps.start_process(
            [ps.require_binary("prometheus"), f"--config.file={prom_config}",
             f"--storage.tsdb.path={tmp_path / 'prom-data'}",
             f"--web.listen-address=127.0.0.1:{prom_port}",
             "--enable-feature=exemplar-storage", "--rules.alert.resend-delay=1s"],
            logs[2]))
        s = OnCall(demo, service, f"http://127.0.0.1:{prom_port}", receiver, load, logs)
        try:
            ps.wait_until(lambda: ps.answers(f"{demo}/api/v1/items/0"), 60, "demo answering")
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


def _trace_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "hapa_telemetry.cli", "trace", *args],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )


def test_latency_alert_leads_to_the_slow_requests_traces_and_log_lines(oncall: OnCall) -> None:
    """Slow demo requests fire HighResponseTime at the webhook; Prometheus' exemplars on
    the slow buckets (through the collector and from the app's own /metrics) name traces
    whose server span in Elasticsearch is the exemplar's span and lasted more than the
    threshold, whose request_end line has the same trace, span and duration, and which
    `hapa-telemetry trace --es` prints with that line."""
    try:
        oncall.load.start()
        ps.wait_until(lambda: oncall.exemplars(APP_JOB, time.time() - 60, time.time()) != [],
                      60, "exemplars from the demo's /metrics")
        request = urllib.request.Request(
            f"{oncall.demo}/api/v1/demo/chaos", method="POST",
            data=json.dumps({"delay": SLOW_DELAY, "error_rate": 0.0}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.loads(response.read())["delay"] == SLOW_DELAY
        ps.wait_until(lambda: bool(oncall.receiver.notifications("HighResponseTime", "firing")),
                      90, "HighResponseTime at the webhook")
        _, route, alert = oncall.receiver.notifications("HighResponseTime", "firing")[0]
        assert alert["labels"]["severity"] == "warning", route
        # The alert's window: from `startsAt - for - range` to now.
        starts = datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00")).timestamp()
        window = (starts - 15, time.time())

        # Hop 1: Prometheus' exemplars on the slow buckets, both paths.
        via_collector = _slow(oncall.exemplars(COLLECTOR_JOB, *window))
        via_app = _slow(oncall.exemplars(APP_JOB, *window))
        assert via_collector, "no exemplar above the threshold through the collector"
        assert via_app, "no exemplar above the threshold on the app's /metrics"
        for trace_id, span_id, value, le in via_collector + via_app:
            assert len(trace_id) == 32 and len(span_id) == 16
            assert THRESHOLD < value <= float(le)
        # the traces named on slow buckets by either path (bounded: at most
        # TRACES_TO_FOLLOW of each; typically all of them, 2-6 per run)
        followed = list(dict.fromkeys(t for t, *_ in via_collector))[:TRACES_TO_FOLLOW]
        followed += [t for t in dict.fromkeys(t for t, *_ in via_app)
                     if t not in followed][:TRACES_TO_FOLLOW]
        exemplar = {t: (s, v) for t, s, v, _ in via_collector + via_app}

        for trace_id in followed:
            span_id, value = exemplar[trace_id]
            # Hop 2: the trace's server span in Elasticsearch.
            spans = _stack.wait_for_docs(
                f"{_stack.TRACE_INDEX_PREFIX}-*", {"term": {"TraceId.keyword": trace_id}}, 1, 60)
            server = [d for d in spans if d["Kind"] == "SPAN_KIND_SERVER"]
            assert len(server) == 1, spans
            assert server[0]["SpanId"] == span_id
            assert server[0]["Resource.service.name"] == oncall.service
            assert server[0]["Duration"] / 1e6 > THRESHOLD
            assert abs(server[0]["Duration"] / 1e6 - value) < 0.05
            # Hop 3: its request_end line, same trace, span and duration.
            lines = _stack.wait_for_docs(
                f"{_stack.LOG_INDEX_PREFIX}-*",
                {"bool": {"filter": [{"term": {"TraceId.keyword": trace_id}},
                                     {"term": {"event_type.keyword": "request_end"}}]}}, 1, 60)
            assert len(lines) == 1
            end = lines[0]
            assert end["SpanId"] == span_id
            assert abs(float(end["duration"]) - value) < 1e-3, (end["duration"], value)

            # Hop 4: the CLI shows that trace: the server span and the request_end line.
            shown = _trace_cli(trace_id, "--es", _stack.ES)
            assert shown.returncode == 0, shown.stderr
            assert f"trace {trace_id}" in shown.stdout and "\x1b[" not in shown.stdout
            assert server[0]["Name"] in shown.stdout
            assert "request_end" in shown.stdout and f"duration={end['duration']}" in shown.stdout
            doc = json.loads(_trace_cli(trace_id, "--es", _stack.ES, "--json").stdout)
            assert doc["trace_id"] == trace_id
            assert span_id in [s["span_id"] for s in doc["spans"] if s["kind"] == "server"]
            assert [x["span_id"] for x in doc["lines"]
                    if x.get("event_type") == "request_end"] == [span_id]

        # From the logs side: `logs latency --es` names slow requests a person can open.
        report = subprocess.run(
            [sys.executable, "-m", "hapa_telemetry.cli", "logs", "latency", "--es", _stack.ES,
             "--endpoint", "/api/v1/items/{item_id}", "--since", "5m", "--json", "-q"],
            capture_output=True, text=True, timeout=60, check=False)
        assert report.returncode == 0, report.stderr
        slowest = json.loads(report.stdout)["slowest"]
        assert slowest and slowest[0]["duration"] > THRESHOLD, slowest
        assert [r["duration"] for r in slowest] == sorted(
            (r["duration"] for r in slowest), reverse=True)
        top = _trace_cli(slowest[0]["trace_id"], "--es", _stack.ES)
        assert top.returncode == 0 and slowest[0]["trace_id"] in top.stdout, top.stderr

        print(f"\nalert startsAt {alert['startsAt']}; slow-bucket exemplars: "
              f"{len(via_collector)} via the collector, {len(via_app)} from /metrics; "
              f"followed {[(t, exemplar[t][1]) for t in followed]}")
        unknown = _trace_cli(uuid.uuid4().hex, "--es", _stack.ES)
        assert unknown.returncode == 1 and "no trace" in unknown.stderr
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{oncall.tails()}") from exc
