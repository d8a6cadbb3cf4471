"""Cost of exemplars on the request path: one histogram record with and without them.

The package's request-duration histogram (same view, buckets and attribute dict reuse as
instruments.py) on a MeterProvider with the package's exemplar-aware Prometheus reader,
recorded ``--records`` times per round in each mode:

  off            AlwaysOffExemplarFilter (what the record costs without exemplars)
  trace-based    the package's filter, a sampled span current (an exemplar offered
                 on every record: the worst case)
  not-sampled    the package's filter, an unsampled span current (filtered out)

Prints ns per record (median of ``--rounds`` interleaved rounds) and what tracemalloc
sees: bytes still allocated after the loop per record (retained) and the peak during it.
Run: ``.venv/bin/python bench/exemplar_bench.py`` (≈ 20 s).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from hapa_telemetry import names
from hapa_telemetry.exemplars import ExemplarPrometheusReader, ExemplarRegistry
from hapa_telemetry.instruments import views

RESULTS = Path(__file__).parent / "results"


def _span_context(sampled: bool) -> Any:
    ctx = SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else 0),
    )
    return trace.set_span_in_context(NonRecordingSpan(ctx))


def _recorder(mode: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    exemplar_filter = AlwaysOffExemplarFilter() if mode == "off" else TraceBasedExemplarFilter()
    registry = ExemplarRegistry(auto_describe=True)
    provider = MeterProvider(
        metric_readers=[
            ExemplarPrometheusReader(registry=registry, scope_info_enabled=False),
            InMemoryMetricReader(),
        ],
        views=views(),
        exemplar_filter=exemplar_filter,
    )
    histogram = provider.get_meter("bench").create_histogram(
        names.API_REQUEST_DURATION_SECONDS, unit="s"
    )
    attrs = {names.LABEL_METHOD: "GET", names.LABEL_ENDPOINT: "/api/v1/items/{item_id}"}
    ctx = None if mode == "off" else _span_context(sampled=mode == "trace-based")
    values = [0.003, 0.02, 0.3, 2.6, 0.07]  # several buckets

    def run(n: int) -> None:
        token = otel_context.attach(ctx) if ctx is not None else None
        try:
            record = histogram.record
            for i in range(n):
                record(values[i % 5], attrs)
        finally:
            if token is not None:
                otel_context.detach(token)

    return run, provider.shutdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--save", action="store_true", help="write bench/results/*.json")
    args = parser.parse_args()
    modes = ("off", "trace-based", "not-sampled")
    recorders = {m: _recorder(m) for m in modes}
    timings: dict[str, list[float]] = {m: [] for m in modes}
    for m in modes:
        recorders[m][0](1_000)  # warm up: first-time series and reservoir creation
    for r in range(args.rounds):
        for m in modes[r % 3:] + modes[: r % 3]:
            gc.collect()
            began = time.perf_counter()
            recorders[m][0](args.records)
            timings[m].append((time.perf_counter() - began) / args.records * 1e9)
    memory: dict[str, dict[str, float]] = {}
    for m in modes:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        recorders[m][0](args.records // 10)
        gc.collect()
        after = tracemalloc.take_snapshot()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        retained = sum(s.size_diff for s in after.compare_to(before, "filename"))
        memory[m] = {
            "retained_bytes_per_record": round(retained / (args.records // 10), 3),
            "peak_bytes": peak,
        }
    began = time.perf_counter()
    x = 0
    for i in range(1_000_000):
        x += i
    reference = time.perf_counter() - began
    print(f"histogram.record, {args.records} records x {args.rounds} rounds (median); "
          f"machine reference: a 1M-step Python loop takes {reference:.3f} s")
    print(f"{'mode':<12} {'ns/record':>10} {'vs off':>8} {'retained B/rec':>15} {'peak B':>8}")
    base = statistics.median(timings["off"])
    result: dict[str, object] = {"reference_loop_seconds": round(reference, 3)}
    for m in modes:
        med = statistics.median(timings[m])
        result[m] = {"ns_per_record": round(med, 1), **memory[m]}
        print(f"{m:<12} {med:>10.0f} {med / base:>7.2f}x "
              f"{memory[m]['retained_bytes_per_record']:>15.3f} {memory[m]['peak_bytes']:>8}")
    for _, shutdown in recorders.values():
        shutdown()
    if args.save:
        RESULTS.mkdir(exist_ok=True)
        out = RESULTS / time.strftime("exemplar-%Y%m%d-%H%M%S.json", time.gmtime())
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"saved {out}")


if __name__ == "__main__":
    main()
