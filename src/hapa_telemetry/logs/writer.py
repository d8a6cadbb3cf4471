"""Move log I/O off the request path: a bounded queue and one daemon thread writing batches.

``QueueWriter([(StreamSink(sys.stdout), logging.INFO), (file_sink, logging.INFO),
(error_sink, logging.ERROR)])`` takes already-rendered lines with :meth:`QueueWriter.submit`
and writes them from one background thread, in batches, to every sink whose minimum level the
line reaches.

* ``submit`` appends to a ``collections.deque`` and returns; it wakes the writer thread only
  when that thread is asleep, and the thread then lingers ``linger`` seconds (default 5 ms) so
  that one wake-up writes a batch instead of one line. When ``max_queue`` lines are waiting,
  ``submit`` drops the line, counts it in ``dropped`` and returns ``False``; the next batch
  starts with one warning line saying how many lines were lost.
* ``flush(timeout)`` returns when every line submitted before it has been written;
  ``shutdown(timeout)`` flushes, stops the thread and closes the sinks (idempotent).
  Lines submitted after ``shutdown`` (late atexit handlers) are written synchronously.
* Sink failures never reach the caller: they are counted in ``errors`` and the first one per
  sink is reported once on ``sys.__stderr__``.
* Fork safety: after ``os.fork()`` the child gets fresh locks, an empty queue (the parent
  still writes its own pending lines) and starts its own thread on first use. Before the fork
  the forking thread waits (up to 1 s) for a batch in progress, so no sink lock is copied
  into the child while held.
* When no thread can be started (interpreter shutdown), lines are written synchronously.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import IO, Any, Protocol

import orjson

__all__ = ["QueueWriter", "Sink", "StreamSink", "drop_warning_json"]


class Sink(Protocol):
    """Anything that accepts a batch of complete lines."""

    def write(self, data: bytes) -> None: ...  # pragma: no cover - protocol

    def flush(self) -> None: ...  # pragma: no cover - protocol

    def close(self) -> None: ...  # pragma: no cover - protocol


class StreamSink:
    """Writes to a text or binary stream (``sys.stdout``): bytes to ``stream.buffer`` when it
    has one, else decoded to the text stream. ``close`` flushes but never closes the stream."""

    def __init__(self, stream: IO[Any]) -> None:
        self.stream = stream
        buf = getattr(stream, "buffer", None)
        self._text_first = False  # flush the text layer first (it may hold print() output)
        self._binary: Any = None
        if buf is not None and hasattr(buf, "write"):
            self._binary, self._text_first = buf, True
        elif isinstance(stream, (io.RawIOBase, io.BufferedIOBase)) or not hasattr(
            stream, "encoding"
        ):
            self._binary = stream

    def write(self, data: bytes) -> None:
        if self._binary is not None:
            if self._text_first:
                with contextlib.suppress(Exception):
                    self.stream.flush()
            self._binary.write(data)
        else:
            self.stream.write(data.decode("utf-8", "replace"))

    def flush(self) -> None:
        if self._binary is not None:
            self._binary.flush()
        else:
            self.stream.flush()

    def close(self) -> None:
        self.flush()

    def __repr__(self) -> str:
        return f"StreamSink({getattr(self.stream, 'name', self.stream)!r})"


def drop_warning_json(count: int) -> bytes:
    """The JSON line that reports ``count`` dropped lines."""
    now = time.time()
    ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}+00:00"
    return orjson.dumps(
        {
            "timestamp": ts,
            "level": "WARNING",
            "logger": "hapa_telemetry",
            "message": f"hapa-telemetry dropped {count} log lines (log queue full)",
            "event_type": "log_dropped",
            "dropped": count,
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )


_WARNING = logging.WARNING


class _FlushMarker:
    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()


class QueueWriter:
    """Bounded queue + one daemon writer thread. See the module docstring."""

    def __init__(
        self,
        sinks: Sequence[tuple[Sink, int]],
        *,
        max_queue: int = 10000,
        linger: float = 0.02,
        max_batch: int = 2048,
        drop_line: Callable[[int], bytes] = drop_warning_json,
        register_atexit: bool = False,
        name: str = "hapa-telemetry-log-writer",
    ) -> None:
        if max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        self.sinks: list[tuple[Sink, int]] = list(sinks)
        self.max_queue = max_queue
        self.linger = linger
        self.max_batch = max_batch
        self._drop_line = drop_line
        self._name = name
        self.written = 0  # lines written (counted once per line, not per sink)
        self.dropped = 0  # lines refused because the queue was full
        self.errors = 0  # failed sink writes
        self._reported_dropped = 0
        self._failed_sinks: set[int] = set()
        self._closed = False
        self._init_runtime()
        ref = weakref.ref(self)
        os.register_at_fork(
            before=lambda: _call(ref, "_before_fork"),
            after_in_parent=lambda: _call(ref, "_after_fork_parent"),
            after_in_child=lambda: _call(ref, "_after_fork_child"),
        )
        if register_atexit:
            atexit.register(_call, ref, "_atexit")

    def _init_runtime(self) -> None:
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._sleeping = False
        self._flush_pending = False
        self._io_lock = threading.Lock()  # held while a batch goes to the sinks
        self._start_lock = threading.Lock()
        self._drop_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._fork_locked = False

    # --- producer side ------------------------------------------------------------------
    def submit(self, levelno: int, line: bytes) -> bool:
        """Queue one rendered line (ending in ``\\n``). Never blocks; ``False`` = dropped."""
        if self._thread is None and not self._start():
            self._write_batch([(levelno, line)])  # no thread possible: write synchronously
            return True
        q = self._queue
        if len(q) >= self.max_queue:
            with self._drop_lock:
                self.dropped += 1
            return False
        q.append((levelno, line))
        if self._sleeping:
            self._wake.set()
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every line submitted so far is written. ``True`` when it was."""
        if self._thread is None or not self._thread.is_alive():
            self._drain_sync()
            return not self._queue
        marker = _FlushMarker()
        self._flush_pending = True  # the thread skips its linger wait
        self._queue.append(marker)
        self._wake.set()
        return marker.done.wait(timeout)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush, stop the thread, close the sinks. Idempotent; ``True`` if all was written."""
        if self._closed:
            return True
        ok = self.flush(timeout)
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.append(_STOP)
            self._wake.set()
            thread.join(max(0.0, timeout))
        self._thread = None  # later submits see no thread, _start refuses: synchronous writes
        self._drain_sync()
        for sink, _ in self.sinks:
            try:
                sink.close()
            except Exception as exc:
                self._sink_error(sink, exc)
        return ok

    # --- thread -------------------------------------------------------------------------
    def _start(self) -> bool:
        if self._closed:
            return False
        with self._start_lock:
            if self._thread is not None:
                return True
            t = threading.Thread(target=self._run, name=self._name, daemon=True)
            try:
                t.start()
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                return False
            self._thread = t
            return True

    def _run(self) -> None:
        q = self._queue
        wake = self._wake
        while True:
            if not q:
                self._sleeping = True
                wake.clear()
                if not q:
                    wake.wait(1.0)
                self._sleeping = False
                if not q:
                    continue
            # Let a batch gather — also right after a write, when only the few lines that
            # came in meanwhile are queued (else a busy server writes a stream of tiny
            # batches, a flock/stat/write each); flush/shutdown cut the wait short.
            if self.linger > 0 and len(q) < self.max_batch and not self._flush_pending:
                wake.clear()
                wake.wait(self.linger)
            batch: list[tuple[int, bytes]] = []
            markers: list[_FlushMarker] = []
            stop = False
            popleft = q.popleft
            while q and len(batch) < self.max_batch:
                item = popleft()
                if type(item) is tuple:
                    batch.append(item)
                elif item is _STOP:
                    stop = True
                    break
                else:
                    markers.append(item)
                    self._flush_pending = False
                    break  # write what came before the marker, then release it
            if batch or self.dropped != self._reported_dropped:
                try:
                    self._write_batch(batch)
                except Exception as exc:  # never let the thread die
                    self._sink_error(self, exc)
            for m in markers:
                m.done.set()
            if stop:
                return

    def _drain_sync(self) -> None:
        """Write whatever is queued from the calling thread (no writer thread running)."""
        q = self._queue
        batch: list[tuple[int, bytes]] = []
        while q:
            item = q.popleft()
            if type(item) is tuple:
                batch.append(item)
            elif isinstance(item, _FlushMarker):
                item.done.set()
        if batch or self.dropped != self._reported_dropped:
            self._write_batch(batch)

    def _write_batch(self, batch: list[tuple[int, bytes]]) -> None:
        with self._io_lock:
            n = len(batch)
            dropped = self.dropped
            if dropped != self._reported_dropped:
                try:
                    warning = self._drop_line(dropped - self._reported_dropped)
                    batch.insert(0, (_WARNING, warning))
                except Exception as exc:
                    self._sink_error(self, exc)
                self._reported_dropped = dropped
            for sink, min_level in self.sinks:
                try:
                    data = b"".join([line for lv, line in batch if lv >= min_level])
                    if not data:
                        continue
                    sink.write(data)
                    sink.flush()
                except Exception as exc:
                    self._sink_error(sink, exc)
            self.written += n

    def _sink_error(self, sink: object, exc: BaseException) -> None:
        self.errors += 1
        if id(sink) in self._failed_sinks:
            return
        self._failed_sinks.add(id(sink))
        err = sys.__stderr__
        if err is not None:
            with contextlib.suppress(Exception):
                err.write(f"hapa-telemetry: log sink {sink!r} failed: {type(exc).__name__}: "
                          f"{exc} (further failures are only counted)\n")
                err.flush()

    # --- fork / exit hooks --------------------------------------------------------------
    def _before_fork(self) -> None:
        self._fork_locked = self._io_lock.acquire(timeout=1.0)

    def _after_fork_parent(self) -> None:
        if self._fork_locked:
            self._fork_locked = False
            self._io_lock.release()

    def _after_fork_child(self) -> None:
        self._init_runtime()  # new locks, empty queue, no thread: started on first submit
        self.written = self.dropped = self.errors = self._reported_dropped = 0
        self._failed_sinks = set()

    def _atexit(self) -> None:
        self.shutdown(5.0)


def _call(ref: weakref.ref[QueueWriter], method: str) -> None:
    obj = ref()
    if obj is not None:
        with contextlib.suppress(Exception):
            getattr(obj, method)()
