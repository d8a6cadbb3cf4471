"""hapa-telemetry command line: help, the demo subcommand, progress on a terminal."""

from __future__ import annotations

import io
import sys
from pathlib import Path

from _logdata import rotated_dir, run_cli


def test_no_command_prints_help_and_exits_2(capsys):
    """`hapa-telemetry` alone lists the subcommands on stderr, status 2."""
    status, out, err = run_cli([], capsys)
    assert status == 2 and out == ""
    assert "logs" in err and "demo" in err


def test_logs_help_documents_reports_and_exits_0(capsys):
    """`hapa-telemetry logs --help` shows the reports and examples, status 0."""
    status, out, _ = run_cli(["logs", "--help"], capsys)
    assert status == 0
    for word in ("errors", "latency", "inference", "--user", "--trace", "--es", "LOG_DIRECTORY"):
        assert word in out


def test_demo_runs_the_demo_app_with_uvicorn(monkeypatch):
    """`hapa-telemetry demo --port 8123` hands the demo app's import string to uvicorn."""
    import uvicorn

    from hapa_telemetry.cli import main

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    assert main(["demo", "--port", "8123"]) == 0
    assert calls == [("hapa_telemetry.demo.app:app", {"host": "127.0.0.1", "port": 8123})]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_shown_on_a_terminal_for_large_inputs(tmp_path: Path, monkeypatch):
    """On a terminal stderr, a large input shows `reading N%` and the line is erased after."""
    from hapa_telemetry.analysis import sources
    from hapa_telemetry.cli import main

    logdir = rotated_dir(tmp_path / "logs")
    monkeypatch.setattr(sources.Progress, "MIN_TOTAL", 0)
    monkeypatch.setattr(sources, "CHUNK_SIZE", 64)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert main(["logs", "latency", str(logdir), "-q"]) == 0
    shown = terminal.getvalue()
    assert "\rreading" in shown and "100%" in shown
    assert "\r" + " " * 62 + "\r" in shown  # erased before the answer is printed


def test_no_progress_when_stderr_is_not_a_terminal(tmp_path: Path, capsys, monkeypatch):
    """Piped stderr gets no progress line, only the summary."""
    from hapa_telemetry.analysis import sources

    monkeypatch.setattr(sources.Progress, "MIN_TOTAL", 0)
    status, _, err = run_cli(["logs", "latency", str(rotated_dir(tmp_path / "l")), "-q"], capsys)
    assert status == 0 and "reading" not in err
