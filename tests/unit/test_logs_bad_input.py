"""hapa-telemetry logs: bad input is counted and reported at the end, never a crash."""

from __future__ import annotations

import json
from pathlib import Path

from _logdata import at, error, json_lines, request_end, run_cli

GARBAGE = [
    b"plain text from a print()",
    b'{"timestamp": "2026-11-25T10:00:01+00:00", "level": "INFO", "mes',  # truncated
    b"[1, 2, 3]",  # JSON, not an object
    b"42",
    b"",  # blank lines are ignored
    b"   ",
    b"\xff\xfe\x00 binary junk",
    b'{"timestamp": "2026-11-25T10:00:02+00:00", "level": "LOUD", "message": "odd level"}',
    b'{"level": "INFO", "message": "no time"}',
    b'{"timestamp": "not a time", "level": "INFO", "message": "bad time"}',
]


def _file(tmp_path: Path) -> Path:
    good = [json.dumps(request_end(at(0), "/a", 0.5)).encode(),
            json.dumps(error(at(1), "KeyError", "k")).encode()]
    bad_duration = request_end(at(2), "/a", 0.0)
    bad_duration["duration"] = "fast"
    path = tmp_path / "mixed.log"
    path.write_bytes(b"\n".join([good[0], *GARBAGE, good[1], json.dumps(bad_duration).encode()])
                     + b"\n" + b'{"timestamp": "2026-11-25T10:09')  # cut-off last line
    return path


def test_garbage_is_counted_by_kind_and_good_lines_still_come_out(tmp_path, capsys):
    """Non-JSON, truncated, non-object lines are skipped and tallied; the rest is printed."""
    status, out, err = run_cli(["logs", str(_file(tmp_path)), "--json"], capsys)
    assert status == 0
    messages = [record["message"] for record in json_lines(out)]
    assert len(messages) == 6 and "odd level" in messages and "no time" in messages
    warning = [row for row in err.splitlines() if "warning" in row][0]
    assert "not JSON 2" in warning  # plain text and binary junk
    assert "truncated JSON 2" in warning  # mid-file and at the end of the file
    assert "not a JSON object 2" in warning
    assert "unknown level 1" in warning and "missing timestamp 1" in warning
    assert "mixed.log:2" in warning  # where the first non-JSON line is


def test_report_json_lists_problems_including_unusable_durations(tmp_path, capsys):
    """A request_end whose duration is not a number is left out of latency and counted."""
    status, out, _ = run_cli(["logs", "latency", str(_file(tmp_path)), "--json",
                              "--no-fast-path"], capsys)
    result = json.loads(out)
    assert status == 0
    assert result["overall"]["count"] == 1 and result["overall"]["avg"] == 0.5
    assert result["problems"]["kept"]["request_end without a usable duration"] == 1
    assert result["problems"]["skipped"] == {
        "not JSON": 2, "not a JSON object": 2, "truncated JSON": 2}


def test_bad_timestamps_are_left_out_of_time_windows(tmp_path, capsys):
    """A line whose timestamp cannot be parsed does not match --since, and nothing crashes."""
    status, out, _ = run_cli(["logs", str(_file(tmp_path)), "--since", "2020-01-01",
                              "--json"], capsys)
    messages = [record["message"] for record in json_lines(out)]
    assert status == 0 and "bad time" not in messages and "no time" not in messages
    assert len(messages) == 4


def test_wrong_types_in_fields_do_not_crash_reports(tmp_path, capsys):
    """Fields with unexpected types (numbers as ids, lists as levels) are tolerated."""
    path = tmp_path / "odd.log"
    lines = [
        {"timestamp": at(0).isoformat(), "level": ["INFO"], "message": 5, "user_id": 123,
         "event_type": "error", "error_type": {"x": 1}},
        {"timestamp": at(1).isoformat(), "level": "INFO", "message": "m", "user_id": 123,
         "event_type": "request_end", "endpoint": None, "duration": True, "status_code": "500"},
        {"timestamp": 17, "level": "ERROR", "message": None, "event_type": "ai_inference",
         "duration": -1, "cached": "yes"},
    ]
    path.write_text("\n".join(json.dumps(item) for item in lines) + "\n")
    for report in ("lines", "errors", "latency", "inference"):
        status, _, _ = run_cli(["logs", report, str(path), "--user", "123"], capsys)
        assert status == 0
    status, out, _ = run_cli(["logs", "errors", str(path), "--json"], capsys)
    assert status == 0 and json.loads(out)["total"] == 2
