"""The three reports (errors, latency, inference) over a stream of parsed lines.

Each report is fed the lines that passed the filters, one at a time, and keeps only
per-group counters and bounded duration series. ``result()`` returns plain JSON-ready
dicts; the Elasticsearch backend builds dicts of the same shape from aggregations, so
the renderer and scripts see no difference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

from hapa_telemetry import names
from hapa_telemetry.analysis import quantiles
from hapa_telemetry.analysis.filters import Needles
from hapa_telemetry.analysis.quantiles import Quantiles
from hapa_telemetry.analysis.records import (
    LEVELS,
    Problems,
    format_epoch,
    normalize_level,
    parse_timestamp,
)
from hapa_telemetry.analysis.trace_slowest import Slowest

_REQUEST_END = names.EVENT_REQUEST_END

NO_VALUE = "(none)"
"""Group name for lines without the grouping field."""

REPORT_NAMES: tuple[str, ...] = ("errors", "latency", "inference")


class Report(Protocol):
    """What the scanner feeds and the CLI prints."""

    name: str

    def needles(self) -> list[Needles]:
        """Byte strings every line the report uses contains (fast path)."""

    def add(self, record: Mapping[str, Any], raw: bytes = b"") -> None:
        """Take one line that passed the filters (``raw``: its bytes, unused here)."""

    def result(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""


def _duration(value: object) -> float | None:
    """A usable duration in seconds, or None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0:
        return None
    return number


def _where(record: Mapping[str, Any]) -> str:
    return str(record.get("timestamp", "?"))


class ErrorsReport:
    """Error lines (event ``error`` or level ERROR and above) counted by ``error_type``."""

    name = "errors"

    def __init__(self) -> None:
        self._groups: dict[str, dict[str, Any]] = {}
        self.total = 0

    def needles(self) -> list[Needles]:
        # The package writes CRITICAL, never FATAL: an alias costs one more pass over the
        # data, so a FATAL line from another writer needs --no-fast-path.
        return [(b'"ERROR"', b'"error"', b'"CRITICAL"')]

    def add(self, record: Mapping[str, Any], raw: bytes = b"") -> None:
        level = normalize_level(record.get("level"))
        is_error = record.get("event_type") == names.EVENT_ERROR or (
            level is not None and LEVELS[level] >= LEVELS["ERROR"]
        )
        if not is_error:
            return
        self.total += 1
        error_type = record.get("error_type")
        key = error_type if isinstance(error_type, str) and error_type else NO_VALUE
        moment = parse_timestamp(record.get("timestamp"))
        group = self._groups.get(key)
        if group is None:
            example = record.get("error_message") or record.get("message")
            group = {
                "error_type": key,
                "count": 0,
                "first": moment,
                "last": moment,
                "example": None if example is None else str(example),
                "example_trace_id": record.get("trace_id"),
                "example_at": record.get("timestamp"),
            }
            self._groups[key] = group
        group["count"] += 1
        if moment is not None:
            if group["first"] is None or moment < group["first"]:
                group["first"] = moment
            if group["last"] is None or moment > group["last"]:
                group["last"] = moment

    def result(self) -> dict[str, Any]:
        ordered = sorted(self._groups.values(), key=lambda g: (-g["count"], g["error_type"]))
        return {
            "report": self.name,
            "total": self.total,
            "types": [
                {
                    "error_type": group["error_type"],
                    "count": group["count"],
                    "first_seen": format_epoch(group["first"]),
                    "last_seen": format_epoch(group["last"]),
                    "example": group["example"],
                    "example_trace_id": group["example_trace_id"],
                }
                for group in ordered
            ],
        }


class LatencyReport:
    """``duration`` of ``request_end`` lines, overall and per endpoint (with 5xx counts)."""

    name = "latency"

    def __init__(self, problems: Problems, exact_limit: int | None = None) -> None:
        self._problems = problems
        self._limit = exact_limit or quantiles.DEFAULT_EXACT_LIMIT
        exact_limit = self._limit
        self._overall = Quantiles(exact_limit)
        self._server_errors = 0
        self._endpoints: dict[str, tuple[Quantiles, list[int]]] = {}
        self._slowest = Slowest()  # their trace ids, for `hapa-telemetry trace`

    def needles(self) -> list[Needles]:
        return [(b'"' + names.EVENT_REQUEST_END.encode() + b'"',)]

    def add(self, record: Mapping[str, Any], raw: bytes = b"") -> None:
        if record.get("event_type") != _REQUEST_END:
            return
        duration = record.get("duration")
        if type(duration) is not float or not 0.0 <= duration < math.inf:
            duration = _duration(duration)
        if duration is None:
            self._problems.keep("request_end without a usable duration", _where(record))
            return
        endpoint = record.get("endpoint")
        key = endpoint if isinstance(endpoint, str) and endpoint else NO_VALUE
        entry = self._endpoints.get(key)
        if entry is None:
            entry = (Quantiles(self._limit), [0])
            self._endpoints[key] = entry
        entry[0].add(duration)
        self._overall.add(duration)
        self._slowest.add(duration, record)
        status = record.get("status_code")
        if isinstance(status, int) and not isinstance(status, bool) and status >= 500:
            entry[1][0] += 1
            self._server_errors += 1

    def result(self) -> dict[str, Any]:
        endpoints = [
            {"endpoint": key, **series.summary(), "server_errors": errors[0]}
            for key, (series, errors) in self._endpoints.items()
        ]
        endpoints.sort(key=lambda row: (-int(row["count"] or 0), str(row["endpoint"])))
        return {
            "report": self.name,
            "unit": "seconds",
            "exact": self._overall.exact,
            "overall": {**self._overall.summary(), "server_errors": self._server_errors},
            "endpoints": endpoints,
            "slowest": self._slowest.result(),
        }


