"""Aligned tables for people; colour only on a terminal and only without NO_COLOR."""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from hapa_telemetry.analysis.records import normalize_level

_RESET = "\x1b[0m"
_STYLES = {
    "bold": "\x1b[1m",
    "dim": "\x1b[2m",
    "red": "\x1b[31m",
    "yellow": "\x1b[33m",
    "cyan": "\x1b[36m",
    "magenta": "\x1b[35m",
}
_LEVEL_STYLE = {
    "DEBUG": "dim",
    "INFO": "",
    "WARNING": "yellow",
    "ERROR": "red",
    "CRITICAL": "magenta",
}


def use_colour(stream: TextIO) -> bool:
    """Colour when ``stream`` is a terminal and NO_COLOR is unset or empty."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Painter:
    """Wraps text in ANSI styles, or not."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, style: str) -> str:
        if not self.enabled or not style:
            return text
        return f"{_STYLES[style]}{text}{_RESET}"


# C0 and C1 control characters, DEL, and the bidirectional overrides/isolates: printed raw,
# a logged "\x1b[2J" would clear the reader's screen and U+202E would reorder what follows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group(0)
    named = _NAMED.get(ch)
    if named:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(value: object) -> str:
    """``value`` as text with control characters escaped (``\x1b``, ``\n``, ``\u202e``),
    so that what a log line holds can never act on the reader's terminal."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():
        return text
    return _UNSAFE.sub(_escape_char, text)


def width(text: str) -> int:
    """Terminal columns of ``text``: East Asian wide characters (Korean) take two."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _cut(text: str, columns: int) -> str:
    """``text`` shortened with an ellipsis to at most ``columns`` terminal columns."""
    if width(text) <= columns:
        return text
    out, used = [], 0
    for ch in text:
        size = width(ch)
        if used + size > columns - 1:
            break
        out.append(ch)
        used += size
    return "".join(out) + "…"


def _ljust(text: str, columns: int) -> str:
    return text + " " * max(columns - width(text), 0)


def _rjust(text: str, columns: int) -> str:
    return " " * max(columns - width(text), 0) + text


def display_time(value: object) -> str:
    """A line's timestamp for the table: ISO with a space, fraction cut to milliseconds."""
    text = str(value if value is not None else "-").replace("T", " ", 1)
    if len(text) > 23 and text[19:20] == ".":
        end = 20
        while end < len(text) and text[end].isdigit():
            end += 1
        text = text[:23] + text[end:]
    return text


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    paint: Painter,
    *,
    right: Sequence[int] = (),
    styles: Sequence[Sequence[str]] | None = None,
) -> str:
    """An aligned text table; ``right`` lists right-aligned column indexes. Every cell is
    escaped with :func:`safe`."""
    rows = [[safe(cell) for cell in row] for row in rows]
    widths = [width(header) for header in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], width(cell))

    def line(cells: Sequence[str], row_styles: Sequence[str] | None) -> str:
        parts = []
        for index, cell in enumerate(cells):
            padded = _rjust(cell, widths[index]) if index in right else _ljust(cell, widths[index])
            if index == len(cells) - 1 and index not in right:
                padded = cell
            style = row_styles[index] if row_styles else ""
            parts.append(paint(padded, style))
        return "  ".join(parts).rstrip()

    out = [line([paint(h, "") for h in headers], ["bold"] * len(headers))]
    for number, row in enumerate(rows):
        out.append(line(row, styles[number] if styles else None))
    return "\n".join(out)


def seconds(value: object) -> str:
    """A duration in seconds for a table cell (``-`` when missing)."""
    if not isinstance(value, int | float):
        return "-"
    if value >= 100:
        return f"{value:.1f}"
    return f"{value:.4f}"


def count(value: object) -> str:
    """A count with thousands separators."""
    return f"{value:,}" if isinstance(value, int) else "-"


def percent(value: object) -> str:
    """A 0..1 fraction as a percentage."""
    return f"{100 * value:.1f}%" if isinstance(value, int | float) else "-"


