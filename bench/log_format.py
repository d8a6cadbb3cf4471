"""Log formatting benchmark: records/s of this package's JSON path vs python-json-logger and
structlog's JSONRenderer, in one process, on a typical ``request_end`` event.

Run:  .venv/bin/pip install structlog python-json-logger   (bench only)
      .venv/bin/python bench/log_format.py [--rounds 5] [--records 50000]

Candidates run in interleaved rounds (A B C ... A B C ...) so machine noise hits all of them;
the table shows the median rate over the rounds. Bounded: rounds x records x candidates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import logging
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from hapa_telemetry.logs.redact import Redactor
from hapa_telemetry.logs.render import render_dev, render_json

SPEC_FIELDS = {
    "method": "POST",
    "endpoint": "/api/v1/code/generate",
    "status_code": 200,
    "duration": 0.012345,
    "client_ip": "127.0.0.1",
    "event_type": "request_end",
    "user_id": "u1",
}


def _event(request_id: str) -> dict[str, Any]:
    """The full production line as the core handler builds it (SPEC field order)."""
    return {
        "timestamp": "2024-12-28T10:30:00.123456+00:00",
        "level": "INFO",
        "logger": "api_monitor",
        "message": "Request completed",
        "module": "monitor",
        "function": "log_request_end",
        "line": 120,
        "service": "hapa-backend",
        "environment": "production",
        **SPEC_FIELDS,
        "request_id": request_id,
        "trace_id": "0af7651916cd43dd8448eb211c80319c",
        "span_id": "b7ad6b7169203331",
        "trace_flags": "01",
    }


def _record(request_id: str) -> logging.LogRecord:
    rec = logging.LogRecord("api_monitor", logging.INFO, "monitor.py", 120, "Request completed",
                            None, None, func="log_request_end")
    rec.__dict__.update(SPEC_FIELDS)
    rec.request_id = request_id
    rec.trace_id = "0af7651916cd43dd8448eb211c80319c"
    rec.span_id = "b7ad6b7169203331"
    rec.trace_flags = "01"
    return rec


def candidates(n: int) -> dict[str, Callable[[], None]]:
    ids = [uuid.uuid4().hex for _ in range(n)]
    events = [_event(i) for i in ids]
    records = [_record(i) for i in ids]
    redactor = Redactor()
    user_keys = ("message", *SPEC_FIELDS, "request_id")
    out: dict[str, Callable[[], None]] = {}

    def hapa_render() -> None:
        for ev in events:
            render_json(ev)

    def hapa_redact_render() -> None:
        # What the core does per line: redact the caller's fields + message, render once.
        for ev in events:
            user = {k: ev[k] for k in user_keys}
            red = redactor.redact_mapping(user)
            if red is not user:
                ev = {**ev, **red}
            render_json(ev)

    def hapa_from_record() -> None:
        # LogRecord -> SPEC dict -> redact all fields -> render (an emulated handler).
        utc = dt.timezone.utc
        fromts = dt.datetime.fromtimestamp
        for rec in records:
            ev = {
                "timestamp": fromts(rec.created, utc).isoformat(),
                "level": rec.levelname, "logger": rec.name, "message": rec.getMessage(),
                "module": rec.module, "function": rec.funcName, "line": rec.lineno,
                "service": "hapa-backend", "environment": "production",
            }
            extra = {k: rec.__dict__[k] for k in (*SPEC_FIELDS, "request_id")}
            extra = redactor.redact_mapping(extra)
            ev.update(extra)
            ev["trace_id"] = rec.trace_id
            ev["span_id"] = rec.span_id
            ev["trace_flags"] = rec.trace_flags
            render_json(ev)

    def hapa_dev() -> None:
        now = time.time()
        for _ in events:
            render_dev(now, "api_monitor", "INFO", "Request completed")

    out["hapa render_json"] = hapa_render
    out["hapa redact+render_json"] = hapa_redact_render
    out["hapa LogRecord->dict+redact+render"] = hapa_from_record
    out["hapa render_dev"] = hapa_dev

    try:
        import structlog
        from structlog.processors import JSONRenderer

        renderer = JSONRenderer()

        def structlog_renderer() -> None:
            for ev in events:
                renderer(None, "info", dict(ev))

        out["structlog JSONRenderer (json.dumps)"] = structlog_renderer

        import orjson

        orenderer = JSONRenderer(serializer=orjson.dumps)

        def structlog_orjson() -> None:
            for ev in events:
                orenderer(None, "info", dict(ev))

        out["structlog JSONRenderer (orjson)"] = structlog_orjson

        logger = structlog.wrap_logger(
            structlog.BytesLogger(io.BytesIO()),
            processors=[structlog.processors.add_log_level,
                        structlog.processors.TimeStamper(fmt="iso", utc=True),
                        JSONRenderer(serializer=orjson.dumps)],
        )

        def structlog_logger() -> None:
            buf = io.BytesIO()
            logger._logger = structlog.BytesLogger(buf)
            for i in ids:
                logger.info("Request completed", request_id=i, **SPEC_FIELDS)

        out["structlog logger+orjson (full call)"] = structlog_logger
    except ImportError:
        print("structlog not installed: skipped", file=sys.stderr)

    try:
        try:
            from pythonjsonlogger.json import JsonFormatter
        except ImportError:  # older python-json-logger
            from pythonjsonlogger.jsonlogger import JsonFormatter  # type: ignore[no-redef]
        fmt = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(module)s "
                            "%(funcName)s %(lineno)d")

        def pjl() -> None:
            for rec in records:
                fmt.format(rec)

        out["python-json-logger JsonFormatter"] = pjl
    except ImportError:
        print("python-json-logger not installed: skipped", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--records", type=int, default=50_000)
    args = ap.parse_args()
    cands = candidates(args.records)
    rates: dict[str, list[float]] = {name: [] for name in cands}
    for _ in range(args.rounds):
        for name, fn in cands.items():
            t0 = time.perf_counter()
            fn()
            rates[name].append(args.records / (time.perf_counter() - t0))
    ref = statistics.median(rates.get("structlog JSONRenderer (json.dumps)", [1.0]))
    print(f"{'candidate':40} {'records/s':>12} {'us/record':>10} {'vs structlog':>13}")
    for name, r in rates.items():
        med = statistics.median(r)
        print(f"{name:40} {med:12,.0f} {1e6 / med:10.2f} {med / ref:12.2f}x")
    print(f"(median of {args.rounds} interleaved rounds x {args.records} records; "
          f"python {sys.version.split()[0]})")


if __name__ == "__main__":
    main()
