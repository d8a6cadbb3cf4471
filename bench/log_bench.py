"""Whole-path log benchmark: records/s for one typical ``request_end`` event, from the
logging call to the bytes in the sinks, in one process.

Run on demand (not a test):

    .venv/bin/python bench/log_bench.py                  # 3 rounds x 30,000 records, ~1 min
    .venv/bin/python bench/log_bench.py --rounds 5 --records 50000

Candidates (each run is a fresh subprocess with stdout on /dev/null and its log file in a
temporary folder; rounds are interleaved):

- ``hapa``: ``StructuredLogger("api_monitor").info(...)`` inside a request context and an
  active span → event dict (bound request id, trace context, caller location, redaction)
  → one JSON rendering → bounded queue → writer thread → stdout + ``hapa_YYYYMMDD.log``.
- ``hapa+otlp``: the same with an OTLP endpoint configured, so every record is also an
  OTel log record, batched, encoded to protobuf and POSTed to a live local receiver
  (``apps/otlp_sink.py``).
- ``python-json-logger``: stdlib ``logging`` with ``JsonFormatter`` on a StreamHandler
  (stdout) and a FileHandler, fields via ``extra=``.
- ``structlog``: ``merge_contextvars``, ``add_log_level``, ``TimeStamper(iso, utc)``,
  ``JSONRenderer`` (stdlib json), writing each line to stdout and a file.

Two rates per candidate: ``caller`` = records / time spent in the logging calls (what the
request path pays), ``total`` = records / time until every line is in both sinks (the
queue drained and flushed; for the synchronous peers both are the same). The peers add
neither trace context, nor caller location, nor redaction, nor the OTel record.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
MAIN_PY = BENCH.parent / ".venv" / "bin" / "python"
CANDIDATES = ("hapa", "hapa+otlp", "python-json-logger", "structlog")

FIELDS: dict[str, Any] = {
    "method": "GET",
    "endpoint": "/api/v1/items/{item_id}",
    "status_code": 200,
    "duration": 0.001234,
    "client_ip": "127.0.0.1",
    "event_type": "request_end",
}
MESSAGE = "API request end: GET /api/v1/items/{item_id} - 200 (0.0012s)"
REQUEST_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def _lines(folder: Path) -> int:
    return sum(f.read_bytes().count(b"\n") for f in folder.glob("*.log*"))


def worker(name: str, n: int, folder: Path) -> dict[str, Any]:
    """Run one candidate in this (fresh) process; stdout is /dev/null."""
    if name.startswith("hapa"):
        import hapa_telemetry
        from hapa_telemetry import context

        t = hapa_telemetry.configure(log_directory=str(folder), log_to_stdout=True)
        log = hapa_telemetry.StructuredLogger("api_monitor")
        token = context.start_request(REQUEST_ID)
        with t.tracer.start_as_current_span("GET /api/v1/items/{item_id}"):
            t0 = time.perf_counter()
            for _ in range(n):
                log.info(MESSAGE, **FIELDS)
            t1 = time.perf_counter()
        context.end_request(token)
        t.force_flush(60)
        t2 = time.perf_counter()
        dropped = t.pipeline.writer.dropped if hasattr(t.pipeline.writer, "dropped") else None
        t.shutdown()
        return {"caller_s": t1 - t0, "total_s": t2 - t0, "lines": _lines(folder),
                "dropped": dropped}

    if name == "python-json-logger":
        import logging

        try:
            from pythonjsonlogger.json import JsonFormatter
        except ImportError:  # python-json-logger < 3
            from pythonjsonlogger.jsonlogger import JsonFormatter  # type: ignore[no-redef]

        fmt = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(module)s "
                            "%(funcName)s %(lineno)d", timestamp=True)
        logger = logging.getLogger("api_monitor")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        file_path = folder / "pjl.log"
        for h in (logging.StreamHandler(sys.stdout), logging.FileHandler(file_path)):
            h.setFormatter(fmt)
            logger.addHandler(h)
        extra = {**FIELDS, "request_id": REQUEST_ID}
        t0 = time.perf_counter()
        for _ in range(n):
            logger.info(MESSAGE, extra=extra)
        t1 = time.perf_counter()
        for h in logger.handlers:
            h.flush()
            h.close()
        t2 = time.perf_counter()
        return {"caller_s": t1 - t0, "total_s": t2 - t0, "lines": _lines(folder)}

    if name == "structlog":
        import structlog

        out = sys.stdout
        f = open(folder / "structlog.log", "w")  # noqa: SIM115 - closed below

        class Tee:
            def msg(self, message: str) -> None:
                out.write(message + "\n")
                f.write(message + "\n")

            info = msg

        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.JSONRenderer(),
            ],
            logger_factory=lambda *a: Tee(),
            cache_logger_on_first_use=True,
        )
        structlog.contextvars.bind_contextvars(request_id=REQUEST_ID)
        log = structlog.get_logger("api_monitor")
        t0 = time.perf_counter()
        for _ in range(n):
            log.info(MESSAGE, **FIELDS)
        t1 = time.perf_counter()
        out.flush()
        f.close()
        t2 = time.perf_counter()
        return {"caller_s": t1 - t0, "total_s": t2 - t0, "lines": _lines(folder)}

    raise SystemExit(f"unknown candidate {name}")


def run_one(name: str, n: int, sink_port: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="log-bench-") as tmp:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OTEL_", "LOG_", "HAPA_"))}
        env["OTEL_SERVICE_NAME"] = "bench"
        if name == "hapa+otlp" and sink_port:
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{sink_port}"
            env["OTEL_METRIC_EXPORT_INTERVAL"] = "60000"
        result_file = Path(tmp) / "result.json"
        logs = Path(tmp) / "logs"
        logs.mkdir()
        proc = subprocess.run(
            [str(MAIN_PY), __file__, "--worker", name, "--records", str(n),
             "--folder", str(logs), "--result", str(result_file)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=300,
        )
        if proc.returncode != 0 or not result_file.exists():
            return {"candidate": name, "error": proc.stderr[-800:]}
        data: dict[str, Any] = json.loads(result_file.read_text())
        data["candidate"] = name
        data["caller_rps"] = n / data["caller_s"]
        data["total_rps"] = n / data["total_s"]
        return data


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--records", type=int, default=30_000)
    ap.add_argument("--candidates", default=",".join(CANDIDATES))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        res = worker(args.worker, args.records, args.folder)
        args.result.write_text(json.dumps(res))
        return
    if not 1 <= args.records <= 1_000_000 or not 1 <= args.rounds <= 20:
        sys.exit("1 <= --records <= 1,000,000 and 1 <= --rounds <= 20")
    names = [c.strip() for c in args.candidates.split(",") if c.strip()]
    sink = None
    sink_port = None
    tmp = Path(tempfile.mkdtemp(prefix="log-bench-sink-"))
    if "hapa+otlp" in names:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            sink_port = s.getsockname()[1]
        sink = subprocess.Popen([str(MAIN_PY), str(BENCH / "apps" / "otlp_sink.py"),
                                 str(sink_port), str(tmp / "sink.json")])
        time.sleep(1.0)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    results: list[dict[str, Any]] = []
    try:
        for rnd in range(args.rounds):
            order = names[rnd % len(names):] + names[: rnd % len(names)]
            for name in order:
                r = run_one(name, args.records, sink_port)
                r["round"] = rnd
                results.append(r)
                if "error" in r:
                    print(f"round {rnd + 1} {name}: FAILED {r['error']}", flush=True)
                else:
                    print(f"round {rnd + 1} {name:20s} caller {r['caller_rps']:9,.0f}/s  "
                          f"total {r['total_rps']:9,.0f}/s  lines {r['lines']}", flush=True)
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(10)
    sink_stats = json.loads((tmp / "sink.json").read_text()) if (tmp / "sink.json").exists() \
        else None
    lines = ["| candidate | caller records/s | whole path records/s | lines in file |",
             "|---|---:|---:|---:|"]
    for name in names:
        rs = [r for r in results if r["candidate"] == name and "error" not in r]
        if not rs:
            lines.append(f"| {name} | failed | | |")
            continue
        lines.append(f"| {name} | {statistics.median(r['caller_rps'] for r in rs):,.0f} | "
                     f"{statistics.median(r['total_rps'] for r in rs):,.0f} | "
                     f"{rs[0]['lines']:,} |")
    md = "\n".join(lines)
    print()
    print(md)
    if sink_stats:
        print(f"\nOTLP receiver: {sink_stats}")
    out = args.out or BENCH / "results" / f"log-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                               "load_at_end": os.getloadavg(), "results": results,
                               "sink": sink_stats, "table": md}, indent=1))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