_STAT_HEADERS = ("count", "avg", "p50", "p95", "p99", "max")


def _stat_cells(stats: Mapping[str, Any]) -> list[str]:
    return [count(stats.get("count"))] + [
        seconds(stats.get(key)) for key in ("avg", "p50", "p95", "p99", "max")
    ]


def render_report(result: Mapping[str, Any], paint: Painter) -> str:
    """The human form of a report dict from reports.py or the ES backend."""
    kind = result["report"]
    if kind == "errors":
        return _render_errors(result, paint)
    if kind == "latency":
        return _render_latency(result, paint)
    return _render_inference(result, paint)


def _render_errors(result: Mapping[str, Any], paint: Painter) -> str:
    types = result["types"]
    if not types:
        return "no error lines"
    rows = [
        [
            entry["error_type"],
            count(entry["count"]),
            entry["first_seen"] or "-",
            entry["last_seen"] or "-",
            _cut(" ".join(str(entry["example"] or "").split()), 70),
        ]
        for entry in types
    ]
    styles = [["red", "", "", "", "dim"] for _ in rows]
    body = table(
        ["ERROR TYPE", "COUNT", "FIRST SEEN (UTC)", "LAST SEEN (UTC)", "EXAMPLE"],
        rows,
        paint,
        right=(1,),
        styles=styles,
    )
    kinds = "type" if len(types) == 1 else "types"
    return f"{body}\n\n{count(result['total'])} error lines, {len(types)} {kinds}"


def _render_latency(result: Mapping[str, Any], paint: Painter) -> str:
    overall = result["overall"]
    if not overall["count"]:
        return "no request_end lines with a duration"
    rows = [["(all)", *_stat_cells(overall), count(overall.get("server_errors"))]]
    styles = [["bold"] * 8]
    for entry in result["endpoints"]:
        rows.append([entry["endpoint"], *_stat_cells(entry), count(entry.get("server_errors"))])
        styles.append(["", "", "", "", "", "", "", "red" if entry.get("server_errors") else ""])
    body = table(
        ["ENDPOINT", *(h.upper() for h in _STAT_HEADERS), "5XX"],
        rows,
        paint,
        right=tuple(range(1, 8)),
        styles=styles,
    )
    slowest = render_slowest(result.get("slowest") or [], paint)
    return f"{body}\n\ndurations in seconds{_approx(result)}" + (
        f"\n\n{slowest}" if slowest else ""
    )


def _render_inference(result: Mapping[str, Any], paint: Painter) -> str:
    overall = result["overall"]
    if not overall["count"] and result.get("reported_cache_hit_rate") is None:
        return "no ai_inference lines"
    rows = [
        ["(all)", *_stat_cells(overall)],
        ["cached", *_stat_cells(result["cached"])],
        ["not cached", *_stat_cells(result["uncached"])],
    ]
    for entry in result.get("models", []):
        rows.append([f"model {entry['model']}", *_stat_cells(entry)])
    body = table(
        ["INFERENCE", *(h.upper() for h in _STAT_HEADERS)],
        rows,
        paint,
        right=tuple(range(1, 7)),
        styles=[["bold"] * 7] + [[""] * 7] * (len(rows) - 1),
    )
    lines = [body, ""]
    lines.extend(_generation_lines(result, paint))
    lines.append(f"cache hit rate: {percent(result['cache_hit_rate'])} of inferences")
    reported = result.get("reported_cache_hit_rate")
    if reported is not None:
        size = result.get("reported_cache_size")
        extra = f", cache size {size:,}" if isinstance(size, int) else ""
        lines.append(
            f"last reported by cache_metrics: {percent(reported)}{extra}"
            f" (at {safe(result.get('reported_at'))})"
        )
    lines.append("durations in seconds" + _approx(result))
    return "\n".join(lines)


