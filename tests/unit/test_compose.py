"""docker-compose.yml and Dockerfile, checked statically (no Docker engine here): every
mounted file exists and is the very file the local stack and the tests use, and the
network/port/env wiring between app, collector, Prometheus, Alertmanager, Elasticsearch
and Grafana holds."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
POD = "telemetry"  # the service holding the shared network namespace
POD_MEMBERS = ("app", "otel-collector", "prometheus", "alertmanager")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed compose file."""
    return _load(COMPOSE)


def _services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]  # type: ignore[no-any-return]


def _binds(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> repo-relative source of every bind mount ("./..." sources)."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            out[target] = source[2:]
    return out


def _named_volumes(service: dict[str, Any]) -> dict[str, str]:
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if not source.startswith(("./", "/")):
            out[target] = source
    return out


_ENV_REF = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _resolve(value: str, env: dict[str, str]) -> str:
    """Expand ${env:NAME:-default} the way the collector does, with compose's env."""
    return _ENV_REF.sub(lambda m: env.get(m.group(1), m.group(2) or ""), value)


def _collector_config() -> dict[str, Any]:
    return _load(REPO / "otel-collector.yaml")  # type: ignore[no-any-return]


def test_compose_has_every_part(compose: dict[str, Any]) -> None:
    """The compose file defines the app, collector, Prometheus, Alertmanager,
    Elasticsearch, Kibana and Grafana (plus the namespace holder)."""
    assert set(_services(compose)) == {
        POD, "app", "otel-collector", "prometheus", "alertmanager", "elasticsearch",
        "kibana", "grafana", "agent", "gateway-1", "gateway-2",
    }


def test_every_bind_mount_exists_in_the_repo(compose: dict[str, Any]) -> None:
    """Every ./ bind mount points at a file or folder committed in the repository."""
    missing = [
        f"{name}: {source}"
        for name, service in _services(compose).items()
        for source in _binds(service).values()
        if not (REPO / source).exists()
    ]
    assert missing == []


def test_mounted_configs_are_the_local_stack_files(compose: dict[str, Any]) -> None:
    """Compose mounts exactly the configs that scripts/stack runs locally:
    otel-collector.yaml, collector/prometheus.yml (with its rules), and
    collector/alertmanager.yml, each where the service's command reads it."""
    services = _services(compose)
    collector = services["otel-collector"]
    config_arg = next(a for a in collector["command"] if a.startswith("--config="))
    assert _binds(collector)[config_arg.split("=", 1)[1]] == "otel-collector.yaml"
    prom_arg = next(a for a in services["prometheus"]["command"] if a.startswith("--config.file="))
    assert _binds(services["prometheus"])[prom_arg.split("=", 1)[1]] == "collector/prometheus.yml"
    am_arg = next(a for a in services["alertmanager"]["command"] if "--config.file=" in a)
    assert _binds(services["alertmanager"])[am_arg.split("=", 1)[1]] == "collector/alertmanager.yml"
    stack = (REPO / "scripts" / "stack").read_text()
    for path in ("otel-collector.yaml", "collector/prometheus.yml", "collector/alertmanager.yml"):
        assert path in stack, f"scripts/stack does not use {path}"


def test_prometheus_rule_files_resolve_to_the_mounted_rules(compose: dict[str, Any]) -> None:
    """Inside the container, prometheus.yml's relative rule_files glob lands in the
    folder where compose mounts collector/alerting/rules."""
    prometheus = _services(compose)["prometheus"]
    binds = _binds(prometheus)
    config_path = next(t for t, s in binds.items() if s == "collector/prometheus.yml")
    rules_mount = next(t for t, s in binds.items() if s == "collector/alerting/rules")
    rule_files = _load(REPO / "collector" / "prometheus.yml")["rule_files"]
    for pattern in rule_files:
        resolved = PurePosixPath(config_path).parent / pattern
        assert str(resolved.parent) == rules_mount
        assert list((REPO / "collector").glob(pattern))


def test_telemetry_path_shares_one_namespace_with_its_ports(compose: dict[str, Any]) -> None:
    """App, collector, Prometheus and Alertmanager share the pod's network namespace,
    which publishes on the host's 127.0.0.1 every port that prometheus.yml scrapes or
    alerts to, plus Prometheus, OTLP and collector health."""
    services = _services(compose)
    for name in POD_MEMBERS:
        assert services[name]["network_mode"] == f"service:{POD}", name
        assert "ports" not in services[name], name
    published = {}
    for mapping in services[POD]["ports"]:
        host_ip, host_port, container_port = mapping.split(":")
        assert host_ip == "127.0.0.1"
        published[int(container_port)] = int(host_port)
    prom = _load(REPO / "collector" / "prometheus.yml")
    addresses = [t for job in prom["scrape_configs"] for sc in job["static_configs"]
                 for t in sc["targets"]]
    addresses += prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    for address in addresses:
        host, port = address.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) in published, address
    assert {8000, 4317, 4318, 8888, 8889, 13133, 9090, 9093} <= set(published)
    for other in ("elasticsearch", "kibana", "grafana"):
        assert all(p.startswith("127.0.0.1:") for p in services[other]["ports"])


