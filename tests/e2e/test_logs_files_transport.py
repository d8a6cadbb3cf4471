"""Logs through files (HAPA_LOGS_EXPORT=files) as a production transport: the app sends no
OTLP log records, the real collector's filelog receiver turns its JSON lines into the same
OTel log records as the OTLP path, and Elasticsearch gets the same documents, field by
field, for the same kinds of lines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _stack
import pytest

pytestmark = pytest.mark.e2e

# Only in one of the two documents, by design (docs/collector.md): the file the line came
# from; the SDK's own resource attributes (process, SDK, distro) that a line does not carry.
# (Scope.version is in both; the files path cannot know the package version: "".)
FILES_ONLY = {"log.file.path"}
OTLP_ONLY_PREFIXES = ("Resource.process.", "Resource.telemetry.")
# Equal by construction on both paths for the same kind of line.
SAME_VALUE = (
    "SeverityText", "SeverityNumber", "level", "logger", "module", "function", "line",
    "event_type", "method", "endpoint", "status_code", "user_id", "model", "cached",
    "error_type", "error_message", "TraceFlags", "Scope.name",
    "Resource.deployment.environment.name", "Resource.service.version",
)


@dataclass
class App:
    url: str
    service: str
    proc: subprocess.Popen[bytes]

    def instance_id(self) -> str:
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as response:
            text = response.read().decode()
        found = re.search(r'target_info\{[^}]*service_instance_id="([^"]+)"', text)
        assert found, text[:2000]
        return found.group(1)

    def call(self, method: str, path: str, trace_id: str, body: Any = None) -> int:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("content-type", "application/json")
        request.add_header("traceparent", f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as err:
            return int(err.code)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(tmp: Path, service: str, **env_extra: str) -> App:
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "PROMETHEUS_MULTIPROC", "HAPA_", "LOG_"))}
    env.update(
        OTEL_SERVICE_NAME=service,
        SERVICE_VERSION="9.9.9-e2e",
        ENVIRONMENT="e2e",
        OTEL_EXPORTER_OTLP_ENDPOINT=_stack.OTLP_HTTP,
        OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
        LOG_TO_STDOUT="false",
        DEMO_MODEL_DELAY="0.01",
        **env_extra,
    )
    log = (tmp / f"{service}.out").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "hapa_telemetry.demo.app:app", "--host",
         "127.0.0.1", "--port", str(port), "--no-access-log"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
    )
    log.close()
    app = App(f"http://127.0.0.1:{port}", service, proc)
    try:
        _stack.wait_until(lambda: proc.poll() is None and _stack.answers(app.url + "/metrics"),
                          60, f"{service} /metrics")
    except BaseException:
        _stop(app)  # not yet handed to the fixture: stop it here
        raise
    return app


def _stop(app: App) -> None:
    app.proc.terminate()
    try:
        app.proc.wait(15)
    except subprocess.TimeoutExpired:
        app.proc.kill()
        app.proc.wait(5)


@pytest.fixture
def apps(stack_up: None, tmp_path: Path) -> Iterator[tuple[App, App]]:
    """The demo twice: logs through files (into the directory the stack's collector
    tails), and logs over OTLP (the default). Traces and metrics over OTLP for both."""
    run = uuid.uuid4().hex[:8]
    _stack.FILELOG_DIR.mkdir(parents=True, exist_ok=True)
    started: list[App] = []
    try:
        started.append(_start(tmp_path, f"hapa-files-{run}", HAPA_LOGS_EXPORT="files",
                              LOG_DIRECTORY=str(_stack.FILELOG_DIR), LOG_RETENTION_DAYS="0"))
        started.append(_start(tmp_path, f"hapa-otlp-{run}",
                              LOG_DIRECTORY=str(tmp_path / "otlp-logs")))
        yield started[0], started[1]
    finally:
        for app in started:
            _stop(app)


def _traffic(app: App, user: str) -> dict[str, str]:
    """One generate request (request_start, ai_inference, request_end) and one failing
    request (request_start, error, request_end), each under a trace id of ours."""
    traces = {"generate": uuid.uuid4().hex, "fail": uuid.uuid4().hex}
    assert app.call("POST", "/api/v1/code/generate", traces["generate"],
                    {"prompt": "sort a list", "user_id": user}) == 200
    assert app.call("GET", "/api/v1/fail", traces["fail"]) == 500
    return traces


def _docs(service: str, count: int) -> list[dict[str, Any]]:
    return _stack.wait_for_docs(
        f"{_stack.LOG_INDEX_PREFIX}-*",
        {"term": {"Resource.service.name.keyword": service}}, count, 120,
    )


def _key(doc: dict[str, Any], traces: dict[str, str]) -> tuple[str, str]:
    request = next(k for k, t in traces.items() if t == doc.get("TraceId"))
    return request, str(doc.get("event_type"))


def test_files_transport_gives_the_same_records_as_otlp(apps: tuple[App, App]) -> None:
    """Same requests on both apps: every line of the files app reaches Elasticsearch through
    the filelog receiver only, and each document equals the OTLP app's document of the same
    kind field by field: trace context (the caller's trace id, span id, flags), severity
    number and text, timestamp, resource service.name / service.instance.id /
    service.version / deployment.environment.name, and the line's fields as attributes."""
    files_app, otlp_app = apps
    user = f"u-files-{uuid.uuid4().hex[:6]}"
    files_traces = _traffic(files_app, user)
    otlp_traces = _traffic(otlp_app, user)
    files_docs = _docs(files_app.service, 6)
    otlp_docs = _docs(otlp_app.service, 6)

    # The files app sent no OTLP log records: every document came from its file.
    assert all(d.get("log.file.path", "").startswith(str(_stack.FILELOG_DIR))
               for d in files_docs), files_docs
    assert not any("log.file.path" in d for d in otlp_docs)

    by_kind_files = {_key(d, files_traces): d for d in files_docs
                     if d.get("TraceId") in files_traces.values()}
    by_kind_otlp = {_key(d, otlp_traces): d for d in otlp_docs
                    if d.get("TraceId") in otlp_traces.values()}
    kinds = {("generate", "request_start"), ("generate", "ai_inference"),
             ("generate", "request_end"), ("fail", "request_start"), ("fail", "error"),
             ("fail", "request_end")}
    assert kinds <= set(by_kind_files) and kinds <= set(by_kind_otlp)

    instances = {files_app.service: files_app.instance_id(),
                 otlp_app.service: otlp_app.instance_id()}
    problems: list[str] = []
    for kind in sorted(kinds):
        f, o = by_kind_files[kind], by_kind_otlp[kind]
        f_keys = set(f) - FILES_ONLY - {"_index", "_id"}
        o_keys = {k for k in o if not k.startswith(OTLP_ONLY_PREFIXES)} - {"_index", "_id"}
        if f_keys != o_keys:
            problems.append(f"{kind}: fields only via files {sorted(f_keys - o_keys)}, "
                            f"only via OTLP {sorted(o_keys - f_keys)}")
        for field in SAME_VALUE:
            if f.get(field) != o.get(field):
                problems.append(f"{kind}: {field} files={f.get(field)!r} otlp={o.get(field)!r}")
        for doc, app, traces in ((f, files_app, files_traces), (o, otlp_app, otlp_traces)):
            if doc.get("TraceId") != traces[kind[0]]:
                problems.append(f"{kind}: TraceId {doc.get('TraceId')}")
            if not re.fullmatch(r"[0-9a-f]{16}", str(doc.get("SpanId"))):
                problems.append(f"{kind}: SpanId {doc.get('SpanId')!r}")
            if doc.get("Resource.service.instance.id") != instances[app.service]:
                problems.append(f"{kind}: instance {doc.get('Resource.service.instance.id')}")
            if doc.get("message") != doc.get("Body"):
                problems.append(f"{kind}: message/Body differ")
        if f.get("TraceFlags") != 1:
            problems.append(f"{kind}: TraceFlags {f.get('TraceFlags')!r}")
    assert problems == [], "\n".join(problems)

    # The timestamp is the line's, to the microsecond.
    lines = [json.loads(line) for path in _stack.FILELOG_DIR.glob("hapa_*.log")
             for line in path.read_text().splitlines()
             if files_app.service in line]
    end = next(x for x in lines if x.get("event_type") == "request_end"
               and x.get("trace_id") == files_traces["generate"])
    doc = by_kind_files[("generate", "request_end")]
    assert doc["@timestamp"][:26] == end["timestamp"][:26]
    assert end["service_instance_id"] == instances[files_app.service]
