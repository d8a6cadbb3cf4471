"""HTTP overhead benchmark: the same tiny FastAPI endpoint under every telemetry variant.

Run on demand (not a test):

    .venv/bin/python bench/http_bench.py                 # default: 8 variants x 3 rounds, ~9-10 min
    .venv/bin/python bench/http_bench.py --rounds 1 --duration 5 --variants bare,hapa-full

Each run starts one uvicorn server (1 worker, 127.0.0.1, access log off, stdout to
/dev/null), warms it up, then drives ``GET /api/v1/items/{id}`` with wrk on loopback for
``--duration`` seconds (saturated, 32 connections), then for ``--paced`` seconds with 8
connections that each wait 10 ms between requests (latency below saturation); records
req/s, p50/p99 of both, the server's CPU time per request and its RSS after the run, sends
SIGTERM and times the shutdown. Rounds are interleaved (every
round runs every variant, starting at a rotating offset) so machine noise hits all
variants alike; the table shows medians over rounds and each variant's ratio to bare in
the same round. Variants with an OTLP endpoint get their own live receiver
(``apps/otlp_sink.py``), whose counts of spans / log records / metric points are reported.
Variants that serve /metrics are scraped every 5 s during the run.

Dead-exporter variants (issue 3 item 6) point the OTLP endpoint at a closed port and at a
port that accepts connections and never answers (``apps/blackhole.py``).

``--profile`` (on by default) runs the fully-on variant once more under py-spy and
reports the top costs in µs per request.

Peers live in their own venvs so that they cannot interfere with the package:
``bench/.venv-otel`` (opentelemetry-distro, contrib FastAPI instrumentation) and
``bench/.venv-peers`` (prometheus-fastapi-instrumentator, logfire, py-spy); both are
created on first use with the web stack pinned to ``constraints.txt``. wrk comes from
Debian (installed with apt-get when missing and running as root).
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
APPS = BENCH / "apps"
RESULTS = BENCH / "results"
MAIN_PY = ROOT / ".venv" / "bin" / "python"
OTEL_VENV = BENCH / ".venv-otel"
PEERS_VENV = BENCH / ".venv-peers"
STD_VENV = BENCH / ".venv-std"
# uvicorn[standard]'s event loop and HTTP parser, for the *-std variants only: bench tooling,
# not a dependency of the package (pinned here, not in constraints.txt, so .venv and every
# test keep uvicorn's pure-Python asyncio loop + h11 parser).
STD_EXTRAS = ["uvloop==0.23.0", "httptools==0.9.0"]
STD_ARGS = ("--loop", "uvloop", "--http", "httptools")
PATH = "/api/v1/items/42"

# The web stack every venv shares (pinned from constraints.txt so peers run the same code).
_STACK = ("fastapi", "starlette", "uvicorn", "pydantic", "pydantic_core", "anyio", "h11",
          "click", "psutil")
VENV_PACKAGES = {
    OTEL_VENV: (["fastapi", "uvicorn", "psutil", "opentelemetry-distro",
                 "opentelemetry-exporter-otlp-proto-http",
                 "opentelemetry-instrumentation-fastapi"], True),
    PEERS_VENV: (["fastapi", "uvicorn", "psutil", "prometheus-fastapi-instrumentator",
                  "logfire[fastapi]", "py-spy"], False),
    # the package itself (editable, every dependency pinned by the whole constraints.txt,
    # as in .venv) plus uvloop and httptools
    STD_VENV: (["-e", str(ROOT), "uvicorn", *STD_EXTRAS], True),
}

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,'
    .. '"max_us":%d,"mean_us":%.1f,"err_connect":%d,"err_read":%d,"err_write":%d,'
    .. '"err_status":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write,
    e.status, e.timeout))
end
"""


def paced_lua(delay_ms: float) -> str:
    """The report hook plus a fixed think time per connection (a paced, unsaturated load)."""
    return f"delay = function() return {delay_ms:g} end\n" + WRK_LUA


