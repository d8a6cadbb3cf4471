"""Helpers shared by the alerting tests: where the config files are, every PromQL
expression in the rules and the dashboard, the metric names they use, overlay copies of
the Prometheus/Alertmanager configs for tests, and starting Debian's binaries.

The deployed files are never edited by tests: an overlay is the same YAML loaded,
changed in memory (targets, ports, intervals, `for:` durations) and written into a
temporary folder, with rule files pointing at the repo's own rule files or at a rewritten
copy of them.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def _load_names() -> Any:
    """hapa_telemetry.names, loaded from its file alone: the name contract must be
    checkable without importing (and configuring) the whole package."""
    spec = importlib.util.spec_from_file_location(
        "_hapa_names", REPO / "src" / "hapa_telemetry" / "names.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


names = _load_names()
COLLECTOR = REPO / "collector"
PROMETHEUS_YML = COLLECTOR / "prometheus.yml"
ALERTMANAGER_YML = COLLECTOR / "alertmanager.yml"
RULES_DIR = COLLECTOR / "alerting" / "rules"
RULE_TESTS_DIR = COLLECTOR / "alerting" / "tests"
GRAFANA = COLLECTOR / "grafana"
DASHBOARDS_DIR = GRAFANA / "dashboards"

# The scrape job of the collector's Prometheus exporter in collector/prometheus.yml.
COLLECTOR_JOB = "hapa-collector"
# The service name: the `job` label of the app's families on either path (direct scrape
# with the seed's job; collector path with honor_labels), and the dashboard's $job.
SERVICE_JOB = names.DEFAULT_SERVICE_NAME
# The seed's scrape config for the app's own /metrics (a deployment without collector):
# collector/prometheus.yml shows it in a comment; overlays can select it by its job name.
SEED_DIRECT_JOB: dict[str, Any] = {"job_name": SERVICE_JOB, "metrics_path": "/metrics"}

# Metrics that are not the app's but that rules and dashboards may use: Prometheus' own
# per-target series and the OpenTelemetry Collector's self-telemetry (exact names, so a
# typo still fails the drift check).
PROMETHEUS_BUILTINS = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
COLLECTOR_SELF_METRICS = frozenset(
    f"otelcol_exporter_{kind}_{signal}_total"
    for kind in ("sent", "send_failed", "enqueue_failed")
    for signal in ("log_records", "spans", "metric_points")
)

_HISTOGRAM_FAMILIES = (
    names.API_REQUEST_DURATION_SECONDS,
    names.AI_INFERENCE_DURATION_SECONDS,
    *names.GENAI_PROM_HISTOGRAMS,
)


def app_metric_names() -> frozenset[str]:
    """Every series name the app exposes, derived from hapa_telemetry.names."""
    out = set(names.SEED_FAMILIES) | set(names.SYSTEM_FAMILIES) | {names.TELEMETRY_EXPORT_TOTAL}
    out |= set(names.GENAI_PROM_FAMILIES)
    for family in _HISTOGRAM_FAMILIES:
        out |= {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
    out -= set(_HISTOGRAM_FAMILIES)  # a histogram family has no series of its bare name
    return frozenset(out)


def known_metric_names() -> frozenset[str]:
    """Names a rule or dashboard query may select."""
    return app_metric_names() | PROMETHEUS_BUILTINS | COLLECTOR_SELF_METRICS


# --------------------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Expr:
    """One PromQL expression and where it comes from."""

    source: str  # "rule" or "dashboard"
    name: str  # alert name, or "<panel title> / <refId>"
    expr: str


def rule_groups() -> list[dict[str, Any]]:
    """All rule groups of every rule file, in file order."""
    groups: list[dict[str, Any]] = []
    for path in sorted(RULES_DIR.glob("*.yml")):
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return groups


def rules() -> list[dict[str, Any]]:
    """Every rule of every group."""
    return [rule for group in rule_groups() for rule in group["rules"]]


def rule_exprs() -> list[Expr]:
    """The expression of every alerting or recording rule."""
    return [
        Expr("rule", rule.get("alert") or rule["record"], " ".join(rule["expr"].split()))
        for rule in rules()
    ]


def dashboards() -> dict[str, dict[str, Any]]:
    """Every provisioned dashboard JSON, by file name."""
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def dashboard_panels() -> list[dict[str, Any]]:
    """Every panel of every dashboard (rows' nested panels included)."""
    return [p for d in dashboards().values() for p in _panels(d.get("panels", []))]


def dashboard_exprs() -> list[Expr]:
    """Every PromQL expression of every Prometheus-backed panel target."""
    out = []
    for panel in dashboard_panels():
        for target in panel.get("targets", []):
            if "expr" in target:
                name = f"{panel['title']} / {target.get('refId', '?')}"
                out.append(Expr("dashboard", name, " ".join(target["expr"].split())))
    return out


def all_exprs() -> list[Expr]:
    """Rules first, then dashboard panels."""
    return rule_exprs() + dashboard_exprs()


def with_grafana_vars(expr: str, job: str = SERVICE_JOB, rate_interval: str = "1m") -> str:
    """Substitute the dashboard's variables the way Grafana would."""
    return (
        expr.replace("$__rate_interval", rate_interval)
        .replace("${job}", job)
        .replace("$job", job)
    )


_TRAILING_COMPARISON = re.compile(
    r"\s*(?:>=|<=|==|!=|>|<)\s*(?:bool\s+)?[-+]?[0-9.]+(?:e[-+]?\d+)?\s*$"
)


def signal_part(expr: str) -> str:
    """The expression without its final threshold comparison (``... > 2`` -> ``...``).

    An alert's expression is empty while the alert does not fire; its signal part must
    return data whenever the measured thing exists at all.
    """
    return _TRAILING_COMPARISON.sub("", expr)


_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.:$])[A-Za-z_:][\w:]*")
_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
     "and", "or", "unless", "atan2", "inf", "nan", "Inf", "NaN"}
)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (identifiers that are not functions,
    aggregations, keywords, label names, strings or durations)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range and subquery durations
    text = _GROUPING.sub(" ", text)
    found = set()
    for match in _IDENT.finditer(text):
        word = match.group(0)
        rest = text[match.end():].lstrip()
        if word in _KEYWORDS or rest.startswith("("):
            continue
        found.add(word)
    return found


