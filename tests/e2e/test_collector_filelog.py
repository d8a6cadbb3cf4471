"""File-only deployment: the filelog receiver ships the package's JSON lines to Elasticsearch."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import _stack
import pytest

from hapa_telemetry import names

pytestmark = pytest.mark.e2e


@pytest.fixture
def log_file(stack_up: None) -> Iterator[Path]:
    """A fresh hapa_*.log in the directory the stack's collector tails; removed afterwards."""
    _stack.FILELOG_DIR.mkdir(parents=True, exist_ok=True)
    day = datetime.now(timezone.utc).strftime("%Y%m%d")
    path = _stack.FILELOG_DIR / f"{names.LOG_FILE_PREFIX}{day}_e2e{uuid.uuid4().hex[:8]}.log"
    yield path
    path.unlink(missing_ok=True)


def _line(**fields: object) -> str:
    return json.dumps(fields, ensure_ascii=False) + "\n"


def test_json_lines_arrive_with_trace_context_severity_and_fields(log_file: Path) -> None:
    """Each JSON line becomes one document: timestamp, level, message, trace and span ids
    parsed from the line; the caller's fields searchable at the top level."""
    trace_id = uuid.uuid4().hex
    span_id = uuid.uuid4().hex[:16]
    user = f"file-user-{uuid.uuid4().hex[:6]}"
    now = datetime.now(timezone.utc).replace(microsecond=123456)
    common = {
        "logger": "api_monitor",
        "module": "monitors",
        "function": "log_error",
        "line": 42,
        "service": names.DEFAULT_SERVICE_NAME,
        "environment": "production",
    }
    log_file.write_text(
        _line(
            timestamp=now.isoformat(),
            level="ERROR",
            message="inference failed",
            **common,
            event_type=names.EVENT_ERROR,
            error_type="TimeoutError",
            user_id=user,
            endpoint="/api/v1/code/generate",
            duration=2.5,
            status_code=500,
            cached=False,
            trace_id=trace_id,
            span_id=span_id,
            trace_flags="01",
        )
        + _line(
            timestamp=now.replace(tzinfo=None).isoformat(),
            level="INFO",
            message="seed-style naive timestamp",
            user_id=user,
            event_type=names.EVENT_REQUEST_END,
        )
        + "not a JSON line\n",
        encoding="utf-8",
    )

    docs = _stack.wait_for_docs(
        f"{_stack.LOG_INDEX_PREFIX}-*", {"term": {"user_id.keyword": user}}, 2, 60
    )
    assert len(docs) == 2
    # both lines carry the same instant, so the search's time order does not tell them apart
    by_level = {d["level"]: d for d in docs}
    err, info = by_level["ERROR"], by_level["INFO"]
    assert err["_index"] == _stack.today_log_index()
    assert err["TraceId"] == trace_id and err["SpanId"] == span_id and err["TraceFlags"] == 1
    assert err["SeverityText"] == "ERROR" and err["SeverityNumber"] == 17
    assert err["level"] == "ERROR"
    assert err["message"] == "inference failed" == err["Body"]
    assert err["@timestamp"].startswith(now.strftime("%Y-%m-%dT%H:%M:%S.123456"))
    assert err["error_type"] == "TimeoutError" and err["status_code"] == 500
    assert err["duration"] == 2.5 and err["cached"] is False
    assert err["Resource.service.name"] == names.DEFAULT_SERVICE_NAME
    assert "trace_id" not in err and "timestamp" not in err  # held by TraceId / @timestamp

    assert info["SeverityText"] == "INFO" and info["SeverityNumber"] == 9
    assert info["@timestamp"].startswith(now.strftime("%Y-%m-%dT%H:%M:%S.123456"))
    assert "TraceId" not in info or info["TraceId"] == ""

    # found by trace id exactly like an OTLP record
    assert [d["message"] for d in _stack.by_trace_id(trace_id, f"{_stack.LOG_INDEX_PREFIX}-*")] == [
        "inference failed"
    ]
