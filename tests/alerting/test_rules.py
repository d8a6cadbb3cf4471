"""Alert rules, Alertmanager routing and dashboard queries: static checks (fast) and the
Debian promtool/amtool checks (marker e2e: needs scripts/install-prometheus)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from . import promstack as ps

RULE_TEST_FILES = sorted(ps.RULE_TESTS_DIR.glob("*.yml"))


# ------------------------------------------------------------------- fast, no binaries
def test_every_metric_in_rules_and_dashboard_is_a_known_name() -> None:
    """Every metric selected by a rule or dashboard query is defined in
    hapa_telemetry.names (or is a Prometheus/collector built-in), so names cannot drift."""
    known = ps.known_metric_names()
    unknown = {
        f"{e.source}: {e.name}": sorted(ps.metric_names(e.expr) - known)
        for e in ps.all_exprs()
        if ps.metric_names(e.expr) - known
    }
    assert unknown == {}


def test_every_expression_selects_some_metric() -> None:
    """The name extractor finds at least one metric in every expression (so the drift
    check above is not vacuous)."""
    exprs = ps.all_exprs()
    assert len(exprs) >= 20
    assert [e.name for e in exprs if not ps.metric_names(e.expr)] == []


def test_name_extractor_reports_a_renamed_metric() -> None:
    """A misspelt family in a query is reported, while functions, label names, strings
    and durations are not mistaken for metrics."""
    expr = (
        'histogram_quantile(0.95, sum by (le, endpoint) (rate(api_request_duration_bucket'
        '{job="hapa-collector", status=~"5.."}[5m] offset 1h))) > 2 and on (job) '
        'label_replace(up, "x", "y", "", "")'
    )
    found = ps.metric_names(expr)
    assert found == {"api_request_duration_bucket", "up"}
    assert found - ps.known_metric_names() == {"api_request_duration_bucket"}


_AGGREGATION = re.compile(r"\b(sum|avg|max|min|count)\s*(by\s*\(([^)]*)\))?\s*\(")


def test_rules_work_on_either_path_and_never_sum_across_services() -> None:
    """No rule on the app's families selects a job by name (so the same file works for a
    direct scrape and for the collector path), and every aggregation keeps `job`: one
    alert per service, never a sum over two services."""
    app = ps.app_metric_names()
    problems = []
    for e in ps.rule_exprs():
        if not ps.metric_names(e.expr) & app:
            continue
        if re.search(r"\bjob\s*(=|!=|=~|!~)", e.expr):
            problems.append(f"{e.name}: selects a job")
        aggregations = _AGGREGATION.findall(e.expr)
        if not aggregations:
            problems.append(f"{e.name}: no aggregation")
        for _, by, labels in aggregations:
            if not by or "job" not in [x.strip() for x in labels.split(",")]:
                problems.append(f"{e.name}: aggregates without `by (job)`")
    assert problems == []


def test_dashboard_panels_on_app_families_select_the_service_variable() -> None:
    """Every dashboard query on the app's families selects `job="$job"` (the service
    picked in the dashboard, listed from the job label), on either path."""
    app = ps.app_metric_names()
    unfiltered = []
    for e in ps.dashboard_exprs():
        if ps.metric_names(e.expr) & app:
            selectors = [s for s in e.expr.split("{")[1:]]
            if not selectors or not all('job="$job"' in s.split("}")[0] for s in selectors):
                unfiltered.append(e.name)
    assert unfiltered == []
    variable = next(v for d in ps.dashboards().values() for v in d["templating"]["list"]
                    if v["name"] == "job")
    assert variable["definition"] == "label_values(api_requests_total, job)"


def test_rules_carry_severity_and_annotated_values() -> None:
    """Every alert has a routable severity, a component, a summary, and a description that
    quotes the measured value or the failing target."""
    problems = []
    for rule in ps.rules():
        labels, notes = rule.get("labels", {}), rule.get("annotations", {})
        if labels.get("severity") not in {"critical", "warning", "info"}:
            problems.append(f"{rule['alert']}: severity")
        if not labels.get("component"):
            problems.append(f"{rule['alert']}: component")
        if not notes.get("summary"):
            problems.append(f"{rule['alert']}: summary")
        if "$value" not in notes.get("description", "") and "$labels" not in notes.get(
            "description", ""
        ):
            problems.append(f"{rule['alert']}: description without value")
    assert problems == []


def test_seed_alerts_keep_their_contract() -> None:
    """HighResponseTime is a p95 over rate() of summed buckets above 2 s for 5m (warning);
    HighErrorRate is a ratio above 10 % for 5m (critical) - not the seed's broken forms."""
    by_name = {r["alert"]: r for r in ps.rules()}
    hrt, her = by_name["HighResponseTime"], by_name["HighErrorRate"]
    hrt_expr, her_expr = " ".join(hrt["expr"].split()), " ".join(her["expr"].split())
    assert hrt_expr.startswith("histogram_quantile(0.95, sum by (job, le) (rate(")
    assert hrt_expr.endswith("> 2") and hrt["for"] == "5m"
    assert hrt["labels"]["severity"] == "warning"
    assert " / " in her_expr and her_expr.endswith("> 0.10") and her["for"] == "5m"
    assert her["labels"]["severity"] == "critical"


