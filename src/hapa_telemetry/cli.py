"""The ``hapa-telemetry`` command: ``logs`` (log analysis), ``trace`` (one request) and
``demo`` (the demo app).

``hapa-telemetry logs [errors|latency|inference] [PATH ...|-] [filters] [--json]``
reads the package's JSON log files (a file, a directory with rotated and gzipped backups,
or stdin) or, with ``--es URL``, the collector's Elasticsearch indices.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from hapa_telemetry import names
from hapa_telemetry.settings import default_of, setting_from_env

PROG = "hapa-telemetry"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

_REPORTS = ("lines", "errors", "latency", "inference")
_EVENTS: tuple[str, ...] = names.EVENT_TYPES

_LOGS_EPILOG = """\
reports (first word, or --report):
  lines      the matching lines (default): time, level, event, endpoint, message, trace/span
  errors     error lines counted by error_type, first/last seen, an example
  latency    request_end durations: count, avg, p50/p95/p99, max, overall and per endpoint
  inference  ai_inference durations: overall, cached vs not, per model; cache hit rate

examples:
  hapa-telemetry logs --user user123                     # one user's requests
  hapa-telemetry logs errors --since 1d                  # errors by type, last day
  hapa-telemetry logs latency --endpoint '/api/v1/code/*'
  hapa-telemetry logs --trace 4bf92f3577b34da6a3ce929d0e0e4736
  zcat old.log.gz | hapa-telemetry logs latency - --json
  hapa-telemetry logs errors --es http://127.0.0.1:9200

PATH defaults to $LOG_DIRECTORY (else ./logs). A directory is read in time order:
hapa_YYYYMMDD.log files by date, rotated backups (.N, .N.gz) oldest first, then the live
file. Times: relative (90s, 15m, 2h, 1d, 1w) or ISO 8601 (naive = local time).
Exit status: 0 done, 1 input or Elasticsearch unreadable, 2 bad usage.
"""


def _logs_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} logs",
        description="Search and summarise hapa JSON logs (files, stdin or Elasticsearch).",
        epilog=_LOGS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="[REPORT] PATH",
        help="optional report name, then log files or directories; '-' is stdin",
    )
    parser.add_argument("--report", choices=_REPORTS, help="report to print (default: lines)")
    chosen = parser.add_argument_group("filters (combine with AND)")
    chosen.add_argument("--user", help="only lines with this user_id")
    chosen.add_argument("--trace", help="only lines of this trace (32 hex, or a prefix of 8+)")
    chosen.add_argument("--level", help="minimum level: DEBUG, INFO, WARNING, ERROR, CRITICAL")
    chosen.add_argument(
        "--event",
        action="append",
        metavar="TYPE",
        help="only this event_type (repeat or comma-separate): " + ", ".join(_EVENTS),
    )
    chosen.add_argument("--endpoint", help="only this route template; * and ? are wildcards")
    chosen.add_argument("--since", help="from this time on (e.g. 15m, 2h, 1d, 2026-11-26T06:00)")
    chosen.add_argument("--until", help="before this time")
    chosen.add_argument("--grep", metavar="TEXT", help="free text, case-insensitive")
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="JSON for scripts (lines: NDJSON)")
    output.add_argument("--limit", type=int, metavar="N", help="stop after N matching lines")
    output.add_argument("--wide", action="store_true", help="do not shorten long cells")
    output.add_argument("-q", "--quiet", action="store_true", help="no 'read N lines' summary")
    files = parser.add_argument_group("files")
    files.add_argument(
        "--error-files",
        action="store_true",
        help="read error_YYYYMMDD.log files instead of hapa_YYYYMMDD.log in directories",
    )
    files.add_argument(
        "--no-fast-path",
        action="store_true",
        help="parse every line (slower; validates all of them)",
    )
    es = parser.add_argument_group("Elasticsearch")
    es.add_argument("--es", metavar="URL", help="query Elasticsearch instead of files")
    es.add_argument(
        "--index",
        default=None,
        metavar="PATTERN",
        help="index pattern for --es (default: hapa-backend-*)",
    )
    es.add_argument(
        "--timeout", type=float, default=10.0, metavar="SECONDS", help="ES request timeout"
    )
    return parser


def _demo_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"{PROG} demo", description="Run the instrumented demo FastAPI app with uvicorn."
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    return parser


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="hapa-telemetry: observability tools for HAPA backends."
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser("logs", help="search and summarise JSON logs (files or Elasticsearch)")
    commands.add_parser("demo", help="run the instrumented demo app (uvicorn)")
    commands.add_parser("trace", help="one trace: spans as a waterfall and its log lines")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hapa-telemetry`` console script; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "logs":
            return _run_logs(_logs_parser(), args[1:])
        if args and args[0] == "demo":
            return _run_demo(_demo_parser().parse_args(args[1:]))
        if args and args[0] == "trace":
            from hapa_telemetry.analysis.trace_command import main as trace_main

            return trace_main(args[1:])
        parser = _top_parser()
        parsed = parser.parse_args(args)
        if parsed.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        return EXIT_USAGE  # pragma: no cover - every command is dispatched above
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _run_demo(options: argparse.Namespace) -> int:
    try:
        import uvicorn  # lazily: `logs` must not pay for it
    except ImportError as exc:  # uvicorn comes with the [demo] extra
        return _error(f"demo needs uvicorn: pip install 'hapa-telemetry[demo]' ({exc})")
    uvicorn.run("hapa_telemetry.demo.app:app", host=options.host, port=options.port)
    return EXIT_OK


def _error(message: str) -> int:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    return EXIT_FAILURE


def _run_logs(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    from hapa_telemetry.analysis import run
    from hapa_telemetry.analysis.output import UserFacingError

    options = parser.parse_intermixed_args(argv)
    inputs: list[str] = list(options.inputs)
    report = options.report
    if inputs and inputs[0] in _REPORTS and not os.path.exists(inputs[0]):
        if report is not None and report != inputs[0]:
            parser.error(f"two reports asked: {inputs[0]} and --report {report}")
        report = inputs.pop(0)
    report = report or "lines"
    if options.limit is not None and options.limit < 1:
        parser.error("--limit must be at least 1")
    try:
        filters = run.build_filters(options)
    except ValueError as exc:
        parser.error(str(exc))
    if options.es:
        if inputs:
            parser.error("--es reads Elasticsearch: give no PATH with it")
        if options.error_files or options.no_fast_path:
            parser.error("--error-files and --no-fast-path apply to files, not --es")
    elif options.index:
        parser.error("--index needs --es URL")
    settings: dict[str, Any] = {
        "report": report,
        "inputs": inputs or [setting_from_env("log_directory") or default_of("log_directory")],
        "json": options.json,
        "limit": options.limit,
        "wide": options.wide,
        "quiet": options.quiet,
        "error_files": options.error_files,
        "fast_path": not options.no_fast_path,
        "es": options.es,
        "index": options.index,
        "timeout": options.timeout,
    }
    try:
        return run.run(filters, settings)
    except UserFacingError as exc:
        return _error(str(exc))
    except BrokenPipeError:
        # `hapa-telemetry logs | head`: the reader left; stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
