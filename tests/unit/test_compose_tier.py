"""The agent/gateway tier in docker-compose.yml, checked statically (no Docker engine here):
the agent and both gateways run the very config files of `scripts/stack up --topology
gateway`, at the releases the manifests build, wired to each other by their environment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")
TIER = {"agent": "collector/agent.yaml", "gateway-1": "collector/gateway.yaml",
        "gateway-2": "collector/gateway.yaml"}
MANIFEST = {"agent": "collector/agent/builder-config.yaml",
            "gateway-1": "collector/gateway/builder-config.yaml",
            "gateway-2": "collector/gateway/builder-config.yaml"}


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    """The compose file's services."""
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]  # type: ignore[no-any-return]


def _config_path(service: dict[str, Any]) -> str:
    arg = next(a for a in service["command"] if a.startswith("--config="))
    target = arg.split("=", 1)[1]
    for volume in service["volumes"]:
        source, mounted = volume.split(":")[:2]
        if mounted == target:
            return str(source.removeprefix("./"))
    raise AssertionError(f"{target} is not mounted")


def _resolve(value: str, env: dict[str, str]) -> str:
    return _ENV_REF.sub(lambda m: env.get(m.group(1), (m.group(2) or ":-")[2:]), value)


def test_tier_services_run_the_stack_config_files(services: dict[str, Any]) -> None:
    """agent, gateway-1 and gateway-2 mount collector/agent.yaml / collector/gateway.yaml
    where their --config reads it, the files scripts/stack starts; they are opt-in (profile)."""
    stack = (REPO / "scripts" / "stack").read_text()
    for name, path in TIER.items():
        assert _config_path(services[name]) == path, name
        assert services[name]["profiles"] == ["gateway"], name
        assert path in stack


def test_images_are_the_manifest_releases(services: dict[str, Any]) -> None:
    """Each tier image is the official contrib image of its manifest's one release."""
    for name, manifest in MANIFEST.items():
        text = (REPO / manifest).read_text()
        releases = set(re.findall(r"opentelemetry-collector-contrib/\S+ v(\d+\.\d+\.\d+)", text))
        repo, tag = services[name]["image"].rsplit(":", 1)
        assert repo == "otel/opentelemetry-collector-contrib"
        assert releases == {tag}, name


def test_every_variable_set_is_read_and_every_endpoint_has_a_default(
    services: dict[str, Any],
) -> None:
    """Compose sets only variables the config reads, and every ${env:...} in the agent and
    gateway configs has a local default."""
    for name, path in TIER.items():
        text = (REPO / path).read_text()
        read = {m.group(1) for m in _ENV_REF.finditer(text)}
        assert set(services[name]["environment"]) <= read, name
        assert all(m.group(2) for m in _ENV_REF.finditer(text)), path


def test_agent_reaches_both_gateways_otlp_receivers(services: dict[str, Any]) -> None:
    """The agent's two gateway endpoints are the gateway services on the port their OTLP
    gRPC receiver listens on (all interfaces, so other containers reach it)."""
    agent_env = services["agent"]["environment"]
    gateway_cfg = yaml.safe_load((REPO / "collector" / "gateway.yaml").read_text())
    grpc = gateway_cfg["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    for n in (1, 2):
        host, port = agent_env[f"HAPA_AGENT_GATEWAY_{n}"].rsplit(":", 1)
        assert host == f"gateway-{n}"
        env = {k: str(v) for k, v in services[host]["environment"].items()}
        listen_host, listen_port = _resolve(grpc, env).rsplit(":", 1)
        assert (listen_host, listen_port) == ("0.0.0.0", port)
    assert all(p.startswith("127.0.0.1:") for p in services["agent"]["ports"])


def test_agent_queue_lives_on_a_named_volume(services: dict[str, Any]) -> None:
    """The agent's file_storage directory is a named volume: its disk queue survives the
    container being recreated."""
    agent = services["agent"]
    storage = agent["environment"]["HAPA_AGENT_STORAGE_DIR"]
    named = {v.split(":")[1]: v.split(":")[0] for v in agent["volumes"] if not v.startswith(".")}
    assert storage in named
    cfg = yaml.safe_load((REPO / "collector" / "agent.yaml").read_text())
    assert "HAPA_AGENT_STORAGE_DIR" in cfg["extensions"]["file_storage"]["directory"]
