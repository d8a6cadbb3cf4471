"""The two seed histograms aggregated by the package, handed to every metric reader.

Recording through the SDK's ``Histogram.record`` costs ~12 µs per request with one
reader and ~17 µs with two (/metrics and OTLP): a ``Measurement`` object, attribute
hashing, one aggregation and one exemplar reservoir *per reader*. Here a record is a
bisect, three additions under one lock and, when the exemplar filter takes it, one tuple
(~2 µs), whatever the number of readers.

At collection each reader gets the same data the SDK would give it — one
``HistogramDataPoint`` per series (cumulative: start time, count, sum, bucket counts,
bounds, min, max) with the exemplars recorded since *that reader's* previous collection,
newest per bucket (the SDK's aligned-bucket reservoir, reset per collection) — merged into
the ``MetricsData`` of the package's meter scope. The hook is the reader's collect
callback, which every ``MetricReader`` (Prometheus, periodic OTLP, in-memory, a user's)
calls from its public ``collect()``.

:func:`attach` checks what the hook relies on (SDK internals: the reader's collect
callback and its histogram temporality) and says no — the caller then records through
the SDK's instruments as before — when a reader asks for delta temporality, or anything
is not as expected.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics import Histogram as _SdkHistogram
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

# Exemplar filters (OTEL_METRICS_EXEMPLAR_FILTER) the package knows how to apply.
EXEMPLAR_FILTERS = ("trace_based", "always_on", "always_off")
# The SDK's default cardinality limit; later series go to one overflow series, as there.
MAX_SERIES = 2000
_OVERFLOW_KEY = ("otel.metric.overflow",)
_OVERFLOW_ATTRS: Mapping[str, Any] = {"otel.metric.overflow": True}

_logger = logging.getLogger("hapa_telemetry")
_Exemplar = tuple[float, int, int | None, int | None]  # value, time ns, span id, trace id


class _Series:
    __slots__ = ("attributes", "counts", "exemplars", "max", "min", "start_ns", "sum")

    def __init__(self, attributes: Mapping[str, Any], buckets: int) -> None:
        self.attributes = dict(attributes)
        self.counts = [0] * buckets
        self.exemplars: list[_Exemplar | None] = [None] * buckets
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.start_ns = time.time_ns()


class BucketHistogram:
    """One explicit-bucket histogram (cumulative), recorded cheaply, read by every reader.

    ``record`` takes a hashable ``key`` standing for the attributes (e.g. the
    ``(method, route)`` tuple) so no attribute hashing happens per event; the attribute
    mapping is copied once, when the series is created.
    """

    def __init__(
        self,
        name: str,
        description: str,
        unit: str,
        boundaries: Sequence[float],
        exemplar_filter: str = "trace_based",
        max_series: int = MAX_SERIES,
    ) -> None:
        if exemplar_filter not in EXEMPLAR_FILTERS:
            raise ValueError(f"unknown exemplar filter {exemplar_filter!r}")
        self.name = name
        self.description = description
        self.unit = unit
        self.boundaries = tuple(float(b) for b in boundaries)
        self._buckets = len(self.boundaries) + 1
        self._filter = exemplar_filter
        self._max_series = max_series
        self._lock = threading.Lock()
        self._series: dict[Hashable, _Series] = {}
        self.refused = 0  # negative or NaN values, dropped as the SDK drops them

    def record(
        self,
        value: float,
        key: Hashable,
        attributes: Mapping[str, Any],
        span: trace.Span | None = None,
    ) -> None:
        """Add one value to the series ``key``. ``span`` is the span whose ids an exemplar
        carries (default: the current span); negative and NaN values are dropped."""
        if not value >= 0:  # also NaN
            self.refused += 1
            if self.refused == 1:  # the SDK warns on every one; once is enough
                _logger.warning(
                    "%s: dropped %r (a duration must be a non-negative number; "
                    "further ones are only counted)", self.name, value,
                )
            return
        index = bisect_left(self.boundaries, value)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._new_series(key, attributes)
            series.counts[index] += 1
            series.sum += value
            if value < series.min:
                series.min = value
            if value > series.max:
                series.max = value
        flt = self._filter
        if flt == "always_off":
            return
        ctx = (span if span is not None else trace.get_current_span()).get_span_context()
        if ctx.trace_flags & 1:  # sampled (only a valid context can be)
            series.exemplars[index] = (value, time.time_ns(), ctx.span_id, ctx.trace_id)
        elif flt == "always_on":
            ids = (ctx.span_id, ctx.trace_id) if ctx.is_valid else (None, None)
            series.exemplars[index] = (value, time.time_ns(), *ids)

    def _new_series(self, key: Hashable, attributes: Mapping[str, Any]) -> _Series:
        if len(self._series) >= self._max_series:
            overflow = self._series.get(_OVERFLOW_KEY)
            if overflow is None:
                overflow = self._series[_OVERFLOW_KEY] = _Series(_OVERFLOW_ATTRS, self._buckets)
            return overflow
        series = self._series[key] = _Series(attributes, self._buckets)
        return series

    def metric(self, since_ns: int, now_ns: int) -> Metric | None:
        """The cumulative data points now, exemplars recorded after ``since_ns``; None
        while nothing was recorded (the SDK reports no metric then either)."""
        points: list[HistogramDataPoint] = []
        with self._lock:
            snapshot = [
                (s.attributes, s.start_ns, list(s.counts), s.sum, s.min, s.max,
                 list(s.exemplars))
                for s in self._series.values()
            ]  # fmt: skip
        for attributes, start_ns, counts, total, lo, hi, exemplars in snapshot:
            points.append(
                HistogramDataPoint(
                    attributes=attributes,
                    start_time_unix_nano=start_ns,
                    time_unix_nano=now_ns,
                    count=sum(counts),
                    sum=total,
                    bucket_counts=tuple(counts),
                    explicit_bounds=self.boundaries,
                    min=lo,
                    max=hi,
                    exemplars=[_sdk_exemplar(e) for e in exemplars
                               if e is not None and e[1] > since_ns],
                )
            )
        if not points:
            return None
        return Metric(
            name=self.name,
            description=self.description,
            unit=self.unit,
            data=Histogram(
                data_points=points,
                aggregation_temporality=AggregationTemporality.CUMULATIVE,
            ),
        )


def _sdk_exemplar(e: _Exemplar) -> Exemplar:
    value, time_ns, span_id, trace_id = e
    return Exemplar({}, value, time_ns, span_id, trace_id)


def _for_histograms(by_class: Mapping[Any, Any]) -> Any:
    """A reader's setting for synchronous histograms (keyed by the SDK's private class)."""
    for cls, value in by_class.items():
        if isinstance(cls, type) and issubclass(cls, _SdkHistogram):
            return value
    return None


class PackageHistograms:
    """The package-aggregated histograms of one configuration and the readers they feed."""

    def __init__(self, resource: Resource, exemplar_filter: str) -> None:
        self.resource = resource
        self.exemplar_filter = exemplar_filter
        self.histograms: list[BucketHistogram] = []
        self.scope: InstrumentationScope | None = None  # the package meter's scope
        self.errors = 0  # collections whose merge failed (the SDK's data went out as is)

    def histogram(
        self, name: str, description: str, unit: str, boundaries: Sequence[float]
    ) -> BucketHistogram:
        """A new histogram reported with the package's meter scope."""
        h = BucketHistogram(name, description, unit, boundaries, self.exemplar_filter)
        self.histograms.append(h)
        return h

    def attach(self, readers: Sequence[MetricReader]) -> bool:
        """Feed every reader (after the MeterProvider registered them). False — nothing
        changed — when one of them cannot take cumulative explicit-bucket data this way."""
        for reader in readers:
            collect = getattr(reader, "_collect", None)
            temporality = _for_histograms(getattr(reader, "_instrument_class_temporality", {}))
            # (a reader's preferred histogram aggregation does not matter: the package's
            # views name the explicit buckets of both histograms, and a view wins)
            if not callable(collect) or temporality is not AggregationTemporality.CUMULATIVE:
                return False
        for reader in readers:
            hooked: Any = reader
            hooked._collect = self._merging(hooked._collect)
        return True

    def _merging(self, collect: Callable[..., MetricsData | None]) -> Callable[..., Any]:
        last = [0]  # this reader's previous collection (ns): its exemplars are newer

        def merged_collect(reader: MetricReader, *args: Any, **kwargs: Any) -> Any:
            data = collect(reader, *args, **kwargs)
            now = time.time_ns()
            since, last[0] = last[0], now
            try:
                return self.merge(data, since, now)
            except Exception:  # never lose the SDK's data over ours
                self.errors += 1
                return data

        return merged_collect

    def merge(self, data: MetricsData | None, since_ns: int, now_ns: int) -> MetricsData | None:
        """``data`` with the package histograms added to the package meter's scope."""
        metrics = [m for h in self.histograms if (m := h.metric(since_ns, now_ns)) is not None]
        if not metrics or self.scope is None:
            return data
        scope = self.scope
        if data is None or not data.resource_metrics:
            rm = ResourceMetrics(self.resource, [ScopeMetrics(scope, metrics, "")], "")
            return MetricsData([rm])
        resource_metrics = list(data.resource_metrics)
        first = resource_metrics[0]
        scopes = list(first.scope_metrics)
        for i, sm in enumerate(scopes):
            if sm.scope.name == scope.name and sm.scope.version == scope.version:
                scopes[i] = replace(sm, metrics=[*sm.metrics, *metrics])
                break
        else:
            scopes.append(ScopeMetrics(scope, metrics, ""))
        resource_metrics[0] = replace(first, scope_metrics=scopes)
        return replace(data, resource_metrics=resource_metrics)
