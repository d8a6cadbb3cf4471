"""hapa-telemetry logs errors|latency|inference: known answers, JSON and table output."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest
from _logdata import TRACE_B, at, error, inference, request_end, rotated_dir, run_cli, write

from hapa_telemetry.analysis.quantiles import GROWTH, Quantiles


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    return rotated_dir(tmp_path / "logs")


def _report(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    status, out, _ = run_cli(["logs", *args, "--json"], capsys)
    assert status == 0
    return json.loads(out)


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def test_errors_report_counts_by_type_with_first_last_and_example(logdir, capsys):
    """errors: ValueError 2 (first/last seen, first example), TimeoutError 1, over all files."""
    result = _report(["errors", str(logdir)], capsys)
    assert result["total"] == 3
    first, second = result["types"]
    assert first == {
        "error_type": "ValueError",
        "count": 2,
        "first_seen": "2026-11-25T10:03:00.000+00:00",
        "last_seen": "2026-11-26T10:03:00.000+00:00",
        "example": "bad prompt",
        "example_trace_id": TRACE_B,
    }
    assert (second["error_type"], second["count"]) == ("TimeoutError", 1)


def test_errors_report_counts_untyped_error_lines_apart(tmp_path, capsys):
    """ERROR lines without error_type are grouped under (none), not dropped."""
    write(tmp_path / "a.log", [
        error(at(0), "KeyError", "k"),
        {"timestamp": at(1).isoformat(), "level": "CRITICAL", "message": "disk full"},
        {"timestamp": at(2).isoformat(), "level": "INFO", "message": "fine"},
    ])
    result = _report(["errors", str(tmp_path / "a.log")], capsys)
    assert {(t["error_type"], t["count"]) for t in result["types"]} == {
        ("KeyError", 1), ("(none)", 1)}


def test_latency_report_overall_and_per_endpoint(logdir, capsys):
    """latency: count, avg, p50/p95/p99, max and 5xx of request_end durations."""
    result = _report(["latency", str(logdir)], capsys)
    durations = [0.1, 0.2, 1.0, 0.3, 0.4, 3.0]
    overall = result["overall"]
    assert overall["count"] == 6 and overall["server_errors"] == 1
    assert overall["avg"] == pytest.approx(sum(durations) / 6)
    assert overall["p50"] == pytest.approx(_pct(durations, 50))
    assert overall["p95"] == pytest.approx(_pct(durations, 95))
    assert overall["p99"] == pytest.approx(_pct(durations, 99))
    assert overall["max"] == 3.0
    by_endpoint = {row["endpoint"]: row for row in result["endpoints"]}
    assert by_endpoint["/api/v1/code/generate"]["count"] == 4
    assert by_endpoint["/api/v1/code/generate"]["avg"] == pytest.approx(0.25)
    assert by_endpoint["/api/v1/code/generate"]["server_errors"] == 1
    assert by_endpoint["/health"]["p50"] == pytest.approx(2.0)
    assert result["exact"] is True


def test_latency_report_respects_filters(logdir, capsys):
    """A report only sees the lines that pass the filters (here one user's)."""
    result = _report(["latency", str(logdir), "--user", "user123"], capsys)
    assert result["overall"]["count"] == 2
    assert result["overall"]["avg"] == pytest.approx(0.2)


def test_inference_report_cached_vs_not_and_hit_rate(logdir, capsys):
    """inference: overall, cached and uncached series, per model, cache hit rate."""
    result = _report(["inference", str(logdir)], capsys)
    assert result["overall"]["count"] == 4
    assert result["cached"]["count"] == 1 and result["cached"]["max"] == pytest.approx(0.01)
    assert result["uncached"]["count"] == 3 and result["uncached"]["avg"] == pytest.approx(2.0)
    assert result["cache_hit_rate"] == pytest.approx(0.25)
    assert result["reported_cache_hit_rate"] == pytest.approx(0.25)
    assert result["reported_cache_size"] == 10
    assert {row["model"]: row["count"] for row in result["models"]} == {
        "codegen-small": 2, "codegen-large": 2}


def test_report_flag_is_the_same_as_the_report_word(logdir, capsys):
    """--report latency gives the same answer as the positional word."""
    assert _report([str(logdir), "--report", "latency"], capsys)["overall"] == _report(
        ["latency", str(logdir)], capsys)["overall"]


def test_a_file_named_like_a_report_is_read_as_a_file(tmp_path, capsys, monkeypatch):
    """If ./errors exists it is a PATH, not the report name."""
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "errors", [request_end(at(0), "/a", 0.5)])
    status, out, _ = run_cli(["logs", "errors", "--json"], capsys)
    assert status == 0 and json.loads(out)["duration"] == 0.5


