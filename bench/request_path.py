"""What the package adds to one request, measured in-process (no sockets, no wrk).

Drives ``GET /api/v1/items/42`` (bench/apps/common.py) straight through the ASGI app
in a loop and reports the event-loop thread's CPU time per request — the time a request
holds the GIL — for bare FastAPI and the embedded default (no export, the two lines to a
file). Each variant runs in its own process; rounds are interleaved; the table shows the
minimum and median over rounds and the overhead against bare. Each round also prints how
many cyclic-GC collections per generation ran during the loop and their CPU time (full,
generation-2 collections hold the GIL for tens of ms: a latency spike for every request
in flight). Less sensitive to a busy
machine than bench/http_bench.py (thread CPU time, not wall-clock throughput).

    .venv/bin/python bench/request_path.py                      # 5 rounds x 4000 requests
    .venv/bin/python bench/request_path.py --profile            # cProfile of the hapa loop
    .venv/bin/python bench/request_path.py --profile --variants hapa-export  # of that one
    .venv/bin/python bench/request_path.py --variants bare,hapa,hapa-export,hapa-files
    .venv/bin/python bench/request_path.py --other /path/to/other/venv/bin/python
        # adds "hapa-other": the same app under another checkout's interpreter (before/after)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import socket
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

        telemetry = hapa_telemetry.configure()
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
    gc_stats = _watch_gc()
    t0, p0 = time.thread_time(), time.process_time()
    asyncio.run(loop(n))
    if variant.startswith("hapa"):
        telemetry.shutdown()  # the exporters' last batches count too
    t1, p1 = time.thread_time(), time.process_time()
    gc.callbacks.clear()
    counts = " ".join(f"{gc_stats[g][0]} {gc_stats[g][1] * 1e3:.1f}" for g in range(3))
    print(f"{(t1 - t0) / n * 1e6} {(p1 - p0) / n * 1e6} {counts}")


def _watch_gc() -> dict[int, list[float]]:
    """Count the cyclic GC's collections per generation and their CPU time (thread)."""
    stats: dict[int, list[float]] = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    started = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.thread_time()
        else:
            entry = stats[info["generation"]]
            entry[0] += 1
            entry[1] += time.thread_time() - started[0]

    gc.callbacks.append(callback)
    return stats


# variant -> extra environment (hapa variants); the sink's endpoint is filled in by main()
EXPORT_ENV = {
    "hapa": {},
    "hapa-export": {"OTEL_EXPORTER_OTLP_ENDPOINT": "{sink}",
                    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                    "OTEL_METRIC_EXPORT_INTERVAL": "5000"},
    "hapa-files": {"OTEL_EXPORTER_OTLP_ENDPOINT": "{sink}",
                   "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                   "OTEL_METRIC_EXPORT_INTERVAL": "5000", "HAPA_LOGS_EXPORT": "files"},
    "hapa-sampled": {"OTEL_EXPORTER_OTLP_ENDPOINT": "{sink}",
                     "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                     "OTEL_METRIC_EXPORT_INTERVAL": "5000",
                     "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                     "OTEL_TRACES_SAMPLER_ARG": "0.1"},
}
# the 10 % variant without one of its signals, to see what each costs
EXPORT_ENV["hapa-sampled-nologs"] = {**EXPORT_ENV["hapa-sampled"], "OTEL_LOGS_EXPORTER": "none"}
EXPORT_ENV["hapa-sampled-nometrics"] = {**EXPORT_ENV["hapa-sampled"],
                                        "OTEL_METRICS_EXPORTER": "none"}
EXPORT_ENV["hapa-sampled-notraces"] = {**EXPORT_ENV["hapa-sampled"],
                                       "OTEL_TRACES_EXPORTER": "none"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--variants", default="bare,hapa",
                    help=f"comma-separated: bare,{','.join(EXPORT_ENV)}")
    ap.add_argument("--other", help="another interpreter (e.g. a wrapper setting PYTHONPATH "
                    "to an older checkout): adds '<variant>-other' for every hapa variant")
    ap.add_argument("--profile", action="store_true", help="cProfile the hapa loop")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.requests, args.profile)
        return
    if args.profile:  # cProfile of the first hapa variant named (default: hapa)
        first = next((v for v in args.variants.split(",") if v.startswith("hapa")), "hapa")
        args.variants, args.rounds = first, 1
    variants = {v: sys.executable for v in args.variants.split(",") if v}
    if args.other:  # a twin of every hapa variant under the other interpreter
        for v in list(variants):
            if v.startswith("hapa"):
                variants[v + "-other"] = args.other
    sink = None
    port = 0
    if any("{sink}" in "".join(EXPORT_ENV.get(v.removesuffix("-other"), {}).values())
           for v in variants):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        stats = Path(tempfile.mkdtemp(prefix="hapa-sink-")) / "stats.json"
        sink = subprocess.Popen([sys.executable, str(BENCH / "apps" / "otlp_sink.py"),
                                 str(port), str(stats)])
        time.sleep(1.0)
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    names = list(variants)
    try:
        for r in range(args.rounds):
            for i in range(len(names)):
                v = names[(r + i) % len(names)]
                env = dict(os.environ)
                for key, value in EXPORT_ENV.get(v.removesuffix("-other"), {}).items():
                    env[key] = value.replace("{sink}", f"http://127.0.0.1:{port}")
                cmd = [variants[v], __file__, "--child", v, "--requests", str(args.requests)]
                if args.profile:
                    subprocess.run([*cmd, "--profile"], check=True, env=env)
                    return
                out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
                fields = out.stdout.strip().splitlines()[-1].split()
                loop_us, proc_us = float(fields[0]), float(fields[1])
                results[v].append((loop_us, proc_us))
                gcs = fields[2:]
                gc_text = ", ".join(f"gen{g} {gcs[2 * g]}× {gcs[2 * g + 1]} ms"
                                    for g in range(3)) if len(gcs) == 6 else ""
                print(f"round {r + 1}/{args.rounds} {v:12s} loop {loop_us:7.1f} "
                      f"process {proc_us:7.1f} µs/request  GC {gc_text}", flush=True)
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(10)
    base = min(p for _, p in results["bare"]) if "bare" in results else None
    print("\nCPU µs per request: the event-loop thread (what holds the GIL on the request "
          "path) and the whole process (incl. writer and exporter threads), min / median "
          "over rounds")
    print("| variant | loop min | loop median | process min | process median "
          "| process × bare |")
    print("|---|---:|---:|---:|---:|---:|")
    for v in names:
        loops = [a for a, _ in results[v]]
        procs = [b for _, b in results[v]]
        ratio = f"{min(procs) / base:.2f}" if base else "-"
        print(f"| {v} | {min(loops):.1f} | {statistics.median(loops):.1f} | "
              f"{min(procs):.1f} | {statistics.median(procs):.1f} | {ratio} |")
    print(f"\nload average: {os.getloadavg()}")


if __name__ == "__main__":
    main()
