"""A live OTLP/HTTP receiver for the benchmark: accepts POSTs on /v1/traces, /v1/metrics
and /v1/logs, answers 200 with an empty protobuf response, and counts what arrived.

Run: python otlp_sink.py PORT STATS_JSON — on SIGTERM it writes the counts (requests,
bytes, spans, log records, metric data points per path) to STATS_JSON and exits.
Decoding uses opentelemetry-proto when importable (to count items), else counts bytes.
"""

from __future__ import annotations

import gzip
import json
import signal
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

try:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
except ImportError:  # counting bytes only
    ExportTraceServiceRequest = ExportMetricsServiceRequest = ExportLogsServiceRequest = None

_LOCK = threading.Lock()
STATS: dict[str, dict[str, int]] = {}


def _items(path: str, body: bytes) -> int:
    if ExportTraceServiceRequest is None:
        return 0
    if path == "/v1/traces":
        req = ExportTraceServiceRequest.FromString(body)
        return sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    if path == "/v1/logs":
        req = ExportLogsServiceRequest.FromString(body)
        return sum(len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs)
    if path == "/v1/metrics":
        req = ExportMetricsServiceRequest.FromString(body)
        n = 0
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    if kind:
                        n += len(getattr(m, kind).data_points)
        return n
    return 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        try:
            if encoding == "gzip":
                body = gzip.decompress(body)
            elif encoding == "deflate":
                body = zlib.decompress(body)
            items = _items(self.path, body)
        except Exception:
            items = -1
        with _LOCK:
            s = STATS.setdefault(self.path, {"requests": 0, "bytes": 0, "items": 0, "bad": 0})
            s["requests"] += 1
            s["bytes"] += length
            if items < 0:
                s["bad"] += 1
            else:
                s["items"] += items
        known = self.path in ("/v1/traces", "/v1/metrics", "/v1/logs")
        self.send_response(200 if known else 404)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # no access log
        return


def main() -> None:
    port, stats_path = int(sys.argv[1]), sys.argv[2]
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True

    def stop(*_: Any) -> None:
        with _LOCK, open(stats_path, "w") as f:
            json.dump(STATS, f)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
