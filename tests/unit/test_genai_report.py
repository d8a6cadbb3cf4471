"""`hapa-telemetry logs inference` on streamed answers: TTFT percentiles and tokens/s."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from _logdata import at, inference, run_cli, write


@pytest.fixture
def streamed(tmp_path: Path) -> Path:
    """Ten streamed answers (TTFT 0.1..1.0 s, 100 tokens in 1..10 s), one stopped early,
    two cache hits and one old non-streamed line without token fields."""
    lines = [
        inference(at(i), float(i + 1), cached=False, model="m", streamed=True, chunks=100,
                  ttft=round(0.1 * (i + 1), 3), output_tokens=100)
        for i in range(10)
    ]
    lines.append(inference(at(11), 0.5, cached=False, model="m", streamed=True, chunks=3,
                           ttft=0.2, output_tokens=3, error_type="cancelled"))
    lines += [inference(at(12 + i), 0.001, cached=True, model="m") for i in range(2)]
    lines.append(inference(at(20), 0.3, cached=False, model="m"))
    return write(tmp_path / "hapa_20261126.log", lines)


def test_json_has_ttft_percentiles_and_tokens_per_second(
    streamed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """TTFT over every streamed uncached answer (the early-stopped one too); tokens/s per
    completed call and overall; cancelled streams counted apart."""
    status, out, _ = run_cli(["logs", "inference", str(streamed), "--json"], capsys)
    assert status == 0
    result = json.loads(out)
    ttfts = [round(0.1 * (i + 1), 3) for i in range(10)] + [0.2]
    ttft = result["time_to_first_token"]
    assert ttft["count"] == 11
    assert ttft["p50"] == pytest.approx(statistics.median(ttfts))
    assert ttft["max"] == pytest.approx(1.0)
    speeds = [100 / (i + 1) for i in range(10)]
    tps = result["tokens_per_second"]
    assert tps["count"] == 10 and tps["max"] == pytest.approx(100.0)
    assert tps["p50"] == pytest.approx(statistics.median(speeds))
    assert result["output_tokens"] == 1000
    assert result["output_tokens_per_second"] == pytest.approx(1000 / sum(range(1, 11)))
    assert result["cancelled_streams"] == 1
    assert result["cache_hit_rate"] == pytest.approx(2 / 14)


def test_human_report_shows_generation_table(
    streamed: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The printed report has a GENERATION table with TTFT and tokens/s rows."""
    _, out, _ = run_cli(["logs", "inference", str(streamed)], capsys)
    assert "GENERATION" in out
    ttft_row = next(line for line in out.splitlines() if "time to first token" in line)
    assert "11" in ttft_row
    assert "output tokens/s per call" in out
    assert "tokens/s over uncached generation time" in out
    assert "stopped early by the consumer: 1" in out


def test_no_streamed_lines_no_generation_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Logs from before streaming support print the report as before."""
    path = write(tmp_path / "hapa_20261126.log", [inference(at(1), 0.2, cached=False)])
    _, out, _ = run_cli(["logs", "inference", str(path)], capsys)
    assert "GENERATION" not in out and "cache hit rate" in out