def test_app_sends_otlp_to_the_collector_receiver(compose: dict[str, Any]) -> None:
    """The app's OTLP endpoint is the port on which otel-collector.yaml's OTLP gRPC
    receiver listens, with the collector's compose environment, in the shared
    namespace; the receiver listens on all interfaces so the published port reaches it."""
    services = _services(compose)
    app_env = services["app"]["environment"]
    collector_env = {k: str(v) for k, v in services["otel-collector"]["environment"].items()}
    endpoint = app_env["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert app_env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc") == "grpc"
    match = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", endpoint)
    assert match, endpoint
    grpc = _collector_config()["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    host, port = _resolve(grpc, collector_env).rsplit(":", 1)
    assert port == match.group(1)
    assert host in {"0.0.0.0", ""}


def test_collector_environment_is_all_used(compose: dict[str, Any]) -> None:
    """Every variable compose sets for the collector is read by otel-collector.yaml (no
    dead wiring), and its Elasticsearch endpoint is the elasticsearch service."""
    collector_env = {k: str(v) for k, v in
                     _services(compose)["otel-collector"]["environment"].items()}
    text = (REPO / "otel-collector.yaml").read_text()
    referenced = {m.group(1) for m in _ENV_REF.finditer(text)}
    assert set(collector_env) - referenced == set()
    resolved = _resolve(text, collector_env)
    assert "http://elasticsearch:9200" in resolved


def test_grafana_is_provisioned_from_the_repo(compose: dict[str, Any]) -> None:
    """Grafana mounts collector/grafana/provisioning, the dashboard provider's folder is
    where the dashboards are mounted, and its data source hosts exist in compose."""
    services = _services(compose)
    binds = _binds(services["grafana"])
    assert binds["/etc/grafana/provisioning"] == "collector/grafana/provisioning"
    providers = _load(REPO / "collector/grafana/provisioning/dashboards/hapa.yml")["providers"]
    path = providers[0]["options"]["path"]
    assert binds[path] == "collector/grafana/dashboards"
    hosts = set(services) | set(services[POD]["networks"]["default"]["aliases"])
    datasources = _load(REPO / "collector/grafana/provisioning/datasources/hapa.yml")
    for ds in datasources["datasources"]:
        host = re.fullmatch(r"http://([^:/]+):(\d+)", ds["url"])
        assert host and host.group(1) in hosts, ds["url"]
    assert {"prometheus", "otel-collector", "app", "alertmanager"} <= hosts


def test_app_logs_go_to_a_named_volume_at_log_directory(compose: dict[str, Any]) -> None:
    """The app writes its JSON logs to LOG_DIRECTORY, a named volume; the collector's
    filelog receiver does NOT tail it while the app also sends OTLP (each line would land
    in Elasticsearch twice); the Dockerfile agrees."""
    services = _services(compose)
    log_dir = services["app"]["environment"]["LOG_DIRECTORY"]
    volume = _named_volumes(services["app"])[log_dir]
    assert volume in compose["volumes"]
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in services["app"]["environment"]
    collector = services["otel-collector"]
    assert volume not in _named_volumes(collector).values()
    watched = collector["environment"]["HAPA_COLLECTOR_LOG_DIR"]
    assert watched != log_dir
    dockerfile = DOCKERFILE.read_text()
    assert f"LOG_DIRECTORY={log_dir}" in dockerfile
    assert f'VOLUME ["{log_dir}"]' in dockerfile


def test_images_are_pinned_and_collector_matches_the_built_release(
    compose: dict[str, Any],
) -> None:
    """Every image has an explicit version tag, and the collector image is the official
    contrib image of the same release as the collector the local stack builds."""
    for name, service in _services(compose).items():
        if "image" in service and "build" not in service:
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), name
    image = _services(compose)["otel-collector"]["image"]
    repo, tag = image.rsplit(":", 1)
    assert repo == "otel/opentelemetry-collector-contrib"
    manifest = (REPO / "collector" / "builder-config.yaml").read_text()
    contrib = set(re.findall(r"opentelemetry-collector-contrib/\S+ v(\d+\.\d+\.\d+)", manifest))
    assert contrib == {tag}


def test_dockerfile_installs_the_repo_and_runs_the_demo() -> None:
    """The image installs the package from the repository's own source, pinned by the
    same constraints.txt CI tests, with the [demo] extra (uvicorn), and runs the demo app
    with uvicorn on 0.0.0.0:8000; the demo module exists."""
    dockerfile = DOCKERFILE.read_text()
    assert "COPY src ./src" in dockerfile
    assert re.search(r"^COPY .*\bconstraints\.txt\b", dockerfile, re.M)
    assert 'pip install -c constraints.txt ".[demo]"' in dockerfile
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.M)
    assert cmd
    assert yaml.safe_load(cmd.group(1)) == [
        "uvicorn", "hapa_telemetry.demo.app:app", "--host", "0.0.0.0", "--port", "8000",
    ]
    assert (REPO / "src" / "hapa_telemetry" / "demo" / "app.py").is_file()
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".venv" in ignored and ".git" in ignored and "src" not in ignored
