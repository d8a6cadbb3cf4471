"""hapa-telemetry logs --es against the real Elasticsearch node of the local stack.

The test indexes the same lines as the unit tests' log directory into its own index
``hapa-backend-1999.01.<n>`` (documents shaped like the collector's, see
docs/elasticsearch.md, and like other layouts), asks every question through the command,
compares with the answers from the files, and deletes the index.
"""

from __future__ import annotations

import json
import os
import random
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import _stack
import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from _logdata import TRACE_A, json_lines, rotated_dir, run_cli

pytestmark = pytest.mark.e2e

ES_URL = os.environ.get("HAPA_ES_URL", _stack.ES)
SEVERITY = {"DEBUG": 5, "INFO": 9, "WARNING": 13, "ERROR": 17, "CRITICAL": 21}
TOP_LEVEL = {"timestamp", "level", "message", "trace_id", "span_id", "trace_flags", "service",
             "logger", "module", "function", "line", "environment"}
YEARS_BACK = timedelta(days=365 * 27 + 7)  # 2026 -> 1999: out of every real daily index


def _document(line: dict[str, Any], shape: str) -> dict[str, Any]:
    """A log line as the collector's elasticsearch exporter (otel mapping) stores it, or
    (``flat``) as Logstash indexes the JSON file: the line's own fields plus @timestamp."""
    from datetime import datetime

    moment = datetime.fromisoformat(line["timestamp"]) - YEARS_BACK
    if shape == "flat":
        flat = {**line, "timestamp": moment.isoformat(), "@timestamp": moment.isoformat()}
        if isinstance(flat.get("duration"), int | float):
            flat["duration"] = float(flat["duration"])
        return flat
    if shape == "raw":  # the collector's layout (docs/elasticsearch.md): exporter raw mode
        doc = {k: v for k, v in line.items()
               if k not in ("timestamp", "trace_id", "span_id", "trace_flags")}
        doc.update({"@timestamp": moment.isoformat(), "Body": line.get("message"),
                    "Resource.service.name": line.get("service", "hapa-backend"),
                    "Scope.name": line.get("logger", ""), "log.file.path": "/logs/x.log"})
        if "level" in line:
            doc["SeverityText"] = line["level"]
            doc["SeverityNumber"] = SEVERITY.get(line["level"], 0)
        for key, name in (("trace_id", "TraceId"), ("span_id", "SpanId")):
            if key in line:
                doc[name] = line[key]
        if isinstance(doc.get("duration"), int | float):
            doc["duration"] = float(doc["duration"])
        return doc
    if shape == "none":  # the exporter's mapping::mode none (its default before v0.122)
        attributes = {k: v for k, v in line.items() if k not in TOP_LEVEL}
        if isinstance(attributes.get("duration"), int | float):
            attributes["duration"] = float(attributes["duration"])
        doc = {"@timestamp": moment.isoformat(), "Body": line.get("message"),
               "Attributes": attributes, "Resource": {"service.name": "hapa-backend"},
               "Scope": {"name": line.get("logger", "")}}
        if "level" in line:
            doc["SeverityText"] = line["level"]
            doc["SeverityNumber"] = SEVERITY.get(line["level"], 0)
        for key, name in (("trace_id", "TraceId"), ("span_id", "SpanId")):
            if key in line:
                doc[name] = line[key]
        return doc
    doc: dict[str, Any] = {
        "@timestamp": moment.isoformat(),
        "body": {"text": line.get("message")},
        "resource": {"attributes": {"service.name": line.get("service", "hapa-backend")}},
        "scope": {"name": line.get("logger", "")},
        "attributes": {key: value for key, value in line.items() if key not in TOP_LEVEL},
    }
    if "level" in line:
        doc["severity_text"] = line["level"]
        doc["severity_number"] = SEVERITY.get(line["level"], 0)
    for key in ("trace_id", "span_id"):
        if key in line:
            doc[key] = line[key]
    if isinstance(doc["attributes"].get("duration"), int | float):
        doc["attributes"]["duration"] = float(doc["attributes"]["duration"])
    return doc


