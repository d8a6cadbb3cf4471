"""hapa-telemetry logs: which files are read, in which order; stdin; unreadable input."""

from __future__ import annotations

import gzip
import io
import json
import socket
import sys
from pathlib import Path

import pytest
from _logdata import TRACE_A, at, error, json_lines, request_end, rotated_dir, run_cli, write

from hapa_telemetry.analysis.sources import discover


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    return rotated_dir(tmp_path / "logs")


def test_directory_is_read_in_time_order_across_rotated_and_gzipped_files(logdir, capsys):
    """Lines of a directory come out oldest first: by day, backups .2.gz, .1, then live."""
    status, out, _ = run_cli(["logs", str(logdir), "--json"], capsys)
    assert status == 0
    seqs = [record["seq"] for record in json_lines(out)]
    assert seqs == sorted(seqs)
    assert seqs[0] == 1 and len(seqs) == 18  # 20 lines minus a non-JSON and a truncated one


def test_directory_order_ignores_other_files_and_error_files(logdir):
    """Only hapa_* daily files are read from a directory, oldest backup first."""
    names = [source.path.name for source in discover([str(logdir)]) if source.path]
    assert names == [
        "hapa_20261125.log.2.gz",
        "hapa_20261125.log.1",
        "hapa_20261125.log",
        "hapa_20261126.log.1.gz",
        "hapa_20261126.log",
    ]


def test_shell_glob_order_is_corrected(logdir, capsys):
    """Files named on the command line in glob (alphabetical) order are still read in time order."""
    files = sorted(str(path) for path in logdir.glob("hapa_*"))
    status, out, _ = run_cli(["logs", *files, "--json"], capsys)
    seqs = [record["seq"] for record in json_lines(out)]
    assert status == 0 and seqs == sorted(seqs) and len(seqs) == 18


def test_error_files_flag_reads_the_error_files_instead(logdir, capsys):
    """--error-files reads error_YYYYMMDD.log, including lines only found there."""
    status, out, _ = run_cli(["logs", str(logdir), "--error-files", "--json"], capsys)
    types = [record["error_type"] for record in json_lines(out)]
    assert status == 0
    assert types == ["ValueError", "TimeoutError", "KeyError"]


def test_log_directory_environment_variable_is_the_default(logdir, capsys, monkeypatch):
    """Without a PATH the directory named by LOG_DIRECTORY is read."""
    monkeypatch.setenv("LOG_DIRECTORY", str(logdir))
    status, out, _ = run_cli(["logs", "--user", "user123", "--json"], capsys)
    assert status == 0
    assert len(json_lines(out)) == 5


def test_default_directory_is_logs_in_the_working_directory(tmp_path, capsys, monkeypatch):
    """Without PATH nor LOG_DIRECTORY, ./logs is read."""
    rotated_dir(tmp_path / "logs")
    monkeypatch.delenv("LOG_DIRECTORY", raising=False)
    monkeypatch.chdir(tmp_path)
    status, out, _ = run_cli(["logs", "--event", "request_end", "--json"], capsys)
    assert status == 0 and len(json_lines(out)) == 6


def _stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_stdin_is_read_with_dash(capsys, monkeypatch):
    """'-' reads JSON lines from standard input."""
    data = b"\n".join(
        json.dumps(record).encode()
        for record in [request_end(at(0), "/a", 0.5), request_end(at(1), "/a", 1.5)]
    )
    _stdin(monkeypatch, data)
    status, out, _ = run_cli(["logs", "latency", "-", "--json"], capsys)
    result = json.loads(out)
    assert status == 0
    assert result["overall"]["count"] == 2 and result["overall"]["avg"] == pytest.approx(1.0)


def test_gzip_on_stdin_is_decompressed(capsys, monkeypatch):
    """A gzip stream on stdin (e.g. `cat x.log.1.gz |`) is recognised by its magic bytes."""
    raw = (json.dumps(error(at(0), "KeyError", "x")) + "\n").encode()
    _stdin(monkeypatch, gzip.compress(raw))
    status, out, _ = run_cli(["logs", "errors", "-", "--json"], capsys)
    assert status == 0
    assert json.loads(out)["types"][0]["error_type"] == "KeyError"


