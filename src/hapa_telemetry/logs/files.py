"""Daily log files with a size cap, safe for several worker processes sharing a directory.

``DailySizeRotatingFile(directory, "hapa_", max_bytes, backup_count)`` appends pre-rendered
batches of complete lines to ``<directory>/hapa_YYYYMMDD.log``:

* the date is taken from the clock at *write* time, so a long-running process starts a new
  file at midnight (UTC by default, local time with ``utc=False``);
* when a batch would push the file past ``max_bytes`` the file is renamed to ``.1`` (older
  backups move to ``.2`` ... ``.backup_count``; the oldest is deleted) and a new file is
  started. ``max_bytes <= 0`` means no size cap. ``backup_count == 0`` means the full file is
  deleted (the size cap is kept, the old lines are not). A batch is split only between
  lines; a single line longer than ``max_bytes`` gets a file of its own;
* with ``retention_days > 0``, at rollover (the first write of a process, and the first write
  of each new day) the files of this prefix from days before the last ``retention_days``
  days (today included) are deleted, backups and gzipped copies too
  (``hapa_20250101.log``, ``.log.3``, ``.log.gz``, ``.log.2.gz``). It runs under the same
  lock, so of several processes one deletes and the others find nothing; a file that is
  already gone or cannot be deleted is skipped, never an error for the writer;
* every batch is written under an exclusive ``fcntl.flock`` on ``<directory>/.<prefix>lock``
  with one ``os.write`` loop on an ``O_APPEND`` descriptor. Inside the lock the path is
  ``stat``-ed: if its inode is not the one this process has open (another process rotated
  it, or the day changed), the file is reopened first. So two processes never rotate the
  same file, never write into a file that was just rotated away, and lines never interleave.

Why not ``concurrent-log-handler``: it is a ``logging.Handler`` that formats one
``LogRecord`` per ``emit`` and names backups after a fixed base file name; here the input is
already-rendered bytes in batches and the file name carries the current date, so the small
lock-based implementation below is simpler than adapting it and takes one lock per batch
instead of one per line.

Errors (disk full, permission denied, directory removed) are raised as ``OSError`` from
:meth:`write`; the queue writer catches and counts them, callers of the logger never see them.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import re
import time
from collections.abc import Callable
from typing import Final

__all__ = ["DailySizeRotatingFile"]

_OPEN_FLAGS: Final = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class DailySizeRotatingFile:
    """Append-only sink ``<directory>/<prefix>YYYYMMDD.log`` with size rotation.

    Not thread-safe by itself (the queue writer calls it from one thread); process-safe.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        prefix: str,
        max_bytes: int,
        backup_count: int,
        *,
        utc: bool = True,
        clock: Callable[[], float] = time.time,
        mode: int = 0o644,
        retention_days: int = 0,
    ) -> None:
        if backup_count < 0:
            raise ValueError(f"backup_count must be >= 0, got {backup_count}")
        if retention_days < 0:
            raise ValueError(f"retention_days must be >= 0, got {retention_days}")
        self.directory = os.fspath(directory)
        self.prefix = prefix
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self.utc = utc
        self._clock = clock
        self._mode = mode
        os.makedirs(self.directory, exist_ok=True)
        self._lock_path = os.path.join(self.directory, f".{prefix}lock")
        self._pid = -1
        self._lock_fd = -1
        self._fd = -1
        self._fd_path = ""
        self._fd_ino: tuple[int, int] = (0, 0)
        self._day_key = -1
        self._day_path = ""
        self.retention_days = retention_days
        self._pruned_for = ""  # the day file whose rollover last pruned old days
        self._old_file = re.compile(
            rf"^{re.escape(prefix)}(\d{{4}})(\d{{2}})(\d{{2}})\.log(?:\.\d+)?(?:\.gz)?$"
        )
        self.pruned = 0  # files deleted by this process's retention (tests, self-telemetry)
        self.rotations = 0  # rotations done by this process (for tests and self-telemetry)

    # --- naming -------------------------------------------------------------------------
    def path_for(self, timestamp: float) -> str:
        """The file name in use at ``timestamp``."""
        t = time.gmtime(timestamp) if self.utc else time.localtime(timestamp)
        return os.path.join(self.directory, f"{self.prefix}{t.tm_year:04d}{t.tm_mon:02d}"
                                            f"{t.tm_mday:02d}.log")

    @property
    def current_path(self) -> str:
        """The file name a write now would go to."""
        return self._current_path()

    def _current_path(self) -> str:
        now = self._clock()
        # Cheap cache: same second-of-day bucket -> same name; recompute at most once a
        # minute (a day boundary is always a minute boundary in every time zone).
        key = int(now // 60)
        if key != self._day_key:
            self._day_path = self.path_for(now)
            self._day_key = key
        return self._day_path

    # --- descriptors --------------------------------------------------------------------
    def _ensure_process(self) -> None:
        # After fork the child shares the parent's open file descriptions; flock locks belong
        # to the description, so the child must open its own or the lock would not exclude.
        pid = os.getpid()
        if pid != self._pid:
            self._close_fds()
            self._pid = pid

    def _lock_fd_get(self) -> int:
        if self._lock_fd < 0:
            os.makedirs(self.directory, exist_ok=True)
            self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT
                                    | getattr(os, "O_CLOEXEC", 0), self._mode)
        return self._lock_fd

    def _open(self, path: str) -> int:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
        try:
            fd = os.open(path, _OPEN_FLAGS, self._mode)
        except FileNotFoundError:  # directory removed under us: recreate it once
            os.makedirs(self.directory, exist_ok=True)
            fd = os.open(path, _OPEN_FLAGS, self._mode)
        st = os.fstat(fd)
        self._fd, self._fd_path, self._fd_ino = fd, path, (st.st_dev, st.st_ino)
        return st.st_size

    def _close_fds(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._lock_fd = -1
        self._fd_path = ""

    # --- writing ------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Append ``data`` (complete lines). Raises ``OSError`` on I/O failure."""
        if not data:
            return
        self._ensure_process()
        lock_fd = self._lock_fd_get()
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        try:
            self._write_locked(data)
        finally:
            fcntl.flock(lock_fd, fcntl.LOCK_UN)

    def _size_of_current(self, path: str) -> int:
        """Open ``path`` if ours is not it (rotated by someone else, new day); its size."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return self._open(path)
        if self._fd < 0 or path != self._fd_path or (st.st_dev, st.st_ino) != self._fd_ino:
            return self._open(path)
        return st.st_size

    def _write_locked(self, data: bytes) -> None:
        path = self._current_path()
        if self.retention_days > 0 and path != self._pruned_for:
            self._pruned_for = path
            self._prune(self._clock())
        size = self._size_of_current(path)
        cap = self.max_bytes
        if cap <= 0 or size + len(data) <= cap:
            self._write_all(data)
            return
        view = memoryview(data)
        pos, end = 0, len(data)
        while pos < end:
            room = cap - size
            if end - pos <= room:
                self._write_all(view[pos:])
                return
            # Longest run of whole lines that fits in the room left.
            cut = data.rfind(b"\n", pos, pos + room) + 1 if room > 0 else 0
            if cut > pos:
                self._write_all(view[pos:cut])
                size += cut - pos
                pos = cut
            elif size == 0:
                # One line longer than the cap: it gets a file of its own.
                nl = data.find(b"\n", pos)
                cut = end if nl < 0 else nl + 1
                self._write_all(view[pos:cut])
                size += cut - pos
                pos = cut
            if pos < end:
                self._rotate(path)
                size = self._open(path)

    def _write_all(self, chunk: bytes | memoryview) -> None:
        fd = self._fd
        view = memoryview(chunk)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    def _rotate(self, path: str) -> None:
        """Shift ``path`` -> ``.1`` -> ``.2`` ...; called with the lock held."""
        if self.backup_count <= 0:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        else:
            # Only shift the backups that exist (.1 .. .k, contiguous): with a large
            # backup_count this is k renames, not backup_count failed ones.
            k = 0
            while k < self.backup_count and os.path.exists(f"{path}.{k + 1}"):
                k += 1
            for i in range(min(k, self.backup_count - 1), 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(f"{path}.{i}", f"{path}.{i + 1}")
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, f"{path}.1")
        self.rotations += 1

    def _prune(self, now: float) -> None:
        """Delete this prefix's files of days before the retention window; lock held."""
        t = time.gmtime(now) if self.utc else time.localtime(now)
        first_kept = datetime.date(t.tm_year, t.tm_mon, t.tm_mday) - datetime.timedelta(
            days=self.retention_days - 1
        )
        try:
            entries = os.listdir(self.directory)
        except OSError:
            return
        for entry in entries:
            match = self._old_file.match(entry)
            if match is None:
                continue
            try:
                day = datetime.date(*(int(part) for part in match.groups()))
            except ValueError:  # not a date (hapa_20251399.log): not ours to delete
                continue
            if day < first_kept:
                try:
                    os.unlink(os.path.join(self.directory, entry))
                except OSError:  # already deleted by another process, or not ours
                    continue
                self.pruned += 1

    def flush(self) -> None:
        """Nothing is buffered in this process (one ``os.write`` per batch)."""

    def fsync(self) -> None:
        """Force this process's file to disk (used on shutdown if asked)."""
        if self._fd >= 0 and self._pid == os.getpid():
            os.fsync(self._fd)

    def close(self) -> None:
        """Close the descriptors; a later :meth:`write` reopens them."""
        self._close_fds()
        self._pid = -1

    def __repr__(self) -> str:
        return (f"DailySizeRotatingFile({self.directory!r}, {self.prefix!r}, "
                f"max_bytes={self.max_bytes}, backup_count={self.backup_count})")
