"""`hapa-telemetry trace`: one request's spans and log lines; the slowest requests' ids."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from _logdata import T0, line, request_end, run_cli, write

from hapa_telemetry.analysis.render import Painter
from hapa_telemetry.analysis.trace import TraceView, span_from_document, tree_order
from hapa_telemetry.analysis.trace_render import render_trace

SLOW = "4bf92f3577b34da6a3ce929d0e0e4736"
FAST = "0af7651916cd43dd8448eb211c80319c"
SERVER, CHILD = "00f067aa0ba902b7", "b7ad6b7169203331"


def _logs(tmp_path: Path) -> Path:
    """Two requests interleaved in the file; the slow one has three lines."""
    d = tmp_path / "logs"
    d.mkdir(exist_ok=True)
    ms = timedelta(milliseconds=1)
    write(d / "hapa_20261125.log", [
        line(T0, "API request start: GET /api/v1/items/{item_id}", trace_id=SLOW,
             span_id=SERVER, event_type="request_start"),
        line(T0 + 5 * ms, "API request start: GET /health", trace_id=FAST, span_id="1" * 16,
             event_type="request_start"),
        request_end(T0 + 9 * ms, "/health", 0.004, method="GET", trace_id=FAST,
                    span_id="1" * 16),
        line(T0 + 1200 * ms, "looking up", level="WARNING", trace_id=SLOW, span_id=CHILD),
        request_end(T0 + 2514 * ms, "/api/v1/items/{item_id}", 2.514, method="GET",
                    trace_id=SLOW, span_id=SERVER),
    ])
    return d


def _span_docs() -> list[dict[str, Any]]:
    """Span documents as the collector's Elasticsearch exporter writes them (raw mode)."""
    return [
        {"@timestamp": "2026-11-25T10:00:00.000000000Z",
         "EndTimestamp": "2026-11-25T10:00:02.514000000Z", "TraceId": SLOW, "SpanId": SERVER,
         "ParentSpanId": "", "Name": "GET /api/v1/items/{item_id}", "Kind": "SPAN_KIND_SERVER",
         "TraceStatus": 0, "Duration": 2514000, "Resource.service.name": "hapa-backend",
         "http.route": "/api/v1/items/{item_id}", "http.response.status_code": 200},
        {"@timestamp": "2026-11-25T10:00:01.000000000Z",
         "EndTimestamp": "2026-11-25T10:00:02.000000000Z", "TraceId": SLOW, "SpanId": CHILD,
         "ParentSpanId": SERVER, "Name": "text_completion m", "Kind": "SPAN_KIND_CLIENT",
         "TraceStatus": 2, "TraceStatusDescription": "TimeoutError", "Duration": 1000000,
         "Resource": {"service": {"name": "hapa-backend"}}, "gen_ai.request.model": "m",
         "error.type": "TimeoutError"},
    ]


def test_trace_from_files_prints_only_that_trace_in_time_order(tmp_path: Path, capsys) -> None:
    """Without Elasticsearch the trace's log lines are shown, in time order, and the
    other request's lines are not; piped output has no escape codes."""
    status, out, err = run_cli(["trace", SLOW, str(_logs(tmp_path))], capsys)
    assert status == 0, err
    assert "\x1b[" not in out
    assert out.splitlines()[0].startswith(f"trace {SLOW}  0 spans · 3 log lines · 2.514 s")
    rows = out.splitlines()[2:]
    assert [r.split("│")[0].split()[0] for r in rows] == ["+0.000s", "+1.200s", "+2.514s"]
    assert "request_start" in rows[0] and "WARNING" in rows[1] and "request_end" in rows[2]
    assert "/health" not in out and FAST not in out


def test_trace_json_for_scripts(tmp_path: Path, capsys) -> None:
    """--json gives one document with the lines (and no spans from files)."""
    status, out, _ = run_cli(["trace", SLOW.upper(), str(_logs(tmp_path)), "--json"], capsys)
    assert status == 0
    doc = json.loads(out)
    assert doc["trace_id"] == SLOW and doc["source"] == "files" and doc["spans"] == []
    assert [x["event_type"] for x in doc["lines"] if "event_type" in x] == [
        "request_start", "request_end"]
    assert abs(doc["duration"] - 2.514) < 1e-6