# ------------------------------------------------------------------------------ overlays
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shorten_rules(dest: Path, for_: str, window: str) -> Path:
    """Copy the rule files into ``dest`` with every ``for:`` set to ``for_`` and every
    ``[5m]`` range replaced by ``[window]``; return the folder."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in sorted(RULES_DIR.glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        for group in doc["groups"]:
            for rule in group["rules"]:
                rule["expr"] = rule["expr"].replace("[5m]", f"[{window}]")
                if "for" in rule:
                    rule["for"] = for_
        (dest / path.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def render_prometheus(
    dest: Path,
    *,
    targets: dict[str, list[str]],
    alertmanager: str | None,
    rules_dir: Path = RULES_DIR,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
) -> Path:
    """Write an overlay of collector/prometheus.yml into ``dest``: only the jobs named in
    ``targets`` (job -> host:port list) are kept, with those targets; the Alertmanager
    target replaced (or removed when None); rule files taken from ``rules_dir``. The
    seed's direct job (:data:`SEED_DIRECT_JOB`, "hapa-backend") can be named too."""
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    config["scrape_configs"].append(dict(SEED_DIRECT_JOB))
    unknown = set(targets) - {job["job_name"] for job in config["scrape_configs"]}
    if unknown:
        raise ValueError(f"jobs not in {PROMETHEUS_YML.name}: {sorted(unknown)}")
    config["scrape_configs"] = [
        {**job, "static_configs": [{"targets": targets[job["job_name"]]}]}
        for job in config["scrape_configs"]
        if job["job_name"] in targets
    ]
    config["rule_files"] = [str(rules_dir.resolve() / "*.yml")]
    if alertmanager is None:
        config.pop("alerting", None)
    else:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    if scrape_interval:
        config["global"]["scrape_interval"] = scrape_interval
        config["global"]["scrape_timeout"] = scrape_interval
    if evaluation_interval:
        config["global"]["evaluation_interval"] = evaluation_interval
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def render_alertmanager(dest: Path, *, webhook_base: str, fast: bool = True) -> Path:
    """Write an overlay of collector/alertmanager.yml into ``dest`` whose webhook URLs
    point at ``webhook_base`` (same paths as in the deployed file); ``fast`` shrinks the
    grouping waits to one second."""
    config = yaml.safe_load(ALERTMANAGER_YML.read_text())
    for receiver in config["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            path = hook["url"].split("/", 3)[3] if hook["url"].count("/") >= 3 else ""
            hook["url"] = f"{webhook_base.rstrip('/')}/{path}"
    if fast:
        routes = [config["route"], *config["route"].get("routes", [])]
        for route in routes:
            for key in ("group_wait", "group_interval"):
                if key in route or route is config["route"]:
                    route[key] = "1s"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


# ----------------------------------------------------------------------------- processes
def require_binary(name: str) -> str:
    """Path of a binary installed by scripts/install-prometheus (fails, never skips)."""
    path = shutil.which(name)
    assert path, f"{name} not found: run scripts/install-prometheus"
    return path


def run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing text output."""
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)


def http_get_json(url: str, timeout: float = 5) -> Any:
    """GET a URL and decode its JSON body."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.5) -> None:
    """Poll ``check`` until it returns True; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ValueError, LookupError):
            pass
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def answers(url: str) -> bool:
    """True when ``url`` answers 200."""
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


# --- shared by the alerting end-to-end tests ------------------------------------------


@dataclass
class Receiver:
    """Alertmanager webhook payloads received: (monotonic time, path, body)."""

    posts: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str, body: dict[str, Any]) -> None:
        with self.lock:
            self.posts.append((time.monotonic(), path, body))

    def notifications(
        self, alertname: str, status: str
    ) -> list[tuple[float, str, dict[str, Any]]]:
        """(arrival, "<path> <receiver>", alert) for one alert name in one status, in
        arrival order."""
        with self.lock:
            return [
                (at, f"{path} {body.get('receiver')}", alert)
                for at, path, body in self.posts
                for alert in body.get("alerts", [])
                if alert["labels"].get("alertname") == alertname and alert["status"] == status
            ]


def serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """Serve ``handler`` on 127.0.0.1:<free port> from a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def webhook_server(receiver: Receiver) -> ThreadingHTTPServer:
    """A webhook endpoint that records every Alertmanager POST in ``receiver``."""

    class WebhookHandler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            receiver.add(self.path, json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return serve(WebhookHandler)


def start_process(args: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    """Start a process with stdout and stderr in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kwargs)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a process we started (kill after 10 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
