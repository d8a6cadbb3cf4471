"""QueueWriter: lines reach their sinks off-thread, losses are visible, forks keep working."""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from pathlib import Path

import pytest

from hapa_telemetry.logs.files import DailySizeRotatingFile
from hapa_telemetry.logs.writer import QueueWriter, StreamSink


class ListSink:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.threads: set[str] = set()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.threads.add(threading.current_thread().name)
        self.chunks.append(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    @property
    def lines(self) -> list[bytes]:
        return b"".join(self.chunks).splitlines(keepends=True)


class BlockingSink(ListSink):
    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def write(self, data: bytes) -> None:
        self.gate.wait(10)
        super().write(data)


class FailingSink(ListSink):
    def write(self, data: bytes) -> None:
        raise OSError(28, "No space left on device")


def _line(i: int, level: str = "INFO") -> bytes:
    return json.dumps({"level": level, "message": f"m{i}"}).encode() + b"\n"


def test_lines_are_written_by_background_thread_in_order() -> None:
    """Submitted lines arrive in order, written by the writer thread, not the caller."""
    sink = ListSink()
    w = QueueWriter([(sink, logging.DEBUG)])
    for i in range(500):
        assert w.submit(logging.INFO, _line(i))
    assert w.flush(5)
    assert sink.lines == [_line(i) for i in range(500)]
    assert sink.threads == {"hapa-telemetry-log-writer"}
    assert w.written == 500 and w.dropped == 0 and w.errors == 0
    w.shutdown(5)


def test_lines_are_batched() -> None:
    """Many lines submitted quickly are written in far fewer sink writes."""
    sink = ListSink()
    w = QueueWriter([(sink, logging.DEBUG)], linger=0.02)
    for i in range(1000):
        w.submit(logging.INFO, _line(i))
    w.flush(5)
    assert len(sink.lines) == 1000
    assert len(sink.chunks) < 100
    w.shutdown(5)


def test_a_slow_sink_under_steady_load_gets_batches_not_single_lines() -> None:
    """Lines arriving steadily while each write takes a while (a syscall-heavy file on a
    busy host) are still written in batches: the writer lingers after a write too, instead
    of writing the two or three lines that came in meanwhile straight away."""

    class SlowSink(ListSink):
        def write(self, data: bytes) -> None:
            time.sleep(0.002)
            super().write(data)

    sink = SlowSink()
    w = QueueWriter([(sink, logging.DEBUG)])  # the default linger
    deadline = time.monotonic() + 0.5
    n = 0
    while time.monotonic() < deadline:  # ~2,000 lines/s for half a second
        w.submit(logging.INFO, _line(n))
        n += 1
        time.sleep(0.0005)
    assert w.flush(5)
    assert len(sink.lines) == n
    assert len(sink.chunks) <= 40, (len(sink.chunks), n)  # 0.5 s / 20 ms + slack
    w.shutdown(5)


def test_min_level_per_sink() -> None:
    """The error sink gets only ERROR and above; the main sink gets everything."""
    main, errors = ListSink(), ListSink()
    w = QueueWriter([(main, logging.INFO), (errors, logging.ERROR)])
    w.submit(logging.DEBUG, _line(0, "DEBUG"))
    w.submit(logging.INFO, _line(1))
    w.submit(logging.ERROR, _line(2, "ERROR"))
    w.submit(logging.CRITICAL, _line(3, "CRITICAL"))
    w.flush(5)
    assert main.lines == [_line(1), _line(2, "ERROR"), _line(3, "CRITICAL")]
    assert errors.lines == [_line(2, "ERROR"), _line(3, "CRITICAL")]
    w.shutdown(5)


def test_full_queue_drops_without_blocking_and_reports_loss() -> None:
    """A full queue drops lines quickly, counts them and writes one warning line later."""
    sink = BlockingSink()
    w = QueueWriter([(sink, logging.DEBUG)], max_queue=10, linger=0)
    w.submit(logging.INFO, _line(0))
    time.sleep(0.2)  # the writer thread now blocks inside the sink with line 0
    t0 = time.perf_counter()
    results = [w.submit(logging.INFO, _line(i)) for i in range(1, 31)]
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.5
    assert results.count(True) == 10 and results.count(False) == 20
    assert w.dropped == 20
    sink.gate.set()
    assert w.flush(5)
    w.submit(logging.INFO, _line(99))
    w.flush(5)
    parsed = [json.loads(x) for x in sink.lines]
    warnings = [p for p in parsed if p.get("event_type") == "log_dropped"]
    assert len(warnings) == 1
    assert warnings[0]["level"] == "WARNING" and warnings[0]["dropped"] == 20
    assert "dropped 20 log lines" in warnings[0]["message"]
    assert [p["message"] for p in parsed if "event_type" not in p] == (
        ["m0"] + [f"m{i}" for i in range(1, 11)] + ["m99"]
    )
    w.shutdown(5)


def test_sink_errors_are_counted_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    """A failing sink never raises into the caller; other sinks still get every line."""
    bad, good = FailingSink(), ListSink()
    w = QueueWriter([(bad, logging.DEBUG), (good, logging.DEBUG)])
    for i in range(5):
        assert w.submit(logging.INFO, _line(i))
        w.flush(5)
    assert len(good.lines) == 5
    assert w.errors == 5
    w.shutdown(5)


def test_file_sink_disk_errors_are_counted(tmp_path: Path) -> None:
    """A file sink whose path is unusable counts errors instead of raising."""
    f = DailySizeRotatingFile(tmp_path, "hapa_", 0, 1, clock=lambda: 0.0)
    (tmp_path / "hapa_19700101.log").mkdir()
    w = QueueWriter([(f, logging.DEBUG)])
    assert w.submit(logging.INFO, _line(0))
    w.flush(5)
    assert w.errors == 1
    w.shutdown(5)


def test_shutdown_flushes_every_line_to_file(tmp_path: Path) -> None:
    """N lines submitted then shutdown -> N lines in the file."""
    f = DailySizeRotatingFile(tmp_path, "hapa_", 0, 1)
    w = QueueWriter([(f, logging.DEBUG)])
    n = 5000
    for i in range(n):
        assert w.submit(logging.INFO, _line(i))
    assert w.shutdown(10)
    (path,) = tmp_path.glob("hapa_*.log")
    assert path.read_bytes().splitlines(keepends=True) == [_line(i) for i in range(n)]


def test_shutdown_is_idempotent_and_later_lines_are_written_synchronously() -> None:
    """shutdown() twice is fine; a line submitted afterwards is still written."""
    sink = ListSink()
    w = QueueWriter([(sink, logging.DEBUG)])
    w.submit(logging.INFO, _line(0))
    assert w.shutdown(5)
    assert w.shutdown(5)
    assert sink.closed
    assert w.submit(logging.INFO, _line(1))
    assert sink.lines == [_line(0), _line(1)]
    assert threading.current_thread().name in sink.threads


def test_flush_without_any_line_returns_true() -> None:
    """flush() on an idle writer returns at once."""
    w = QueueWriter([(ListSink(), logging.DEBUG)])
    assert w.flush(1)
    w.shutdown(1)


def test_concurrent_producers_lose_nothing() -> None:
    """Lines submitted from several threads at once all arrive."""
    sink = ListSink()
    w = QueueWriter([(sink, logging.DEBUG)], max_queue=100_000)

    def produce(t: int) -> None:
        for i in range(2000):
            w.submit(logging.INFO, f"{t}-{i}\n".encode())

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.flush(10)
    assert sorted(sink.lines) == sorted(f"{t}-{i}\n".encode() for t in range(4)
                                        for i in range(2000))
    w.shutdown(5)


def test_stream_sink_binary_and_text() -> None:
    """StreamSink writes bytes to stream.buffer, or decoded text when there is none."""
    raw = io.BytesIO()
    text = io.TextIOWrapper(raw, encoding="utf-8")
    text.write("printed first\n")
    s = StreamSink(text)
    s.write(b"{\"a\":\"caf\xc3\xa9\"}\n")
    s.flush()
    assert raw.getvalue() == "printed first\n{\"a\":\"café\"}\n".encode()
    sio = io.StringIO()
    t = StreamSink(sio)
    t.write("é\n".encode())
    t.close()
    assert sio.getvalue() == "é\n" and not sio.closed


def test_writer_survives_fork() -> None:
    """After os.fork() the child has a working writer; the parent keeps writing too."""
    r, wfd = os.pipe()
    sink_stream = os.fdopen(wfd, "wb", buffering=0)
    sink = StreamSink(sink_stream)
    w = QueueWriter([(sink, logging.DEBUG)], linger=0.05)
    w.submit(logging.INFO, b"parent-before\n")  # may still be queued at fork time
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            ok = w.submit(logging.INFO, b"child-line\n") and w.flush(5)
            code = 0 if ok and w.written == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    w.submit(logging.INFO, b"parent-after\n")
    assert w.shutdown(5)
    sink_stream.close()
    with os.fdopen(r, "rb") as f:
        lines = f.read().splitlines()
    assert os.waitstatus_to_exitcode(status) == 0
    assert sorted(lines) == [b"child-line", b"parent-after", b"parent-before"]


def test_writes_synchronously_when_no_thread_can_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At interpreter shutdown (thread start refused) lines are written in the caller."""

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't create new thread at interpreter shutdown")

    sink = ListSink()
    w = QueueWriter([(sink, logging.DEBUG)])
    monkeypatch.setattr(threading.Thread, "start", refuse)
    assert w.submit(logging.INFO, _line(0))
    assert sink.lines == [_line(0)]
    assert sink.threads == {threading.current_thread().name}
    assert w.flush(1)
    monkeypatch.undo()
    w.shutdown(1)


def test_submit_is_cheap_for_the_caller() -> None:
    """Submitting 20,000 lines to a slow sink takes the caller well under a second."""
    sink = BlockingSink()
    w = QueueWriter([(sink, logging.DEBUG)], max_queue=50_000)
    line = _line(0)
    t0 = time.perf_counter()
    for _ in range(20_000):
        w.submit(logging.INFO, line)
    elapsed = time.perf_counter() - t0
    sink.gate.set()
    assert w.shutdown(10)
    assert elapsed < 1.0
    assert len(sink.lines) == 20_000
