"""Glue between the command line and the readers: run one ``logs`` question, print it.

The orchestration lives here only: files (scan + reports) or Elasticsearch (es + es_reports).
Imports run one way: run -> es_reports -> es -> (filters, records); run -> output.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any

import orjson

from hapa_telemetry.analysis.filters import Filters
from hapa_telemetry.analysis.output import PROG, LimitReached, LinePrinter, UserFacingError
from hapa_telemetry.analysis.records import Problems, parse_time_arg
from hapa_telemetry.analysis.render import Painter, render_report, use_colour
from hapa_telemetry.analysis.reports import make_report
from hapa_telemetry.analysis.scan import ScanStats, scan
from hapa_telemetry.analysis.sources import Progress, SourceError, discover


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
        return _run_es(filters, settings)
    return _run_files(filters, settings)


def _run_es(filters: Filters, settings: Mapping[str, Any]) -> int:
    """Answer the question against Elasticsearch (``--es URL``) and print it."""
    try:
        from hapa_telemetry.analysis import es, es_reports
    except ImportError as exc:  # httpx comes with the [es] extra
        raise UserFacingError(
            f"--es needs the httpx package: pip install 'hapa-telemetry[es]' ({exc})"
        ) from exc
    client = es.Client(settings["es"], settings["index"] or es.DEFAULT_INDEX, settings["timeout"])
    try:
        layout = client.layout()
        report = settings["report"]
        if report == "lines":
            limit = settings["limit"] or es.DEFAULT_LINE_LIMIT
            records, total = es.iter_lines(client, layout, filters, limit)
            printer = LinePrinter(settings, ordered=False)
            for record in records:
                printer(record)
            sys.stdout.flush()
            if not settings["quiet"]:
                more = f" (first {len(records):,} shown; --limit N for more)" \
                    if total > len(records) else ""
                sys.stderr.write(f"{PROG}: {total:,} matching documents in {client.index}{more}\n")
            return 0
        builders = {"errors": es_reports.errors_report, "latency": es_reports.latency_report,
                    "inference": es_reports.inference_report}
        result = builders[report](client, layout, filters)
    except es.EsError as exc:
        raise UserFacingError(str(exc)) from exc
    finally:
        client.close()
    if settings["json"]:
        result["input"] = {"elasticsearch": client.url, "index": client.index}
        sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        sys.stdout.write(render_report(result, Painter(use_colour(sys.stdout))) + "\n")
    sys.stdout.flush()
    return 0


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
            except LimitReached:
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
        sys.stdout.write(render_report(result, Painter(use_colour(sys.stdout))) + "\n")
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
