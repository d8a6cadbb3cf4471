"""Several real worker processes share one log directory: no line lost, duplicated, split or
interleaved, however often the files rotate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

WORKER = textwrap.dedent(
    """
    import logging, os, sys, time
    from hapa_telemetry.logs.files import DailySizeRotatingFile
    from hapa_telemetry.logs.render import render_json
    from hapa_telemetry.logs.writer import QueueWriter

    directory, worker, n, max_bytes, backups = sys.argv[1], sys.argv[2], int(sys.argv[3]), \\
        int(sys.argv[4]), int(sys.argv[5])
    switch_at = int(sys.argv[6]) if len(sys.argv) > 6 else -1
    day1, day2 = 1735689599.0, 1735689601.0  # 2024-12-31 23:59:59 / 2025-01-01 00:00:01 UTC
    state = {"i": 0}
    clock = (lambda: day1 if state["i"] < switch_at else day2) if switch_at >= 0 else time.time
    main = DailySizeRotatingFile(directory, "hapa_", max_bytes, backups, clock=clock)
    err = DailySizeRotatingFile(directory, "error_", max_bytes, backups, clock=clock)
    w = QueueWriter([(main, logging.INFO), (err, logging.ERROR)], max_queue=1_000_000,
                    register_atexit=True)
    for i in range(n):
        state["i"] = i
        level = logging.ERROR if i % 10 == 0 else logging.INFO
        line = render_json({"worker": worker, "i": i, "level": logging.getLevelName(level),
                            "pad": "x" * (i % 37), "msg": "line\\nwith newline"})
        w.submit(level, line)
        if switch_at >= 0:
            w.flush(10)  # the injected clock is read at write time
    # No explicit shutdown: the atexit hook must flush everything.
    """
)


def _run_workers(tmp_path: Path, n_workers: int, n: int, max_bytes: int, backups: int,
                 *extra: str) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen([sys.executable, str(script), str(tmp_path / "logs"), f"w{k}", str(n),
                          str(max_bytes), str(backups), *extra], env=env)
        for k in range(n_workers)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0


def _read(directory: Path, prefix: str) -> tuple[list[dict[str, object]], list[Path]]:
    files = sorted(directory.glob(f"{prefix}*.log*"))
    records = []
    for f in files:
        data = f.read_bytes()
        assert data == b"" or data.endswith(b"\n"), f"{f} ends in a partial line"
        for raw in data.split(b"\n")[:-1]:
            records.append(json.loads(raw))  # every line is one complete JSON object
    return records, files


def test_four_processes_rotating_often_lose_nothing(tmp_path: Path) -> None:
    """4 processes x 3000 lines, 16 KiB cap: every line exactly once, valid JSON, caps held."""
    n_workers, n, cap = 4, 3000, 16 * 1024
    _run_workers(tmp_path, n_workers, n, cap, 10_000)
    records, files = _read(tmp_path / "logs", "hapa_")
    seen = Counter((r["worker"], r["i"]) for r in records)
    assert len(seen) == n_workers * n
    assert set(seen.values()) == {1}
    assert len(files) > 20  # many rotations really happened
    assert all(f.stat().st_size <= cap for f in files)
    assert all(r["msg"] == "line\nwith newline" for r in records)
    # Per worker, lines appear in the order written (across backups: oldest = highest .N).
    def age(f: Path) -> int:
        suffix = f.name.rsplit(".", 1)[-1]
        return -int(suffix) if suffix.isdigit() else 0
    ordered = []
    for f in sorted(files, key=age):
        ordered.extend(json.loads(x) for x in f.read_bytes().splitlines())
    for k in range(n_workers):
        mine = [r["i"] for r in ordered if r["worker"] == f"w{k}"]
        assert mine == list(range(n))
    errors, _ = _read(tmp_path / "logs", "error_")
    assert sorted((r["worker"], r["i"]) for r in errors) == sorted(
        (f"w{k}", i) for k in range(n_workers) for i in range(0, n, 10)
    )


def test_processes_roll_over_at_midnight(tmp_path: Path) -> None:
    """With an injected clock crossing midnight, lines land in the file of their own day."""
    n_workers, n, switch = 3, 400, 150
    _run_workers(tmp_path, n_workers, n, 8 * 1024, 1000, str(switch))
    day1, _ = _read(tmp_path / "logs", "hapa_20241231")
    day2, _ = _read(tmp_path / "logs", "hapa_20250101")
    assert sorted((r["worker"], r["i"]) for r in day1) == sorted(
        (f"w{k}", i) for k in range(n_workers) for i in range(switch))
    assert sorted((r["worker"], r["i"]) for r in day2) == sorted(
        (f"w{k}", i) for k in range(n_workers) for i in range(switch, n))


def test_forked_workers_sharing_parent_writer(tmp_path: Path) -> None:
    """A writer built before fork (gunicorn --preload style) works in every child."""
    import logging

    from hapa_telemetry.logs.files import DailySizeRotatingFile
    from hapa_telemetry.logs.writer import QueueWriter

    directory = tmp_path / "logs"
    sink = DailySizeRotatingFile(directory, "hapa_", 4096, 10_000)
    w = QueueWriter([(sink, logging.DEBUG)])
    w.submit(logging.INFO, b'{"worker":"parent","i":0}\n')
    w.flush(5)
    pids = []
    for k in range(3):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                for i in range(2000):
                    w.submit(logging.INFO, json.dumps({"worker": f"c{k}", "i": i}).encode()
                             + b"\n")
                code = 0 if w.shutdown(30) else 3
            finally:
                os._exit(code)
        pids.append(pid)
    for pid in pids:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    w.shutdown(5)
    records, files = _read(directory, "hapa_")
    seen = Counter((r["worker"], r["i"]) for r in records)
    assert set(seen.values()) == {1}
    assert len(seen) == 3 * 2000 + 1
    assert len(files) > 10
