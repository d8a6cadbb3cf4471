"""End-to-end fixtures: the local stack (collector, Prometheus, Alertmanager, Elasticsearch).

`stack_up` brings the stack up once per session with scripts/stack (building the collector
and the Elasticsearch node if needed), reusing parts that already answer, and at the end
stops only the parts it started itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import _stack
import pytest

PARTS = ("elasticsearch", "collector", "alertmanager", "prometheus")


@pytest.fixture(scope="session")
def stack_up() -> Iterator[None]:
    """The whole stack answering on 127.0.0.1 for the test session."""
    already = {p for p in PARTS if _stack.stack("status", p).returncode == 0}
    started = [p for p in PARTS if p not in already]
    if started:
        _stack.stack("up")  # bounded: every part has HAPA_STACK_TIMEOUT (180 s) to answer
    yield
    if started:
        _stack.stack("down", *started, timeout=300)


@pytest.fixture
def otel_client(stack_up: None) -> Iterator[_stack.OtelClient]:
    """Plain OTel SDK providers pointed at the collector, unique instance id per test."""
    client = _stack.OtelClient(f"e2e-{uuid.uuid4().hex[:12]}")
    yield client
    client.shutdown()