@dataclass
class Variant:
    name: str
    what: str
    python: Path
    module: str  # "file:app" under bench/apps
    sink: str | None = None  # None | "live" | "closed" | "hang"
    env: dict[str, str] = field(default_factory=dict)
    launcher: str | None = None  # e.g. "opentelemetry-instrument" (in the same venv)
    metrics_path: str | None = None
    hapa: bool = False
    uvicorn_args: tuple[str, ...] = ()  # e.g. STD_ARGS


def _hapa_env(**extra: str) -> dict[str, str]:
    env = {"OTEL_METRIC_EXPORT_INTERVAL": "5000", "LOG_LEVEL": "INFO"}
    env.update(extra)
    return env


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("bare", "FastAPI, no telemetry", MAIN_PY, "bare:app"),
        Variant("hapa-full", "hapa-telemetry, every request traced, OTLP spans+logs+metrics "
                "to a live receiver, 2 log lines/request to stdout and file, /metrics scraped",
                MAIN_PY, "hapa:app", sink="live", env=_hapa_env(), metrics_path="/metrics",
                hapa=True),
        Variant("hapa-sampled", "as hapa-full with parentbased_traceidratio 0.1",
                MAIN_PY, "hapa:app", sink="live",
                env=_hapa_env(OTEL_TRACES_SAMPLER="parentbased_traceidratio",
                              OTEL_TRACES_SAMPLER_ARG="0.1"),
                metrics_path="/metrics", hapa=True),
        Variant("instrumentator", "prometheus-fastapi-instrumentator defaults, /metrics scraped",
                PEERS_VENV / "bin" / "python", "instrumentator:app", metrics_path="/metrics"),
        Variant("otel-instrument", "plain opentelemetry-instrument (distro + contrib FastAPI), "
                "OTLP traces+metrics+logs to a live receiver",
                OTEL_VENV / "bin" / "python", "plain:app", sink="live",
                launcher="opentelemetry-instrument",
                env={"OTEL_SERVICE_NAME": "bench", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                     "OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "otlp",
                     "OTEL_LOGS_EXPORTER": "otlp", "OTEL_METRIC_EXPORT_INTERVAL": "5000"}),
        Variant("logfire", "logfire.instrument_fastapi, send_to_logfire=False (console on)",
                PEERS_VENV / "bin" / "python", "logfire_app:app"),
        Variant("hapa-dead-closed", "as hapa-full, OTLP endpoint = a closed port",
                MAIN_PY, "hapa:app", sink="closed", env=_hapa_env(), metrics_path="/metrics",
                hapa=True),
        Variant("hapa-dead-hang", "as hapa-full, OTLP endpoint accepts TCP and never answers",
                MAIN_PY, "hapa:app", sink="hang", env=_hapa_env(), metrics_path="/metrics",
                hapa=True),
        # Not in the default set:
        Variant("hapa-noexport", "hapa-telemetry on its embedded default (no OTLP endpoint)",
                MAIN_PY, "hapa:app", env=_hapa_env(), metrics_path="/metrics", hapa=True),
        Variant("hapa-export-traces", "as hapa-full, OTLP export of spans only "
                "(OTEL_LOGS_EXPORTER=none, OTEL_METRICS_EXPORTER=none)",
                MAIN_PY, "hapa:app", sink="live",
                env=_hapa_env(OTEL_LOGS_EXPORTER="none", OTEL_METRICS_EXPORTER="none"),
                metrics_path="/metrics", hapa=True),
        Variant("hapa-export-logs", "as hapa-full, OTLP export of log records only "
                "(OTEL_TRACES_EXPORTER=none, OTEL_METRICS_EXPORTER=none)",
                MAIN_PY, "hapa:app", sink="live",
                env=_hapa_env(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none"),
                metrics_path="/metrics", hapa=True),
        Variant("hapa-files", "as hapa-full, logs through files (HAPA_LOGS_EXPORT=files): "
                "the same 2 lines/request to stdout and file, no OTLP log records "
                "(a collector's filelog receiver reads the file)",
                MAIN_PY, "hapa:app", sink="live", env=_hapa_env(HAPA_LOGS_EXPORT="files"),
                metrics_path="/metrics", hapa=True),
        Variant("hapa-smallbatch", "as hapa-full with export batches of 64 "
                "(OTEL_BSP_/OTEL_BLRP_MAX_EXPORT_BATCH_SIZE=64)",
                MAIN_PY, "hapa:app", sink="live",
                env=_hapa_env(OTEL_BSP_MAX_EXPORT_BATCH_SIZE="64",
                              OTEL_BLRP_MAX_EXPORT_BATCH_SIZE="64"),
                metrics_path="/metrics", hapa=True),
        Variant("hapa-switch", "as hapa-full with sys.setswitchinterval(0.0005)",
                MAIN_PY, "hapa_switch:app", sink="live", env=_hapa_env(),
                metrics_path="/metrics", hapa=True),
        Variant("hapa-gcfreeze", "as hapa-full with HAPA_GC_FREEZE=true (gc.freeze() once "
                "the server started: full collections skip the start-up heap)",
                MAIN_PY, "hapa:app", sink="live", env=_hapa_env(HAPA_GC_FREEZE="true"),
                metrics_path="/metrics", hapa=True),
        Variant("hapa-sampled-gcfreeze", "as hapa-sampled with HAPA_GC_FREEZE=true",
                MAIN_PY, "hapa:app", sink="live",
                env=_hapa_env(OTEL_TRACES_SAMPLER="parentbased_traceidratio",
                              OTEL_TRACES_SAMPLER_ARG="0.1", HAPA_GC_FREEZE="true"),
                metrics_path="/metrics", hapa=True),
        Variant("hapa-contrib", "as hapa-full, but contrib's OpenTelemetryMiddleware owns the "
                "server span instead of FastAPI's native telemetry",
                MAIN_PY, "hapa_contrib:app", sink="live", env=_hapa_env(),
                metrics_path="/metrics", hapa=True),
    )
}
# uvicorn[standard] (uvloop + httptools) twins: same app and env, their own venv; in the
# table their ratios are to bare-std (same server), not to bare.
for _name in ("bare", "hapa-full", "hapa-noexport"):
    _v = VARIANTS[_name]
    VARIANTS[f"{_name}-std"] = Variant(
        f"{_name}-std", f"{_v.what}; uvicorn --loop uvloop --http httptools",
        STD_VENV / "bin" / "python", _v.module, sink=_v.sink, env=dict(_v.env),
        metrics_path=_v.metrics_path, hapa=_v.hapa, uvicorn_args=STD_ARGS)


