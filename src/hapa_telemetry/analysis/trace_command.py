"""``hapa-telemetry trace TRACE_ID [PATH ...] [--es URL] [--json]``: parse, fetch, print."""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import orjson

from hapa_telemetry.analysis.render import Painter, use_colour
from hapa_telemetry.analysis.trace import (
    TraceError,
    TraceView,
    check_trace_id,
    from_elasticsearch,
    from_files,
)
from hapa_telemetry.analysis.trace_render import render_trace

PROG = "hapa-telemetry"

_EPILOG = """\
examples:
  hapa-telemetry trace 4bf92f3577b34da6a3ce929d0e0e4736 --es http://127.0.0.1:9200
  hapa-telemetry trace 4bf92f3577b34da6a3ce929d0e0e4736            # log lines from ./logs
  hapa-telemetry trace 4bf92f3577b34da6a3ce929d0e0e4736 --es URL --json | jq .spans

Where trace ids come from: an exemplar on a latency panel or query_exemplars, the
trace_id field of any log line, or the slowest requests of `hapa-telemetry logs latency`.
Exit status: 0 shown, 1 no such trace or source unreadable, 2 bad usage.
"""


def parser() -> argparse.ArgumentParser:
    """The ``trace`` subcommand's options."""
    p = argparse.ArgumentParser(
        prog=f"{PROG} trace",
        description="One request as a whole: its spans as a waterfall and its log lines "
        "in time order (Elasticsearch), or its log lines alone (JSON files).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("trace_id", metavar="TRACE_ID", help="32 hex digits")
    p.add_argument("inputs", nargs="*", metavar="PATH",
                   help="log files or directories without --es (default $LOG_DIRECTORY "
                        "or ./logs)")
    p.add_argument("--es", metavar="URL", help="read spans and log lines from Elasticsearch")
    p.add_argument("--index", metavar="PATTERN", help="log index pattern (hapa-backend-*)")
    p.add_argument("--trace-index", metavar="PATTERN", help="span index pattern (hapa-traces-*)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="Elasticsearch request timeout")
    p.add_argument("--json", action="store_true", help="one JSON document for scripts")
    return p


def main(argv: list[str]) -> int:
    """Run the command; returns the exit status."""
    p = parser()
    options = p.parse_args(argv)
    try:
        trace_id = check_trace_id(options.trace_id)
    except ValueError as exc:
        p.error(str(exc))
    if options.es and options.inputs:
        p.error("--es reads Elasticsearch: give no PATH with it")
    if not options.es and (options.index or options.trace_index):
        p.error("--index and --trace-index need --es URL")
    try:
        if options.es:
            view = from_elasticsearch(trace_id, options.es, log_index=options.index,
                                      trace_index=options.trace_index,
                                      timeout=options.timeout)
        else:
            inputs = options.inputs or [os.environ.get("LOG_DIRECTORY") or "logs"]
            view = from_files(trace_id, inputs)
    except TraceError as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 1
    if not view.spans and not view.lines:
        where = f"Elasticsearch at {options.es}" if options.es else "the log files"
        sys.stderr.write(f"{PROG}: no trace {trace_id} in {where} (no span, no log line)\n")
        return 1
    _print(view, options.json)
    return 0


def _print(view: TraceView, as_json: bool) -> None:
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(view.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        tty = use_colour(sys.stdout)
        isatty = getattr(sys.stdout, "isatty", None)
        columns = shutil.get_terminal_size().columns if isatty and isatty() else None
        sys.stdout.write(render_trace(view, Painter(tty), columns) + "\n")
    sys.stdout.flush()
