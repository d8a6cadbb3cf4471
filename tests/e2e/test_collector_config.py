"""otel-collector.yaml against the collector binary we build (hapa-otelcol)."""

from __future__ import annotations

import os
import subprocess

import _stack
import pytest

pytestmark = pytest.mark.e2e


def test_shipped_config_validates_with_built_collector(stack_up: None) -> None:
    """`hapa-otelcol validate` accepts the deployed otel-collector.yaml as shipped."""
    proc = subprocess.run(
        [str(_stack.COLLECTOR_BIN), "validate", "--config", str(_stack.COLLECTOR_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_validate_rejects_a_broken_config(stack_up: None, tmp_path: os.PathLike[str]) -> None:
    """A pipeline naming an exporter that is not defined fails validation (the check is real)."""
    broken = _stack.COLLECTOR_CONFIG.read_text().replace(
        "exporters: [prometheus, debug]", "exporters: [prometheus, nonexistent]"
    )
    assert "nonexistent" in broken
    path = os.path.join(tmp_path, "broken.yaml")
    with open(path, "w") as fh:
        fh.write(broken)
    proc = subprocess.run(
        [str(_stack.COLLECTOR_BIN), "validate", "--config", path],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert "nonexistent" in proc.stderr


def test_collector_has_the_components_the_config_uses(stack_up: None) -> None:
    """The distribution contains every component named in otel-collector.yaml."""
    proc = subprocess.run(
        [str(_stack.COLLECTOR_BIN), "components"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for name in (
        "otlp",
        "filelog",
        "memory_limiter",
        "batch",
        "transform",
        "elasticsearch",
        "prometheus",
        "debug",
        "health_check",
    ):
        assert f"name: {name}\n" in proc.stdout, name