class InferenceReport:
    """``duration`` of ``ai_inference`` lines: overall, cached vs not, per model, hit rate."""

    name = "inference"

    def __init__(self, problems: Problems, exact_limit: int | None = None) -> None:
        self._problems = problems
        self._limit = exact_limit or quantiles.DEFAULT_EXACT_LIMIT
        exact_limit = self._limit
        self._overall = Quantiles(exact_limit)
        self._cached = Quantiles(exact_limit)
        self._uncached = Quantiles(exact_limit)
        self._models: dict[str, Quantiles] = {}
        # streamed answers (issue 13): time to first token; output tokens per second
        self._ttft = Quantiles(exact_limit)
        self._tokens_per_second = Quantiles(exact_limit)
        self._output_tokens = 0
        self._generation_seconds = 0.0
        self._cancelled = 0
        self._reported_hit_rate: float | None = None
        self._reported_at: str | None = None
        self._cache_size: int | None = None

    def needles(self) -> list[Needles]:
        return [
            (
                b'"' + names.EVENT_AI_INFERENCE.encode() + b'"',
                b'"' + names.EVENT_CACHE_METRICS.encode() + b'"',
            )
        ]

    def add(self, record: Mapping[str, Any], raw: bytes = b"") -> None:
        event = record.get("event_type")
        if event == names.EVENT_CACHE_METRICS:
            rate = _duration(record.get("hit_rate"))
            if rate is not None:
                self._reported_hit_rate = rate
                self._reported_at = record.get("timestamp")
                size = record.get("cache_size")
                self._cache_size = size if isinstance(size, int) else None
            return
        if event != names.EVENT_AI_INFERENCE:
            return
        duration = _duration(record.get("duration"))
        if duration is None:
            self._problems.keep("ai_inference without a usable duration", _where(record))
            return
        self._overall.add(duration)
        cached = record.get("cached") is True
        (self._cached if cached else self._uncached).add(duration)
        if not cached:
            self._add_generation(record, duration)
        model = record.get("model")
        if isinstance(model, str) and model:
            series = self._models.get(model)
            if series is None:
                series = self._models[model] = Quantiles(self._limit)
            series.add(duration)

    def _add_generation(self, record: Mapping[str, Any], duration: float) -> None:
        ttft = _duration(record.get("ttft"))
        if ttft is not None:
            self._ttft.add(ttft)
        if record.get("error_type") == names.ERROR_TYPE_CANCELLED:
            self._cancelled += 1
            return
        tokens = record.get("output_tokens")
        if isinstance(tokens, bool) or not isinstance(tokens, int):
            return
        if tokens > 0 and duration > 0:
            self._tokens_per_second.add(tokens / duration)
            self._output_tokens += tokens
            self._generation_seconds += duration

    def result(self) -> dict[str, Any]:
        total = self._overall.count
        models = [{"model": key, **series.summary()} for key, series in self._models.items()]
        models.sort(key=lambda row: (-int(row["count"] or 0), str(row["model"])))
        return {
            "report": self.name,
            "unit": "seconds",
            "exact": self._overall.exact,
            "overall": self._overall.summary(),
            "cached": self._cached.summary(),
            "uncached": self._uncached.summary(),
            "cache_hit_rate": (self._cached.count / total) if total else None,
            "reported_cache_hit_rate": self._reported_hit_rate,
            "reported_cache_size": self._cache_size,
            "reported_at": self._reported_at,
            "models": models,
            "time_to_first_token": self._ttft.summary(),
            "tokens_per_second": self._tokens_per_second.summary(),
            "output_tokens": self._output_tokens,
            "output_tokens_per_second": (
                self._output_tokens / self._generation_seconds
                if self._generation_seconds
                else None
            ),
            "cancelled_streams": self._cancelled,
        }


def make_report(name: str, problems: Problems) -> Report:
    """The report called ``name`` (one of REPORT_NAMES)."""
    if name == "errors":
        return ErrorsReport()
    if name == "latency":
        return LatencyReport(problems)
    if name == "inference":
        return InferenceReport(problems)
    raise ValueError(f"unknown report {name!r}")
