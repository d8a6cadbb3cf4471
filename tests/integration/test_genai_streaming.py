"""The demo's streamed code generation (SSE through call.stream) under a real uvicorn:
GenAI metrics on /metrics, a client that goes away mid-stream, cache hits as a counter."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
from _procs import PYTHON, clean_env, free_port, start, stop, wait_http
from prometheus_client.parser import text_string_to_metric_families

from hapa_telemetry import names

pytestmark = pytest.mark.integration


def _samples(base: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(base + "/metrics", timeout=10).text
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= lab)


def _events(body: str) -> list[tuple[str, dict[str, object]]]:
    out = []
    for block in body.strip().split("\n\n"):
        event, data = "message", ""
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        out.append((event, json.loads(data)))
    return out


def test_streamed_generation_early_stop_and_cache(tmp_path: Path) -> None:
    """A full SSE answer records TTFT, time per token and output tokens; a client that
    disconnects mid-stream ends its call as cancelled (nothing left open); a repeated
    prompt is a cache hit in ai_inference_cache_lookups_total."""
    port = free_port()
    logdir = tmp_path / "logs"
    proc = start(
        [PYTHON, "-m", "uvicorn", "hapa_telemetry.demo.app:app", "--port", str(port)],
        clean_env(LOG_DIRECTORY=str(logdir), DEMO_MODEL_DELAY="0.05", DEMO_TOKEN_DELAY="0.02"),
        tmp_path,
        tmp_path / "stdout.txt",
    )
    base = f"http://127.0.0.1:{port}"
    prompt = {"prompt": "sort a list of numbers", "user_id": "u1", "stream": True}
    try:
        wait_http(base + "/health", proc)
        with httpx.Client(base_url=base, timeout=10) as c:
            r = c.post("/api/v1/code/generate", json=prompt)
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = _events(r.text)
            assert events[-1][0] == "done"
            tokens = [e[1]["token"] for e in events[:-1]]
            assert len(tokens) > 10 and "".join(tokens).startswith("def generated_")  # type: ignore[arg-type]

            # the same prompt again: a cache hit, answered as one event
            again = _events(c.post("/api/v1/code/generate", json=prompt).text)
            assert again[0][1]["token"] == "".join(tokens)  # type: ignore[operator]

        # a client that reads two events and goes away
        long_prompt = {"prompt": "a long answer please " * 20, "stream": True}
        with httpx.Client(base_url=base, timeout=10) as c, c.stream(
            "POST", "/api/v1/code/generate", json=long_prompt
        ) as r:
            lines = r.iter_lines()
            got = [next(lines) for _ in range(4)]  # two events: data + blank each
            assert got[0].startswith("data: ")
        deadline = time.monotonic() + 10
        while True:
            samples = _samples(base)
            cancelled = _value(
                samples, names.PROM_GEN_AI_OPERATION_DURATION + "_count",
                error_type=names.ERROR_TYPE_CANCELLED,
            )
            if cancelled == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        code = stop(proc)
    assert code in (0, -15)
    model = {"gen_ai_request_model": "hapa-codegen-demo", "gen_ai_provider_name": "hapa"}
    assert cancelled == 1
    ok = _value(samples, names.PROM_GEN_AI_OPERATION_DURATION + "_count", **model) - cancelled
    assert ok == 1  # the full stream; the cache hit is no model operation
    assert _value(samples, names.PROM_GEN_AI_TIME_TO_FIRST_TOKEN + "_count", **model) == 2
    assert _value(samples, names.PROM_GEN_AI_TIME_PER_OUTPUT_TOKEN + "_count", **model) == 1
    out_sum = _value(
        samples, names.PROM_GEN_AI_TOKEN_USAGE + "_sum", gen_ai_token_type="output", **model
    )
    assert out_sum >= len(tokens)
    lookups = names.AI_INFERENCE_CACHE_LOOKUPS_TOTAL
    assert _value(samples, lookups, result="hit") == 1
    assert _value(samples, lookups, result="miss") == 2
    assert _value(samples, names.ACTIVE_CONNECTIONS) == 0
    assert _value(samples, names.AI_INFERENCE_DURATION_SECONDS + "_count") == 1
    lines = [json.loads(x) for x in next(logdir.glob("hapa_*.log")).read_text().splitlines()]
    inference = [x for x in lines if x.get("event_type") == "ai_inference"]
    streamed = [x for x in inference if x.get("streamed")]
    assert len(streamed) == 2
    assert streamed[0]["chunks"] == len(tokens) and streamed[0]["ttft"] > 0.04
    assert streamed[1]["error_type"] == "cancelled" and streamed[1]["chunks"] >= 2
    assert all(x.get("trace_id") for x in inference)


_MULTIPROC_SCRIPT = """
import hapa_telemetry
hapa_telemetry.configure(log_directory=None, log_to_stdout=False)
with hapa_telemetry.inference(model="mp", provider="hapa") as call:
    call.cached = False
    call.usage(input_tokens=3)
    list(call.stream(iter(["a", "b", "c"])))
with hapa_telemetry.inference(model="mp", provider="hapa") as call:
    call.cached = True
print(hapa_telemetry.get_prometheus_metrics().decode())
"""


def test_genai_families_on_multiprocess_metrics(tmp_path: Path) -> None:
    """With PROMETHEUS_MULTIPROC_DIR, /metrics (the merged worker files) has the GenAI
    families too, under the same names and labels as in a single process."""
    import subprocess

    env = clean_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    out = subprocess.run(
        [PYTHON, "-c", _MULTIPROC_SCRIPT], env=env, cwd=tmp_path, capture_output=True,
        text=True, timeout=60, check=True,
    ).stdout
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for fam in text_string_to_metric_families(out):
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    model = {"gen_ai_request_model": "mp", "gen_ai_provider_name": "hapa",
             "gen_ai_operation_name": "text_completion"}
    assert _value(samples, names.PROM_GEN_AI_OPERATION_DURATION + "_count", **model) == 1
    assert _value(samples, names.PROM_GEN_AI_TOKEN_USAGE + "_sum", gen_ai_token_type="output",
                  **model) == 3
    assert _value(samples, names.PROM_GEN_AI_TOKEN_USAGE + "_sum", gen_ai_token_type="input",
                  **model) == 3
    assert _value(samples, names.PROM_GEN_AI_TIME_TO_FIRST_TOKEN + "_count", **model) == 1
    assert _value(samples, names.PROM_GEN_AI_TIME_PER_OUTPUT_TOKEN + "_count", **model) == 1
    lookups = names.AI_INFERENCE_CACHE_LOOKUPS_TOTAL
    assert _value(samples, lookups, result="hit", model="mp") == 1
    assert _value(samples, lookups, result="miss", model="mp") == 1
