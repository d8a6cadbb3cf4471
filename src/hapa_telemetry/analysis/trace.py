"""``hapa-telemetry trace TRACE_ID``: one request as a whole, spans and log lines.

From Elasticsearch (``--es URL``): the spans of the trace from the collector's span
indices (``hapa-traces-*``, field paths in docs/elasticsearch.md) and its log lines from
the log indices (``hapa-backend-*``, through the same field table as ``logs --es``).
Without Elasticsearch: the log lines alone, from the JSON files. The result is a
:class:`TraceView`; :mod:`hapa_telemetry.analysis.trace_render` draws it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hapa_telemetry import names
from hapa_telemetry.analysis.filters import Filters
from hapa_telemetry.analysis.records import Problems, parse_timestamp
from hapa_telemetry.analysis.sources import Progress, SourceError, discover

TRACE_INDEX = f"{names.ES_TRACE_INDEX_PREFIX}-*"
MAX_SPANS = 2000
MAX_LINES = 5000
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_STATUS = {0: "UNSET", 1: "OK", 2: "ERROR", "0": "UNSET", "1": "OK", "2": "ERROR"}
#: Span document fields that are not span attributes (raw mapping mode).
_SPAN_FIELDS = frozenset(
    {"@timestamp", "EndTimestamp", "TraceId", "SpanId", "ParentSpanId", "Name", "Kind",
     "TraceStatus", "TraceStatusDescription", "Duration", "Link", "Dropped", "TraceState"}
)


class TraceError(Exception):
    """Ends the command with a one-line message and exit status 1."""


@dataclass
class Span:
    """One span of the trace."""

    span_id: str
    parent_id: str | None
    name: str
    service: str | None
    kind: str
    start: float
    end: float
    status: str
    status_message: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    depth: int = 0

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return max(0.0, self.end - self.start)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "span_id": self.span_id, "parent_span_id": self.parent_id, "name": self.name,
            "service": self.service, "kind": self.kind, "start": self.start, "end": self.end,
            "duration": round(self.duration, 6), "status": self.status,
            "status_message": self.status_message, "depth": self.depth,
            "attributes": self.attributes,
        }


@dataclass
class TraceView:
    """A trace: spans in tree order (depth set) and log lines in time order."""

    trace_id: str
    spans: list[Span]
    lines: list[dict[str, Any]]
    source: str
    line_times: list[float] = field(default_factory=list)

    @property
    def start(self) -> float:
        """The earliest span start or log line."""
        times = [s.start for s in self.spans] + self.line_times
        return min(times) if times else 0.0

    @property
    def end(self) -> float:
        """The latest span end or log line."""
        times = [s.end for s in self.spans] + self.line_times
        return max(times) if times else 0.0

    def depth_of(self, span_id: object) -> int | None:
        """Depth of the span with this id, None when it is not in the trace."""
        for span in self.spans:
            if span.span_id == span_id:
                return span.depth
        return None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for ``--json``."""
        return {
            "trace_id": self.trace_id,
            "source": self.source,
            "start": self.start,
            "duration": round(self.end - self.start, 6),
            "spans": [s.as_dict() for s in self.spans],
            "lines": self.lines,
        }


def check_trace_id(text: str) -> str:
    """The trace id in canonical form (32 lowercase hex); ValueError otherwise."""
    trace_id = text.strip().lower()
    if not _TRACE_ID.match(trace_id) or trace_id == "0" * 32:
        raise ValueError(f"not a trace id (32 hex digits): {text!r}")
    return trace_id


def _get(source: Mapping[str, Any], path: str) -> Any:
    """A value at a dotted path: a flat dotted key or nested objects."""
    if path in source:
        return source[path]
    head, _, rest = path.partition(".")
    node = source.get(head)
    if rest and isinstance(node, Mapping):
        return _get(node, rest)
    return None


