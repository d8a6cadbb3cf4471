"""docker-compose.yml validated by Debian's docker-compose (installed by
scripts/install-prometheus; no Docker engine needed for `config`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_docker_compose_config_accepts_the_file() -> None:
    """`docker-compose config` accepts docker-compose.yml and resolves its bind mounts
    to the repository's own config files."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose not found: run scripts/install-prometheus"
    result = subprocess.run(
        [binary, "-f", str(REPO / "docker-compose.yml"), "config"],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    sources = {
        str(v["source"] if isinstance(v, dict) else v.split(":")[0])
        for s in resolved["services"].values()
        for v in s.get("volumes", [])
    }
    assert str(REPO / "collector" / "prometheus.yml") in sources
    assert str(REPO / "otel-collector.yaml") in sources