def reference(name: str) -> str:
    """The variant a variant's ratios are taken to: bare-std for *-std, else bare."""
    return "bare-std" if name.endswith("-std") else "bare"


DEFAULT_VARIANTS = ("bare", "hapa-full", "hapa-sampled", "instrumentator", "otel-instrument",
                    "logfire", "hapa-dead-closed", "hapa-dead-hang")


# -- setup -----------------------------------------------------------------------------------
def ensure_wrk() -> str:
    wrk = shutil.which("wrk")
    if wrk:
        return wrk
    if os.geteuid() != 0:
        sys.exit("wrk not found: apt-get install -y wrk")
    print("installing wrk (apt-get) ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, timeout=600,
                   env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("wrk still not found after apt-get install")
    return wrk


def _pins(with_otel: bool) -> Path:
    """constraints.txt reduced to the web stack (and the OTel packages when asked)."""
    keep = []
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name = line.split("==")[0].strip().lower()
        if name in _STACK or (with_otel and name.startswith("opentelemetry-")):
            keep.append(line)
    path = Path(tempfile.mkstemp(prefix="bench-pins-", suffix=".txt")[1])
    path.write_text("\n".join(keep) + "\n")
    return path


def ensure_venv(venv: Path) -> None:
    packages, pin_otel = VENV_PACKAGES[venv]
    if (venv / "bin" / "python").exists() and (venv / ".bench-ready").exists():
        return
    print(f"creating {venv.relative_to(ROOT)} ({', '.join(packages)}) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    if venv == STD_VENV:  # the whole pin set, exactly as scripts/bootstrap installs .venv
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-c",
                        str(ROOT / "constraints.txt"), *packages], check=True, timeout=900)
        (venv / ".bench-ready").write_text("ok\n")
        return
    pins = _pins(pin_otel)
    try:
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-c", str(pins), *packages],
                       check=True, timeout=900)
    finally:
        pins.unlink()
    (venv / ".bench-ready").write_text("ok\n")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spawn(cmd: list[str], err_path: Path, **kw: Any) -> subprocess.Popen[bytes]:
    """Start ``cmd`` with stdout to /dev/null and stderr to ``err_path``."""
    with open(err_path, "wb") as err:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, **kw)


