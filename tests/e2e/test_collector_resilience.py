"""Outages: Elasticsearch down for ~30 s loses no logs; a killed collector comes back.

These tests stop and restart parts of the stack (through scripts/stack and the PID files it
keeps) and leave every part running again when they finish.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

import _stack
import pytest

from hapa_telemetry import names

pytestmark = pytest.mark.e2e

ES_OUTAGE_SECONDS = 30
LOGS_DURING_OUTAGE = 20


def test_logs_written_while_elasticsearch_is_down_arrive_after_restart(
    otel_client: _stack.OtelClient,
) -> None:
    """Logs sent during a ~30 s Elasticsearch outage are all indexed once it is back."""
    run = f"es-outage-{uuid.uuid4().hex[:8]}"
    _stack.stack("down", "elasticsearch", timeout=120)
    try:
        assert not _stack.answers(_stack.ES)
        started = time.monotonic()
        for seq in range(LOGS_DURING_OUTAGE):
            otel_client.log("written during outage", e2e_run=run, seq=seq)
            time.sleep(ES_OUTAGE_SECONDS / LOGS_DURING_OUTAGE)
        otel_client.flush()
        assert not _stack.answers(_stack.ES), "Elasticsearch came back by itself"
        outage = time.monotonic() - started
    finally:
        _stack.stack("up", "elasticsearch", timeout=300)
    assert outage >= ES_OUTAGE_SECONDS

    docs = _stack.wait_for_docs(
        f"{_stack.LOG_INDEX_PREFIX}-*",
        {"term": {"e2e_run.keyword": run}},
        LOGS_DURING_OUTAGE,
        timeout=180,
    )
    assert sorted({d["seq"] for d in docs}) == list(range(LOGS_DURING_OUTAGE))


def test_killed_collector_restarts_and_telemetry_flows_again(
    otel_client: _stack.OtelClient,
) -> None:
    """After SIGKILL and `scripts/stack up collector`, the same SDK providers (no app
    restart) get logs into Elasticsearch and metrics into the exporter again."""
    counter = otel_client.meter.create_counter(names.API_REQUESTS_TOTAL)
    attrs = {names.LABEL_METHOD: "GET", names.LABEL_ENDPOINT: "/kill", names.LABEL_STATUS: "200"}
    counter.add(1, attrs)
    run = f"collector-kill-{uuid.uuid4().hex[:8]}"
    otel_client.log("before kill", e2e_run=run, phase="before")
    otel_client.flush()
    _stack.wait_for_docs(
        f"{_stack.LOG_INDEX_PREFIX}-*", {"term": {"phase.keyword": "before"}}, 1, 60
    )

    pid = int(_stack.pid_file("collector").read_text())
    os.kill(pid, signal.SIGKILL)
    _stack.wait_until(lambda: not _stack.answers(_stack.COLLECTOR_HEALTH), 30, "collector down")
    counter.add(1, attrs)
    otel_client.log("while down", e2e_run=run, phase="down")  # may be lost: not asserted

    restarted = time.monotonic()
    _stack.stack("up", "collector", timeout=300)
    assert int(_stack.pid_file("collector").read_text()) != pid
    otel_client.log("after restart", e2e_run=run, phase="after")
    counter.add(1, attrs)
    otel_client.flush()

    query = {
        "bool": {
            "filter": [
                {"term": {"e2e_run.keyword": run}},
                {"term": {"phase.keyword": "after"}},
            ]
        }
    }
    _stack.wait_for_docs(f"{_stack.LOG_INDEX_PREFIX}-*", query, 1, 60)
    inst = otel_client.instance_id

    def exported() -> str | None:
        status, text = _stack.http("GET", _stack.COLLECTOR_PROM)
        line = f'{names.API_REQUESTS_TOTAL}{{endpoint="/kill",instance="{inst}"'
        return text if status == 200 and line in str(text) else None

    _stack.wait_until(exported, 60, "api_requests_total of this client on the restarted exporter")
    assert time.monotonic() - restarted < 120
