"""Glue between the command line and the readers: run one ``logs`` question, print it."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson

from hapa_telemetry.analysis.filters import Filters
from hapa_telemetry.analysis.records import Problems, parse_time_arg, parse_timestamp
from hapa_telemetry.analysis.render import Painter, line_header, line_row, render_report, use_colour
from hapa_telemetry.analysis.reports import make_report
from hapa_telemetry.analysis.scan import Record, ScanStats, scan
from hapa_telemetry.analysis.sources import Progress, SourceError, discover

PROG = "hapa-telemetry"


class UserFacingError(Exception):
    """Ends the command with a one-line message and exit status 1."""


class _Enough(Exception):
    """Raised by the lines sink when --limit lines were printed."""


def build_filters(options: argparse.Namespace, now: float | None = None) -> Filters:
    """Filters from parsed options; ValueError (naming the option) on a bad value."""
    current = time.time() if now is None else now
    since = until = None
    if options.since:
        try:
            since = parse_time_arg(options.since, current)
        except ValueError as exc:
            raise ValueError(f"--since: {exc}") from exc
    if options.until:
        try:
            until = parse_time_arg(options.until, current)
        except ValueError as exc:
            raise ValueError(f"--until: {exc}") from exc
    return Filters.build(
        user=options.user,
        trace=options.trace,
        level=options.level,
        events=options.event,
        endpoint=options.endpoint,
        since=since,
        until=until,
        grep=options.grep,
    )


def run(filters: Filters, settings: Mapping[str, Any]) -> int:
    """Answer the question in ``settings`` (see cli._run_logs) and print the answer."""
    if settings["es"]:
        try:
            from hapa_telemetry.analysis import es
        except ImportError as exc:  # httpx is needed for --es only
            raise UserFacingError(f"--es needs the httpx package ({exc})") from exc
        return es.answer(filters, settings)
    return _run_files(filters, settings)


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
            raise _Enough
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
        except _Enough:
            pass


def _run_files(filters: Filters, settings: Mapping[str, Any]) -> int:
    try:
        sources = discover(
            list(settings["inputs"]),
            error_files=bool(settings["error_files"]),
            day_range=filters.day_range(),
        )
    except SourceError as exc:
        raise UserFacingError(str(exc)) from exc
    problems = Problems()
    total = sum(source.size() for source in sources)
    progress = Progress(total, sys.stderr.isatty())
    report_name = settings["report"]
    stats: ScanStats
    try:
        if report_name == "lines":
            printer = LinePrinter(settings, ordered=filters.trace is not None)
            try:
                stats = scan(sources, filters, printer, problems=problems, progress=progress,
                             fast_path=settings["fast_path"])
            except _Enough:
                stats = ScanStats(files=len(sources), matched=settings["limit"])
            printer.finish()
            sys.stdout.flush()
            _summarise(settings, stats, problems, limited=printer.limit is not None
                       and printer.printed >= printer.limit)
            return 0
        report = make_report(report_name, problems)
        stats = scan(sources, filters, report.add, problems=problems, progress=progress,
                     report_needles=report.needles(), fast_path=settings["fast_path"])
    except SourceError as exc:
        raise UserFacingError(str(exc)) from exc
    result = report.result()
    if settings["json"]:
        result["input"] = stats.as_dict()
        result["problems"] = problems.as_dict()
        sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        _write(render_report(result, Painter(use_colour(sys.stdout))) + "\n")
    sys.stdout.flush()
    _summarise(settings, stats, problems, limited=False)
    return 0


def _summarise(
    settings: Mapping[str, Any], stats: ScanStats, problems: Problems, limited: bool
) -> None:
    if not settings["quiet"]:
        if limited:
            sys.stderr.write(f"{PROG}: stopped after --limit {settings['limit']} lines\n")
        else:
            files = "file" if stats.files == 1 else "files"
            sys.stderr.write(
                f"{PROG}: read {stats.lines:,} lines from {stats.files} {files}, "
                f"{stats.matched:,} matched\n"
            )
    if problems:
        sys.stderr.write(f"{PROG}: warning: {problems.summary()}\n")