def wait_http(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout}s: {last}")


def wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not listening after {timeout}s")


def stop(proc: subprocess.Popen[Any], timeout: float = 30.0) -> float | None:
    """SIGTERM, wait; return seconds to exit (None = had to SIGKILL after ``timeout``)."""
    if proc.poll() is not None:
        return 0.0
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
        return time.perf_counter() - t0
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return None


# -- one run ---------------------------------------------------------------------------------
def run_wrk(wrk: str, lua: Path, url: str, duration: float, conns: int, threads: int
            ) -> dict[str, Any]:
    out = subprocess.run(
        [wrk, f"-t{threads}", f"-c{conns}", f"-d{duration:g}s", "--timeout", "5s",
         "-s", str(lua), url],
        capture_output=True, text=True, timeout=duration + 60,
    )
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            data: dict[str, Any] = json.loads(line[8:])
            data["rps"] = data["requests"] / (data["duration_us"] / 1e6)
            return data
    raise RuntimeError(f"wrk gave no result: {out.stdout[-500:]} {out.stderr[-500:]}")


class Sampler(threading.Thread):
    """Scrapes /metrics every 5 s (when the variant has it) and samples RSS every 0.5 s."""

    def __init__(self, pid: int, metrics_url: str | None) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.metrics_url = metrics_url
        self.halt = threading.Event()
        self.peak_rss = 0
        self.rss_series: list[float] = []  # MiB every 0.5 s
        self.scrapes = 0
        self.scrape_errors = 0

    def run(self) -> None:
        next_scrape = time.monotonic() + 2.5
        while not self.halt.wait(0.5):
            try:
                rss = self.proc.memory_info().rss
                self.peak_rss = max(self.peak_rss, rss)
                self.rss_series.append(round(rss / 2**20, 1))
            except psutil.Error:
                return
            if self.metrics_url and time.monotonic() >= next_scrape:
                next_scrape += 5.0
                try:
                    with urllib.request.urlopen(self.metrics_url, timeout=5) as r:
                        r.read()
                    self.scrapes += 1
                except Exception:
                    self.scrape_errors += 1


def _count_lines(folder: Path) -> int:
    n = 0
    for f in folder.glob("hapa_*.log*"):
        with f.open("rb") as fh:
            n += sum(chunk.count(b"\n") for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""))
    return n


