"""GenAI telemetry of the demo's streamed code generation through the real stack: the
semantic-convention families arrive at the collector's Prometheus exporter (and in
Prometheus) with the same names and labels as the app's own /metrics, and the inference
span (with opt-in content, redacted) and its ai_inference line reach Elasticsearch."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _stack
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hapa_telemetry import names

pytestmark = pytest.mark.e2e

SCRAPE_LABELS = {"job", "instance", "exported_job", "exported_instance"}
SECRET = "sk-live-0123456789abcdefghijklmnop"
GENAI_SERIES = (
    f"{names.PROM_GEN_AI_OPERATION_DURATION}_bucket",
    f"{names.PROM_GEN_AI_TOKEN_USAGE}_bucket",
    f"{names.PROM_GEN_AI_TIME_TO_FIRST_TOKEN}_bucket",
    f"{names.PROM_GEN_AI_TIME_PER_OUTPUT_TOKEN}_bucket",
    names.AI_INFERENCE_CACHE_LOOKUPS_TOTAL,
)


def _post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("content-type", "application/json")
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        return str(resp.read().decode())


def _series(text: str, service: str | None = None) -> dict[str, set[frozenset[tuple[str, str]]]]:
    """Sample name -> label sets (without scrape labels; only ``service``'s when given)."""
    out: dict[str, set[frozenset[tuple[str, str]]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = dict(sample.labels)
            if service is not None and labels.get("job") != service:
                continue
            if "le" in labels:  # the collector writes 1.048576e+06 where the app has 1048576
                labels["le"] = repr(float(labels["le"]))
            kept = frozenset((k, v) for k, v in labels.items() if k not in SCRAPE_LABELS)
            out.setdefault(sample.name, set()).add(kept)
    return out


@pytest.fixture
def demo(stack_up: None, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The demo app exporting OTLP to the stack, content capture on; (url, service)."""
    env = {
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
        "DEMO_MODEL_DELAY": "0.02",
        "DEMO_TOKEN_DELAY": "0.002",
    }
    with _stack.demo_app(tmp_path, "hapa-genai-e2e", env) as app:
        yield app.url, app.service


def test_genai_families_via_collector_and_span_in_es(
    demo: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A streamed answer, a cache hit and a plain JSON answer: the GenAI families reach the
    collector's exporter and Prometheus under the same names and label sets as /metrics;
    the inference span in hapa-traces carries the semconv attributes and the redacted
    prompt; the ai_inference line in hapa-backend carries ttft and output_tokens."""
    url, service = demo
    trace_id = uuid.uuid4().hex
    prompt = f"parse a config file; api_key={SECRET} {uuid.uuid4().hex[:6]}"
    body = _post(
        url + "/api/v1/code/generate", {"prompt": prompt, "stream": True},
        headers={"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"},
    )
    assert body.rstrip().splitlines()[-2] == "event: done"
    _post(url + "/api/v1/code/generate", {"prompt": prompt, "stream": True})  # cache hit
    _post(url + "/api/v1/code/generate", {"prompt": "plain " + prompt})  # JSON answer

    # the collector's Prometheus exporter: every GenAI family, labelled like /metrics
    def collector_has_all() -> dict[str, set[frozenset[tuple[str, str]]]] | None:
        with urllib.request.urlopen(_stack.COLLECTOR_PROM, timeout=10) as resp:
            series = _series(resp.read().decode(), service)
        return series if all(name in series for name in GENAI_SERIES) else None

    via_collector = _stack.wait_until(collector_has_all, 90, "GenAI families at the collector")
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        local = _series(resp.read().decode())
    for name in GENAI_SERIES:
        assert via_collector[name] <= local[name], (name, via_collector[name], local[name])
    model = ("gen_ai_request_model", "hapa-codegen-demo")
    ttft = via_collector[f"{names.PROM_GEN_AI_TIME_TO_FIRST_TOKEN}_bucket"]
    assert all(model in s and ("gen_ai_provider_name", "hapa") in s for s in ttft)
    lookups = via_collector[names.AI_INFERENCE_CACHE_LOOKUPS_TOTAL]
    assert {dict(s)["result"] for s in lookups} == {"hit", "miss"}

    # ... and Prometheus scrapes them from the collector (honor_labels: job = the service)
    sel = f'{{job="{service}"}}'
    _stack.wait_for_series(f"{names.PROM_GEN_AI_TIME_TO_FIRST_TOKEN}_count{sel}", 90)
    rate = _stack.wait_for_series(
        f'sum(ai_inference_cache_lookups_total{{job="{service}", result="hit"}})'
        f" / sum(ai_inference_cache_lookups_total{sel})", 60,
    )
    assert abs(float(rate[0]["value"][1]) - 1 / 3) < 1e-9

    # Elasticsearch: the inference span of the streamed request, and its line
    spans = _stack.wait_for_docs(
        f"{_stack.TRACE_INDEX_PREFIX}-*",
        {"bool": {"filter": [{"term": {"TraceId.keyword": trace_id}},
                             {"term": {"Name.keyword": "text_completion hapa-codegen-demo"}}]}},
        1, 90,
    )
    span = spans[0]
    assert span["Kind"] == "SPAN_KIND_CLIENT"
    assert span["gen_ai.provider.name"] == "hapa"
    assert span["gen_ai.request.stream"] is True
    assert span["gen_ai.usage.output_tokens"] > 5
    assert span["gen_ai.response.time_to_first_chunk"] > 0
    messages = json.loads(span["gen_ai.input.messages"])
    assert messages[0]["role"] == "user" and "parse a config file" in str(messages)
    assert SECRET not in json.dumps(span) and "[REDACTED]" in str(messages)
    assert "def generated_" in span["gen_ai.output.messages"]
    logs = _stack.wait_for_docs(
        f"{_stack.LOG_INDEX_PREFIX}-*",
        {"bool": {"filter": [{"term": {"TraceId.keyword": trace_id}},
                             {"term": {"event_type.keyword": names.EVENT_AI_INFERENCE}}]}},
        1, 90,
    )
    line = logs[0]
    assert line["streamed"] is True and line["ttft"] > 0 and line["output_tokens"] > 5
    assert SECRET not in json.dumps(logs)

    # `hapa-telemetry logs inference --es`: TTFT percentiles and tokens/s from the index
    from hapa_telemetry.cli import main

    capsys.readouterr()
    assert main(["logs", "inference", "--es", _stack.ES, "--trace", trace_id, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["time_to_first_token"]["count"] == 1
    assert report["time_to_first_token"]["p50"] == pytest.approx(line["ttft"], rel=0.05)
    assert report["output_tokens"] == line["output_tokens"]
    assert report["output_tokens_per_second"] == pytest.approx(
        line["output_tokens"] / line["duration"], rel=1e-6
    )
