"""The line filters (``--user``, ``--trace``, ``--level`` …) and their byte-level fast path.

A filter is checked twice. First on the raw bytes: a line that does not even contain the
JSON spelling of the wanted user id cannot be that user's line, so it is skipped without
parsing (``needles``). Then, on the parsed object, exactly (``matches``): the raw check
only ever lets through too much, never too little, for the values it is used on.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hapa_telemetry import names
from hapa_telemetry.analysis.records import (
    LEVEL_ALIASES,
    LEVELS,
    levels_at_or_above,
    normalize_level,
    parse_timestamp,
    utc_day,
)

#: Values whose JSON spelling is certainly the same bytes in the file: printable ASCII
#: without quote, backslash or the characters some encoders escape (<, >, &).
_PLAIN = re.compile(r"^[\x20-\x7e]+$")
_ESCAPED_BY_SOME = set('"\\<>&')

_TRACE_ID = re.compile(r"^[0-9a-fA-F]{8,32}$")

KNOWN_EVENTS: tuple[str, ...] = names.EVENT_TYPES


def _plain(value: str) -> bool:
    return bool(_PLAIN.match(value)) and not (_ESCAPED_BY_SOME & set(value))


def _json_string(value: str) -> bytes:
    return b'"' + value.encode("ascii") + b'"'


Needles = tuple[bytes, ...]
"""Alternatives: a line passes a group when it contains at least one of them."""


@dataclass(frozen=True)
class Filters:
    """Everything a line must satisfy; unset fields do not filter.

    ``trace`` is a full 32-hex trace id or a prefix of one; ``endpoint`` may hold shell
    wildcards (``/api/v1/code/*``); ``events`` is a set of event types; ``level`` is the
    minimum canonical level; ``since``/``until`` are epoch seconds (``until`` exclusive);
    ``grep`` is a case-insensitive substring of the raw line or of any string value.
    """

    user: str | None = None
    trace: str | None = None
    level: str | None = None
    events: frozenset[str] = frozenset()
    endpoint: str | None = None
    since: float | None = None
    until: float | None = None
    grep: str | None = None

    @classmethod
    def build(
        cls,
        *,
        user: str | None = None,
        trace: str | None = None,
        level: str | None = None,
        events: list[str] | None = None,
        endpoint: str | None = None,
        since: float | None = None,
        until: float | None = None,
        grep: str | None = None,
    ) -> Filters:
        """Validate and normalise user input; ValueError names the bad option."""
        canonical_level = None
        if level is not None:
            canonical_level = normalize_level(level)
            if canonical_level is None:
                raise ValueError(f"--level: unknown level {level!r} (one of {', '.join(LEVELS)})")
        if trace is not None:
            trace = trace.strip().lower()
            if not _TRACE_ID.match(trace):
                raise ValueError(
                    f"--trace: not a trace id or a prefix of at least 8 hex digits: {trace!r}"
                )
        event_set: set[str] = set()
        for item in events or []:
            event_set.update(part.strip() for part in item.split(",") if part.strip())
        if since is not None and until is not None and until <= since:
            raise ValueError("--until is not after --since")
        return cls(
            user=user,
            trace=trace,
            level=canonical_level,
            events=frozenset(event_set),
            endpoint=endpoint,
            since=since,
            until=until,
            grep=grep if grep else None,
        )

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return any(
            value not in (None, frozenset())
            for value in (
                self.user,
                self.trace,
                self.level,
                self.events,
                self.endpoint,
                self.since,
                self.until,
                self.grep,
            )
        )

    @property
    def endpoint_is_pattern(self) -> bool:
        """Whether ``endpoint`` holds wildcards (then it is matched with fnmatch)."""
        return self.endpoint is not None and any(ch in self.endpoint for ch in "*?[")

    def needles(self) -> list[Needles]:
        """Byte strings a matching line must contain (every group, one of each group), but
        for the level (see ``level_needles``).

        Only values whose bytes are certain are used; the rest is left to ``matches``.
        Groups are ordered most selective first (the scanner searches for the first).
        """
        groups: list[Needles] = []
        if self.trace is not None:
            whole = len(self.trace) == 32
            groups.append((_json_string(self.trace) if whole else self.trace.encode("ascii"),))
        if self.user is not None and _plain(self.user):
            # A numeric id may be written as a JSON number: then look for the bare digits.
            numeric = self.user.lstrip("-").isdigit()
            groups.append((self.user.encode("ascii") if numeric else _json_string(self.user),))
        if self.endpoint is not None and not self.endpoint_is_pattern and _plain(self.endpoint):
            groups.append((_json_string(self.endpoint),))
        if self.events and all(_plain(event) for event in self.events):
            groups.append(tuple(_json_string(event) for event in sorted(self.events)))
        return groups

    def level_needles(self) -> list[Needles]:
        """The level's spellings a matching line must contain (least selective: kept apart
        so the scanner tries it last)."""
        if self.level is None or self.level == "DEBUG":
            return []
        wanted = set(levels_at_or_above(self.level))
        spellings = sorted(alias for alias, canon in LEVEL_ALIASES.items() if canon in wanted)
        return [tuple(_json_string(name) for name in spellings)]

    def grep_needle(self) -> bytes | None:
        """Lower-cased bytes ``--grep`` must find in the lower-cased line, when certain.

        Only for ASCII text without characters JSON escapes; otherwise None (then
        ``matches`` checks the decoded values).
        """
        if self.grep is None or not _plain(self.grep):
            return None
        return self.grep.lower().encode("ascii")

    def day_range(self) -> tuple[str | None, str | None]:
        """``YYYYMMDD`` bounds of the daily files that can hold matching lines.

        One day of slack each side: the file date is the writer's local date.
        """
        first = utc_day(self.since, -1) if self.since is not None else None
        last = utc_day(self.until, +1) if self.until is not None else None
        return first, last

    def matches(self, record: Mapping[str, Any], raw: bytes | None = None) -> bool:
        """Whether a parsed line satisfies every filter (exactly, on the decoded values)."""
        if self.user is not None:
            value = record.get("user_id")
            if value is None or str(value) != self.user:
                return False
        if self.trace is not None:
            value = record.get("trace_id")
            if not isinstance(value, str) or not value.lower().startswith(self.trace):
                return False
        if self.level is not None:
            level = normalize_level(record.get("level"))
            if level is None or LEVELS[level] < LEVELS[self.level]:
                return False
        if self.events and record.get("event_type") not in self.events:
            return False
        if self.endpoint is not None:
            value = record.get("endpoint")
            if not isinstance(value, str):
                return False
            if self.endpoint_is_pattern:
                if not fnmatch.fnmatchcase(value, self.endpoint):
                    return False
            elif value != self.endpoint:
                return False
        if self.since is not None or self.until is not None:
            moment = parse_timestamp(record.get("timestamp"))
            if moment is None:
                return False
            if self.since is not None and moment < self.since:
                return False
            if self.until is not None and moment >= self.until:
                return False
        return self.grep is None or _grep(self.grep, record, raw)


def _grep(pattern: str, record: Mapping[str, Any], raw: bytes | None) -> bool:
    folded = pattern.casefold()
    if raw is not None:
        try:
            if folded in raw.decode("utf-8", "replace").casefold():
                return True
        except UnicodeError:  # pragma: no cover - "replace" never raises
            pass
    return any(isinstance(value, str) and folded in value.casefold() for value in record.values())


def describe_events() -> str:
    """The known event types, for help text."""
    return ", ".join(KNOWN_EVENTS)
