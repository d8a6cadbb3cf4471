"""hapa-telemetry logs reads what the package's own writer writes (the file contract)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from _logdata import json_lines, run_cli

from hapa_telemetry import APIMonitor, runtime
from hapa_telemetry.testing import reset as reset_telemetry


def _write_with_the_package(log_dir: Path) -> list[str]:
    """Emit 30 requests through APIMonitor into small rotating files; return trace ids."""
    reset_telemetry()
    telemetry = runtime.configure(
        set_global=False,
        log_stream=io.StringIO(),
        log_directory=str(log_dir),
        log_max_bytes=4096,
        log_backup_count=50,
    )
    monitor = APIMonitor()
    traces = []
    try:
        for i in range(30):
            with telemetry.tracer.start_as_current_span("request") as span:
                traces.append(format(span.get_span_context().trace_id, "032x"))
                monitor.log_request_start("POST", "/api/v1/code/generate", user_id=f"u{i % 3}")
                monitor.log_ai_inference(1.0 + i, 100, 200, cached=i % 5 == 0)
                if i % 10 == 0:
                    try:
                        raise TimeoutError(f"model slow {i}")
                    except TimeoutError as exc:
                        monitor.log_error(exc, {"i": i})
                monitor.log_request_end("POST", "/api/v1/code/generate",
                                        500 if i % 10 == 0 else 200, 0.01 * (i + 1),
                                        user_id=f"u{i % 3}")
        monitor.log_cache_metrics(0.2, 7)
        telemetry.pipeline.flush(5.0)
    finally:
        reset_telemetry()
    return traces


def test_reports_over_the_package_written_rotated_files(tmp_path, capsys):
    """Rotated files written by the package read back in order with exact report answers."""
    log_dir = tmp_path / "logs"
    traces = _write_with_the_package(log_dir)
    assert len(list(log_dir.glob("hapa_*.log.*"))) >= 2  # rotation happened
    status, out, err = run_cli(["logs", str(log_dir), "--json"], capsys)
    assert status == 0 and "warning" not in err
    lines = json_lines(out)
    assert [line["timestamp"] for line in lines] == sorted(line["timestamp"] for line in lines)

    status, out, _ = run_cli(["logs", "latency", str(log_dir), "--json"], capsys)
    latency = json.loads(out)
    assert latency["overall"]["count"] == 30 and latency["overall"]["server_errors"] == 3
    assert latency["overall"]["avg"] == pytest.approx(sum(0.01 * (i + 1) for i in range(30)) / 30)
    status, out, _ = run_cli(["logs", "errors", str(log_dir), "--json"], capsys)
    errors = json.loads(out)
    assert [(t["error_type"], t["count"]) for t in errors["types"]] == [("TimeoutError", 3)]
    assert errors["types"][0]["example"] == "model slow 0"
    status, out, _ = run_cli(["logs", "inference", str(log_dir), "--json"], capsys)
    inference = json.loads(out)
    assert inference["overall"]["count"] == 30 and inference["cached"]["count"] == 6
    assert inference["reported_cache_hit_rate"] == 0.2

    status, out, _ = run_cli(["logs", "--trace", traces[10], str(log_dir), "--json"], capsys)
    events = [line["event_type"] for line in json_lines(out)]
    assert events == ["request_start", "ai_inference", "error", "request_end"]
    status, out, _ = run_cli(["logs", "--user", "u1", "--event", "request_end", str(log_dir),
                              "--json"], capsys)
    assert len(json_lines(out)) == 10
