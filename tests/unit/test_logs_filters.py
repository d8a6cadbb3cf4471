"""hapa-telemetry logs: every filter, their combination, and the lines table."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from _logdata import (
    TRACE_A,
    at,
    json_lines,
    line,
    request_end,
    rotated_dir,
    run_cli,
    write,
)

from hapa_telemetry.analysis.records import parse_time_arg


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    return rotated_dir(tmp_path / "logs")


def _seqs(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[int]:
    status, out, _ = run_cli(["logs", *args, "--json"], capsys)
    assert status == 0
    return [record["seq"] for record in json_lines(out)]


@pytest.mark.parametrize("fast", [True, False])
def test_user_filter_finds_exactly_that_users_lines(logdir, capsys, fast):
    """--user returns the user's lines only (user1234 or the id in a message do not count)."""
    write(logdir / "hapa_20261127.log", [
        line(at(0, 2), "user123 mentioned in text only", user_id="user1234", seq=900),
        line(at(1, 2), "a user123 line", user_id="user123", seq=901),
    ])
    args = [str(logdir), "--user", "user123"] + ([] if fast else ["--no-fast-path"])
    assert _seqs(args, capsys) == [1, 2, 3, 11, 13, 901]


@pytest.mark.parametrize("fast", [True, False])
def test_numeric_user_ids_match_whether_written_as_numbers_or_strings(tmp_path, capsys, fast):
    """--user 42 finds user_id 42 and "42", not 420."""
    write(tmp_path / "hapa_20261125.log", [
        line(at(0), "number", user_id=42, seq=1),
        line(at(1), "string", user_id="42", seq=2),
        line(at(2), "other", user_id=420, seq=3),
    ])
    extra = [] if fast else ["--no-fast-path"]
    assert _seqs([str(tmp_path), "--user", "42", *extra], capsys) == [1, 2]


def test_trace_filter_lists_the_trace_in_time_order_with_span_ids(logdir, capsys):
    """--trace shows every line of the trace, oldest first, with each line's span id."""
    status, out, _ = run_cli(["logs", str(logdir), "--trace", TRACE_A, "--wide"], capsys)
    rows = out.splitlines()[1:]
    assert status == 0 and len(rows) == 3
    assert rows[0].startswith("2026-11-25 10:00:00")
    assert rows[0].endswith(f"{TRACE_A}/00f067aa0ba902b7")
    assert rows[1].endswith(f"{TRACE_A}/1111111111111111")
    assert "request_end" in rows[2]


def test_trace_filter_accepts_a_prefix_and_any_case(logdir, capsys):
    """--trace with the first hex digits (upper case too) finds the same lines."""
    assert _seqs([str(logdir), "--trace", TRACE_A[:8].upper()], capsys) == [1, 2, 3]


def test_trace_lines_are_ordered_by_timestamp_even_if_files_interleave(tmp_path, capsys):
    """Lines of one trace written out of order (two workers) are printed by time."""
    write(tmp_path / "hapa_20261125.log", [
        line(at(2), "later", trace_id=TRACE_A, span_id="b" * 16, seq=2),
        line(at(1), "earlier", trace_id=TRACE_A, span_id="a" * 16, seq=1),
    ])
    assert _seqs([str(tmp_path), "--trace", TRACE_A], capsys) == [1, 2]


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("warning", [4, 10, 11, 12]),
        ("ERROR", [4, 11, 12]),
        ("DEBUG", list(range(1, 19))),
    ],
)
def test_level_is_a_minimum(logdir, capsys, level, expected):
    """--level keeps lines at that level or above; a line without a level never matches."""
    seqs = _seqs([str(logdir), "--level", level], capsys)
    assert seqs == [seq for seq in expected if seq != 17]  # seq 17 has no level at all


def test_event_filter_accepts_several_types(logdir, capsys):
    """--event takes repeated or comma-separated event types."""
    assert _seqs([str(logdir), "--event", "error,cache_metrics"], capsys) == [4, 7, 11, 12]
    assert _seqs([str(logdir), "--event", "error", "--event", "cache_metrics"], capsys) == [
        4, 7, 11, 12]


def test_endpoint_filter_exact_and_wildcard(logdir, capsys):
    """--endpoint matches the route template exactly, or with * wildcards."""
    assert _seqs([str(logdir), "--endpoint", "/health"], capsys) == [8, 15]
    assert _seqs([str(logdir), "--endpoint", "/api/v1/*"], capsys) == [1, 3, 5, 13, 14]
    assert _seqs([str(logdir), "--endpoint", "/api"], capsys) == []


def test_since_and_until_absolute(logdir, capsys):
    """--since is inclusive, --until exclusive, naive and offset times both accepted."""
    seqs = _seqs([str(logdir), "--since", "2026-11-26T10:03:00+00:00",
                  "--until", "2026-11-26T10:06:00Z"], capsys)
    assert seqs == [11, 12, 13]


def test_since_relative_to_now(tmp_path, capsys):
    """--since 15m keeps only the last fifteen minutes of lines."""
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    write(tmp_path / f"hapa_{now:%Y%m%d}.log", [
        line(now - timedelta(hours=2), "old", seq=1),
        line(now - timedelta(minutes=10), "recent", seq=2),
        line(now - timedelta(seconds=5), "very recent", seq=3),
    ])
    assert _seqs([str(tmp_path), "--since", "15m"], capsys) == [2, 3]
    assert _seqs([str(tmp_path), "--until", "1h"], capsys) == [1]