@pytest.fixture(scope="module", params=["raw", "otel", "none", "flat"])
def es_index(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, stack_up: None
):
    """(index name, log directory) with the same lines in both; the index is deleted after.

    ``raw``: documents exactly as the collector writes them (docs/elasticsearch.md);
    ``otel`` and ``none``: as the exporter writes them in those mapping modes; ``flat``: as
    the seed's Logstash writes them. Dynamic mapping (strings: text with a .keyword
    sub-field) under the stack's index template, which maps duration, status_code and
    cached at the top level in every hapa-backend-* index, whether documents have them or
    not: the reader must pick the paths that hold data.
    """
    logdir = rotated_dir(tmp_path_factory.mktemp("es") / "logs")
    lines: list[dict[str, Any]] = []
    import gzip

    for path in sorted(logdir.glob("hapa_*")):
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        for text in raw.decode().splitlines():
            try:
                item = json.loads(text)
            except ValueError:
                continue
            if isinstance(item, dict) and "timestamp" in item:
                lines.append(item)
    index = f"hapa-backend-1999.01.{random.randrange(10, 28)}"
    client = httpx.Client(base_url=ES_URL, timeout=30)
    try:
        client.get("/")
    except httpx.HTTPError as exc:
        pytest.fail(f"Elasticsearch is not reachable at {ES_URL} (scripts/stack up): {exc}")
    client.delete(f"/{index}", params={"ignore_unavailable": "true"})
    body = "".join(
        json.dumps({"index": {"_index": index}}) + "\n"
        + json.dumps(_document(line, request.param)) + "\n"
        for line in lines
    )
    answer = client.post("/_bulk", params={"refresh": "wait_for"}, content=body,
                         headers={"Content-Type": "application/x-ndjson"})
    assert answer.status_code == 200 and not answer.json()["errors"], answer.text[:2000]
    yield index, logdir
    client.delete(f"/{index}")
    client.close()


def _both(args: list[str], es_index, capsys) -> tuple[dict, dict]:
    index, logdir = es_index
    status, out, err = run_cli(["logs", *args, "--es", ES_URL, "--index", index, "--json"],
                               capsys)
    assert status == 0, err
    status_f, out_f, _ = run_cli(["logs", *args, str(logdir), "--json"], capsys)
    assert status_f == 0
    return json.loads(out), json.loads(out_f)


def test_errors_report_matches_the_files(es_index, capsys):
    """errors over ES: the same types, counts, example and first/last seen as the files."""
    es, files = _both(["errors"], es_index, capsys)
    assert es["total"] == files["total"] == 3
    assert [(t["error_type"], t["count"]) for t in es["types"]] == [
        (t["error_type"], t["count"]) for t in files["types"]]
    value_error = es["types"][0]
    assert value_error["example"] == "bad prompt"
    assert value_error["first_seen"].startswith("1999-11-")


def test_latency_report_matches_the_files(es_index, capsys):
    """latency over ES: counts, average, max and 5xx equal; percentiles close (t-digest)."""
    es, files = _both(["latency"], es_index, capsys)
    for key in ("count", "server_errors"):
        assert es["overall"][key] == files["overall"][key]
    assert es["overall"]["avg"] == pytest.approx(files["overall"]["avg"])
    assert es["overall"]["max"] == pytest.approx(files["overall"]["max"])
    assert es["overall"]["p50"] == pytest.approx(files["overall"]["p50"], rel=0.25)
    by_es = {row["endpoint"]: row for row in es["endpoints"]}
    for row in files["endpoints"]:
        assert by_es[row["endpoint"]]["count"] == row["count"]
        assert by_es[row["endpoint"]]["avg"] == pytest.approx(row["avg"])


def test_inference_report_matches_the_files(es_index, capsys):
    """inference over ES: cached vs not, hit rate, per model, last reported hit rate."""
    es, files = _both(["inference"], es_index, capsys)
    for part in ("overall", "cached", "uncached"):
        assert es[part]["count"] == files[part]["count"]
        assert es[part]["avg"] == pytest.approx(files[part]["avg"])
    assert es["cache_hit_rate"] == pytest.approx(0.25)
    assert es["reported_cache_hit_rate"] == pytest.approx(0.25)
    assert {m["model"]: m["count"] for m in es["models"]} == {
        m["model"]: m["count"] for m in files["models"]}


@pytest.mark.parametrize(
    "args",
    [
        ["--user", "user123"],
        ["--trace", TRACE_A],
        ["--trace", TRACE_A[:10]],
        ["--level", "WARNING"],
        ["--event", "error,cache_metrics"],
        ["--endpoint", "/api/v1/*"],
        ["--endpoint", "/health", "--user", "nobody"],
        ["--grep", "timed out"],
    ],
)
def test_line_filters_select_the_same_lines_as_on_files(es_index, capsys, args):
    """Each filter selects the same lines from ES as from the files, oldest first."""
    index, logdir = es_index
    status, out, err = run_cli(["logs", *args, "--es", ES_URL, "--index", index, "--json"],
                               capsys)
    assert status == 0, err
    from_es = [record["message"] for record in json_lines(out)]
    status, out, _ = run_cli(["logs", *args, str(logdir), "--json"], capsys)
    from_files = [record["message"] for record in json_lines(out)]
    assert from_es == from_files


