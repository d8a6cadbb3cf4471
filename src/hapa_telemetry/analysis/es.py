"""``hapa-telemetry logs --es URL``: the same filters and reports over Elasticsearch.

The collector writes log records to daily indices ``hapa-backend-YYYY.MM.dd``. Every
question is answered with one or two ``_search`` requests: filters become a ``bool``
filter query, reports become aggregations (``terms``, ``percentiles``, ``stats``,
``filter``, ``min``/``max``, ``top_hits`` of size 1). Documents are never downloaded in
bulk; the ``lines`` report pages through at most ``--limit`` hits (default 1000).

Where each log field lives in the documents depends on the collector's exporter mapping
mode; :data:`FIELD_PATHS` is the one table that says so (first path present in the
indices wins, found with one ``_field_caps`` request, and a ``text`` field's ``.keyword``
sub-field is used for exact matches and aggregations).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from hapa_telemetry import names
from hapa_telemetry.analysis.filters import Filters
from hapa_telemetry.analysis.records import LEVEL_ALIASES, levels_at_or_above

DEFAULT_INDEX = f"{names.ES_LOG_INDEX_PREFIX}-*"
DEFAULT_LINE_LIMIT = 1000
_PAGE = 500
MAX_GROUPS = 200  # buckets per terms aggregation (endpoints, error types, models)

#: Logical log field -> where it may live in a document, in order of preference. First
#: the collector's layout, documented in docs/elasticsearch.md (elasticsearch exporter,
#: ``mapping::mode: raw``: log attributes at the top level by their own names,
#: ``SeverityText``/``SeverityNumber``, ``Body`` and a ``message`` copy, ``TraceId``,
#: ``SpanId``, ``Resource.*``); then the exporter's ``otel`` mode (``attributes.*``,
#: ``body.text``, ``severity_text``) and ``none`` mode (``Attributes.*``), and documents
#: indexed straight from the JSON files (top-level fields, as the seed's Logstash does).
#: When several paths of one field exist in the indices, the one most documents have wins.
FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "timestamp": ("@timestamp", "timestamp"),
    "level": ("SeverityText", "level", "severity_text", "log.level"),
    "severity_number": ("SeverityNumber", "severity_number"),
    "message": ("message", "Body", "body.text", "body_text", "body"),
    "logger": ("logger", "Scope.name", "attributes.logger", "scope.name"),
    "trace_id": ("TraceId", "trace_id", "attributes.trace_id"),
    "span_id": ("SpanId", "span_id", "attributes.span_id"),
    "service": ("Resource.service.name", "service", "resource.attributes.service.name"),
    **{
        name: (name, f"attributes.{name}", f"Attributes.{name}")
        for name in (
            "user_id",
            "request_id",
            "event_type",
            "endpoint",
            "method",
            "status_code",
            "duration",
            "client_ip",
            "error_type",
            "error_message",
            "cached",
            "model",
            "prompt_length",
            "response_length",
            "hit_rate",
            "cache_size",
            "ttft",
            "output_tokens",
        )
    },
}

#: OpenTelemetry severity numbers of the lowest severity of each level.
SEVERITY_NUMBER = {"DEBUG": 5, "INFO": 9, "WARNING": 13, "ERROR": 17, "CRITICAL": 21}

_TEXT_TYPES = {"text", "match_only_text"}
_EXACT_TYPES = {"keyword", "constant_keyword", "wildcard"}


class EsError(Exception):
    """Elasticsearch could not answer: unreachable, refused, or no matching index."""


class Field:
    """Where one logical field lives: ``path`` (as stored), ``exact`` (for term/aggs)."""

    def __init__(self, path: str, exact: str, kind: str | None) -> None:
        self.path = path
        self.exact = exact
        self.kind = kind

    @property
    def present(self) -> bool:
        """Whether any index has the field."""
        return self.kind is not None


class Layout:
    """The resolved field paths of the indices behind one index pattern.

    ``caps`` is the ``fields`` part of a ``_field_caps`` answer; ``usage`` counts, for
    paths that compete for one field, how many documents have each (see Client.layout).
    """

    def __init__(
        self, caps: Mapping[str, Mapping[str, Any]], usage: Mapping[str, int] | None = None
    ) -> None:
        self.fields: dict[str, Field] = {}
        #: every present path of a field, best first: indices of one pattern can hold
        #: different layouts, so documents are read and filtered by any of them
        self.candidates: dict[str, list[Field]] = {}
        for logical in FIELD_PATHS:
            present = self.present(caps, logical)
            if not present:
                path = FIELD_PATHS[logical][0]
                self.fields[logical] = Field(path, path, None)
                self.candidates[logical] = [self.fields[logical]]
                continue
            counts = usage or {}
            # Most documents first; among equals, the table's order.
            ranked = sorted(present, key=lambda f: (-counts.get(f.path, 0), present.index(f)))
            self.fields[logical] = ranked[0]
            self.candidates[logical] = ranked

    @staticmethod
    def present(caps: Mapping[str, Mapping[str, Any]], logical: str) -> list[Field]:
        """The candidate paths of ``logical`` that exist in the indices, in table order."""
        found = []
        for path in FIELD_PATHS[logical]:
            types = caps.get(path)
            if not types:
                continue
            kind = sorted(types)[0]
            exact = path
            if kind in _TEXT_TYPES and f"{path}.keyword" in caps:
                exact = f"{path}.keyword"
            found.append(Field(path, exact, kind))
        return found

    def __getitem__(self, logical: str) -> Field:
        return self.fields[logical]

    @classmethod
    def all_paths(cls) -> list[str]:
        """Every candidate path and its ``.keyword`` sub-field (for ``_field_caps``)."""
        paths: list[str] = []
        for candidates in FIELD_PATHS.values():
            for path in candidates:
                paths += [path, f"{path}.keyword"]
        return paths


class Client:
    """A small Elasticsearch HTTP client (search and field caps only)."""

    def __init__(self, url: str, index: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.index = index
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        """Release the connection pool."""
        self._http.close()

    def _request(
        self, method: str, path: str, body: Any | None = None, **extra: str
    ) -> Any:
        params = {"ignore_unavailable": "true", "allow_no_indices": "true", **extra}
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                content=None if body is None else orjson.dumps(body),
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise EsError(f"cannot reach Elasticsearch at {self.url}: {exc}") from exc
        if response.status_code >= 400:
            raise EsError(
                f"Elasticsearch at {self.url} answered {response.status_code}: "
                f"{_reason(response)}"
            )
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise EsError(f"{self.url} did not answer with JSON: is it Elasticsearch?") from exc

    def layout(self) -> Layout:
        """Resolve FIELD_PATHS against the indices; EsError when no index matches."""
        answer = self._request(
            "GET", f"/{self.index}/_field_caps", fields=",".join(Layout.all_paths())
        )
        if not answer.get("indices"):
            raise EsError(f"no Elasticsearch index matches {self.index} at {self.url}")
        caps = answer.get("fields", {})
        # A path can be mapped (by a template, or by another index of the pattern) without
        # any document having it: when paths compete, count who has data (one request).
        competing = [
            field.path
            for logical in FIELD_PATHS
            if len(present := Layout.present(caps, logical)) > 1
            for field in present
        ]
        usage: dict[str, int] = {}
        if competing:
            counted = self.search(
                {
                    "size": 0,
                    "aggs": {
                        f"p{i}": {"filter": {"exists": {"field": path}}}
                        for i, path in enumerate(competing)
                    },
                }
            )["aggregations"]
            usage = {path: int(counted[f"p{i}"]["doc_count"]) for i, path in enumerate(competing)}
        return Layout(caps, usage)

    def search(self, body: Mapping[str, Any]) -> Any:
        """One ``_search`` over the index pattern."""
        return self._request("POST", f"/{self.index}/_search", dict(body))


def _reason(response: httpx.Response) -> str:
    try:
        error = orjson.loads(response.content).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(error, dict):
        causes = error.get("root_cause") or [error]
        cause = causes[0] if isinstance(causes, list) and causes else error
        return f"{cause.get('type', '')}: {cause.get('reason', '')}".strip(": ")
    return str(error)


# --- queries ------------------------------------------------------------------------------


def _on_any(layout: Layout, logical: str, kind: str, value: Any) -> dict[str, Any]:
    """One exact-match clause of ``kind`` on every present path of ``logical``, OR-ed."""
    paths = list(dict.fromkeys(f.exact for f in layout.candidates[logical]))
    if len(paths) == 1:
        return {kind: {paths[0]: value}}
    return {"bool": {"should": [{kind: {p: value}} for p in paths], "minimum_should_match": 1}}


def filter_clauses(filters: Filters, layout: Layout) -> list[dict[str, Any]]:
    """The ``bool.filter`` clauses for ``filters``."""
    clauses: list[dict[str, Any]] = []
    if filters.user is not None:
        clauses.append(_on_any(layout, "user_id", "term", filters.user))
    if filters.trace is not None:
        kind = "term" if len(filters.trace) == 32 else "prefix"
        clauses.append(_on_any(layout, "trace_id", kind, filters.trace))
    if filters.level is not None:
        clauses.append(level_clause(filters.level, layout))
    if filters.events:
        clauses.append(_on_any(layout, "event_type", "terms", sorted(filters.events)))
    if filters.endpoint is not None:
        if filters.endpoint_is_pattern:
            clauses.append(_on_any(layout, "endpoint", "wildcard", {"value": filters.endpoint}))
        else:
            clauses.append(_on_any(layout, "endpoint", "term", filters.endpoint))
    if filters.since is not None or filters.until is not None:
        bounds: dict[str, Any] = {"format": "epoch_millis"}
        if filters.since is not None:
            bounds["gte"] = math.floor(filters.since * 1000)
        if filters.until is not None:
            bounds["lt"] = math.ceil(filters.until * 1000)
        clauses.append({"range": {layout["timestamp"].path: bounds}})
    if filters.grep is not None:
        message = layout["message"]
        if message.kind in _TEXT_TYPES:
            clauses.append({"match_phrase": {message.path: filters.grep}})
        else:
            clauses.append(
                {"wildcard": {message.exact: {"value": f"*{filters.grep}*",
                                              "case_insensitive": True}}}
            )
    return clauses


def level_clause(minimum: str, layout: Layout) -> dict[str, Any]:
    """Level at or above ``minimum``: a severity_number range when the field exists."""
    number = layout["severity_number"]
    if number.present:
        return {"range": {number.path: {"gte": SEVERITY_NUMBER[minimum]}}}
    wanted = set(levels_at_or_above(minimum))
    spellings = sorted(alias for alias, canon in LEVEL_ALIASES.items() if canon in wanted)
    return {"terms": {layout["level"].exact: spellings + [s.lower() for s in spellings]}}


def bool_query(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    """A ``bool`` filter query of ``clauses`` (``match_all`` when there are none)."""
    return {"bool": {"filter": clauses}} if clauses else {"match_all": {}}


def _source(hit: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted ``path`` of a hit's _source, dotted keys or nested objects."""
    node: Any = hit.get("_source", {})
    return _lookup(node, path)


