"""What a log line is to the analyser: levels, timestamps and the tally of bad input.

The JSON line format is the package's own (see the spec, section 2): one object per line
with ``timestamp``, ``level``, ``logger``, ``message`` first, then the caller's fields and
the trace context. Everything here tolerates lines that do not follow it: they are counted
in :class:`Problems`, never raised.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

#: Canonical level names and their order (the Python logging numbers).
LEVELS: dict[str, int] = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}

#: Spellings accepted as a known level (other loggers and OTel severity texts use them).
LEVEL_ALIASES: dict[str, str] = {
    **{name: name for name in LEVELS},
    "WARN": "WARNING",
    "FATAL": "CRITICAL",
    "TRACE": "DEBUG",
}

#: Fields every well-formed line has; a line without one is counted, then still used.
REQUIRED_FIELDS: tuple[str, ...] = ("timestamp", "level", "message")


def normalize_level(value: object) -> str | None:
    """The canonical level name for ``value``, or None when it is not a level we know."""
    if not isinstance(value, str):
        return None
    return LEVEL_ALIASES.get(value.upper())


def levels_at_or_above(minimum: str) -> list[str]:
    """Canonical level names at or above ``minimum`` (already canonical)."""
    floor = LEVELS[minimum]
    return [name for name, number in LEVELS.items() if number >= floor]


def parse_timestamp(value: object) -> float | None:
    """Seconds since the epoch for an ISO 8601 timestamp, or None when it is not one.

    Timestamps with a UTC offset are exact; naive ones (the seed's
    ``2024-12-28T10:30:00.123456``) are taken as local time of this machine, which is
    how the seed's ``datetime.now().isoformat()`` wrote them.
    """
    if not isinstance(value, str) or len(value) < 10:
        return None
    text = value
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time_arg(text: str, now: float | None = None) -> float:
    """Seconds since the epoch for a ``--since``/``--until`` value.

    Accepts a relative age (``90s``, ``15m``, ``2h``, ``1d``, ``1w``: that long before
    ``now``), ``now``, or an absolute ISO 8601 date or date-time (naive = local time).
    Raises ValueError with a message fit for the user otherwise.
    """
    current = time.time() if now is None else now
    stripped = text.strip()
    if stripped.lower() == "now":
        return current
    match = _RELATIVE.match(stripped)
    if match:
        amount = float(match.group(1))
        return current - amount * _UNIT_SECONDS[match.group(2).lower()]
    parsed = parse_timestamp(stripped)
    if parsed is None:
        raise ValueError(
            f"not a time: {text!r} (use e.g. 15m, 2h, 1d, 2026-11-26 or 2026-11-26T06:00:00+00:00)"
        )
    return parsed


def format_epoch(epoch: float | None) -> str | None:
    """ISO 8601 in UTC with milliseconds, for report output; None stays None."""
    if epoch is None:
        return None
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds")


def utc_day(epoch: float, shift_days: int = 0) -> str:
    """``YYYYMMDD`` of ``epoch`` in UTC, shifted by whole days (for file-name pruning)."""
    moment = datetime.fromtimestamp(epoch, tz=timezone.utc) + timedelta(days=shift_days)
    return moment.strftime("%Y%m%d")


@dataclass
class Problems:
    """Counts of input that did not follow the log format, reported once at the end.

    ``skipped`` kinds made the line unusable (it is left out); ``kept`` kinds are noted
    and the line is still analysed with what it has.
    """

    skipped: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def skip(self, kind: str, where: str) -> None:
        """Count a line left out, remembering the first place it happened."""
        self.skipped[kind] += 1
        self.examples.setdefault(kind, where)

    def keep(self, kind: str, where: str) -> None:
        """Count a flaw in a line that is still used."""
        self.kept[kind] += 1
        self.examples.setdefault(kind, where)

    def check_record(self, record: Mapping[str, Any], where: str) -> None:
        """Note missing required fields and unknown levels of a parsed line."""
        for name in REQUIRED_FIELDS:
            if name not in record:
                self.keep(f"missing {name}", where)
        level = record.get("level")
        if level is not None and normalize_level(level) is None:
            self.keep("unknown level", where)

    @property
    def total_skipped(self) -> int:
        """Lines left out."""
        return sum(self.skipped.values())

    def __bool__(self) -> bool:
        return bool(self.skipped) or bool(self.kept)

    def as_dict(self) -> dict[str, Any]:
        """JSON form: ``{"skipped": {kind: n}, "kept": {kind: n}, "first_at": {kind: where}}``."""
        return {
            "skipped": dict(sorted(self.skipped.items())),
            "kept": dict(sorted(self.kept.items())),
            "first_at": dict(sorted(self.examples.items())),
        }

    def summary(self) -> str:
        """One line for stderr, e.g. ``skipped 3 lines (not JSON 2, truncated JSON 1); ...``."""
        parts: list[str] = []
        if self.skipped:
            detail = ", ".join(f"{kind} {n:,}" for kind, n in sorted(self.skipped.items()))
            parts.append(f"skipped {self.total_skipped:,} bad lines ({detail})")
        if self.kept:
            detail = ", ".join(f"{kind} {n:,}" for kind, n in sorted(self.kept.items()))
            parts.append(f"used lines with flaws ({detail})")
        first = sorted(self.examples.items())[:3]
        if first:
            parts.append("first at " + ", ".join(f"{kind}: {where}" for kind, where in first))
        return "; ".join(parts)