def test_unknown_trace_is_a_clear_error(tmp_path: Path, capsys) -> None:
    """An id no line carries: a message naming it, exit 1; a malformed id: usage, exit 2."""
    status, out, err = run_cli(["trace", "f" * 32, str(_logs(tmp_path))], capsys)
    assert status == 1 and out == ""
    assert f"no trace {'f' * 32}" in err
    status, _, err = run_cli(["trace", "xyz", str(_logs(tmp_path))], capsys)
    assert status == 2 and "not a trace id" in err


def test_waterfall_indents_children_and_puts_lines_under_their_span() -> None:
    """Spans from span documents become an indented tree with bars proportional to their
    extent; each log line sits under the span it was written in, in time order."""
    spans = [s for s in map(span_from_document, _span_docs()) if s is not None]
    lines = [
        line(T0, "API request start", trace_id=SLOW, span_id=SERVER, event_type="request_start"),
        line(T0 + timedelta(seconds=1.5), "model slow", level="ERROR", trace_id=SLOW,
             span_id=CHILD),
        request_end(T0 + timedelta(seconds=2.514), "/api/v1/items/{item_id}", 2.514,
                    trace_id=SLOW, span_id=SERVER),
    ]
    view = TraceView(SLOW, tree_order(spans), lines, "elasticsearch")
    text = render_trace(view, Painter(False), None)
    rows = text.splitlines()[2:]
    assert len(rows) == 5
    server, start, child, error, end = rows
    assert "GET /api/v1/items/{item_id}  2.514 s" in server and "route=/api/v1/items" in server
    assert server.count("█") == 40  # the whole trace
    assert "text_completion m  1.000 s" in child and "ERROR TimeoutError" in child
    assert 14 <= child.count("█") <= 17  # about 1 s of 2.514 s
    assert server.index("█") <= child.index("█")  # the child starts later
    col = {r: r.find(k) for r, k in ((server, "GET"), (start, "INFO"), (child, "text_"),
                                    (error, "ERROR"), (end, "INFO"))}
    assert col[start] == col[server] + 2 and col[child] == col[server] + 2
    assert col[error] == col[child] + 2 and col[end] == col[server] + 2


def test_terminal_output_is_coloured_and_fits_the_width() -> None:
    """On a terminal: ANSI colours, and no row longer than the terminal's columns."""
    spans = [s for s in map(span_from_document, _span_docs()) if s is not None]
    lines = [request_end(T0 + timedelta(seconds=2.514), "/api/v1/items/{item_id}", 2.514,
                         trace_id=SLOW, span_id=SERVER, user_id="u" * 200)]
    text = render_trace(TraceView(SLOW, tree_order(spans), lines, "elasticsearch"),
                        Painter(True), 80)
    assert "\x1b[" in text
    for row in text.splitlines():
        assert len(re.sub(r"\x1b\[[0-9;]*m", "", row)) <= 80, row


def test_latency_report_lists_the_slowest_requests_trace_ids(tmp_path: Path, capsys) -> None:
    """`logs latency` shows the slowest requests with their trace ids, slowest first, in
    the table and in --json."""
    d = _logs(tmp_path)
    status, out, _ = run_cli(["logs", "latency", str(d), "-q", "--json"], capsys)
    assert status == 0
    slowest = json.loads(out)["slowest"]
    assert [r["trace_id"] for r in slowest] == [SLOW, FAST]
    assert slowest[0]["duration"] == 2.514 and slowest[0]["endpoint"] == "/api/v1/items/{item_id}"
    status, out, _ = run_cli(["logs", "latency", str(d), "-q"], capsys)
    assert status == 0
    table = out[out.index("slowest 2 requests"):]
    assert table.index(SLOW) < table.index(FAST)
