#!/usr/bin/env python3
"""Benchmark ``hapa-telemetry logs`` against jq on the seed's three log questions.

    python bench/logs_analysis.py --size-mb 200 [--dir /tmp/hapa-bench] [--gzip-backups]
           [--repeat 1] [--keep] [--markdown]

Generates a log directory of about ``--size-mb`` megabytes in the package's JSON line
format (daily file, size-rotated backups ``.1``, ``.2`` …, optionally gzip-compressed),
then times, on the same files:

1. one user's requests   ``hapa-telemetry logs --user user123 --json``
   vs the seed's ``grep user123 FILES | jq .message`` and a pure ``jq select``
2. errors by type        ``hapa-telemetry logs errors --json``
   vs ``grep ERROR FILES | jq .error_type | sort | uniq -c`` and pure jq
3. average duration      ``hapa-telemetry logs latency --json``
   vs ``grep request_end FILES | jq .duration | awk ...`` and pure jq + awk

It checks that the answers agree and prints wall time, throughput and peak memory
(``/usr/bin/time``) for each. Needs ``jq`` on PATH (Debian: ``apt-get install jq``).
Every run is bounded by ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROTATE_BYTES = 50 * 1024 * 1024
USER = "user123"
ENDPOINTS = [
    ("POST", "/api/v1/code/generate"),
    ("POST", "/api/v1/code/complete"),
    ("GET", "/api/v1/items/{item_id}"),
    ("GET", "/health"),
]
ERROR_TYPES = ["ValueError", "TimeoutError", "KeyError", "HTTPException", "RuntimeError"]


def _line(fields: dict[str, object]) -> str:
    return json.dumps(fields, ensure_ascii=False, separators=(", ", ": "))


def generate(directory: Path, size_mb: int, gzip_backups: bool, seed: int = 1) -> dict[str, object]:
    """Write the log directory; return the expected answers."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    target = size_mb * 1024 * 1024
    day = "20261126"
    moment = datetime(2026, 11, 26, 0, 0, tzinfo=timezone.utc)
    step = timedelta(milliseconds=7)
    written = 0
    part: list[str] = []
    part_bytes = 0
    parts: list[Path] = []
    expected_user_lines = 0
    expected_errors: dict[str, int] = {}
    durations_sum = 0.0
    durations_n = 0
    def base(function: str) -> dict[str, object]:
        return {"logger": "api_monitor", "module": "monitors", "function": function,
                "line": 57, "service": "hapa-backend", "environment": "production"}

    def flush(final: bool) -> None:
        nonlocal part, part_bytes
        if not part:
            return
        index = len(parts)
        path = directory / f"hapa_{day}.log.part{index}"
        path.write_text("".join(part), encoding="utf-8")
        parts.append(path)
        part, part_bytes = [], 0

    request = 0
    while written < target:
        request += 1
        moment += step
        method, endpoint = ENDPOINTS[rng.randrange(len(ENDPOINTS))]
        user = USER if rng.random() < 0.002 else f"user{rng.randrange(5000)}"
        trace = f"{rng.getrandbits(128):032x}"
        span = f"{rng.getrandbits(64):016x}"
        client = f"10.0.{rng.randrange(256)}.{rng.randrange(256)}"
        stamp = moment.isoformat()
        common = {"client_ip": client, "request_id": f"req-{request}", "user_id": user,
                  "trace_id": trace, "span_id": span, "trace_flags": "01"}
        lines = [_line({"timestamp": stamp, "level": "INFO", "message":
                        f"API 요청 시작: {method} {endpoint}", **base("log_request_start"),
                        "method": method, "endpoint": endpoint, "event_type": "request_start",
                        **common})]
        if endpoint.startswith("/api/v1/code"):
            cached = rng.random() < 0.3
            took = rng.uniform(0.001, 0.01) if cached else rng.lognormvariate(-0.5, 0.6)
            lines.append(_line({"timestamp": stamp, "level": "INFO", "message":
                                f"AI 추론 완료: {took:.4f}s (캐시: {cached})",
                                **base("log_ai_inference"),
                                "duration": took, "prompt_length": rng.randrange(20, 2000),
                                "response_length": rng.randrange(50, 8000), "cached": cached,
                                "model": "codegen-small", "event_type": "ai_inference",
                                **common}))
        status = 200
        if rng.random() < 0.03:
            error_type = ERROR_TYPES[rng.randrange(len(ERROR_TYPES))]
            status = 500
            expected_errors[error_type] = expected_errors.get(error_type, 0) + 1
            lines.append(_line({"timestamp": stamp, "level": "ERROR", "message":
                                f"오류 발생: {error_type}: something failed",
                                **base("log_error"),
                                "error_type": error_type, "error_message": "something failed",
                                "event_type": "error", **common}))
        duration = rng.lognormvariate(-2.0, 1.0)
        durations_sum += duration
        durations_n += 1
        lines.append(_line({"timestamp": stamp, "level": "INFO", "message":
                            f"API 요청 완료: {method} {endpoint} - {status} ({duration:.4f}s)",
                            **base("log_request_end"), "method": method,
                            "endpoint": endpoint, "status_code": status, "duration": duration,
                            "event_type": "request_end", **common}))
        if user == USER:
            expected_user_lines += len(lines)
        text = "\n".join(lines) + "\n"
        size = len(text.encode("utf-8"))
        part.append(text)
        part_bytes += size
        written += size
        if part_bytes >= ROTATE_BYTES:
            flush(False)
    flush(True)
    # Oldest part becomes the highest backup number; the newest is the live file.
    count = len(parts)
    for index, path in enumerate(parts):
        backup = count - 1 - index
        final = directory / (f"hapa_{day}.log" if backup == 0 else f"hapa_{day}.log.{backup}")
        path.rename(final)
        if gzip_backups and backup > 0:
            with final.open("rb") as src, gzip.open(f"{final}.gz", "wb", compresslevel=1) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            final.unlink()
    return {
        "bytes": written,
        "files": count,
        "user_lines": expected_user_lines,
        "errors": expected_errors,
        "avg_duration": durations_sum / durations_n,
    }