def _lookup(node: Any, path: str) -> Any:
    if not isinstance(node, Mapping):
        return None
    if path in node:
        return node[path]
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        if head in node:
            found = _lookup(node[head], ".".join(parts[cut:]))
            if found is not None:
                return found
    return None


def to_record(hit: Mapping[str, Any], layout: Layout) -> dict[str, Any]:
    """A hit as a log-line dict with the file format's field names."""
    record: dict[str, Any] = {}
    for logical, fields in layout.candidates.items():
        for field in fields:  # the first path this document has
            value = _source(hit, field.path)
            if value is not None:
                record[logical] = value
                break
    if isinstance(record.get("message"), Mapping):  # body.structured or the like
        record["message"] = orjson.dumps(record["message"]).decode()
    return record


def total_hits(answer: Mapping[str, Any]) -> int:
    """How many documents matched a ``_search`` (either shape of ``hits.total``)."""
    total: Any = answer.get("hits", {}).get("total", 0)
    if isinstance(total, Mapping):
        total = total.get("value", 0)
    return int(total)


def iter_lines(
    client: Client, layout: Layout, filters: Filters, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Up to ``limit`` matching documents oldest first, and how many match in all."""
    ts = layout["timestamp"].path
    body: dict[str, Any] = {
        "size": min(_PAGE, limit),
        "track_total_hits": True,
        "query": bool_query(filter_clauses(filters, layout)),
        "sort": [{ts: "asc"}, {"_doc": "asc"}],
    }
    records: list[dict[str, Any]] = []
    total = 0
    while len(records) < limit:
        answer = client.search(body)
        total = total_hits(answer)
        hits = answer["hits"]["hits"]
        records += [to_record(hit, layout) for hit in hits[: limit - len(records)]]
        if len(hits) < body["size"]:
            break
        body["search_after"] = hits[-1]["sort"]
        body["size"] = min(_PAGE, limit - len(records))
    return records, total