def run_variant(v: Variant, args: argparse.Namespace, wrk: str, lua: Path, work: Path,
                profile: bool = False) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"{v.name}-", dir=work))
    port = free_port()
    helpers: list[subprocess.Popen[Any]] = []
    sink_stats = run_dir / "sink.json"
    env = {k: val for k, val in os.environ.items()
           if not k.startswith(("OTEL_", "LOG_", "HAPA_", "LOGFIRE_"))
           and k not in ("DEBUG", "ENABLE_METRICS", "METRICS_PORT", "PYTHONPATH")}
    env.update(v.env)
    endpoint = None
    if v.sink == "live":
        sport = free_port()
        helpers.append(spawn(
            [str(MAIN_PY), str(APPS / "otlp_sink.py"), str(sport), str(sink_stats)],
            run_dir / "sink.err"))
        wait_port(sport, 20)
        endpoint = f"http://127.0.0.1:{sport}"
    elif v.sink == "hang":
        sport = free_port()
        helpers.append(spawn([str(MAIN_PY), str(APPS / "blackhole.py"), str(sport)],
                             run_dir / "sink.err"))
        wait_port(sport, 20)
        endpoint = f"http://127.0.0.1:{sport}"
    elif v.sink == "closed":
        endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    if endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    if v.hapa:
        env["LOG_DIRECTORY"] = str(run_dir / "logs")
        env["OTEL_SERVICE_NAME"] = "bench"
    uvicorn_args = ["-m", "uvicorn", v.module, "--app-dir", str(APPS), "--host", "127.0.0.1",
                    "--port", str(port), "--no-access-log", "--log-level", "warning",
                    *v.uvicorn_args]
    if v.launcher:
        cmd = [str(v.python.parent / v.launcher), str(v.python), *uvicorn_args]
    else:
        cmd = [str(v.python), *uvicorn_args]
    err_path = run_dir / "server.err"
    server = spawn(cmd, err_path, env=env, cwd=run_dir)
    result: dict[str, Any] = {"variant": v.name}
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(base + PATH, 60, server)
        if args.warmup > 0:
            run_wrk(wrk, lua, base + PATH, args.warmup, args.connections, args.threads)
        ps = psutil.Process(server.pid)
        cpu0 = ps.cpu_times()
        ctx0 = ps.num_ctx_switches()
        threads0 = {t.id: t.user_time + t.system_time for t in ps.threads()}
        sampler = Sampler(server.pid, base + v.metrics_path if v.metrics_path else None)
        sampler.start()
        spies: dict[str, subprocess.Popen[bytes]] = {}
        if profile:
            for mode in ("active", "gil"):
                spies[mode] = spawn(
                    [str(PEERS_VENV / "bin" / "py-spy"), "record", "--pid", str(server.pid),
                     "--rate", str(args.profile_rate), "--duration", f"{int(args.duration)}",
                     "--format", "raw", "--threads", "--nonblocking",
                     *(["--gil"] if mode == "gil" else []),
                     "--output", str(run_dir / f"pyspy-{mode}.txt")],
                    run_dir / f"pyspy-{mode}.err")
            time.sleep(0.5)
        w = run_wrk(wrk, lua, base + PATH, args.duration, args.connections, args.threads)
        cpu1 = ps.cpu_times()
        ctx1 = ps.num_ctx_switches()
        threads1 = {t.id: t.user_time + t.system_time for t in ps.threads()}
        paced = None
        if args.paced > 0 and not profile:
            paced = run_wrk(wrk, lua.with_name("paced.lua"), base + PATH, args.paced,
                            args.paced_connections, 1)
        sampler.halt.set()
        sampler.join(5)
        for mode, spy in spies.items():
            spy.wait(60)
            result[f"pyspy_{mode}"] = str(run_dir / f"pyspy-{mode}.txt")
        rss = ps.memory_info().rss
        cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
        result.update(w)
        if paced is not None:
            result.update(paced_rps=paced["rps"], paced_p50_us=paced["p50_us"],
                          paced_p99_us=paced["p99_us"], paced_max_us=paced["max_us"],
                          paced_errors=sum(paced[k] for k in paced if k.startswith("err_")))
        result.update(
            rss_mib=rss / 2**20,
            peak_rss_mib=max(sampler.peak_rss, rss) / 2**20,
            cpu_us_per_req=cpu / max(w["requests"], 1) * 1e6,
            cpu_util=cpu / (w["duration_us"] / 1e6),
            sys_us_per_req=(cpu1.system - cpu0.system) / max(w["requests"], 1) * 1e6,
            main_thread_us_per_req=(threads1.get(server.pid, 0.0)
                                    - threads0.get(server.pid, 0.0))
            / max(w["requests"], 1) * 1e6,
            ctx_switches_per_req=((ctx1.voluntary - ctx0.voluntary)
                                  + (ctx1.involuntary - ctx0.involuntary))
            / max(w["requests"], 1),
            rss_series=sampler.rss_series,
            scrapes=sampler.scrapes,
            scrape_errors=sampler.scrape_errors,
            load1=os.getloadavg()[0],
        )
    finally:
        result["shutdown_s"] = stop(server, args.shutdown_timeout)
        for h in helpers:
            stop(h, 10)
    if sink_stats.exists():
        result["sink"] = json.loads(sink_stats.read_text())
    if v.hapa and (run_dir / "logs").exists():
        result["log_file_lines"] = _count_lines(run_dir / "logs")
    err = err_path.read_text(errors="replace")
    result["stderr_lines"] = err.count("\n")
    result["stderr_tail"] = err[-600:]
    return result


