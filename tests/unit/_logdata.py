"""Generators of hapa JSON log lines and log directories with known answers (test helper)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hapa_telemetry import names

T0 = datetime(2026, 11, 25, 10, 0, 0, tzinfo=timezone.utc)


def line(
    at: datetime,
    message: str,
    *,
    level: str = "INFO",
    logger: str = "api_monitor",
    **fields: Any,
) -> dict[str, Any]:
    """One log object in the package's field order."""
    out: dict[str, Any] = {
        "timestamp": at.isoformat(),
        "level": level,
        "logger": logger,
        "message": message,
        "module": "monitor",
        "function": "log",
        "line": 42,
        "service": names.DEFAULT_SERVICE_NAME,
        "environment": "production",
    }
    out.update({key: value for key, value in fields.items() if value is not None})
    return out


def request_end(
    at: datetime,
    endpoint: str,
    duration: float,
    *,
    status: int = 200,
    method: str = "POST",
    **fields: Any,
) -> dict[str, Any]:
    """A request_end line."""
    return line(
        at,
        f"API 요청 완료: {method} {endpoint} - {status} ({duration:.4f}s)",
        method=method,
        endpoint=endpoint,
        status_code=status,
        duration=duration,
        event_type=names.EVENT_REQUEST_END,
        **fields,
    )


def request_start(
    at: datetime, endpoint: str, *, method: str = "POST", **fields: Any
) -> dict[str, Any]:
    """A request_start line."""
    return line(
        at,
        f"API 요청 시작: {method} {endpoint}",
        method=method,
        endpoint=endpoint,
        event_type=names.EVENT_REQUEST_START,
        **fields,
    )


def error(at: datetime, error_type: str, text: str, **fields: Any) -> dict[str, Any]:
    """An error line (level ERROR, event error)."""
    return line(
        at,
        f"오류 발생: {error_type}: {text}",
        level="ERROR",
        error_type=error_type,
        error_message=text,
        event_type=names.EVENT_ERROR,
        **fields,
    )


def inference(at: datetime, duration: float, *, cached: bool, **fields: Any) -> dict[str, Any]:
    """An ai_inference line."""
    return line(
        at,
        f"AI 추론 완료: {duration:.4f}s",
        duration=duration,
        prompt_length=120,
        response_length=480,
        cached=cached,
        event_type=names.EVENT_AI_INFERENCE,
        **fields,
    )


def encode(records: Iterable[dict[str, Any] | str]) -> bytes:
    """Lines as the writer would put them; str items are written verbatim (garbage)."""
    out = []
    for item in records:
        out.append(item if isinstance(item, str) else json.dumps(item, ensure_ascii=False))
    return ("\n".join(out) + "\n").encode("utf-8")


def write(path: Path, records: Iterable[dict[str, Any] | str], *, gz: bool = False) -> Path:
    """Write lines to ``path`` (gzip-compressed when ``gz``)."""
    data = encode(records)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wb") as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path


def at(minutes: float, day: int = 0) -> datetime:
    """T0 plus ``day`` days and ``minutes`` minutes."""
    return T0 + timedelta(days=day, minutes=minutes)


TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"


def rotated_dir(root: Path) -> Path:
    """A log directory over two days with rotated, gzipped and garbage content.

    Every JSON line carries ``seq``, increasing with time, so reading order is checkable.
    Known answers (hapa_* files only):
      request_end: 6 lines; durations 0.1, 0.2, 0.3, 0.4 on /api/v1/code/generate
        (user123 has 0.1 and 0.3, the 0.4 one is a 500), 1.0 and 3.0 on /health
      errors: ValueError x2 (first day 0 min 3, last day 1 min 3), TimeoutError x1
      ai_inference: 4 lines, 1 cached (0.01), uncached 1.0, 2.0, 3.0
      trace TRACE_A: 3 lines (seq 1, 2, 3) spread over the .2.gz and .1 backups
      garbage: 1 not-JSON line, 1 truncated line, 1 line missing its level
    """
    root.mkdir(parents=True, exist_ok=True)
    seq = iter(range(1, 1000))

    def s(record: dict[str, Any]) -> dict[str, Any]:
        record["seq"] = next(seq)
        return record

    span = "00f067aa0ba902b7"
    # day 0, oldest backup first
    write(root / "hapa_20261125.log.2.gz", [
        s(request_start(at(0), "/api/v1/code/generate", user_id="user123", trace_id=TRACE_A,
                        span_id=span, trace_flags="01")),
        s(inference(at(1), 1.0, cached=False, user_id="user123", trace_id=TRACE_A,
                    span_id="1111111111111111", model="codegen-small")),
    ], gz=True)
    write(root / "hapa_20261125.log.1", [
        s(request_end(at(2), "/api/v1/code/generate", 0.1, user_id="user123",
                      trace_id=TRACE_A, span_id=span)),
        "this is not json at all",
        s(error(at(3), "ValueError", "bad prompt", trace_id=TRACE_B, span_id="2222222222222222")),
    ])
    write(root / "hapa_20261125.log", [
        s(request_end(at(4), "/api/v1/code/generate", 0.2, user_id="user456")),
        s(inference(at(5), 0.01, cached=True, user_id="user456", model="codegen-small")),
        s(line(at(6), "캐시 상태: 적중률 25.00%, 크기 10", hit_rate=0.25, cache_size=10,
               event_type=names.EVENT_CACHE_METRICS)),
        '{"timestamp": "2026-11-25T10:07:00+00:00", "level": "INFO", "mess',
    ])
    # day 1
    write(root / "hapa_20261126.log.1.gz", [
        s(request_end(at(0, 1), "/health", 1.0, method="GET")),
        s(inference(at(1, 1), 2.0, cached=False, model="codegen-large")),
        s(line(at(2, 1), "slow disk", level="WARNING")),
    ], gz=True)
    write(root / "hapa_20261126.log", [
        s(error(at(3, 1), "ValueError", "empty prompt", user_id="user123")),
        s(error(at(4, 1), "TimeoutError", "model timed out")),
        s(request_end(at(5, 1), "/api/v1/code/generate", 0.3, user_id="user123")),
        s(request_end(at(6, 1), "/api/v1/code/generate", 0.4, status=500)),
        s(request_end(at(7, 1), "/health", 3.0, method="GET")),
        s(inference(at(8, 1), 3.0, cached=False, model="codegen-large")),
        json.dumps({"timestamp": at(9, 1).isoformat(), "message": "no level here",
                    "seq": next(seq)}),
        s(line(at(10, 1), "debug detail", level="DEBUG")),
    ])
    # the error file duplicates the ERROR lines, plus one only there
    write(root / "error_20261126.log", [
        error(at(3, 1), "ValueError", "empty prompt", user_id="user123"),
        error(at(4, 1), "TimeoutError", "model timed out"),
        error(at(11, 1), "KeyError", "only in the error file"),
    ])
    (root / "unrelated.txt").write_text("not a log\n")
    return root


def run_cli(args: list[str], capsys: Any) -> tuple[int, str, str]:
    """Run ``hapa-telemetry`` in-process; (exit status, stdout, stderr)."""
    from hapa_telemetry.cli import main

    status = main(args)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def json_lines(out: str) -> list[dict[str, Any]]:
    """Parse NDJSON output."""
    return [json.loads(item) for item in out.splitlines() if item.strip()]