def test_time_window_on_the_default_index_pattern(es_index, capsys):
    """--since/--until select by @timestamp across hapa-backend-* (the default pattern)."""
    status, out, err = run_cli(
        ["logs", "--es", ES_URL, "--since", "1999-11-26T10:03:00Z",
         "--until", "1999-11-26T10:06:00Z", "--json"], capsys)
    assert status == 0, err
    assert [r["message"] for r in json_lines(out)] == [
        "오류 발생: ValueError: empty prompt",
        "오류 발생: TimeoutError: model timed out",
        "API 요청 완료: POST /api/v1/code/generate - 200 (0.3000s)",
    ]


def test_trace_lines_show_span_ids(es_index, capsys):
    """The human table of a trace from ES shows each line's span id."""
    index, _ = es_index
    status, out, _ = run_cli(["logs", "--trace", TRACE_A, "--es", ES_URL, "--index", index,
                              "--wide"], capsys)
    assert status == 0
    assert [row.rsplit("/", 1)[1] for row in out.splitlines()[1:]] == [
        "00f067aa0ba902b7", "1111111111111111", "00f067aa0ba902b7"]


def test_missing_index_is_a_one_line_error(stack_up, capsys):
    """An index pattern that matches nothing: exit 1 and one line."""
    status, _, err = run_cli(["logs", "errors", "--es", ES_URL, "--index",
                              "hapa-backend-nothing-here-*"], capsys)
    assert status == 1 and err.count("\n") == 1 and "no Elasticsearch index" in err


def test_lines_are_capped_by_limit_and_the_total_is_told(es_index, capsys):
    """--limit N returns the N oldest matching documents and says how many match in all."""
    index, _ = es_index
    status, out, err = run_cli(["logs", "--es", ES_URL, "--index", index, "--limit", "4",
                                "--json"], capsys)
    assert status == 0
    assert [r["message"] for r in json_lines(out)][:1] == [
        "API 요청 시작: POST /api/v1/code/generate"]
    assert len(json_lines(out)) == 4
    assert "18 matching documents" in err and "first 4 shown" in err


def test_records_sent_through_the_collector_are_answered(otel_client, capsys):
    """OTLP log records -> collector -> hapa-backend-<today> -> the same answers by --es."""
    import uuid

    user = f"logs-e2e-{uuid.uuid4().hex[:10]}"
    endpoint = "/api/v1/items/{item_id}"
    with otel_client.tracer.start_as_current_span("request") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        for i, duration in enumerate([0.1, 0.2, 0.3, 0.4]):
            otel_client.log(f"request end {i}", user_id=user, event_type="request_end",
                            endpoint=endpoint, method="GET", status_code=500 if i == 0 else 200,
                            duration=duration)
        otel_client.log("boom", level="ERROR", user_id=user, event_type="error",
                        error_type="ValueError", error_message="boom")
    otel_client.flush()
    _stack.wait_for_docs(f"{_stack.LOG_INDEX_PREFIX}-*", {"term": {"user_id.keyword": user}},
                         5, timeout=90)
    base = ["--es", ES_URL, "--user", user, "--since", "1h", "--json"]
    status, out, err = run_cli(["logs", "latency", *base], capsys)
    assert status == 0, err
    latency = json.loads(out)
    assert latency["overall"]["count"] == 4 and latency["overall"]["server_errors"] == 1
    assert latency["overall"]["avg"] == pytest.approx(0.25)
    assert [row["endpoint"] for row in latency["endpoints"]] == [endpoint]
    status, out, _ = run_cli(["logs", "errors", *base], capsys)
    assert [(t["error_type"], t["count"], t["example"]) for t in json.loads(out)["types"]] == [
        ("ValueError", 1, "boom")]
    status, out, _ = run_cli(["logs", "--trace", trace_id, *base], capsys)
    lines = json_lines(out)
    assert len(lines) == 5 and {line["trace_id"] for line in lines} == {trace_id}
    assert lines[-1]["message"] == "boom" and lines[-1]["level"] == "ERROR"