def test_gzip_is_recognised_whatever_the_name(tmp_path, capsys):
    """A compressed file without a .gz suffix is still read as gzip."""
    path = write(tmp_path / "copy.log", [request_end(at(0), "/a", 0.25)], gz=True)
    status, out, _ = run_cli(["logs", str(path), "--json"], capsys)
    assert status == 0 and json_lines(out)[0]["duration"] == 0.25


def test_missing_file_is_a_one_line_error_with_exit_1(tmp_path, capsys):
    """A path that does not exist ends with exit status 1 and one line naming it."""
    status, out, err = run_cli(["logs", str(tmp_path / "nope.log")], capsys)
    assert status == 1
    assert out == ""
    assert err.count("\n") == 1 and "nope.log" in err and "no such file" in err


def test_directory_without_log_files_is_an_error(tmp_path, capsys):
    """An empty directory is reported (likely a wrong LOG_DIRECTORY), not silently empty."""
    status, _, err = run_cli(["logs", str(tmp_path)], capsys)
    assert status == 1 and "no hapa_YYYYMMDD.log files" in err


def test_unreadable_file_is_a_one_line_error(tmp_path, capsys):
    """A path that exists but cannot be opened (a socket) gives exit 1 and one line."""
    path = tmp_path / "hapa_20261126.log"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        status, out, err = run_cli(["logs", str(path)], capsys)
    finally:
        server.close()
    assert status == 1 and out == ""
    assert err.startswith("hapa-telemetry: error: cannot read") and err.count("\n") == 1


def test_truncated_gzip_backup_is_counted_and_reading_goes_on(tmp_path, capsys):
    """A gzip backup cut short is reported at the end; the other files are still read."""
    whole = gzip.compress(b"".join(
        (json.dumps(request_end(at(i), "/a", 0.1)) + "\n").encode()
        for i in range(2000)
    ))
    (tmp_path / "hapa_20261125.log.1.gz").write_bytes(whole[: len(whole) // 2])
    write(tmp_path / "hapa_20261125.log", [request_end(at(5000), "/a", 9.0, trace_id=TRACE_A)])
    status, out, err = run_cli(["logs", "--trace", TRACE_A, str(tmp_path), "--json"], capsys)
    assert status == 0
    assert [record["duration"] for record in json_lines(out)] == [9.0]
    assert "damaged compressed file" in err


def test_unknown_subcommand_and_bad_option_are_usage_errors(capsys):
    """Bad usage exits with status 2 and a usage message."""
    assert run_cli(["nonsense"], capsys)[0] == 2
    status, _, err = run_cli(["logs", "--level", "LOUD"], capsys)
    assert status == 2 and "--level" in err
    status, _, err = run_cli(["logs", "--since", "yesterday-ish"], capsys)
    assert status == 2 and "--since" in err
    status, _, err = run_cli(["logs", "--trace", "4bf9"], capsys)  # would hold 1/65536 of all
    assert status == 2 and "at least 8 hex digits" in err


@pytest.mark.parametrize("chunk", [7, 64, 333, 4096])
def test_lines_cut_by_read_chunks_are_reassembled(logdir, capsys, monkeypatch, chunk):
    """Whatever the read size, every line is seen once, whole, with its right line number."""
    monkeypatch.setattr("hapa_telemetry.analysis.sources.CHUNK_SIZE", chunk)
    status, out, err = run_cli(["logs", str(logdir), "--json"], capsys)
    assert status == 0 and [r["seq"] for r in json_lines(out)] == list(range(1, 19))
    assert "read 20 lines from 5 files" in err
    assert "not JSON: " + str(logdir / "hapa_20261125.log.1") + ":2" in err
    status, out, _ = run_cli(["logs", "errors", str(logdir), "--json"], capsys)
    assert json.loads(out)["total"] == 3
    status, out, _ = run_cli(["logs", "--grep", "TIMED out", str(logdir), "--json"], capsys)
    assert [r["seq"] for r in json_lines(out)] == [12]
    status, out, _ = run_cli(["logs", str(logdir), "--user", "user123", "--json"], capsys)
    assert [r["seq"] for r in json_lines(out)] == [1, 2, 3, 11, 13]
