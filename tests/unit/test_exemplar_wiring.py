"""Exemplar wiring, checked in the very files the stack and compose use: the collector
serves OpenMetrics exemplars, the local Prometheus stores them, the dashboard's latency
panels show them and Grafana links their trace id to Elasticsearch and Kibana."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from hapa_telemetry import names
from hapa_telemetry.exemplars import TRACE_ID_LABEL

REPO = Path(__file__).resolve().parents[2]
GRAFANA = REPO / "collector" / "grafana"


def _datasources() -> dict[str, dict[str, Any]]:
    out = {}
    for path in (GRAFANA / "provisioning" / "datasources").glob("*.yml"):
        for ds in yaml.safe_load(path.read_text())["datasources"]:
            out[ds["uid"]] = ds
    return out


def _targets() -> list[tuple[str, dict[str, Any]]]:
    def walk(panels: list[dict[str, Any]]) -> Any:
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels", []))

    out = []
    for path in (GRAFANA / "dashboards").glob("*.json"):
        for panel in walk(json.loads(path.read_text())["panels"]):
            out += [(panel["title"], t) for t in panel.get("targets", [])]
    return out


def test_latency_panels_show_exemplars() -> None:
    """Every dashboard query over the request or inference duration histogram asks
    Grafana for exemplars, and no other query does (counters have none)."""
    histograms = (names.API_REQUEST_DURATION_SECONDS, names.AI_INFERENCE_DURATION_SECONDS)
    latency = 0
    for title, target in _targets():
        is_latency = any(f"{h}_bucket" in target.get("expr", "") for h in histograms)
        latency += is_latency
        assert bool(target.get("exemplar")) == is_latency, (title, target["refId"])
    assert latency >= 4


def test_exemplar_trace_id_opens_the_trace_in_elasticsearch_and_kibana() -> None:
    """The Prometheus data source sends an exemplar's trace_id label (the label the app
    and the collector write) to a provisioned Elasticsearch data source reading the
    collector's span indices, and to Kibana's Discover with a TraceId query."""
    sources = _datasources()
    prometheus = next(d for d in sources.values() if d["type"] == "prometheus")
    destinations = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    assert {d["name"] for d in destinations} == {TRACE_ID_LABEL}
    internal = [d for d in destinations if "datasourceUid" in d]
    assert internal, destinations
    target = sources[internal[0]["datasourceUid"]]
    assert target["type"] == "elasticsearch"
    collector = (REPO / "otel-collector.yaml").read_text()
    traces_index = re.search(r"traces_index: \$\{env:\w+:-([\w-]+)\}", collector)
    assert traces_index and target["jsonData"]["index"] == f"{traces_index.group(1)}-*"
    kibana = [d for d in destinations if "url" in d]
    assert kibana and kibana[0]["urlDisplayLabel"] == "Kibana"
    url = kibana[0]["url"]
    # `$$` is Grafana's escape for a literal `$` in provisioning files
    assert "TraceId:\"$${__value.raw}\"" in url
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    published = compose["services"]["kibana"]["ports"][0].rsplit(":", 1)[0]
    assert url.startswith(f"http://{published}/app/discover")


def test_collector_and_prometheus_carry_exemplars() -> None:
    """The collector's Prometheus exporter serves OpenMetrics (the only format with
    exemplars) and both scripts/stack and docker-compose start Prometheus with exemplar
    storage."""
    collector = yaml.safe_load((REPO / "otel-collector.yaml").read_text())
    assert collector["exporters"]["prometheus"]["enable_open_metrics"] is True
    stack = (REPO / "scripts" / "stack").read_text()
    start = stack[stack.index("start_prometheus() {"):]
    start = start[: start.index("\n}\n")]
    assert "--enable-feature=exemplar-storage" in start
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert "--enable-feature=exemplar-storage" in compose["services"]["prometheus"]["command"]
