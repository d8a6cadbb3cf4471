"""The GenAI rule file: the TTFT alert's contract, and promtool tests that can fail."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from . import promstack as ps

GENAI_RULES = ps.RULES_DIR / "genai.yml"
GENAI_TESTS = ps.RULE_TESTS_DIR / "genai_test.yml"


def test_ttft_alert_contract() -> None:
    """GenAITimeToFirstTokenHigh: p95 over rate() of summed TTFT buckets per model, above
    2.5 s for 5m, warning, per service (`job` kept, none selected: either scrape path)."""
    rule = next(r for r in ps.rules() if r["alert"] == "GenAITimeToFirstTokenHigh")
    expr = " ".join(rule["expr"].split())
    assert expr.startswith("histogram_quantile(0.95, sum by (job, le, gen_ai_request_model) (")
    series = "gen_ai_server_time_to_first_token_seconds_bucket"
    assert f"rate({series}[5m])" in expr
    assert expr.endswith("> 2.5") and rule["for"] == "5m"
    assert rule["labels"] == {"severity": "warning", "component": "ai"}


@pytest.mark.e2e
@pytest.mark.parametrize("change", [("> 2.5", "> 1"), ("for: 5m", "for: 1m")])
def test_genai_unit_tests_catch_a_changed_rule(tmp_path: Path, change: tuple[str, str]) -> None:
    """A lower threshold or a shorter `for:` makes the promtool tests fail (the silent and
    boundary cases are able to fail)."""
    rules_dir, tests_dir = tmp_path / "rules", tmp_path / "tests"
    rules_dir.mkdir()
    tests_dir.mkdir()
    text = GENAI_RULES.read_text()
    assert change[0] in text
    (rules_dir / "genai.yml").write_text(text.replace(change[0], change[1]))
    yaml.safe_load((rules_dir / "genai.yml").read_text())
    (tests_dir / "genai_test.yml").write_text(GENAI_TESTS.read_text())
    result = ps.run([ps.require_binary("promtool"), "test", "rules",
                     str(tests_dir / "genai_test.yml")])
    assert result.returncode != 0
    assert "GenAITimeToFirstTokenHigh" in result.stdout + result.stderr
