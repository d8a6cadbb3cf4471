"""Optional parts of the package say which extra they need when it is missing."""

from __future__ import annotations

import sys

import pytest

from hapa_telemetry import cli


def test_demo_without_uvicorn_names_the_demo_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hapa-telemetry demo` without uvicorn exits 1 with the pip command that fixes it."""
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # `import uvicorn` -> ImportError
    assert cli.main(["demo", "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "pip install 'hapa-telemetry[demo]'" in err
    assert "Traceback" not in err


def test_es_without_httpx_names_the_es_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`hapa-telemetry logs --es URL` without httpx exits 1 with the pip command."""
    monkeypatch.setitem(sys.modules, "httpx", None)
    monkeypatch.delitem(sys.modules, "hapa_telemetry.analysis.es", raising=False)
    monkeypatch.delitem(sys.modules, "hapa_telemetry.analysis.es_reports", raising=False)
    assert cli.main(["logs", "--es", "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert "pip install 'hapa-telemetry[es]'" in err
    assert "Traceback" not in err


def test_file_logs_need_no_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reading log files works without httpx and uvicorn (the light default install)."""
    monkeypatch.setitem(sys.modules, "httpx", None)
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    (tmp_path / "hapa_20260101.log").write_text(
        '{"timestamp": "2026-01-01T00:00:00Z", "level": "INFO", "logger": "x", '
        '"message": "hello"}\n'
    )
    assert cli.main(["logs", str(tmp_path), "--json", "--quiet"]) == 0
    assert '"hello"' in capsys.readouterr().out