def test_every_rule_has_firing_and_silent_unit_tests() -> None:
    """Each alert appears in the promtool tests both with expected alerts (labels and
    annotations asserted) and with none expected."""
    firing: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                if expected and all(a.get("exp_annotations") for a in expected):
                    firing.add(check["alertname"])
                elif not expected:
                    silent.add(check["alertname"])
    alerts = {r["alert"] for r in ps.rules()}
    assert alerts - firing == set()
    assert alerts - silent == set()


def test_alertmanager_routes_every_severity_to_a_local_webhook() -> None:
    """Alertmanager routes critical and warning alerts to webhook receivers on 127.0.0.1
    that also send resolved notifications, grouped by alert name."""
    config = yaml.safe_load(ps.ALERTMANAGER_YML.read_text())
    receivers = {r["name"]: r for r in config["receivers"]}
    route = config["route"]
    assert "alertname" in route["group_by"]
    routed = {m: r["receiver"] for r in route["routes"] for m in r["matchers"]}
    for severity in ("critical", "warning"):
        receiver = receivers[routed[f'severity="{severity}"']]
        hooks = receiver["webhook_configs"]
        assert hooks and all(h["url"].startswith("http://127.0.0.1:") for h in hooks)
        assert all(h["send_resolved"] for h in hooks)
    used = {r["severity"] for r in (rule["labels"] for rule in ps.rules())}
    assert used <= {"critical", "warning"}


