"""Telemetry cost of one inference call, in µs: ``with inference(...)`` (plain and cache
hit), a streamed answer through ``call.stream`` (sync and async, per call and per item),
and the same with content capture on — each minus the same work without telemetry.

    .venv/bin/python bench/inference_bench.py [--calls 20000] [--items 50] [--rounds 3]

Logs go to a discarded stream (no files, no stdout), no exporter is configured: the
figure is what the request path pays (span, metrics, the ai_inference line queued and
written by the writer thread). Timed in process CPU time, so other load on the machine
moves the figures less than wall-clock time would.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import hapa_telemetry
from hapa_telemetry import runtime

TOKENS = ["tok"] * 1000


def _sync_tokens(n: int) -> Iterator[str]:
    yield from TOKENS[:n]


async def _async_tokens(n: int) -> AsyncIterator[str]:
    for t in TOKENS[:n]:
        yield t


def _time(fn: Callable[[], None], calls: int) -> float:
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls * 1e6


def _atime(fn: Callable[[], object], calls: int) -> float:
    async def run() -> float:
        start = time.process_time()
        for _ in range(calls):
            await fn()  # type: ignore[misc]
        return (time.process_time() - start) / calls * 1e6

    return asyncio.run(run())


def _cases(items: int) -> dict[str, tuple[Callable[[], None], Callable[[], None], bool]]:
    """name -> (with telemetry, baseline, async?)."""

    def plain() -> None:
        with hapa_telemetry.inference(model="bench", prompt="p" * 200) as call:
            call.usage(input_tokens=50, output_tokens=200)

    def cached() -> None:
        with hapa_telemetry.inference(model="bench", prompt="p" * 200) as call:
            call.cached = True

    def nothing() -> None:
        pass

    def stream_sync() -> None:
        with hapa_telemetry.inference(model="bench") as call:
            for _ in call.stream(_sync_tokens(items)):
                pass

    def base_sync() -> None:
        for _ in _sync_tokens(items):
            pass

    async def stream_async() -> None:
        with hapa_telemetry.inference(model="bench") as call:
            async for _ in call.stream(_async_tokens(items)):
                pass

    async def base_async() -> None:
        async for _ in _async_tokens(items):
            pass

    return {
        "call (usage, uncached)": (plain, nothing, False),
        "call (cache hit)": (cached, nothing, False),
        f"stream sync ({items} items)": (stream_sync, base_sync, False),
        f"stream async ({items} items)": (stream_async, base_async, True),  # type: ignore[dict-item]
    }


def _configure(capture: bool) -> None:
    runtime._reset_for_tests()
    runtime.configure(
        set_global=False, log_directory=None, log_to_stdout=False, log_stream=io.StringIO(),
        genai_capture_content=capture,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="also write JSON results here")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    results: dict[str, dict[str, float]] = {}
    for capture in (False, True):
        _configure(capture)
        for name, (fn, base, is_async) in _cases(args.items).items():
            timer = _atime if is_async else _time
            timer(fn, min(2000, args.calls))  # warm-up
            over = []
            for _ in range(args.rounds):
                with_t = timer(fn, args.calls)
                without = timer(base, args.calls)
                over.append(with_t - without)
            label = f"{name}{' + content capture' if capture else ''}"
            med = statistics.median(over)
            results[label] = {"overhead_us": round(med, 2)}
            if "stream" in name:
                results[label]["per_item_us"] = round(med / args.items, 3)
            runtime.current().pipeline.flush(10)  # type: ignore[union-attr]
    runtime._reset_for_tests()
    width = max(map(len, results))
    print(f"{'case':<{width}}  overhead µs/call  (µs/item)")
    for label, row in results.items():
        extra = f"  ({row['per_item_us']})" if "per_item_us" in row else ""
        print(f"{label:<{width}}  {row['overhead_us']:>16}{extra}")
    if args.out:
        args.out.write_text(json.dumps({"load": os.getloadavg(), "args": vars(args) | {
            "out": str(args.out)}, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