def test_json_report_includes_input_counts_and_problems(logdir, capsys):
    """--json reports carry what was read and the bad-input tally."""
    result = _report(["latency", str(logdir), "--no-fast-path"], capsys)
    assert result["input"] == {"files": 5, "lines": 20, "parsed": 18, "matched": 18}
    assert result["problems"]["skipped"] == {"not JSON": 1, "truncated JSON": 1}
    assert result["problems"]["kept"] == {"missing level": 1}


def test_human_tables_are_aligned(logdir, capsys):
    """The latency table's numeric columns line up (right-aligned)."""
    status, out, _ = run_cli(["logs", "latency", str(logdir)], capsys)
    rows = [row for row in out.splitlines() if row.strip()][:4]
    assert status == 0 and rows[0].split()[0] == "ENDPOINT"
    for column in ("COUNT", "AVG", "P95", "MAX"):
        end = rows[0].index(column) + len(column)  # right-aligned: cells end under the header
        for row in rows[1:]:
            assert row[end - 1].isdigit() and row[end : end + 1] in (" ", "")
    assert rows[1].split()[:2] == ["(all)", "6"]
    assert "0.8333" in rows[1]


def test_human_errors_and_inference_tables(logdir, capsys):
    """errors and inference print readable tables with the key figures."""
    _, out, _ = run_cli(["logs", "errors", str(logdir)], capsys)
    assert "ValueError" in out and "3 error lines, 2 types" in out
    _, out, _ = run_cli(["logs", "inference", str(logdir)], capsys)
    assert "cache hit rate: 25.0% of inferences" in out and "not cached" in out


def test_empty_reports_say_so(tmp_path, capsys):
    """A report over lines without the events says there is nothing, exit 0."""
    write(tmp_path / "a.log", [error(at(0), "KeyError", "k")])
    status, out, _ = run_cli(["logs", "latency", str(tmp_path / "a.log")], capsys)
    assert status == 0 and "no request_end lines" in out
    status, out, _ = run_cli(["logs", "inference", str(tmp_path / "a.log")], capsys)
    assert status == 0 and "no ai_inference lines" in out


def test_percentiles_stay_exact_below_the_limit_and_bounded_above():
    """Quantiles are exact up to the limit, then within 0.2% using a bounded histogram."""
    rng = random.Random(7)
    values = [rng.lognormvariate(-1.5, 1.0) for _ in range(50_000)]
    exact = Quantiles(exact_limit=100_000)
    bounded = Quantiles(exact_limit=1_000)
    for value in values:
        exact.add(value)
        bounded.add(value)
    assert exact.exact and not bounded.exact
    for q in (50, 95, 99):
        truth = _pct(values, q)
        assert exact.quantile(q / 100) == pytest.approx(truth)
        assert bounded.quantile(q / 100) == pytest.approx(truth, rel=GROWTH - 1)
    assert bounded.count == exact.count and bounded.maximum == max(values)
    assert len(bounded._buckets) < 5_000  # memory does not grow with the input


def test_large_input_switches_to_bounded_percentiles(tmp_path, capsys, monkeypatch):
    """Past the exact limit the report says its percentiles are approximate, still close."""
    monkeypatch.setattr("hapa_telemetry.analysis.quantiles.DEFAULT_EXACT_LIMIT", 100)
    durations = [(i % 97) / 10 + 0.01 for i in range(1000)]
    write(tmp_path / "a.log", [inference(at(i / 60), d, cached=False) for i, d in
                               enumerate(durations)])
    result = _report(["inference", str(tmp_path / "a.log")], capsys)
    assert result["exact"] is False
    assert result["overall"]["p95"] == pytest.approx(_pct(durations, 95), rel=0.002)
    _, out, _ = run_cli(["logs", "inference", str(tmp_path / "a.log")], capsys)
    assert "percentiles within 0.2%" in out