def test_prometheus_scrapes_collector_and_app_and_loads_the_rules() -> None:
    """The deployed prometheus.yml scrapes the collector exporter (8889) keeping the app's
    own job/instance labels, the app's /metrics (8000) for liveness only (its families
    dropped: each request reaches Prometheus by one path), the collector's self-telemetry
    (8888), sends alerts to 9093 and loads the very rule files the unit tests cover."""
    config = yaml.safe_load(ps.PROMETHEUS_YML.read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert jobs["hapa-collector"]["static_configs"][0]["targets"] == ["127.0.0.1:8889"]
    assert jobs["hapa-collector"]["honor_labels"] is True
    assert jobs["hapa-app"]["static_configs"][0]["targets"] == ["127.0.0.1:8000"]
    assert jobs["hapa-app"]["metric_relabel_configs"] == [
        {"source_labels": ["__name__"], "regex": ".+", "action": "drop"}
    ]
    assert jobs["otel-collector"]["static_configs"][0]["targets"] == ["127.0.0.1:8888"]
    am = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert am == ["127.0.0.1:9093"]
    loaded = {p for g in config["rule_files"] for p in ps.PROMETHEUS_YML.parent.glob(g)}
    assert loaded == set(ps.RULES_DIR.glob("*.yml")) and loaded
    tested = {
        (path.parent / f).resolve()
        for path in RULE_TEST_FILES
        for f in yaml.safe_load(path.read_text())["rule_files"]
    }
    assert tested == {p.resolve() for p in loaded}


def test_dashboard_uses_the_provisioned_datasources() -> None:
    """Every dashboard panel refers to a data source uid that the provisioning defines,
    and the Elasticsearch one reads the hapa-backend-* log indices."""
    provisioned = {}
    for path in (ps.GRAFANA / "provisioning" / "datasources").glob("*.yml"):
        for ds in yaml.safe_load(path.read_text())["datasources"]:
            provisioned[ds["uid"]] = ds
    used = set()
    for panel in ps.dashboard_panels():
        targets = panel.get("targets", [])
        for ref in [panel.get("datasource"), *(t.get("datasource") for t in targets)]:
            if isinstance(ref, dict):
                used.add(ref["uid"])
    assert used <= set(provisioned)
    es = [d for d in provisioned.values() if d["type"] == "elasticsearch"]
    assert es and es[0]["jsonData"]["index"] == "hapa-backend-*"
    assert any(d["type"] == "prometheus" for d in provisioned.values())


def test_dashboard_has_the_seed_indicators() -> None:
    """The dashboard has panels for request rate, p50/p95/p99 latency with a link to logs
    and traces, error rate, AI inference time, cache hit rate, active connections,
    CPU/memory/disk and Elasticsearch logs."""
    panels = ps.dashboard_panels()
    exprs = " ".join(t.get("expr", "") for p in panels for t in p.get("targets", []))
    for quantile in ("0.50", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate(api_request_duration" in exprs
    latency = next(p for p in panels if "p50 / p95 / p99" in p["title"])
    assert latency.get("links") and latency["fieldConfig"]["defaults"].get("links")
    for family in sorted(ps.app_metric_names() - {"hapa_telemetry_export_total"}):
        if family.endswith("_sum"):
            continue
        if family.endswith("_count") and family.startswith("api_request"):
            continue
        assert family in exprs, family
    assert any(p["type"] == "logs" for p in panels)


# ------------------------------------------------------------ Debian promtool / amtool
@pytest.mark.e2e
def test_promtool_check_rules() -> None:
    """`promtool check rules` accepts every rule file."""
    result = ps.run([ps.require_binary("promtool"), "check", "rules",
                     *map(str, sorted(ps.RULES_DIR.glob("*.yml")))])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


@pytest.mark.e2e
def test_promtool_rule_unit_tests_pass() -> None:
    """`promtool test rules` passes every firing/silent/boundary case."""
    result = ps.run([ps.require_binary("promtool"), "test", "rules",
                     *map(str, RULE_TEST_FILES)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_promtool_unit_tests_catch_a_wrong_threshold(tmp_path: Path) -> None:
    """The unit tests fail when HighErrorRate is turned back into the seed's
    absolute-rate form, so they are able to fail."""
    rules_dir, tests_dir = tmp_path / "rules", tmp_path / "tests"
    rules_dir.mkdir()
    tests_dir.mkdir()
    doc = yaml.safe_load((ps.RULES_DIR / "hapa.yml").read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule["alert"] == "HighErrorRate":
                rule["expr"] = (
                    'sum by (job) (rate(api_requests_total{status=~"5.."}[5m]))'
                    " > 0.1"
                )
    (rules_dir / "hapa.yml").write_text(yaml.safe_dump(doc))
    for other in ps.RULES_DIR.glob("*.yml"):  # the other rule files unchanged (genai.yml)
        if other.name != "hapa.yml":
            (rules_dir / other.name).write_text(other.read_text())
    for path in RULE_TEST_FILES:
        (tests_dir / path.name).write_text(path.read_text())
    result = ps.run([ps.require_binary("promtool"), "test", "rules",
                     *map(str, sorted(tests_dir.glob("*.yml")))])
    assert result.returncode != 0
    assert "HighErrorRate" in result.stdout + result.stderr


@pytest.mark.e2e
def test_promtool_check_config_of_deployed_and_overlay(tmp_path: Path) -> None:
    """`promtool check config` accepts collector/prometheus.yml and a test overlay of it."""
    promtool = ps.require_binary("promtool")
    result = ps.run([promtool, "check", "config", str(ps.PROMETHEUS_YML)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 rule files found" in result.stdout  # hapa.yml, genai.yml
    overlay = ps.render_prometheus(
        tmp_path, targets={"hapa-collector": ["127.0.0.1:18889"]},
        alertmanager="127.0.0.1:19093", scrape_interval="1s", evaluation_interval="1s",
        rules_dir=ps.shorten_rules(tmp_path / "rules", "3s", "10s"),
    )
    result = ps.run([promtool, "check", "config", str(overlay)])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_amtool_check_config_of_deployed_and_overlay(tmp_path: Path) -> None:
    """`amtool check-config` accepts collector/alertmanager.yml and its test overlay."""
    amtool = ps.require_binary("amtool")
    overlay = ps.render_alertmanager(tmp_path, webhook_base="http://127.0.0.1:15001")
    for path in (ps.ALERTMANAGER_YML, overlay):
        result = ps.run([amtool, "check-config", str(path)])
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


@pytest.mark.e2e
def test_amtool_routes_alerts_by_severity() -> None:
    """Alertmanager's own routing (amtool config routes test) sends critical alerts to
    hapa-critical and warnings to hapa-webhook."""
    amtool = ps.require_binary("amtool")
    base = [amtool, "config", "routes", "test", f"--config.file={ps.ALERTMANAGER_YML}"]
    critical = ps.run([*base, "alertname=HighErrorRate", "severity=critical"])
    warning = ps.run([*base, "alertname=HighResponseTime", "severity=warning"])
    assert critical.stdout.strip() == "hapa-critical", critical.stdout + critical.stderr
    assert warning.stdout.strip() == "hapa-webhook", warning.stdout + warning.stderr
