"""The agent pushes the app's metrics with Prometheus remote write.

An agent (the stack's hapa-otelcol-agent binary) runs here with collector/agent.yaml plus the
collector/agent-remote-write.yaml overlay on free ports, pushing to the gateway topology's
Prometheus (started with --web.enable-remote-write-receiver). The demo app exports to it;
the six families arrive in Prometheus with the names and labels of the app's own /metrics.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _stack
import _tier
import pytest
from _tier import tier  # noqa: F401  (the gateway-topology fixture)
from prometheus_client.parser import text_string_to_metric_families

from hapa_telemetry import names

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("tier")]

AGENT_BIN = _stack.STACK_DIR / "bin" / "hapa-otelcol-agent"
WANTED = [
    names.API_REQUESTS_TOTAL,
    f"{names.API_REQUEST_DURATION_SECONDS}_bucket",
    f"{names.AI_INFERENCE_DURATION_SECONDS}_bucket",
    names.ACTIVE_CONNECTIONS,
    names.API_ERRORS_TOTAL,
    names.CACHE_HIT_RATE,
]
SCRAPE_LABELS = {"__name__", "job", "instance"}


@pytest.fixture
def rw_agent(tmp_path: Path) -> Iterator[str]:
    """A second agent with the remote-write overlay; yields its OTLP/HTTP base URL."""
    grpc, http, health, telemetry, spool = (_tier._free_port() for _ in range(5))
    env = {
        "HAPA_AGENT_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc}",
        "HAPA_AGENT_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http}",
        "HAPA_AGENT_HEALTH_ENDPOINT": f"127.0.0.1:{health}",
        "HAPA_AGENT_TELEMETRY_PORT": str(telemetry),
        "HAPA_AGENT_SPOOL_ENDPOINT": f"127.0.0.1:{spool}",
        "HAPA_AGENT_STORAGE_DIR": str(tmp_path / "agent"),
        "HAPA_AGENT_GATEWAY_1": f"127.0.0.1:{_stack._port('HAPA_STACK_GATEWAY1_OTLP_PORT', 4319)}",
        "HAPA_AGENT_GATEWAY_2": f"127.0.0.1:{_stack._port('HAPA_STACK_GATEWAY2_OTLP_PORT', 4320)}",
        "HAPA_AGENT_REMOTE_WRITE_ENDPOINT": f"{_stack.PROMETHEUS}/api/v1/write",
        "PATH": "/usr/bin:/bin",
    }
    log = (tmp_path / "agent.log").open("wb")
    configs = [_stack.ROOT / "collector" / "agent.yaml"]
    configs.append(_stack.ROOT / "collector" / "agent-remote-write.yaml")
    proc = subprocess.Popen(
        [str(AGENT_BIN), *(arg for c in configs for arg in ("--config", str(c)))],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _stack.wait_until(
            lambda: proc.poll() is None and _stack.answers(f"http://127.0.0.1:{health}/"),
            60,
            "remote-write agent health",
        )
        yield f"http://127.0.0.1:{http}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def _labels(labels: dict[str, str]) -> frozenset[tuple[str, str]]:
    """Label pairs without the scrape/push identity; bucket bounds as numbers ("3" == "3.0")."""
    return frozenset(
        (k, str(float(v)) if k == "le" else v) for k, v in labels.items() if k not in SCRAPE_LABELS
    )


def test_remote_write_delivers_the_six_families_with_the_apps_names_and_labels(
    rw_agent: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's six families, pushed by the agent with Prometheus remote write, are in
    Prometheus under the same names with the same labels as on the app's /metrics, with
    job = the service name (nothing added, nothing renamed)."""
    monkeypatch.setattr(_stack, "OTLP_HTTP", rw_agent)
    with _tier.demo_app(tmp_path) as demo:
        for i in range(5):
            assert demo.request_once(f"/api/v1/items/{i}") == 200
            assert demo.request_once("/api/v1/fail") == 500
            body = {"prompt": f"sort a list {i}", "user_id": "u-rw"}
            assert demo.request_once("/api/v1/code/generate", body) == 200
        sel = f'{{job="{demo.service}"}}'
        found: dict[str, list[dict[str, Any]]] = {}

        def arrived() -> bool | None:
            for family in WANTED:
                if family not in found and (result := _stack.prom_query(family + sel)):
                    found[family] = result
            return len(found) == len(WANTED) or None

        _stack.wait_until(arrived, 90, f"six families remote-written (found {sorted(found)})", 2)
        local_text = demo.metrics_text()
    local: dict[str, set[frozenset[tuple[str, str]]]] = {}
    for family in text_string_to_metric_families(local_text):
        for sample in family.samples:
            local.setdefault(sample.name, set()).add(_labels(sample.labels))
    for family, series in found.items():
        pushed = {_labels(s["metric"]) for s in series}
        assert pushed <= local[family], (family, pushed - local[family])
    paths = {s["metric"][names.LABEL_ENDPOINT] for s in found[names.API_REQUESTS_TOTAL]}
    assert "/api/v1/items/{item_id}" in paths
    errors = {s["metric"][names.LABEL_ERROR_TYPE] for s in found[names.API_ERRORS_TOTAL]}
    assert "ValueError" in errors