# -- profile summary -------------------------------------------------------------------------
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^:()]*)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    file = m.group("file")
    for marker in ("site-packages/", "/src/", "/lib/python3.11/", "/bench/apps/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({file})"


# Where a main-thread sample goes: the innermost frame matching one of these (in order of
# the frames from the leaf up; the first category whose pattern matches wins).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("OTel log record (LoggerProvider.emit, bridge)", ("_emit_otel", "sdk/_logs")),
    ("log line: event, redact, render, enqueue", ("hapa_telemetry/logs", "LogPipeline",
                                                  "EventBuilder", "QueueWriter", "render_json",
                                                  "HapaHandler", "Redactor", "StructuredLogger",
                                                  "logging/__init__")),
    ("/metrics scrape", ("prometheus_client", "exporter/prometheus", "metrics_endpoint",
                         "render_metrics")),
    ("metrics: SDK instruments", ("sdk/metrics", "hapa_telemetry/instruments", "Instruments.")),
    ("spans: SDK start/end, FastAPI native telemetry, context", (
        "sdk/trace", "opentelemetry/trace", "fastapi/telemetry", "opentelemetry/context",
        "instrumentation/asgi", "instrumentation/fastapi", "util/http")),
    ("hapa middleware, request id, live stats", ("hapa_telemetry",)),
)
BARE = "server + framework + endpoint (what bare also does)"
# Frames of the work bare does too; a sample whose innermost recognised frame is one of
# these is bare work even when a telemetry middleware is further up the stack.
BARE_PATTERNS = ("starlette/", "fastapi/", "uvicorn/", "h11/", "asyncio/", "anyio/",
                 "pydantic", "apps/common.py", "click/")


def categorize(frames: list[str]) -> str:
    """The category of the innermost frame that belongs to a category or to bare work
    (stdlib helpers such as json, datetime or contextvars count for their caller)."""
    for frame in reversed(frames):
        for name, patterns in CATEGORIES:
            if any(p in frame for p in patterns):
                return name
        if any(p in frame for p in BARE_PATTERNS):
            return BARE
    return BARE


def summarize_profile(raw: Path, requests: int, rate: int, top: int = 25) -> dict[str, Any]:
    """µs/request per thread, per function (self and inclusive) and per category of the
    main thread's samples, from py-spy raw stacks."""
    per_thread: collections.Counter[str] = collections.Counter()
    cats: collections.Counter[str] = collections.Counter()
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = frames[0]
        if "MainThread" in thread:
            cats[categorize(frames[1:])] += n
        frames = [_short(f) for f in frames[1:]]
        total += n
        per_thread[re.sub(r"0x[0-9a-f]+", "", thread).strip()] += n
        if frames:
            self_t[frames[-1]] += n
            for f in set(frames):
                incl[f] += n

    def us(n: int) -> float:
        return n / rate / max(requests, 1) * 1e6

    return {
        "samples": total,
        "rate_hz": rate,
        "requests": requests,
        "us_per_request_total": us(total),
        "threads": [(k, round(us(n), 1)) for k, n in per_thread.most_common()],
        "main_thread_categories": [(k, round(us(n), 1)) for k, n in cats.most_common()],
        "top_self": [(k, round(us(n), 1)) for k, n in self_t.most_common(top)],
        "top_inclusive": [(k, round(us(n), 1)) for k, n in incl.most_common(top * 3)],
    }


