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
from hapa_telemetry.analysis.sources import Block, Progress, Source, read_blocks

Record = dict[str, Any]
Sink = Callable[[Record, bytes], None]
"""Receives each matching line: parsed, and its raw bytes (without the newline)."""

_KNOWN_LEVELS = frozenset(LEVELS)
_SEARCH_WHEN_HITS_BELOW = 0.5
"""Search the block for the needles when fewer than this share of its lines hold one;
otherwise splitting the block into lines is cheaper."""


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


def _hits(
    data: bytes, start: int, end: int, group: Needles, search_in: bytes
) -> Iterator[tuple[int, bytes]]:
    """(offset, line) of each line of ``data[start:end]`` holding one of ``group``, in order.

    ``search_in`` is ``data`` or a same-length transform of it (lower-cased for grep).
    """
    if len(group) == 1:
        needle = group[0]
        pos = search_in.find(needle, start, end)
        while pos >= 0:
            first = data.rfind(b"\n", start, pos) + 1 or start
            last = data.find(b"\n", pos, end)
            if last < 0:
                last = end
            yield first, data[first:last]
            pos = search_in.find(needle, last, end)
        return
    starts: set[int] = set()
    for needle in group:
        pos = search_in.find(needle, start, end)
        while pos >= 0:
            starts.add(data.rfind(b"\n", start, pos) + 1 or start)
            last = data.find(b"\n", pos, end)
            if last < 0:
                break
            pos = search_in.find(needle, last, end)
    for first in sorted(starts):
        last = data.find(b"\n", first, end)
        if last < 0:
            last = end
        yield first, data[first:last]


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
    groups: list[Needles] = []
    if fast_path:
        groups = [*filters.needles(), *(report_needles or []), *filters.level_needles()]
    grep_needle = filters.grep_needle() if fast_path else None
    primary: Needles | None = None
    primary_is_grep = False
    if groups:
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
    dense = False  # whether the previous block had needle hits on most of its lines
    for block in read_blocks(sources, progress, damaged):
        data = block.data
        stats.lines += block.lines
        start, end = block.start, block.end
        search_in = data.lower() if primary_is_grep else data
        lines: Iterator[tuple[int, bytes]]
        groups, grep = secondary, grep_needle
        if primary is not None and not dense:
            hits = list(_hits(data, start, end, primary, search_in))
            dense = len(hits) > block.lines * _SEARCH_WHEN_HITS_BELOW
            lines, by_offset = iter(hits), True
        else:
            # Most lines hold a needle: splitting is cheaper; the needles become line checks.
            lines, by_offset = enumerate(data[start:end].split(b"\n")), False
            if primary is not None:
                if primary_is_grep:
                    grep = primary[0]
                else:
                    groups = [primary, *secondary]
                sample = data[start : start + (1 << 16)]
                found = sum(sample.count(n) for n in primary)
                dense = found > sample.count(b"\n") * _SEARCH_WHEN_HITS_BELOW
        for position, line in lines:
            if not line:
                continue
            if groups and not _holds(line, groups):
                continue
            if grep is not None and grep not in line.lower():
                continue
            try:
                record = loads(line)
            except decode_error:
                if not line.strip():
                    continue
                kind = "truncated JSON" if line.lstrip().startswith(b"{") else "not JSON"
                problems.skip(kind, _where(block, position, by_offset))
                continue
            if type(record) is not dict:
                problems.skip("not a JSON object", _where(block, position, by_offset))
                continue
            stats.parsed += 1
            level = record.get("level")
            if (
                "timestamp" not in record
                or "message" not in record
                or type(level) is not str
                or level not in _KNOWN_LEVELS
            ):
                problems.check_record(record, _where(block, position, by_offset))
            if check_filters and not filters.matches(record, line):
                continue
            stats.matched += 1
            sink(record, line)


def _holds(line: bytes, groups: list[Needles]) -> bool:
    """Whether ``line`` holds one needle of every group."""
    for group in groups:
        for needle in group:
            if needle in line:
                break
        else:
            return False
    return True


def _where(block: Block, position: int, by_offset: bool) -> str:
    """``file:line`` of a line given its offset (fast path) or index in the block."""
    data = block.data
    line_no = block.first_line + (
        data.count(b"\n", block.start, position) if by_offset else position
    )
    return f"{block.source.name}:{line_no}"