def test_naive_local_timestamps_are_accepted(tmp_path, capsys):
    """The seed's naive timestamps (local time) are filtered like offset ones."""
    path = tmp_path / "seed.log"
    path.write_text(
        '{"timestamp": "2024-12-28T10:30:00.123456", "level": "INFO", "message": "a", "seq": 1}\n'
        '{"timestamp": "2024-12-28T11:30:00.123456", "level": "INFO", "message": "b", "seq": 2}\n'
    )
    assert _seqs([str(path), "--since", "2024-12-28T11:00:00"], capsys) == [2]


def test_time_args_parse_relative_and_absolute():
    """Relative ages count back from now; absolute ones are ISO 8601."""
    now = 1_000_000.0
    assert parse_time_arg("15m", now) == now - 900
    assert parse_time_arg("2h", now) == now - 7200
    assert parse_time_arg("1d", now) == now - 86400
    assert parse_time_arg("1970-01-02T00:00:00+00:00", now) == 86400
    with pytest.raises(ValueError, match="not a time"):
        parse_time_arg("soon", now)


def test_files_outside_the_time_window_are_not_opened(logdir, capsys):
    """With --since, daily files more than a day older are skipped by name."""
    (logdir / "hapa_20200101.log").write_bytes(b"garbage that would be counted\n")
    status, _, err = run_cli(["logs", str(logdir), "--since", "2026-11-26T00:00:00Z"], capsys)
    assert status == 0
    assert "hapa_20200101" not in err and "from 5 files" in err


@pytest.mark.parametrize("fast", [True, False])
def test_grep_is_case_insensitive_free_text(logdir, capsys, fast):
    """--grep finds text anywhere in the line, ignoring case, Korean included."""
    extra = [] if fast else ["--no-fast-path"]
    assert _seqs([str(logdir), "--grep", "TIMED OUT", *extra], capsys) == [12]
    assert _seqs([str(logdir), "--grep", "적중률", *extra], capsys) == [7]


def test_grep_finds_escaped_unicode(tmp_path, capsys):
    """Text written with ASCII escapes (json.dumps default) is still found."""
    path = tmp_path / "escaped.log"
    path.write_text('{"timestamp": "2026-11-25T10:00:00+00:00", "level": "INFO", '
                    '"message": "\\uce90\\uc2dc \\uc0c1\\ud0dc", "seq": 1}\n')
    assert _seqs([str(path), "--grep", "캐시"], capsys) == [1]


def test_filters_combine_with_and(logdir, capsys):
    """All filters must hold at once."""
    seqs = _seqs([str(logdir), "--user", "user123", "--event", "request_end",
                  "--since", "2026-11-26"], capsys)
    assert seqs == [13]


def test_limit_stops_early(logdir, capsys):
    """--limit N prints the first N matching lines and says it stopped."""
    status, out, err = run_cli(["logs", str(logdir), "--limit", "2", "--json"], capsys)
    assert status == 0 and [r["seq"] for r in json_lines(out)] == [1, 2]
    assert "stopped after --limit 2" in err


def test_table_output_has_the_columns(logdir, capsys):
    """The default output is a table: time, level, event, endpoint, message, trace/span."""
    status, out, _ = run_cli(["logs", str(logdir), "--event", "request_end"], capsys)
    header, first = out.splitlines()[:2]
    assert status == 0
    assert header.split() == ["TIME", "LEVEL", "EVENT", "ENDPOINT", "MESSAGE", "TRACE/SPAN"]
    assert first.split()[:6] == ["2026-11-25", "10:02:00+00:00", "INFO", "request_end",
                                 "POST", "/api/v1/code/generate"]
    assert "\x1b[" not in out  # not a terminal: no colour


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color(logdir, monkeypatch):
    """ANSI colour appears on a terminal, and not when NO_COLOR is set."""
    from hapa_telemetry.cli import main

    monkeypatch.delenv("NO_COLOR", raising=False)
    terminal = _Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    assert main(["logs", str(logdir), "--level", "ERROR", "-q"]) == 0
    assert "\x1b[31mERROR" in terminal.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = _Terminal()
    monkeypatch.setattr("sys.stdout", plain)
    assert main(["logs", str(logdir), "--level", "ERROR", "-q"]) == 0
    assert "ERROR" in plain.getvalue() and "\x1b[" not in plain.getvalue()


def test_fast_path_and_full_parse_agree_on_a_mixed_file(tmp_path, capsys):
    """The byte-level fast path never drops a line the full parse would keep."""
    records = []
    for i in range(300):
        records.append(request_end(at(i), f"/e{i % 3}", i / 100, user_id=f"u{i % 7}",
                                   status=500 if i % 11 == 0 else 200, seq=i))
    write(tmp_path / "hapa_20261125.log", records)
    for args in (["--user", "u3"], ["--endpoint", "/e1", "--level", "INFO"], ["--grep", "E2"]):
        fast = _seqs([str(tmp_path), *args], capsys)
        full = _seqs([str(tmp_path), *args, "--no-fast-path"], capsys)
        assert fast == full and fast


def test_quiet_drops_the_summary_but_not_warnings(logdir, capsys):
    """-q drops the 'read N lines' summary but keeps bad-input warnings."""
    status, _, err = run_cli(["logs", str(logdir), "-q"], capsys)
    assert status == 0 and "read " not in err and "warning" in err