def _flatten(source: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in source.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def span_from_document(source: Mapping[str, Any]) -> Span | None:
    """A Span from one span document of the collector's raw mapping, None if unusable."""
    span_id = _get(source, "SpanId")
    start = parse_timestamp(_get(source, "@timestamp"))
    if not isinstance(span_id, str) or start is None:
        return None
    end = parse_timestamp(_get(source, "EndTimestamp"))
    micros = _get(source, "Duration")
    if end is None:
        end = start + (float(micros) / 1e6 if isinstance(micros, int | float) else 0.0)
    elif isinstance(micros, int | float):  # microsecond-exact, where timestamps round
        end = start + float(micros) / 1e6
    kind = str(_get(source, "Kind") or "")
    flat = _flatten(source)
    attributes = {
        k: v for k, v in flat.items()
        if k not in _SPAN_FIELDS and not k.startswith(("Resource.", "Scope.", "Events."))
    }
    parent = _get(source, "ParentSpanId")
    return Span(
        span_id=span_id,
        parent_id=parent if isinstance(parent, str) and parent else None,
        name=str(_get(source, "Name") or "(unnamed)"),
        service=_get(source, "Resource.service.name"),
        kind=kind.removeprefix("SPAN_KIND_").lower() or "internal",
        start=start,
        end=end,
        status=_STATUS.get(_get(source, "TraceStatus"), "UNSET"),
        status_message=_get(source, "TraceStatusDescription") or None,
        attributes=attributes,
    )


def tree_order(spans: list[Span]) -> list[Span]:
    """Spans depth first (children by start time), depth set; orphans are roots."""
    ids = {s.span_id for s in spans}
    children: dict[str | None, list[Span]] = {}
    for span in spans:
        parent = span.parent_id if span.parent_id in ids else None
        children.setdefault(parent, []).append(span)
    ordered: list[Span] = []
    seen: set[str] = set()

    def visit(parent: str | None, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: (s.start, s.name)):
            if span.span_id in seen:
                continue
            seen.add(span.span_id)
            span.depth = depth
            ordered.append(span)
            visit(span.span_id, depth + 1)

    visit(None, 0)
    for span in spans:  # a cycle of parents (bad data): still shown
        if span.span_id not in seen:
            ordered.append(span)
    return ordered


def _sorted_lines(lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[float]]:
    keyed = [(parse_timestamp(line.get("timestamp")), i, line) for i, line in enumerate(lines)]
    keyed.sort(key=lambda item: (item[0] if item[0] is not None else 0.0, item[1]))
    return [line for _, _, line in keyed], [t for t, _, _ in keyed if t is not None]


def from_elasticsearch(
    trace_id: str, url: str, *, log_index: str | None, trace_index: str | None,
    timeout: float,
) -> TraceView:
    """The trace's spans and log lines from Elasticsearch; TraceError when unreachable."""
    from hapa_telemetry.analysis import es

    spans_client = es.Client(url, trace_index or TRACE_INDEX, timeout)
    logs_client = es.Client(url, log_index or es.DEFAULT_INDEX, timeout)
    try:
        answer = spans_client.search({
            "size": MAX_SPANS,
            "query": {"match": {"TraceId": trace_id}},
            "sort": [{"@timestamp": "asc"}],
        })
        found = [span_from_document(hit.get("_source", {}))
                 for hit in answer.get("hits", {}).get("hits", [])]
        spans = tree_order([s for s in found if s is not None])
        try:
            layout = logs_client.layout()
        except es.EsError:
            lines: list[dict[str, Any]] = []  # no log index (yet): spans only
        else:
            lines, _ = es.iter_lines(logs_client, layout, Filters.build(trace=trace_id),
                                     MAX_LINES)
    except es.EsError as exc:
        raise TraceError(str(exc)) from exc
    finally:
        spans_client.close()
        logs_client.close()
    ordered, times = _sorted_lines(lines)
    return TraceView(trace_id, spans, ordered, "elasticsearch", times)


def from_files(trace_id: str, inputs: list[str]) -> TraceView:
    """The trace's log lines from the JSON files (no spans there)."""
    from hapa_telemetry.analysis.scan import scan

    try:
        sources = discover(inputs)
    except SourceError as exc:
        raise TraceError(str(exc)) from exc
    lines: list[dict[str, Any]] = []

    def keep(record: Mapping[str, Any], raw: bytes) -> None:
        if len(lines) < MAX_LINES:
            lines.append(dict(record))

    problems = Problems()
    try:
        scan(sources, Filters.build(trace=trace_id), keep, problems=problems,
             progress=Progress(0, False))
    except SourceError as exc:
        raise TraceError(str(exc)) from exc
    if problems:
        sys.stderr.write(f"hapa-telemetry: warning: {problems.summary()}\n")
    ordered, times = _sorted_lines(lines)
    return TraceView(trace_id, [], ordered, "files", times)