def ordered_files(directory: Path) -> list[str]:
    """The files oldest first, as hapa-telemetry reads them (for the jq side)."""
    def key(path: Path) -> int:
        match = re.search(r"\.log(?:\.(\d+))?", path.name)
        return -int(match.group(1) or 0) if match else 0
    return [str(p) for p in sorted(directory.glob("hapa_*"), key=key)]


_MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "done = subprocess.run(['bash', '-o', 'pipefail', '-c', sys.argv[1]], "
    "capture_output=True, text=True)\n"
    "t = time.perf_counter() - t\n"
    "use = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "sys.stderr.write(done.stderr)\n"
    "print(f'{t} {use.ru_maxrss} {use.ru_utime + use.ru_stime} {done.returncode}')\n"
    "sys.stdout.write(done.stdout)\n"
)


def timed(command: str, timeout: float) -> tuple[float, int, float, str]:
    """(wall seconds, peak RSS MiB of the largest process, CPU seconds of all, stdout)."""
    done = subprocess.run([sys.executable, "-c", _MEASURE, command], capture_output=True,
                          text=True, timeout=timeout, check=False)
    head, _, out = done.stdout.partition("\n")
    elapsed, peak_kib, cpu, status = head.split()
    if status != "0":
        raise SystemExit(f"failed ({status}): {command}\n{done.stderr[-2000:]}")
    return float(elapsed), int(peak_kib) // 1024, float(cpu), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--gzip-backups", action="store_true")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--keep", action="store_true", help="keep the generated directory")
    parser.add_argument("--skip-jq", action="store_true")
    args = parser.parse_args()
    if not args.skip_jq and shutil.which("jq") is None:
        print("jq not found: apt-get install jq (or --skip-jq)", file=sys.stderr)
        return 2
    tool = shutil.which("hapa-telemetry") or str(Path(sys.executable).parent / "hapa-telemetry")
    directory = args.dir or Path(tempfile.mkdtemp(prefix="hapa-bench-"))
    try:
        started = time.perf_counter()
        expected = generate(directory, args.size_mb, args.gzip_backups)
        print(f"generated {expected['bytes'] / 2**20:.0f} MiB in {expected['files']} files "
              f"({time.perf_counter() - started:.1f}s) in {directory}", flush=True)
        files = " ".join(ordered_files(directory))
        cat = f"zcat -f {files}" if args.gzip_backups else f"cat {files}"
        seed_in = f"{cat} | grep" if args.gzip_backups else "grep -h"
        seed_files = "" if args.gzip_backups else files
        questions = [
            ("one user's requests", [
                ("hapa-telemetry", f"{tool} logs {directory} --user {USER} --json -q | wc -l"),
                ("seed: grep | jq", f"{seed_in} {USER} {seed_files} | jq .message | wc -l"),
                ("jq select", f"{cat} | jq -c 'select(.user_id==\"{USER}\") | .message' "
                              "| wc -l"),
            ]),
            ("errors by type", [
                ("hapa-telemetry", f"{tool} logs errors {directory} --json -q"),
                ("seed: grep | jq | sort | uniq", f"{seed_in} ERROR {seed_files} | "
                                                  "jq -r .error_type | sort | uniq -c"),
                ("jq select", f"{cat} | jq -r 'select(.level==\"ERROR\") | .error_type' "
                              "| sort | uniq -c"),
            ]),
            ("average duration", [
                ("hapa-telemetry", f"{tool} logs latency {directory} --json -q"),
                ("seed: grep | jq | awk", f"{seed_in} request_end {seed_files} | "
                                          "jq .duration | awk '{s+=$1} END {print s/NR}'"),
                ("jq select | awk", f"{cat} | jq 'select(.event_type==\"request_end\") "
                                    "| .duration' | awk '{s+=$1} END {print s/NR}'"),
            ]),
        ]
        size_mb = expected["bytes"] / 2**20
        print("\n| question | command | wall s | CPU s | MiB/s (wall) | peak RSS MiB | answer |")
        print("|---|---|---:|---:|---:|---:|---|")
        for question, commands in questions:
            for label, command in commands:
                if args.skip_jq and label != "hapa-telemetry":
                    continue
                best = None
                for _ in range(args.repeat):
                    run = timed(command, args.timeout)
                    if best is None or run[0] < best[0]:
                        best = run
                assert best is not None
                elapsed, rss, cpu, out = best
                answer = _answer(question, label, out)
                shown = label.replace("|", "\\|")
                print(f"| {question} | {shown} | {elapsed:.2f} | {cpu:.2f} | "
                      f"{size_mb / elapsed:.0f} | {rss} | {answer} |", flush=True)
        print(f"\nexpected: user lines {expected['user_lines']}, errors "
              f"{sum(expected['errors'].values())} {expected['errors']}, "
              f"avg duration {expected['avg_duration']:.6f}")
    finally:
        if not args.keep and args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
    return 0


def _answer(question: str, label: str, out: str) -> str:
    text = out.strip()
    if label == "hapa-telemetry" and text.startswith("{"):
        result = json.loads(text)
        if result["report"] == "errors":
            return f"{result['total']} errors, {len(result['types'])} types"
        return f"avg {result['overall']['avg']:.6f} (n={result['overall']['count']})"
    if question == "errors by type":
        total = sum(int(row.split()[0]) for row in text.splitlines() if row.strip())
        return f"{total} errors, {len(text.splitlines())} types"
    if question == "average duration":
        return f"avg {float(text):.6f}"
    return f"{text} lines"


if __name__ == "__main__":
    raise SystemExit(main())
