"""Faults in the agent -> 2 gateways -> 2-node Elasticsearch tier, under steady load.

Runs against `scripts/stack up --topology gateway` (scripts/test starts it after the
single-collector e2e tests). Each test drives three load sources at fixed rates (the
package's demo app, telemetrygen, and an OTLP/HTTP sender that records what the agent
acknowledged), injects one fault, and counts at Elasticsearch by id. Figures (sent,
acknowledged, received, lost, duplicated, recovery time, agent RSS and disk) go to
.stack/tier-results.jsonl and the test output; docs/collector.md quotes them.
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import _stack
import _tier
import pytest
from _tier import tier  # noqa: F401  (the gateway-topology fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("tier")]

SENDER_RATE = 100  # log records per second, acknowledged one batch at a time
TG_RATE = 20  # telemetrygen traces per second (2 spans each)
DEMO_RATE = 10.0  # demo requests per second
WARMUP = 8.0  # seconds of load before the fault


class Sampler(threading.Thread):
    """Agent RSS, disk use and queue length once a second (bounded)."""

    def __init__(self, max_seconds: float = 600) -> None:
        super().__init__(daemon=True)
        self.rss: list[float] = []
        self.disk: list[float] = []
        self.queue: list[float] = []
        self.capacity = 0.0
        self._halt = threading.Event()
        self.max_seconds = max_seconds

    def run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._halt.is_set() and time.monotonic() < deadline:
            self.rss.append(_tier.rss_mib("agent"))
            self.disk.append(_tier.disk_mib())
            size, cap = _tier.agent_queue()
            self.queue.append(size)
            self.capacity = max(self.capacity, cap)
            self._halt.wait(1)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def run_under_load(
    name: str,
    tmp_path: Path,
    fault: Callable[[_tier.DemoDriver, _tier.AckedSender], float],
    load_seconds: float,
    drain_timeout: float = 240,
) -> dict[str, Any]:
    """Load, fault, keep loading, then wait until every acknowledged record is indexed.

    ``fault()`` runs WARMUP seconds into the load and returns the monotonic time at which
    the fault was cleared (the restart done); recovery is measured from then. The load lasts
    ``load_seconds`` or until ``fault()`` returns, whichever is later.
    """
    run = f"{name}-{uuid.uuid4().hex[:8]}"
    sampler = Sampler()
    with _tier.demo_app(tmp_path, rate=DEMO_RATE) as demo:
        sender = _tier.AckedSender(run, rate=SENDER_RATE)
        tg = _tier.Telemetrygen(run, TG_RATE, int(load_seconds), tmp_path / "telemetrygen.log")
        t0 = time.monotonic()
        sampler.start()
        sender.start()
        demo.start()
        time.sleep(WARMUP)
        fault_at = time.monotonic()
        cleared_at = fault(demo, sender)
        time.sleep(max(0.0, t0 + load_seconds - time.monotonic()))
        sender.stop()
        demo.stop()
        load_end = time.monotonic()
        p99_before = demo.p99(t0, fault_at)
        p99_during = demo.p99(fault_at, cleared_at + 5)

        def all_acked_indexed() -> bool | None:
            return sender.acked <= set(sender.counts()) or None

        _stack.wait_until(all_acked_indexed, drain_timeout, f"{run}: every acked record in ES", 1)
        recovered_at = time.monotonic()
        tg.wait(timeout=load_seconds + 120)
        time.sleep(3)  # late duplicates, if any, land too
        sampler.stop()
        figures: dict[str, Any] = {
            "load_seconds": load_seconds,
            "fault_seconds": round(cleared_at - fault_at, 1),
            # backlog gone: every acknowledged record indexed, counted from the end of load
            "drain_seconds_after_load": round(recovered_at - load_end, 1),
            "fault_cleared_before_load_end_s": round(load_end - cleared_at, 1),
            "sender": _tier.tally(
                "acked-sender", sender.sent, sender.acked, sender.counts()
            ).as_dict(),
            "demo_p99_ms_before": round(p99_before * 1000, 1),
            "demo_p99_ms_during": round(p99_during * 1000, 1),
            "demo_errors": demo.errors,
            "agent_rss_mib_max": round(max(sampler.rss, default=0), 1),
            "agent_disk_mib_max": round(max(sampler.disk, default=0), 1),
            "agent_queue_max": max(sampler.queue, default=0),
            "agent_queue_capacity": sampler.capacity,
        }
        tg_counts = tg.counts()
        figures["telemetrygen"] = {
            "sent": tg.spans_sent,
            "received": len(tg_counts),
            "duplicated": sum(c - 1 for c in tg_counts.values()),
        }
        demo_counts = demo.counts()
        sent_ids = set(demo.trace_ids)
        figures["demo"] = {
            "requests": len(sent_ids),
            "traces_received": len(sent_ids & set(demo_counts)),
            "duplicated_spans": sum(c - 1 for c in demo.counts("SpanId.keyword").values()),
        }
    _tier.record(name, figures)
    return figures


def _assert_nothing_lost(f: dict[str, Any], app_exporters_saw_fault: bool) -> None:
    s = f["sender"]
    assert s["acked"] > 0.9 * s["sent"] or app_exporters_saw_fault, f
    assert s["lost"] == 0, f
    if not app_exporters_saw_fault:
        assert f["telemetrygen"]["received"] == f["telemetrygen"]["sent"], f
        assert f["demo"]["traces_received"] == f["demo"]["requests"], f


def test_agent_sigkill_then_restart_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    """SIGKILL the agent mid-load, start it again 10 s later: every record it acknowledged
    (kept in its disk queue) reaches Elasticsearch; duplicates are counted and reported."""

    def fault(_demo: _tier.DemoDriver, _sender: _tier.AckedSender) -> float:
        _tier.sigkill("agent")
        time.sleep(10)
        _tier.stack_gw("up", "agent")
        return time.monotonic()

    f = run_under_load("agent-sigkill", tmp_path, fault, load_seconds=35)
    _assert_nothing_lost(f, app_exporters_saw_fault=True)
    # data sent while the agent was down was refused, not acknowledged
    assert f["sender"]["acked"] < f["sender"]["sent"], f


GATEWAY_DOWN = 30.0  # seconds gateway 1 stays dead: longer than any retry, so only failover helps
WINDOW = 2.0  # records acknowledged in this window are followed until all are indexed


def test_gateway_sigkill_other_takes_over_within_seconds_nothing_lost(tmp_path: Path) -> None:
    """SIGKILL gateway 1 mid-load and leave it dead for 30 s: the agent fails over to
    gateway 2 within seconds (every record acknowledged just after the kill is in
    Elasticsearch while gateway 1 is still dead, and no backlog builds up), nothing is lost
    (duplicates counted), and after gateway 1's restart the agent balances over both again
    and the app's metrics reach a gateway's Prometheus exporter again."""
    seen: dict[str, Any] = {}

    def demo_requests_exported(service: str) -> float:
        total = 0.0
        for url in _tier.GATEWAY_PROM.values():
            try:
                status, text = _stack.http("GET", url)
            except (OSError, ValueError):
                continue
            for line in str(text).splitlines() if status == 200 else []:
                if line.startswith("api_requests_total{") and f'job="{service}"' in line:
                    total += float(line.rsplit(" ", 1)[1])
        return total

    def seconds_to_index(sender: _tier.AckedSender, limit: float, what: str) -> float:
        """From now: WINDOW seconds of acknowledged records, then until all are indexed."""
        started, first_seq = time.monotonic(), sender.next_seq
        time.sleep(WINDOW)
        ids = sender.acked_from(first_seq)
        _stack.wait_until(lambda: ids <= set(sender.counts()) or None, limit, what, 0.25)
        return round(time.monotonic() - started, 2)

    def fault(demo: _tier.DemoDriver, sender: _tier.AckedSender) -> float:
        # both gateways up: how long a record takes to be indexed on this machine now
        seen["baseline_seconds"] = seconds_to_index(sender, 30, "records indexed (no fault)")
        killed_at = time.monotonic()
        first_seq = sender.next_seq
        _tier.sigkill("gateway1")
        try:
            # takeover: what the agent acknowledged just after the kill (half of it hashed to the
            # dead gateway by trace id) is indexed through gateway 2 while gateway 1 is dead
            seen["takeover_seconds"] = seconds_to_index(
                sender, GATEWAY_DOWN - WINDOW - 5, "records acked after the kill indexed"
            )
            # no backlog while gateway 1 is still dead: everything acknowledged since the kill,
            # up to 5 s before the restart, is indexed before the restart
            time.sleep(max(0.0, killed_at + GATEWAY_DOWN - 5 - time.monotonic()))
            recent = sender.acked_from(first_seq)
            _stack.wait_until(
                lambda: recent <= set(sender.counts()) or None,
                max(1.0, killed_at + GATEWAY_DOWN - time.monotonic()),
                "every record acked since the kill indexed, gateway 1 still dead",
            )
            seen["indexed_while_gateway1_dead"] = len(recent)
            seen["gateway1_dead_seconds"] = round(time.monotonic() - killed_at, 1)
        finally:  # restarted even when an assertion above failed
            _tier.stack_gw("up", "gateway1")
        cleared = time.monotonic()
        # balance returns: gateway 1 takes log records/spans again (the failover's probe)
        _stack.wait_until(
            lambda: _tier.gateway_accepted(1) > 0 or None,
            60,
            "gateway 1 taking spans/log records again after its restart",
            0.5,
        )
        seen["balanced_again_seconds_after_restart"] = round(time.monotonic() - cleared, 1)
        # the same app process keeps counting: its metrics reach a gateway exporter again
        before = demo_requests_exported(demo.service)
        _stack.wait_until(
            lambda: demo_requests_exported(demo.service) > before or None,
            60,
            "the demo's api_requests_total growing on a gateway after the restart",
        )
        return cleared

    f = run_under_load("gateway-sigkill", tmp_path, fault, load_seconds=50)
    _tier.record("gateway-sigkill-takeover", seen)
    f.update(seen)
    _assert_nothing_lost(f, app_exporters_saw_fault=False)
    assert f["takeover_seconds"] < GATEWAY_DOWN - 5, f


def test_one_elasticsearch_node_stopped_writes_continue_cluster_heals(tmp_path: Path) -> None:
    """Stop the data-only Elasticsearch node mid-load for 15 s: writes continue on the
    other (replicas promoted), nothing is lost, and the cluster is green again after."""

    def fault(_demo: _tier.DemoDriver, _sender: _tier.AckedSender) -> float:
        _tier.stack_gw("down", "elasticsearch2")
        time.sleep(15)
        _tier.stack_gw("up", "elasticsearch2")
        return time.monotonic()

    f = run_under_load("es-node-stop", tmp_path, fault, load_seconds=35)
    _assert_nothing_lost(f, app_exporters_saw_fault=False)
    status, health = _stack.http(
        "GET", f"{_stack.ES}/_cluster/health?wait_for_status=green&timeout=120s", timeout=130
    )
    assert status == 200 and health["status"] == "green" and health["number_of_nodes"] == 2


def test_elasticsearch_down_two_minutes_disk_queue_grows_bounded_and_drains(tmp_path: Path) -> None:
    """Both Elasticsearch nodes down for 2 minutes under load: the agent's disk queue grows
    (never past its configured capacity), drains once Elasticsearch is back, nothing is
    lost, and the app's p99 (it talks only to the agent) does not change."""

    def fault(_demo: _tier.DemoDriver, _sender: _tier.AckedSender) -> float:
        _tier.stack_gw("down", "elasticsearch2", "elasticsearch")
        time.sleep(120)
        _tier.stack_gw("up", "elasticsearch", "elasticsearch2")
        return time.monotonic()

    f = run_under_load("es-down-2min", tmp_path, fault, load_seconds=140, drain_timeout=300)
    _assert_nothing_lost(f, app_exporters_saw_fault=False)
    assert f["agent_queue_max"] > SENDER_RATE * 30, f  # it held the outage's data
    assert f["agent_queue_max"] <= f["agent_queue_capacity"], f
    size, _ = _tier.agent_queue()
    assert size < SENDER_RATE * 5, f"queue not drained: {size}"
    before, during = f["demo_p99_ms_before"], f["demo_p99_ms_during"]
    assert not math.isnan(during) and during <= max(2 * before, before + 50), f