def _generation_lines(result: Mapping[str, Any], paint: Painter) -> list[str]:
    """Streamed answers: time to first token, output tokens per second (issue 13)."""
    ttft = result.get("time_to_first_token") or {}
    speed = result.get("tokens_per_second") or {}
    if not ttft.get("count") and not speed.get("count"):
        return []
    rows = []
    if ttft.get("count"):
        rows.append(["time to first token (s)", *_stat_cells(ttft)])
    if speed.get("count"):
        rows.append(
            ["output tokens/s per call", count(speed.get("count"))]
            + [f"{speed[k]:,.1f}" if speed.get(k) is not None else "-"
               for k in ("avg", "p50", "p95", "p99", "max")]
        )
    out = [
        table(
            ["GENERATION", *(h.upper() for h in _STAT_HEADERS)],
            rows,
            paint,
            right=tuple(range(1, 7)),
            styles=[[""] * 7] * len(rows),
        )
    ]
    overall = result.get("output_tokens_per_second")
    if overall is not None:
        out.append(
            f"output tokens: {result.get('output_tokens', 0):,} in all, "
            f"{overall:,.1f} tokens/s over uncached generation time"
        )
    cancelled = result.get("cancelled_streams")
    if cancelled:
        out.append(f"streams stopped early by the consumer: {cancelled:,}")
    out.append("")
    return out


def _approx(result: Mapping[str, Any]) -> str:
    return "" if result.get("exact", True) else "; percentiles within 0.2% (large input)"



LINE_HEADERS = ("TIME", "LEVEL", "EVENT", "ENDPOINT", "MESSAGE", "TRACE/SPAN")
_WIDTHS = (29, 8, 18, 28, 64)


def line_header(paint: Painter) -> str:
    """Header of the matching-lines table."""
    cells = [h.ljust(w) for h, w in zip(LINE_HEADERS, _WIDTHS, strict=False)]
    cells.append(LINE_HEADERS[-1])
    return paint("  ".join(cells), "bold")


def line_row(record: Mapping[str, Any], paint: Painter, wide: bool = False) -> str:
    """One matching line as a row: time, level, event, endpoint, message, trace/span."""
    stamp = safe(display_time(record.get("timestamp")))
    level_raw = record.get("level")
    level = safe(normalize_level(level_raw) or str(level_raw if level_raw is not None else "-"))
    event = safe(record.get("event_type") or "-")
    endpoint = record.get("endpoint")
    method = record.get("method")
    where = safe("-" if not endpoint else (f"{method} {endpoint}" if method else str(endpoint)))
    message = safe(" ".join(str(record.get("message", "")).split()))
    trace = record.get("trace_id")
    span = record.get("span_id")
    context = safe(f"{trace}/{span}") if trace else "-"
    widths = _WIDTHS
    cells = [
        _ljust(_cut(stamp, widths[0]), widths[0]),
        paint(_ljust(level, widths[1]), _LEVEL_STYLE.get(level, "")),
        _ljust(_cut(event, widths[2]), widths[2]),
        _ljust(where if wide else _cut(where, widths[3]), widths[3]),
        _ljust(message if wide else _cut(message, widths[4]), widths[4]),
        paint(context, "dim" if context == "-" else "cyan"),
    ]
    return "  ".join(cells).rstrip()


def render_slowest(rows: Sequence[Mapping[str, Any]], paint: Painter) -> str:
    """The slowest-requests table, or an empty string when there is none."""
    if not rows:
        return ""
    body = table(
        ["DURATION", "STATUS", "ENDPOINT", "TIME", "TRACE ID"],
        [
            [
                seconds(row.get("duration")),
                str(row.get("status_code") if row.get("status_code") is not None else "-"),
                " ".join(str(row[k]) for k in ("method", "endpoint") if row.get(k)) or "-",
                display_time(row.get("timestamp")),
                str(row.get("trace_id") or "-"),
            ]
            for row in rows
        ],
        paint,
        right=(0,),
    )
    return (
        f"{paint(f'slowest {len(rows)} requests', 'bold')} "
        f"(hapa-telemetry trace TRACE_ID shows one)\n{body}"
    )
