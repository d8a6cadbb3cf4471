"""Zero-loss check (issue 10): a paced request rate for a fixed time through the real
collector into Elasticsearch, and every span and log record accounted for.

Run on demand (not a test), against a running single-topology stack:

    scripts/stack up                                   # or with shifted HAPA_STACK_* ports
    .venv/bin/python bench/zero_loss.py                # 1,000 req/s for 60 s (the issue's numbers)
    .venv/bin/python bench/zero_loss.py --rate 500 --duration 20

What it does, every step bounded in time:

1. Starts ``bench/apps/hapa.py`` (the package's two lines) under uvicorn (``--std``:
   ``--loop uvloop --http httptools``), OTLP http/protobuf to the collector's OTLP/HTTP
   port, with a unique ``OTEL_SERVICE_NAME`` (``zl-<run id>``) so this run's documents can
   be told from everything else in the indices.
2. Drives ``GET /api/v1/items/{id}`` with wrk at a fixed rate: one wrk thread, ``--connections``
   keep-alive connections, and a Lua ``delay()`` that hands every request the next slot of
   one schedule (1/rate apart, monotonic clock through LuaJIT's FFI), so the rate does not
   depend on the server's latency; a connection that falls behind catches up at most 1 s of
   missed slots (then the schedule slides and the achieved rate shows it).
3. After the load: waits until the app's exporters go quiet, reads the app's /metrics
   (``api_requests_total``: requests served; ``hapa_telemetry_export_total``) and /health
   (export batches ok/failed, rejected items, log lines dropped), stops it (SIGTERM, which
   flushes), and counts the SDK's "Queue full, dropping" warnings in its log file.
4. Waits until Elasticsearch has everything (or stops changing), then counts, for this
   run's service name only: spans in ``hapa-traces-*`` (distinct ``SpanId``) and request
   log records in ``hapa-backend-*`` (distinct ``request_id`` + ``event_type``: one
   ``request_start`` and one ``request_end`` per request), both with composite
   aggregations (exact, paged), and duplicates (documents − distinct ids).
5. Reads the collector's own metrics (telemetry port, deltas over the run):
   ``otelcol_receiver_accepted_*`` / ``refused_*``, ``otelcol_exporter_sent_*`` /
   ``send_failed_*`` / ``enqueue_failed_*`` per receiver/exporter.

Expected = requests the app served (its own counter) × 1 span and × 2 log records.
Lost = expected − distinct ids in Elasticsearch. Exit status 1 when anything was lost,
duplicated, dropped, refused or failed, 2 when the run itself could not be done.

Ports come from the same environment variables as scripts/stack (HAPA_STACK_OTLP_HTTP_PORT,
HAPA_STACK_ES_PORT, HAPA_STACK_COLLECTOR_TELEMETRY_PORT; HAPA_STACK_DIR for the PID files
used to measure the collector's and Elasticsearch's CPU).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from http_bench import (
    APPS,
    MAIN_PY,
    ROOT,
    STD_ARGS,
    STD_VENV,
    WRK_LUA,
    ensure_venv,
    ensure_wrk,
    free_port,
    spawn,
    stop,
    wait_http,
)

PATH = "/api/v1/items/{n}"
ROUTE = "/api/v1/items/{item_id}"
REQUEST_EVENTS = ("request_start", "request_end")
STACK_DIR = Path(os.environ.get("HAPA_STACK_DIR", str(ROOT / ".stack")))


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


# -- load ------------------------------------------------------------------------------------
def paced_lua(rate: float, catchup_ms: float = 1000.0) -> str:
    """One schedule for all connections of the (single) wrk thread: every request takes the
    next slot, 1000/rate ms after the previous one; a slot more than ``catchup_ms`` in the
    past is moved up to now - catchup_ms (the schedule slides instead of bursting)."""
    return (
        """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } zl_timespec;
