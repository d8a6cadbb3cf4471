"""What every ``logs`` answer shares, whatever reads it (files or Elasticsearch): the
one-line error a user sees and the printer of matching lines. A leaf: it imports no other
``analysis`` module that could import it back."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import orjson

from hapa_telemetry.analysis.records import parse_timestamp
from hapa_telemetry.analysis.render import Painter, line_header, line_row, use_colour
from hapa_telemetry.analysis.scan import Record

PROG = "hapa-telemetry"

class UserFacingError(Exception):
    """Ends the command with a one-line message and exit status 1."""


class LimitReached(Exception):
    """Raised by the lines sink when --limit lines were printed."""


def _write(text: str) -> None:
    sys.stdout.write(text)


class LinePrinter:
    """Prints matching lines as a table or NDJSON; buffers and orders them for --trace."""

    def __init__(self, settings: Mapping[str, Any], ordered: bool) -> None:
        self.json = bool(settings["json"])
        self.wide = bool(settings["wide"])
        self.limit: int | None = settings["limit"]
        self.paint = Painter(not self.json and use_colour(sys.stdout))
        self.ordered = ordered
        self.printed = 0
        self._held: list[tuple[Record, bytes | None]] = []
        self._header = False

    def __call__(self, record: Record, raw: bytes | None = None) -> None:
        if self.ordered:
            self._held.append((record, raw))
            return
        self._emit(record, raw)

    def _emit(self, record: Record, raw: bytes | None) -> None:
        if self.limit is not None and self.printed >= self.limit:
            raise LimitReached
        if self.json:
            # The line as written (faithful, and cheaper than encoding it again).
            out = raw.rstrip(b"\r") if raw is not None else orjson.dumps(record)
            sys.stdout.buffer.write(out + b"\n")
        else:
            if not self._header:
                _write(line_header(self.paint) + "\n")
                self._header = True
            _write(line_row(record, self.paint, self.wide) + "\n")
        self.printed += 1

    def finish(self) -> None:
        """Print held lines (trace mode) in time order, span ids included."""
        if not self.ordered:
            return
        held, self._held = self._held, []
        held.sort(key=lambda item: parse_timestamp(item[0].get("timestamp")) or 0.0)
        try:
            for record, raw in held:
                self._emit(record, raw)
        except LimitReached:
            pass


