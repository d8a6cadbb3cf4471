"""What the package adds to one request, measured in-process (no sockets, no wrk).

Drives ``GET /api/v1/items/42`` (bench/apps/common.py) straight through the ASGI app
in a loop and reports the event-loop thread's CPU time per request — the time a request
holds the GIL — for bare FastAPI and the embedded default (no export, the two lines to a
file). Each variant runs in its own process; rounds are interleaved; the table shows the
minimum and median over rounds and the overhead against bare. Less sensitive to a busy
machine than bench/http_bench.py (thread CPU time, not wall-clock throughput).

    .venv/bin/python bench/request_path.py                      # 5 rounds x 4000 requests
    .venv/bin/python bench/request_path.py --profile            # cProfile of the hapa loop
    .venv/bin/python bench/request_path.py --other /path/to/other/venv/bin/python
        # adds "hapa-other": the same app under another checkout's interpreter (before/after)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
PATH = "/api/v1/items/42"


def _child(variant: str, n: int, profile: bool) -> None:
    sys.path.insert(0, str(BENCH / "apps"))
    os.environ["LOG_TO_STDOUT"] = "false"
    os.environ.setdefault("LOG_DIRECTORY", tempfile.mkdtemp(prefix="hapa-reqpath-"))
    from common import add_routes
    from fastapi import FastAPI

    app = add_routes(FastAPI())
    if variant.startswith("hapa"):
        import hapa_telemetry

        hapa_telemetry.configure()
        hapa_telemetry.instrument_fastapi(app)
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench"),
                    (b"accept", b"*/*")],
    }

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start" and message["status"] != 200:
            raise SystemExit(f"status {message['status']}")

    async def loop(count: int) -> None:
        for _ in range(count):
            await app(dict(scope, state={}), receive, send)  # type: ignore[arg-type]

    asyncio.run(loop(300))  # warm-up: routes, caches, the writer thread
    if profile:
        import cProfile
        import pstats

        cProfile.runctx("asyncio.run(loop(n))", globals(), {"loop": loop, "n": n,
                                                            "asyncio": asyncio},
                        "/tmp/hapa-request-path.prof")
        pstats.Stats("/tmp/hapa-request-path.prof").sort_stats("tottime").print_stats(30)
        return
    t0 = time.thread_time()
    asyncio.run(loop(n))
    print((time.thread_time() - t0) / n * 1e6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--other", help="another interpreter for a 'hapa-other' variant")
    ap.add_argument("--profile", action="store_true", help="cProfile the hapa loop")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.requests, args.profile)
        return
    if args.profile:
        _child("hapa", args.requests, True)
        return
    variants = {"bare": sys.executable, "hapa": sys.executable}
    if args.other:
        variants["hapa-other"] = args.other
    results: dict[str, list[float]] = {v: [] for v in variants}
    names = list(variants)
    for r in range(args.rounds):
        for i in range(len(names)):
            v = names[(r + i) % len(names)]
            out = subprocess.run(
                [variants[v], __file__, "--child", v, "--requests", str(args.requests)],
                capture_output=True, text=True, check=True,
            )
            results[v].append(float(out.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1}/{args.rounds} {v:12s} {results[v][-1]:7.1f} µs/request",
                  flush=True)
    bare = min(results["bare"])
    print("\n| variant | min µs/req | median µs/req | added to bare (min) | bare/variant |")
    print("|---|---:|---:|---:|---:|")
    for v in names:
        lo, med = min(results[v]), statistics.median(results[v])
        print(f"| {v} | {lo:.1f} | {med:.1f} | {lo - bare:+.1f} | {bare / lo:.2f} |")
    print(f"\nload average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