int clock_gettime(int clk_id, zl_timespec *tp);
]]
local ts = ffi.new("zl_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local interval = @INTERVAL@
local catchup = @CATCHUP@
local slot = nil
local n = 0
delay = function()
  local now = now_ms()
  if slot == nil then slot = now - interval end
  slot = slot + interval
  if slot < now - catchup then slot = now - catchup end
  local d = slot - now
  if d < 0 then return 0 end
  return d
end
request = function()
  n = n + 1
  return wrk.format("GET", "/api/v1/items/" .. (n % 1000))
end
"""
        .replace("@INTERVAL@", f"{1000.0 / rate:.6f}")
        .replace("@CATCHUP@", f"{catchup_ms:.1f}")
        + WRK_LUA
    )


def run_wrk(wrk: str, lua: Path, url: str, duration: float, conns: int) -> dict[str, Any]:
    out = subprocess.run(
        [wrk, "-t1", f"-c{conns}", f"-d{duration:g}s", "--timeout", "10s", "-s", str(lua), url],
        capture_output=True, text=True, timeout=duration + 60,
    )
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            data: dict[str, Any] = json.loads(line[8:])
            data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
            return data
    raise RuntimeError(f"wrk gave no result: {out.stdout[-500:]} {out.stderr[-500:]}")


# -- HTTP helpers ----------------------------------------------------------------------------
def get_text(url: str, timeout: float = 10, any_status: bool = False) -> str:
    """The body of a GET; with ``any_status`` also of an error answer (/health says 503
    when the machine's CPU is high, and its body is still the report)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return str(r.read().decode())
    except urllib.error.HTTPError as err:
        if any_status:
            return str(err.read().decode())
        raise


def es(method: str, url: str, body: Any = None, timeout: float = 60) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as err:
        raise RuntimeError(f"{method} {url}: {err.code} {err.read()[:300]!r}") from err


# label values may hold braces themselves (endpoint="/api/v1/items/{item_id}")
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_prom(text: str, prefixes: tuple[str, ...],
               keep: tuple[str, ...]) -> dict[str, float]:
    """Samples whose name starts with one of ``prefixes``, summed over every label not in
    ``keep``; keys ``name{label=value,...}``."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        m = _SAMPLE.match(line)
        if not m or not m.group(1).startswith(prefixes):
            continue
        labels = dict(_LABEL.findall(m.group(2) or ""))
        sel = ",".join(f"{k}={labels[k]}" for k in keep if k in labels)
        key = f"{m.group(1)}{{{sel}}}"
        try:
            out[key] = out.get(key, 0.0) + float(m.group(3))
        except ValueError:
            continue
    return out


COLLECTOR_PREFIXES = (
    "otelcol_receiver_accepted_", "otelcol_receiver_refused_", "otelcol_receiver_failed_",
    "otelcol_exporter_sent_", "otelcol_exporter_send_failed_", "otelcol_exporter_enqueue_failed_",
    "otelcol_processor_refused_", "otelcol_processor_dropped_", "otelcol_processor_incoming_",
    "otelcol_processor_outgoing_",
)
COLLECTOR_GAUGES = ("otelcol_exporter_queue_size",)


def collector_metrics(url: str) -> dict[str, float]:
    return parse_prom(get_text(url), COLLECTOR_PREFIXES + COLLECTOR_GAUGES,
                      ("receiver", "exporter", "processor", "transport"))


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    keys = sorted(set(after) | set(before))
    return {k: after.get(k, 0.0) - (0.0 if k.startswith(COLLECTOR_GAUGES) else
                                    before.get(k, 0.0)) for k in keys}


def pick(d: dict[str, float], name: str, **labels: str) -> float:
    """Sum of the entries of ``name`` whose selected labels include ``labels``."""
    total = 0.0
    for key, v in d.items():
        n, _, rest = key.partition("{")
        if n != name:
            continue
        have = dict(kv.split("=", 1) for kv in rest.rstrip("}").split(",") if kv)
        if all(have.get(k) == val for k, val in labels.items()):
            total += v
    return total


# -- Elasticsearch counting ------------------------------------------------------------------
class ES:
    def __init__(self, base: str, service: str) -> None:
        self.base = base
        self.service = service

    def _svc(self) -> dict[str, Any]:
        return {"term": {"Resource.service.name.keyword": self.service}}

    def span_query(self) -> dict[str, Any]:
        return {"bool": {"filter": [self._svc()]}}

    def log_query(self) -> dict[str, Any]:
        return {"bool": {"filter": [self._svc(),
                                    {"terms": {"event_type.keyword": list(REQUEST_EVENTS)}}]}}

    def refresh(self) -> None:
        es("POST", f"{self.base}/hapa-traces-*,hapa-backend-*/_refresh"
                   "?ignore_unavailable=true&allow_no_indices=true")

    def count(self, index: str, query: dict[str, Any]) -> int:
        body = es("POST", f"{self.base}/{index}/_count?ignore_unavailable=true"
                          "&allow_no_indices=true", {"query": query})
        return int(body.get("count", 0))

    def counts(self) -> tuple[int, int, int]:
        """(span docs, request log docs, all log docs of this service) after a refresh."""
        self.refresh()
        return (self.count("hapa-traces-*", self.span_query()),
                self.count("hapa-backend-*", self.log_query()),
                self.count("hapa-backend-*", {"bool": {"filter": [self._svc()]}}))

    def distinct(self, index: str, query: dict[str, Any], fields: tuple[str, ...],
                 max_pages: int) -> dict[str, int]:
        """Exact distinct keys over ``fields`` (composite aggregation, pages of 10,000):
        distinct, keys seen more than once, documents in them, pages read."""
        after: dict[str, Any] | None = None
        distinct = dup_keys = docs = pages = 0
        missing_page_limit = False
        while True:
            if pages >= max_pages:
                missing_page_limit = True
                break
            comp: dict[str, Any] = {
                "size": 10000,
                "sources": [{f: {"terms": {"field": f"{f}.keyword"}}} for f in fields],
            }
            if after is not None:
                comp["after"] = after
            body = es("POST", f"{self.base}/{index}/_search?ignore_unavailable=true"
                              "&allow_no_indices=true",
                      {"size": 0, "query": query, "aggs": {"ids": {"composite": comp}}},
                      timeout=120)
            pages += 1
            agg = body.get("aggregations", {}).get("ids", {})
            buckets = agg.get("buckets", [])
            for b in buckets:
                distinct += 1
                docs += b["doc_count"]
                if b["doc_count"] > 1:
                    dup_keys += 1
            after = agg.get("after_key")
            if not buckets or after is None:
                break
        return {"distinct": distinct, "docs_with_key": docs, "keys_seen_twice_or_more": dup_keys,
                "pages": pages, "page_limit_hit": int(missing_page_limit)}

    def span_names(self) -> dict[str, int]:
        body = es("POST", f"{self.base}/hapa-traces-*/_search?ignore_unavailable=true"
                          "&allow_no_indices=true",
                  {"size": 0, "query": self.span_query(),
                   "aggs": {"n": {"terms": {"field": "Name.keyword", "size": 20}}}})
        return {b["key"]: b["doc_count"]
                for b in body.get("aggregations", {}).get("n", {}).get("buckets", [])}


# -- CPU accounting --------------------------------------------------------------------------
def cpu_snapshot() -> dict[int, tuple[str, float]]:
    snap: dict[int, tuple[str, float]] = {}
    for p in psutil.process_iter(["name", "cmdline"]):
        try:
            t = p.cpu_times()
            cmd = " ".join(p.info["cmdline"] or [p.info["name"] or "?"])
            snap[p.pid] = (cmd[:110], t.user + t.system)
        except (psutil.Error, TypeError):
            continue
    return snap


def cpu_report(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
               seconds: float, named: dict[str, int | None], top: int = 8) -> dict[str, Any]:
    """CPU % of one core per named process over the window, and the top other processes."""
    per: dict[int, float] = {}
    for pid, (_cmd, t1) in after.items():
        t0 = before.get(pid, ("", 0.0))[1]
        per[pid] = (t1 - t0) / seconds * 100
    out: dict[str, Any] = {}
    mine = set()
    for label, pid in named.items():
        if pid is not None and pid in per:
            out[label] = round(per[pid], 1)
            mine.add(pid)
    others = sorted(((v, pid) for pid, v in per.items() if pid not in mine and v >= 1.0),
                    reverse=True)[:top]
    out["others"] = [(round(v, 1), after[pid][0]) for v, pid in others]
    return out


def stack_pid(part: str) -> int | None:
    try:
        pid = int((STACK_DIR / "run" / f"{part}.pid").read_text().strip())
        return pid if psutil.pid_exists(pid) else None
    except (OSError, ValueError):
        return None


# -- waiting ---------------------------------------------------------------------------------
def settle(probe: Callable[[], Any], done: Callable[[Any], bool], timeout: float,
           interval: float, stable_polls: int, what: str) -> tuple[Any, float, str]:
    """Poll ``probe`` until ``done(value)`` or the value is unchanged for ``stable_polls``
    polls in a row, at most ``timeout`` seconds. Returns (last value, seconds, why)."""
    t0 = time.monotonic()
    last: Any = None
    same = 0
    while True:
        try:
            value = probe()
        except Exception as exc:  # a busy ES can time out a request: keep polling
            print(f"  {what}: {type(exc).__name__}: {exc}", flush=True)
            value = last
        if value is not None and done(value):
            return value, time.monotonic() - t0, "complete"
        same = same + 1 if value == last and value is not None else 0
        last = value
        if same >= stable_polls:
            return value, time.monotonic() - t0, f"unchanged for {stable_polls} polls"
        if time.monotonic() - t0 > timeout:
            return value, time.monotonic() - t0, f"timeout {timeout:.0f} s"
        time.sleep(interval)


def app_stats(base: str) -> dict[str, Any]:
    metrics = get_text(base + "/metrics")
    health = json.loads(get_text(base + "/health", any_status=True))
    served = parse_prom(metrics, ("api_requests_total",), ("endpoint", "status"))
    export = parse_prom(metrics, ("hapa_telemetry_export_total",), ("signal", "outcome"))
    return {
        "served": int(sum(v for k, v in served.items() if ROUTE in k)),
        "served_by_status": served,
        "export_total": export,
        "health_telemetry": health.get("telemetry", {}),
    }


def queue_full_warnings(log_dir: Path) -> int:
    n = 0
    for f in log_dir.glob("hapa_*.log*"):
        with f.open("rb") as fh:
            for line in fh:
                if b"Queue full" in line or b"dropping" in line:
                    n += 1
    return n


def request_lines(log_dir: Path) -> int:
    n = 0
    for f in log_dir.glob("hapa_*.log*"):
        with f.open("rb") as fh:
            for line in fh:
                if b'"event_type":"request_start"' in line or b'"event_type":"request_end"' in line:
                    n += 1
    return n


# -- main ------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=1000.0, help="requests/s (paced)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    ap.add_argument("--connections", type=int, default=256,
                    help="keep-alive connections; rate <= connections / mean latency")
    ap.add_argument("--std", action="store_true",
                    help="uvicorn --loop uvloop --http httptools (uvicorn[standard], "
                    "from bench/.venv-std)")
    ap.add_argument("--settle-timeout", type=float, default=300.0,
                    help="seconds to wait for Elasticsearch to have everything")
    ap.add_argument("--app-env", action="append", default=[], metavar="K=V",
                    help="extra environment for the app (repeatable)")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default bench/results)")
    args = ap.parse_args()
    if not (1 <= args.rate <= 20000 and 1 <= args.duration <= 900 and 1 <= args.connections
            <= 1000 and 10 <= args.settle_timeout <= 1800):
        sys.exit("out of range: 1 <= --rate <= 20000, 1 <= --duration <= 900, "
                 "1 <= --connections <= 1000, 10 <= --settle-timeout <= 1800")

    otlp = f"http://127.0.0.1:{_port('HAPA_STACK_OTLP_HTTP_PORT', 4318)}"
    es_base = f"http://127.0.0.1:{_port('HAPA_STACK_ES_PORT', 9200)}"
    telemetry = f"http://127.0.0.1:{_port('HAPA_STACK_COLLECTOR_TELEMETRY_PORT', 8888)}/metrics"
    health = f"http://127.0.0.1:{_port('HAPA_STACK_COLLECTOR_HEALTH_PORT', 13133)}/"
    run_id = uuid.uuid4().hex[:10]
    service = f"zl-{run_id}"
    wrk = ensure_wrk()
    results_dir = ROOT / "bench" / "results"
    results_dir.mkdir(exist_ok=True)
    out = args.out or results_dir / f"zero-loss-{time.strftime('%Y%m%d-%H%M%S')}.json"
    res: dict[str, Any] = {
        "run_id": run_id, "service": service, "args": {**vars(args), "out": str(out)},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_head": subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                                   capture_output=True, text=True).stdout.strip(),
        "endpoints": {"otlp_http": otlp, "es": es_base, "collector_telemetry": telemetry},
        "load_at_start": os.getloadavg(),
    }
    print(f"run {run_id}: service.name={service}, {args.rate:g} req/s for {args.duration:g} s, "
          f"OTLP {otlp}, ES {es_base}; load {res['load_at_start']}", flush=True)
    for url, what in ((es_base, "Elasticsearch"), (health, "collector health"),
                      (telemetry, "collector telemetry")):
        try:
            get_text(url, timeout=5)
        except Exception as exc:
            print(f"{what} does not answer at {url}: {exc} (scripts/stack up?)", file=sys.stderr)
            return 2
    col_before = collector_metrics(telemetry)
    store = ES(es_base, service)

    work = Path(tempfile.mkdtemp(prefix=f"zero-loss-{run_id}-"))
    log_dir = work / "logs"
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OTEL_", "LOG_", "HAPA_", "PROMETHEUS_MULTIPROC"))
           and k not in ("DEBUG", "ENABLE_METRICS", "METRICS_PORT", "PYTHONPATH")}
    env.update(OTEL_SERVICE_NAME=service, OTEL_EXPORTER_OTLP_ENDPOINT=otlp,
               OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf", OTEL_METRIC_EXPORT_INTERVAL="5000",
               LOG_DIRECTORY=str(log_dir), LOG_LEVEL="INFO")
    for kv in args.app_env:
        k, _, v = kv.partition("=")
        env[k] = v
    python = MAIN_PY
    if args.std:  # uvloop + httptools live in bench/.venv-std only (see http_bench.py)
        ensure_venv(STD_VENV)
        python = STD_VENV / "bin" / "python"
    cmd = [str(python), "-m", "uvicorn", "hapa:app", "--app-dir", str(APPS), "--host",
           "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning"]
    if args.std:
        cmd += STD_ARGS
    server = spawn(cmd, work / "server.err", env=env, cwd=work)
    base = f"http://127.0.0.1:{port}"
    lua = work / "paced.lua"
    lua.write_text(paced_lua(args.rate))
    status = 2
    try:
        wait_http(base + "/metrics", 60, server)  # /metrics is not a traced request
        named = {"app (uvicorn)": server.pid, "collector": stack_pid("collector"),
                 "elasticsearch": stack_pid("elasticsearch")}
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        snap0, sys0, t0 = cpu_snapshot(), psutil.cpu_times(), time.monotonic()
        w = run_wrk(wrk, lua, base + "/api/v1/items/1", args.duration, args.connections)
        snap1, sys1, t1 = cpu_snapshot(), psutil.cpu_times(), time.monotonic()
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        res["load_after_load"] = os.getloadavg()
        busy = ((sys1.user + sys1.system + sys1.nice + sys1.irq + sys1.softirq)
                - (sys0.user + sys0.system + sys0.nice + sys0.irq + sys0.softirq))
        res["cpu_percent_of_one_core"] = cpu_report(snap0, snap1, t1 - t0, named)
        res["cpu_percent_of_one_core"]["wrk"] = round(
            ((ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)) / (t1 - t0) * 100, 1)
        res["machine_busy_percent"] = round(busy / ((t1 - t0) * psutil.cpu_count()) * 100, 1)
        res["wrk"] = w
        errors = sum(w[k] for k in w if k.startswith("err_"))
        print(f"load done: {w['requests']} requests, {w['rps']:.0f} req/s (target "
              f"{args.rate:g}), mean {w['mean_us'] / 1000:.1f} ms, p99 "
              f"{w['p99_us'] / 1000:.1f} ms, max {w['max_us'] / 1000:.0f} ms,"
              f" errors {errors}; machine "
              f"{res['machine_busy_percent']} % busy; load {res['load_after_load']}", flush=True)
        print(f"  CPU (% of one core): {res['cpu_percent_of_one_core']}", flush=True)

        # The app's exporters: wait until the collector stops receiving from it.
        def received() -> tuple[float, float]:
            d = delta(collector_metrics(telemetry), col_before)
            return (pick(d, "otelcol_receiver_accepted_spans_total", receiver="otlp"),
                    pick(d, "otelcol_receiver_accepted_log_records_total", receiver="otlp"))

        _, waited, why = settle(received, lambda v: False, 60, 1.0, 8, "collector")
        res["app_quiet_after_s"] = round(waited, 1)
        app = app_stats(base)
        res["app"] = app
        res["app_shutdown_s"] = stop(server, 60)
        res["app_queue_full_warnings"] = queue_full_warnings(log_dir)
        res["app_request_lines_in_file"] = request_lines(log_dir)
        served = app["served"]
        print(f"app: served {served} ({app['served_by_status']}), export "
              f"{app['export_total']}, /health telemetry {app['health_telemetry']}, "
              f"queue-full warnings {res['app_queue_full_warnings']}, shutdown "
              f"{res['app_shutdown_s']} s", flush=True)

        exp_spans, exp_logs = served, served * len(REQUEST_EVENTS)
        res["expected"] = {"spans": exp_spans, "log_records": exp_logs}

        def es_counts() -> tuple[int, int, int, float]:
            s, lg, all_logs = store.counts()
            q = pick(collector_metrics(telemetry), "otelcol_exporter_queue_size")
            return s, lg, all_logs, q

        value, waited, why = settle(
            es_counts, lambda v: v[0] >= exp_spans and v[1] >= exp_logs and v[3] == 0,
            args.settle_timeout, 2.0, 10, "Elasticsearch")
        res["es_settle"] = {"seconds": round(waited, 1), "why": why}
        print(f"Elasticsearch after {waited:.0f} s ({why}): spans {value[0]}, request log "
              f"records {value[1]}, all log records of the run {value[2]}", flush=True)
        time.sleep(1)
        store.refresh()
        max_pages = (exp_logs + 2 * exp_spans) // 10000 + 20
        spans = store.distinct("hapa-traces-*", store.span_query(), ("SpanId",), max_pages)
        logs = store.distinct("hapa-backend-*", store.log_query(),
                              ("request_id", "event_type"), max_pages)
        spans["docs"], logs["docs"], all_logs, _ = es_counts()
        res["es"] = {"spans": spans, "request_log_records": logs,
                     "all_log_records_of_run": all_logs, "span_names": store.span_names()}
        col = delta(collector_metrics(telemetry), col_before)
        res["collector_delta"] = col
        res["load_at_end"] = os.getloadavg()

        lost_spans = exp_spans - spans["distinct"]
        lost_logs = exp_logs - logs["distinct"]
        dup_spans = spans["docs"] - spans["distinct"]
        dup_logs = logs["docs"] - logs["distinct"]
        ht = app["health_telemetry"]
        exporters = ht.get("exporters", {})
        app_failed = sum(int(s.get("failed_batches", 0)) for s in exporters.values())
        app_rejected = sum(int(s.get("rejected_items", 0)) for s in exporters.values())
        app_dropped = int(sum(v for k, v in app["export_total"].items()
                              if "outcome=dropped" in k))
        refused = sum(v for k, v in col.items() if k.startswith(
            ("otelcol_receiver_refused_", "otelcol_receiver_failed_")))
        failed = sum(v for k, v in col.items() if k.startswith(
            ("otelcol_exporter_send_failed_", "otelcol_exporter_enqueue_failed_",
             "otelcol_processor_refused_", "otelcol_processor_dropped_")))
        summary = {
            "target_rps": args.rate, "achieved_rps": round(w["rps"], 1),
            "wrk_requests": w["requests"], "wrk_errors": errors, "served": served,
            "latency_ms_mean_p99_max": [round(w[k] / 1000, 1) for k in
                                        ("mean_us", "p99_us", "max_us")],
            "cpu_percent_of_one_core": res["cpu_percent_of_one_core"],
            "machine_busy_percent": res["machine_busy_percent"],
            "expected_spans": exp_spans, "expected_log_records": exp_logs,
            "collector_accepted_spans": pick(col, "otelcol_receiver_accepted_spans_total",
                                             receiver="otlp"),
            "collector_accepted_log_records": pick(
                col, "otelcol_receiver_accepted_log_records_total", receiver="otlp"),
            "es_distinct_spans": spans["distinct"], "es_span_docs": spans["docs"],
            "es_distinct_log_records": logs["distinct"], "es_log_docs": logs["docs"],
            "lost_spans": lost_spans, "lost_log_records": lost_logs,
            # where: never reached the collector (app side: SDK queue, failed export) vs
            # accepted by the collector and missing in ES. The collector's log count also
            # holds the run's other lines (uvicorn's startup/shutdown), taken from ES.
            "lost_spans_before_collector": exp_spans - pick(
                col, "otelcol_receiver_accepted_spans_total", receiver="otlp"),
            "lost_log_records_before_collector": exp_logs - (pick(
                col, "otelcol_receiver_accepted_log_records_total", receiver="otlp")
                - (all_logs - logs["docs"])),
            "duplicate_spans": dup_spans, "duplicate_log_records": dup_logs,
            "app_failed_batches": app_failed, "app_rejected_items": app_rejected,
            "app_dropped_items": app_dropped,
            "app_log_lines_dropped": int(ht.get("log_lines_dropped", 0)),
            "app_queue_full_warnings": res["app_queue_full_warnings"],
            "collector_refused": refused, "collector_failed": failed,
            "load": [res["load_at_start"], res["load_after_load"], res["load_at_end"]],
        }
        res["summary"] = summary
        bad = (lost_spans or lost_logs or dup_spans or dup_logs or app_failed or app_rejected
               or app_dropped or summary["app_log_lines_dropped"]
               or summary["app_queue_full_warnings"] or refused or failed)
        status = 1 if bad else 0
        print("\ncollector (delta over the run, non-zero):")
        for k, v in col.items():
            if v:
                print(f"  {k} {v:g}")
        print("\nsummary:")
        for k, v in summary.items():
            print(f"  {k}: {v}")
        print("\nZERO LOSS" if not bad else "\nLOSS OR DROPS (see above)")
    except Exception as exc:
        res["error"] = f"{type(exc).__name__}: {exc}"
        print(f"run failed: {res['error']}", file=sys.stderr)
        status = 2
    finally:
        if server.poll() is None:
            res["app_shutdown_s"] = stop(server, 60)
        err = (work / "server.err").read_text(errors="replace")
        res["app_stderr_tail"] = err[-1500:]
        res["exit_status"] = status
        out.write_text(json.dumps(res, indent=1, default=str))
        print(f"results: {out} (app logs in {work})")
    return status


if __name__ == "__main__":
    sys.exit(main())
