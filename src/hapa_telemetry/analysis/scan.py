"""The streaming reader: blocks of bytes in, matching parsed lines out to a sink.

Memory stays bounded by the block size: lines are never collected here. With a filter
whose bytes are known (a user id, a trace id, an event type …) the block is searched for
them with ``bytes.find`` and only the lines around a hit are parsed, so a selective
question costs little more than reading the files. Lines left out this way are not
parsed, hence not validated: the bad-input tally covers the lines that were parsed
(``--no-fast-path`` parses everything).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from hapa_telemetry.analysis.filters import Filters, Needles
from hapa_telemetry.analysis.records import LEVELS, Problems
from hapa_telemetry.analysis.sources import Progress, Source, read_blocks

Record = dict[str, Any]
Sink = Callable[[Record], None]

_KNOWN_LEVELS = frozenset(LEVELS)
_MAX_ALTERNATIVES_TO_SEARCH = 3


@dataclass
class ScanStats:
    """What one run read."""

    files: int = 0
    lines: int = 0
    parsed: int = 0
    matched: int = 0

    def as_dict(self) -> dict[str, int]:
        """JSON form."""
        return {
            "files": self.files,
            "lines": self.lines,
            "parsed": self.parsed,
            "matched": self.matched,
        }


def _hits(data: bytes, group: Needles, search_in: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of each line of ``data`` containing one of ``group``, in order.

    ``search_in`` is ``data`` or a same-length transform of it (lower-cased for grep).
    """
    size = len(data)
    if len(group) == 1:
        needle = group[0]
        pos = search_in.find(needle)
        while pos >= 0:
            start = data.rfind(b"\n", 0, pos) + 1
            end = data.find(b"\n", pos)
            if end < 0:
                end = size
            yield start, data[start:end]
            pos = search_in.find(needle, end)
        return
    starts: set[int] = set()
    for needle in group:
        pos = search_in.find(needle)
        while pos >= 0:
            start = data.rfind(b"\n", 0, pos) + 1
            starts.add(start)
            end = data.find(b"\n", pos)
            if end < 0:
                break
            pos = search_in.find(needle, end)
    for start in sorted(starts):
        end = data.find(b"\n", start)
        if end < 0:
            end = size
        yield start, data[start:end]


def scan(
    sources: list[Source],
    filters: Filters,
    sink: Sink,
    *,
    problems: Problems,
    progress: Progress,
    report_needles: list[Needles] | None = None,
    fast_path: bool = True,
) -> ScanStats:
    """Read every source, parse candidate lines, pass the matching ones to ``sink``.

    ``report_needles`` narrow the fast path further for a report that only looks at
    some lines (e.g. ``"request_end"`` for latency); the report still checks them.
    """
    stats = ScanStats(files=len(sources))
    groups: list[Needles] = [*filters.needles(), *(report_needles or [])] if fast_path else []
    grep_needle = filters.grep_needle() if fast_path else None
    primary: Needles | None = None
    primary_is_grep = False
    if groups and len(groups[0]) <= _MAX_ALTERNATIVES_TO_SEARCH:
        primary = groups.pop(0)
    elif grep_needle is not None:
        primary, primary_is_grep, grep_needle = (grep_needle,), True, None
    secondary = groups

    def damaged(source: Source, reason: str) -> None:
        problems.skip("damaged compressed file", f"{source.name} ({reason})")

    try:
        _loop(sources, progress, damaged, stats, primary, primary_is_grep, secondary,
              grep_needle, filters, sink, problems)
    finally:
        progress.close()
    return stats


def _loop(
    sources: list[Source],
    progress: Progress,
    damaged: Callable[[Source, str], None],
    stats: ScanStats,
    primary: Needles | None,
    primary_is_grep: bool,
    secondary: list[Needles],
    grep_needle: bytes | None,
    filters: Filters,
    sink: Sink,
    problems: Problems,
) -> None:
    check_filters = filters.active
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    for block in read_blocks(sources, progress, damaged):
        data = block.data
        stats.lines += data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        lines: Iterator[tuple[int, bytes]]
        if primary is not None:
            search_in = data.lower() if primary_is_grep else data
            lines = _hits(data, primary, search_in)
            by_offset = True
        else:
            lines = enumerate(data.split(b"\n"))
            by_offset = False
        for position, line in lines:
            if not line:
                continue
            if secondary and not all(any(n in line for n in group) for group in secondary):
                continue
            if grep_needle is not None and grep_needle not in line.lower():
                continue
            try:
                record = loads(line)
            except decode_error:
                if not line.strip():
                    continue
                kind = "truncated JSON" if line.lstrip().startswith(b"{") else "not JSON"
                problems.skip(kind, _where(block.source, block.first_line, data, position,
                                           by_offset))
                continue
            if type(record) is not dict:
                problems.skip("not a JSON object",
                              _where(block.source, block.first_line, data, position, by_offset))
                continue
            stats.parsed += 1
            level = record.get("level")
            if (
                "timestamp" not in record
                or "message" not in record
                or type(level) is not str
                or level not in _KNOWN_LEVELS
            ):
                problems.check_record(
                    record, _where(block.source, block.first_line, data, position, by_offset)
                )
            if check_filters and not filters.matches(record, line):
                continue
            stats.matched += 1
            sink(record)


def _where(source: Source, first_line: int, data: bytes, position: int, by_offset: bool) -> str:
    """``file:line`` of a line given its offset (fast path) or index in the block."""
    line_no = first_line + (data.count(b"\n", 0, position) if by_offset else position)
    return f"{source.name}:{line_no}"