# -- report ----------------------------------------------------------------------------------
def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def table(results: list[dict[str, Any]], names: list[str]) -> str:
    by_round: dict[int, dict[str, dict[str, Any]]] = collections.defaultdict(dict)
    for r in results:
        by_round[r["round"]][r["variant"]] = r
    lines = [
        "| variant | req/s | × bare | p50 ms | p99 ms | p99 × bare | CPU µs/req | RSS MiB "
        "| peak RSS | shutdown s | errors | paced req/s | paced p50 ms | paced p99 ms "
        "| paced p99 × bare |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        rs = [r for r in results if r["variant"] == name and "rps" in r]
        if not rs:
            lines.append(f"| {name} | failed | | | | | | | | | | | | | |")
            continue
        ratios, p99r, pp99r = [], [], []
        for r in rs:
            b = by_round[r["round"]].get(reference(name))
            if b and "rps" in b:
                ratios.append(r["rps"] / b["rps"])
                p99r.append(r["p99_us"] / b["p99_us"])
                if "paced_p99_us" in r and "paced_p99_us" in b:
                    pp99r.append(r["paced_p99_us"] / b["paced_p99_us"])
        pr = [r for r in rs if "paced_rps" in r]
        paced_txt = (
            f"{median([r['paced_rps'] for r in pr]):,.0f} | "
            f"{median([r['paced_p50_us'] for r in pr]) / 1000:.1f} | "
            f"{median([r['paced_p99_us'] for r in pr]) / 1000:.1f} | {median(pp99r):.2f}"
            if pr else " | | | ")
        shut = [r["shutdown_s"] for r in rs]
        shut_txt = "kill" if any(s is None for s in shut) else f"{max(shut):.1f}"
        errs = sum(r["err_connect"] + r["err_read"] + r["err_write"] + r["err_status"]
                   + r["err_timeout"] for r in rs)
        lines.append(
            f"| {name} | {median([r['rps'] for r in rs]):,.0f} | "
            f"{median(ratios):.2f} | {median([r['p50_us'] for r in rs]) / 1000:.1f} | "
            f"{median([r['p99_us'] for r in rs]) / 1000:.1f} | {median(p99r):.2f} | "
            f"{median([r['cpu_us_per_req'] for r in rs]):.0f} | "
            f"{median([r['rss_mib'] for r in rs]):.0f} | "
            f"{max(r['peak_rss_mib'] for r in rs):.0f} | {shut_txt} | {errs} | {paced_txt} |"
        )
    if any(n.endswith("-std") for n in names):
        lines.append("\n(*-std variants: every × column is to bare-std, the same uvicorn "
                     "with uvloop + httptools)")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for py, label in ((MAIN_PY, "main"), (OTEL_VENV / "bin" / "python", "otel"),
                      (PEERS_VENV / "bin" / "python", "peers"),
                      (STD_VENV / "bin" / "python", "std")):
        if not py.exists():
            continue
        out = subprocess.run(
            [str(py), "-c", "import importlib.metadata as m, json, sys\n"
             "names=['fastapi','starlette','uvicorn','pydantic','opentelemetry-sdk',"
             "'opentelemetry-instrumentation-fastapi','opentelemetry-distro','logfire',"
             "'prometheus-fastapi-instrumentator','hapa-telemetry','py-spy','uvloop',"
             "'httptools']\n"
             "d={}\n"
             "for n in names:\n"
             "    try: d[n]=m.version(n)\n"
             "    except Exception: pass\n"
             "print(json.dumps(d))"],
            capture_output=True, text=True, timeout=60)
        versions[label] = json.loads(out.stdout or "{}")
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--short", "--", "src"],
                           capture_output=True, text=True).stdout.strip()
    return {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host_cpu": cpu,
        "cpus": os.cpu_count(),
        "mem_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "wrk": wrk.splitlines()[0] if wrk else "?",
        "git_head": head,
        "src_uncommitted": dirty.splitlines(),
        "versions": versions,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                    help=f"comma-separated, from: {', '.join(VARIANTS)}")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds of load per run")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--paced", type=float, default=5.0,
                    help="seconds of paced load after each run (0 = none)")
    ap.add_argument("--paced-connections", type=int, default=8)
    ap.add_argument("--paced-delay-ms", type=float, default=10.0,
                    help="think time per connection between requests in the paced run")
    ap.add_argument("--shutdown-timeout", type=float, default=15.0,
                    help="seconds to wait after SIGTERM before SIGKILL")
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--profile-variant", default="hapa-full")
    ap.add_argument("--profile-only", action="store_true", help="skip the rounds")
    ap.add_argument("--profile-rate", type=int, default=250, help="py-spy samples/s")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default bench/results)")
    ap.add_argument("--other", type=Path, default=None,
                    help="another interpreter (e.g. a wrapper setting PYTHONPATH to an older "
                    "checkout's src): adds '<variant>-other' for every hapa variant, same run")
    args = ap.parse_args()
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    if args.other:
        for n in [n for n in names if VARIANTS.get(n) and VARIANTS[n].hapa]:
            VARIANTS[n + "-other"] = replace(VARIANTS[n], name=n + "-other", python=args.other)
            names.append(n + "-other")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variants: {unknown}")
    if args.rounds < 1 or not 1 <= args.duration <= 120:
        sys.exit("--rounds >= 1 and 1 <= --duration <= 120")

    wrk = ensure_wrk()
    for venv in {VARIANTS[n].python.parent.parent for n in names} | (
            {PEERS_VENV} if args.profile else set()):
        if venv in VENV_PACKAGES:
            ensure_venv(venv)

    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.out or RESULTS / f"http-{stamp}.json"
    info = machine()
    info["load_at_start"] = os.getloadavg()
    info["args"] = vars(args) | {"out": str(out)}
    print(f"load average at start: {info['load_at_start']}", flush=True)
    results: list[dict[str, Any]] = []
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="http-bench-") as tmp:
        work = Path(tmp)
        lua = work / "report.lua"
        lua.write_text(WRK_LUA)
        lua.with_name("paced.lua").write_text(paced_lua(args.paced_delay_ms))
        for rnd in range(0 if args.profile_only else args.rounds):
            order = names[rnd % len(names):] + names[: rnd % len(names)]
            for name in order:
                try:
                    r = run_variant(VARIANTS[name], args, wrk, lua, work)
                except Exception as exc:
                    r = {"variant": name, "error": f"{type(exc).__name__}: {exc}"}
                r["round"] = rnd
                results.append(r)
                if "rps" in r:
                    shut = r["shutdown_s"]
                    print(f"round {rnd + 1}/{args.rounds} {name:18s} {r['rps']:8.0f} req/s  "
                          f"p99 {r['p99_us'] / 1000:6.1f} ms  CPU {r['cpu_us_per_req']:5.0f} "
                          f"µs/req  RSS {r['rss_mib']:5.1f} MiB  shutdown "
                          f"{'kill' if shut is None else round(shut, 2)}"
                          f" s  paced p99 {r.get('paced_p99_us', 0) / 1000:.1f} ms"
                          f"  load {r['load1']:.2f}", flush=True)
                else:
                    print(f"round {rnd + 1} {name}: FAILED {r.get('error')}", flush=True)
        profile = None
        if args.profile:
            v = VARIANTS[args.profile_variant]
            r = run_variant(v, args, wrk, lua, work, profile=True)
            profile = {"variant": v.name, "rps_under_profiler": r.get("rps"),
                       "cpu_us_per_req": r.get("cpu_us_per_req")}
            for mode in ("active", "gil"):
                raw = Path(r.get(f"pyspy_{mode}", "/nonexistent"))
                if raw.exists() and raw.stat().st_size:
                    raw = Path(shutil.copy(raw, out.with_suffix(f".pyspy-{mode}.txt.tmp")))
                    profile[mode] = summarize_profile(raw, r["requests"], args.profile_rate)
                else:
                    profile[mode] = {"error": "py-spy produced nothing", "run": r}
    info["load_at_end"] = os.getloadavg()
    info["elapsed_s"] = round(time.monotonic() - t_start, 1)
    md = table(results, names)
    out.write_text(json.dumps({"machine": info, "results": results, "profile": profile,
                               "table": md}, indent=1, default=str))
    print()
    print(md)
    for mode in ("active", "gil"):
        prof = (profile or {}).get(mode) or {}
        if "threads" not in prof:
            continue
        print(f"\nprofile of {profile['variant']} (py-spy {mode}, µs per request, "  # type: ignore[index]
              f"{prof['requests']} requests):")
        print("  threads:", ", ".join(f"{k or '?'} {t}" for k, t in prof["threads"]))
        print("  main thread by category:")
        for k, t in prof["main_thread_categories"]:
            print(f"    {t:7.1f}  {k}")
        print("  top self:")
        for k, t in prof["top_self"][:15]:
            print(f"    {t:7.1f}  {k}")
    print(f"\nresults: {out}  elapsed {info['elapsed_s']} s  "
          f"load {info['load_at_start']} -> {info['load_at_end']}")


if __name__ == "__main__":
    main()
