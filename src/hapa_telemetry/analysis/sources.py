"""Where log lines come from: files, a log directory (rotated and gzipped backups), stdin.

A directory is read in time order: by the date in the file name, then the size-rotated
backups oldest first (``.3`` before ``.2`` before ``.1``, gzipped or not), then the live
file. Files are recognised as gzip by their first bytes, whatever their name.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from hapa_telemetry import names

CHUNK_SIZE = 1 << 20
"""Bytes read at a time; lines are cut out of these blocks."""

_DAILY = re.compile(r"^(?P<prefix>[A-Za-z]+_)(?P<day>\d{8})\.log(?:\.(?P<backup>\d+))?(?:\.gz)?$")
_GZIP_MAGIC = b"\x1f\x8b"


class SourceError(Exception):
    """An input that cannot be read at all (missing, unreadable, no log files)."""


@dataclass(frozen=True)
class Source:
    """One input: a file path, or standard input when ``path`` is None."""

    path: Path | None
    day: str | None = None

    @property
    def name(self) -> str:
        """How the input is shown in messages."""
        return "<stdin>" if self.path is None else str(self.path)

    def size(self) -> int:
        """Bytes on disk (compressed size for gzip), 0 for stdin."""
        if self.path is None:
            return 0
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


def sort_key(path: Path) -> tuple[str, int] | None:
    """(day, -backup) for a daily log file name, None for other names.

    The live file has backup 0, so it sorts after its backups; higher backups are older.
    """
    match = _DAILY.match(path.name)
    if match is None:
        return None
    return match.group("day"), -int(match.group("backup") or 0)


def discover(
    paths: list[str],
    *,
    error_files: bool = False,
    day_range: tuple[str | None, str | None] = (None, None),
) -> list[Source]:
    """Expand the command-line inputs into sources in reading order.

    ``-`` is standard input. A directory contributes its ``hapa_*`` files (``error_*``
    with ``error_files``); named files are read whatever their name. Daily files whose
    date lies outside ``day_range`` are left out. Raises SourceError for a missing path
    or a directory without log files.
    """
    prefix = names.ERROR_FILE_PREFIX if error_files else names.LOG_FILE_PREFIX
    first_day, last_day = day_range
    keyed: list[tuple[tuple[int, str, int, int], Source]] = []
    for index, item in enumerate(paths):
        if item == "-":
            keyed.append(((1, "", 0, index), Source(None)))
            continue
        path = Path(item)
        if path.is_dir():
            found = []
            for child in path.iterdir():
                key = sort_key(child)
                if key is None or not child.name.startswith(prefix) or not child.is_file():
                    continue
                found.append((key, child))
            if not found:
                raise SourceError(f"no {prefix}YYYYMMDD.log files in {path}")
            for (day, backup), child in found:
                if (first_day and day < first_day) or (last_day and day > last_day):
                    continue
                keyed.append(((0, day, backup, index), Source(child, day)))
        elif path.exists():
            key = sort_key(path)
            if key is None:
                keyed.append(((1, "", 0, index), Source(path)))
            else:
                keyed.append(((0, key[0], key[1], index), Source(path, key[0])))
        else:
            raise SourceError(f"cannot read {path}: no such file or directory")
    keyed.sort(key=lambda pair: pair[0])
    return [source for _, source in keyed]


class Progress:
    """A one-line ``reading 42% …`` indicator on stderr, for big inputs on a terminal."""

    MIN_TOTAL = 64 << 20

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and total >= self.MIN_TOTAL
        self.done = 0
        self._shown = -1

    def advance(self, current_file_bytes: int, name: str) -> None:
        """Report progress: ``current_file_bytes`` read so far in file ``name``."""
        if not self.enabled:
            return
        percent = int(100 * (self.done + current_file_bytes) / self.total)
        if percent != self._shown:
            self._shown = percent
            label = os.path.basename(name)
            sys.stderr.write(f"\rreading {percent:3d}%  {label[:50]:<50}")
            sys.stderr.flush()

    def finish_file(self, size: int) -> None:
        """Count a whole file as read."""
        self.done += size

    def close(self) -> None:
        """Erase the indicator line."""
        if self.enabled and self._shown >= 0:
            sys.stderr.write("\r" + " " * 62 + "\r")
            sys.stderr.flush()


def _open(source: Source) -> tuple[BinaryIO, BinaryIO]:
    """(stream of uncompressed bytes, underlying raw file for position)."""
    if source.path is None:
        stdin: Any = sys.stdin.buffer
        if not isinstance(stdin, io.BufferedReader):
            stdin = io.BufferedReader(stdin)
        raw = cast(BinaryIO, stdin)
        head = stdin.peek(2)[:2]
    else:
        try:
            raw = cast(BinaryIO, open(source.path, "rb"))  # noqa: SIM115 - caller closes
        except OSError as exc:
            raise SourceError(f"cannot read {source.path}: {exc.strerror or exc}") from exc
        head = raw.read(2)
        raw.seek(0)
    if head == _GZIP_MAGIC:
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb")), raw
    return raw, raw


@dataclass
class Block:
    """Whole lines: ``data[start:end]``, ending with a newline except at end of input.

    The bounds avoid copying the chunk that was read: a line cut by the chunk boundary
    is glued into a small block of its own.
    """

    data: bytes
    start: int
    end: int
    source: Source
    first_line: int
    lines: int


def read_blocks(
    sources: list[Source],
    progress: Progress,
    on_damaged: Callable[[Source, str], None] | None = None,
) -> Iterator[Block]:
    """Blocks of whole lines from every source in order, about CHUNK_SIZE bytes each.

    A compressed file that ends early or is corrupt is reported through ``on_damaged``
    and reading goes on with the next source; an unreadable file raises SourceError.
    """
    for source in sources:
        stream, raw = _open(source)
        line_no = 1
        rest = b""
        try:
            while True:
                try:
                    data = stream.read(CHUNK_SIZE)
                except (EOFError, OSError, zlib.error) as exc:
                    if on_damaged is not None:
                        on_damaged(source, str(exc) or type(exc).__name__)
                    break
                if not data:
                    break
                cut = data.rfind(b"\n")
                if cut < 0:
                    rest += data
                    continue
                begin = 0
                if rest:
                    # The line that straddles the previous chunk and this one.
                    first = data.find(b"\n") + 1
                    yield Block(rest + data[:first], 0, len(rest) + first, source, line_no, 1)
                    line_no += 1
                    begin = first
                if begin <= cut:
                    count = data.count(b"\n", begin, cut + 1)
                    yield Block(data, begin, cut + 1, source, line_no, count)
                    line_no += count
                rest = data[cut + 1 :]
                if source.path is not None:
                    progress.advance(raw.tell(), source.name)
            if rest:
                yield Block(rest, 0, len(rest), source, line_no, rest.count(b"\n") + 1)
        finally:
            if source.path is not None:
                stream.close()
                raw.close()
                progress.finish_file(source.size())
