"""Draw a :class:`~hapa_telemetry.analysis.trace.TraceView` as a waterfall.

One row per span (at its start) and per log line (at its time), in time order: the
offset from the trace's start, a bar over the trace's duration (the span's extent, or a
tick where the line was written), then the span tree indented by depth — name,
duration, status, service and key attributes — with each log line under the span it
was written in. On a terminal: colour and the terminal's width (long text cut); piped:
no escape codes, nothing cut.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hapa_telemetry.analysis.render import Painter, width
from hapa_telemetry.analysis.trace import Span, TraceView

#: Span attributes worth a place on the span's row, in this order (short names).
KEY_ATTRIBUTES = (
    ("http.request.method", "method"),
    ("http.route", "route"),
    ("http.response.status_code", "status"),
    ("error.type", "error"),
    ("gen_ai.request.model", "model"),
    ("gen_ai.usage.input_tokens", "in_tokens"),
    ("gen_ai.usage.output_tokens", "out_tokens"),
    ("hapa.cache_hit", "cache_hit"),
    ("user_id", "user"),
    ("http.request.id", "request_id"),
)
#: Log fields shown after a line's message.
KEY_FIELDS = ("status_code", "duration", "user_id", "error_type", "model", "cached")
_LEVEL_STYLE = {"DEBUG": "dim", "WARNING": "yellow", "ERROR": "red", "CRITICAL": "magenta"}
_PIPED_BAR = 40


def _fmt_duration(value: float) -> str:
    if value >= 1:
        return f"{value:.3f} s"
    return f"{value * 1000:.1f} ms"


def _cut(text: str, columns: int) -> str:
    if columns <= 0:
        return ""
    if width(text) <= columns:
        return text
    out, used = [], 0
    for ch in text:
        if used + width(ch) > columns - 1:
            break
        out.append(ch)
        used += width(ch)
    return "".join(out) + "…"


def _span_text(span: Span) -> tuple[str, str]:
    parts = [f"{k}={span.attributes[a]}" for a, k in KEY_ATTRIBUTES if a in span.attributes]
    status = "ok" if span.status == "UNSET" else span.status  # unset: not an error
    if span.status_message:
        status = f"{status} {span.status_message}"
    service = f"[{span.service}]" if span.service else ""
    head = f"{span.name}  {_fmt_duration(span.duration)}"
    tail = "  ".join(p for p in (status, service, " ".join(parts)) if p)
    return head, tail


def _line_text(line: Mapping[str, Any]) -> tuple[str, str]:
    level = str(line.get("level") or "-")
    event = str(line.get("event_type") or "")
    message = str(line.get("message") or "")
    extra = " ".join(
        f"{k}={round(v, 6) if isinstance(v, float) else v}"
        for k in KEY_FIELDS if (v := line.get(k)) is not None
    )
    head = f"{level:<7} {event + '  ' if event else ''}{message}"
    return head, extra


def render_trace(view: TraceView, paint: Painter, columns: int | None) -> str:
    """The waterfall; ``columns`` is the terminal width (None when piped: nothing cut)."""
    start, end = view.start, view.end
    total = max(end - start, 1e-9)
    bar = _PIPED_BAR if columns is None else max(10, min(60, columns // 3))
    rows: list[tuple[float, int, int, str]] = []  # (time, kind, order, text)

    def position(t: float) -> int:
        return min(bar - 1, max(0, int((t - start) / total * bar)))

    for order, span in enumerate(view.spans):
        left = position(span.start)
        right = max(left + 1, min(bar, round((span.end - start) / total * bar)))
        cells = " " * left + "█" * (right - left) + " " * (bar - right)
        head, tail = _span_text(span)
        indent = "  " * span.depth
        style = "red" if span.status == "ERROR" else "cyan"
        rows.append((span.start, 0, order, _row(
            span.start - start, paint(cells, style), indent,
            paint(head, "bold"), paint(tail, "red" if span.status == "ERROR" else "dim"),
            width(head), width(tail), columns, bar)))
    for order, (line, t) in enumerate(zip(view.lines, _times(view), strict=True)):
        depth = view.depth_of(line.get("span_id"))
        indent = "  " * (depth + 1 if depth is not None else 0)
        at = position(t) if t is not None else 0
        cells = " " * at + "│" + " " * (bar - at - 1)
        head, extra = _line_text(line)
        level = str(line.get("level") or "")
        rows.append((t if t is not None else start, 1, order, _row(
            (t - start) if t is not None else None, paint(cells, "dim"), indent,
            paint(head, _LEVEL_STYLE.get(level, "")), paint(extra, "dim"),
            width(head), width(extra), columns, bar)))
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    spans = f"{len(view.spans)} span{'s' if len(view.spans) != 1 else ''}"
    lines = f"{len(view.lines)} log line{'s' if len(view.lines) != 1 else ''}"
    where = "Elasticsearch" if view.source == "elasticsearch" else \
        "log files (log lines only: spans need --es URL)"
    summary = f"{spans} · {lines} · {_fmt_duration(end - start)} · from {where}"
    gap = "  "
    if columns is not None and width(f"trace {view.trace_id}  {summary}") > columns:
        gap, summary = "\n", _cut(summary, columns)
    header = f"{paint('trace ' + view.trace_id, 'bold')}{gap}{summary}"
    label = _fmt_duration(total)
    scale = f"{'':>9}  0{label:>{bar - 1}}"
    return "\n".join([header, paint(scale, "dim"), *(r[3] for r in rows)])


def _times(view: TraceView) -> list[float | None]:
    from hapa_telemetry.analysis.records import parse_timestamp

    return [parse_timestamp(line.get("timestamp")) for line in view.lines]


def _row(
    offset: float | None, bar_cells: str, indent: str, head: str, tail: str,
    head_width: int, tail_width: int, columns: int | None, bar: int,
) -> str:
    when = f"+{offset:.3f}s" if offset is not None else "-"
    prefix = f"{when:>9}  {bar_cells}  {indent}"
    if columns is None:
        return f"{prefix}{head}  {tail}".rstrip() if tail_width else f"{prefix}{head}"
    room = columns - (9 + 2 + bar + 2 + len(indent))
    if head_width >= room:  # cut the plain text again: styles would be cut mid-escape
        return prefix + _cut(_strip(head), room)
    if not tail_width:
        return prefix + head
    rest = room - head_width - 2
    if rest <= 1:
        return prefix + head
    if tail_width > rest:
        return f"{prefix}{head}  {_cut(_strip(tail), rest)}"
    return f"{prefix}{head}  {tail}"


def _strip(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)
