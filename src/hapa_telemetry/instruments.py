"""The one place every instrument is defined: the six seed metrics, system gauges, views.

Request-path cost is kept low on purpose: counters and gauges are plain integers updated
under a lock and reported to the SDK by observable callbacks at collection time; only the
two histograms call the SDK per event, with attribute dicts built once per route and
reused. Names, buckets and labels come from :mod:`hapa_telemetry.names`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import psutil
from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span

from hapa_telemetry import names
from hapa_telemetry.genai_instruments import GenAIInstruments
from hapa_telemetry.histograms import PackageHistograms

STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
OTHER_METHOD = "_OTHER"
UNMATCHED_ENDPOINT = "<unmatched>"


# The six seed families: (name, Prometheus type, description, unit, has labels). The
# instruments below and the /metrics placeholders for families without samples yet
# (exposition.py) both come from here.
SEED_FAMILIES: tuple[tuple[str, str, str, str, bool], ...] = (
    (names.API_REQUESTS_TOTAL, "counter",
     "Finished API requests by method, route template and status", "", True),
    (names.API_REQUEST_DURATION_SECONDS, "histogram", "API request duration in seconds", "s",
     True),
    (names.AI_INFERENCE_DURATION_SECONDS, "histogram",
     "AI model inference duration in seconds (cache hits not recorded)", "s", True),
    (names.ACTIVE_CONNECTIONS, "gauge", "Requests in flight", "", False),
    (names.API_ERRORS_TOTAL, "counter", "API errors by exception type", "", True),
    (names.CACHE_HIT_RATE, "gauge", "Cache hit rate in percent (0-100)", "", False),
)
_DESCRIPTION = {name: description for name, _, description, _, _ in SEED_FAMILIES}


def fold_method(method: str) -> str:
    """Map a request method onto the bounded set used as a label value."""
    return method if method in STANDARD_METHODS else OTHER_METHOD


def views() -> list[View]:
    """Views giving the two histograms buckets in seconds (OTel defaults are for ms)."""
    return [
        View(
            instrument_name=names.API_REQUEST_DURATION_SECONDS,
            aggregation=ExplicitBucketHistogramAggregation(names.REQUEST_DURATION_BUCKETS),
        ),
        View(
            instrument_name=names.AI_INFERENCE_DURATION_SECONDS,
            aggregation=ExplicitBucketHistogramAggregation(names.INFERENCE_DURATION_BUCKETS),
        ),
    ]


class CpuSampler:
    """System CPU percent measured over a real interval (psutil's first call says 0.0).

    Keeps its own reference sample instead of psutil's module-global one, so /metrics and
    /health do not shorten each other's intervals. The interval is at least
    ``min_interval`` seconds; a reading within it returns the previous value.
    """

    def __init__(self, min_interval: float = 1.0) -> None:
        self._min = min_interval
        self._lock = threading.Lock()
        self._ref = (time.monotonic(), psutil.cpu_times())
        self._value: float | None = None

    def percent(self) -> float:
        """CPU utilisation in percent over the last completed interval."""
        with self._lock:
            now = time.monotonic()
            ref_time, ref_times = self._ref
            if self._value is not None and now - ref_time < self._min:
                return self._value
            if now - ref_time < 0.05:  # only right after start-up: wait a moment
                time.sleep(0.05 - (now - ref_time))
                now = time.monotonic()
            cur = psutil.cpu_times()
            value = _busy_percent(ref_times, cur)
            self._value = value
            self._ref = (now, cur)
            return value


def _total_time(times: Any) -> float:
    # Linux counts guest time inside user/nice as well: psutil subtracts it from the total.
    return float(sum(times)) - float(getattr(times, "guest", 0.0)) - float(
        getattr(times, "guest_nice", 0.0)
    )


def _busy_percent(a: Any, b: Any) -> float:
    """psutil's own ``cpu_percent`` formula between two ``cpu_times()`` samples: per-field
    deltas (negative ones, from counters that went backwards, count as 0), guest time not
    counted twice, idle and iowait not busy."""
    delta = type(b)(*(max(0.0, y - x) for x, y in zip(a, b, strict=True)))
    total = _total_time(delta)
    if total <= 0:
        return 0.0
    busy = total - float(delta.idle) - float(getattr(delta, "iowait", 0.0))
    return round(max(0.0, min(100.0, 100.0 * busy / total)), 1)


class _Recorder(Protocol):
    def record(
        self, value: float, key: Hashable, attributes: Mapping[str, str], span: Span | None
    ) -> None: ...  # pragma: no cover - protocol


class _SdkRecorder:
    """An SDK histogram behind the package histogram's ``record`` signature."""

    __slots__ = ("_histogram",)

    def __init__(self, histogram: Histogram) -> None:
        self._histogram = histogram

    def record(
        self, value: float, key: Hashable, attributes: Mapping[str, str], span: Span | None
    ) -> None:
        self._histogram.record(value, attributes)  # the SDK takes the current span itself


def _histogram(
    meter: Meter,
    histograms: PackageHistograms | None,
    name: str,
    boundaries: Sequence[float],
) -> _Recorder:
    description = _DESCRIPTION[name]
    if histograms is None:
        return _SdkRecorder(meter.create_histogram(name, unit="s", description=description))
    return histograms.histogram(name, description, "s", boundaries)


class Instruments:
    """The six seed instruments (+ system gauges and self-telemetry) on one Meter."""

    def __init__(
        self,
        meter: Meter,
        *,
        disk_path: str = "/",
        mirror: Any = None,
        histograms: PackageHistograms | None = None,
    ) -> None:
        self._mirror = mirror  # a multiproc.PromMirror when several workers share /metrics
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = {}
        self._errors: dict[str, int] = {}
        self._active = 0
        self._cache_hit_rate: float | None = None
        self._exports: dict[tuple[str, str], int] = {}
        self._route_attrs: dict[tuple[str, str], Mapping[str, str]] = {}
        self._model_attrs: dict[str, Mapping[str, str]] = {}
        self.cpu = CpuSampler()
        self._disk_path = disk_path

        meter.create_observable_counter(
            names.API_REQUESTS_TOTAL,
            callbacks=[self._observe_requests],
            description=_DESCRIPTION[names.API_REQUESTS_TOTAL],
        )
        # The two histograms: aggregated by the package for every reader when the
        # providers could arrange it (histograms.py, reported under this meter's
        # scope), else SDK instruments.
        if histograms is not None:
            histograms.scope = InstrumentationScope(meter.name, meter.version)
        self._duration: _Recorder = _histogram(
            meter, histograms, names.API_REQUEST_DURATION_SECONDS,
            names.REQUEST_DURATION_BUCKETS,
        )
        self._inference: _Recorder = _histogram(
            meter, histograms, names.AI_INFERENCE_DURATION_SECONDS,
            names.INFERENCE_DURATION_BUCKETS,
        )
        meter.create_observable_up_down_counter(
            names.ACTIVE_CONNECTIONS,
            callbacks=[self._observe_active],
            description=_DESCRIPTION[names.ACTIVE_CONNECTIONS],
        )
        meter.create_observable_counter(
            names.API_ERRORS_TOTAL,
            callbacks=[self._observe_errors],
            description=_DESCRIPTION[names.API_ERRORS_TOTAL],
        )
        for name, callback, description in (
            (names.CACHE_HIT_RATE, self._observe_cache, _DESCRIPTION[names.CACHE_HIT_RATE]),
            (names.SYSTEM_CPU_PERCENT, self._observe_cpu, "System CPU utilisation in percent"),
            (
                names.SYSTEM_MEMORY_PERCENT,
                self._observe_memory,
                "System memory utilisation in percent",
            ),
            (
                names.SYSTEM_DISK_PERCENT,
                self._observe_disk,
                "Disk utilisation in percent of the root filesystem",
            ),
        ):
            meter.create_observable_gauge(name, callbacks=[callback], description=description)
        meter.create_observable_counter(
            names.TELEMETRY_EXPORT_TOTAL,
            callbacks=[self._observe_exports],
            description="Telemetry export batches by signal and outcome "
            "(ok, failed; items dropped, rejected)",
        )
        self.genai = GenAIInstruments(meter, mirror)  # GenAI semconv metrics + cache lookups

    # -- request path -------------------------------------------------------------------
    def request_started(self) -> None:
        """One more request in flight."""
        with self._lock:
            self._active += 1
        if self._mirror is not None:
            self._mirror.active.inc()

    def request_finished(
        self,
        method: str,
        endpoint: str,
        status: int,
        duration: float,
        *,
        started: bool = True,
        span: Span | None = None,
    ) -> None:
        """Count a finished request and record its duration (ends the in-flight count).
        ``span`` (default: the current one) is the request's span, for exemplars."""
        key = (method, endpoint, status)
        with self._lock:
            self._requests[key] = self._requests.get(key, 0) + 1
            if started:
                self._active -= 1
        route = (method, endpoint)
        attrs = self._route_attrs.get(route)
        if attrs is None:
            attrs = {names.LABEL_METHOD: method, names.LABEL_ENDPOINT: endpoint}
            self._route_attrs[route] = attrs
        self._duration.record(duration, route, attrs, span)
        mirror = self._mirror
        if mirror is not None:
            mirror.child(mirror.requests, (method, endpoint, str(status))).inc()
            mirror.child(mirror.duration, (method, endpoint)).observe(duration)
            if started:
                mirror.active.dec()

    def error(self, error_type: str) -> None:
        """Count one error of the given type."""
        with self._lock:
            self._errors[error_type] = self._errors.get(error_type, 0) + 1
        if self._mirror is not None:
            self._mirror.child(self._mirror.errors, (error_type,)).inc()

    def inference(self, duration: float, model: str | None = None) -> None:
        """Record one (uncached) AI inference duration in seconds."""
        key = model or ""
        attrs = self._model_attrs.get(key)
        if attrs is None:
            attrs = {names.LABEL_MODEL: model} if model else {}
            self._model_attrs[key] = attrs
        self._inference.record(duration, key, attrs, None)
        if self._mirror is not None:
            self._mirror.child(self._mirror.inference, (key,)).observe(duration)

    def set_cache_hit_rate(self, percent: float) -> None:
        """Set the cache hit rate gauge, in percent (0–100)."""
        self._cache_hit_rate = float(percent)
        if self._mirror is not None:
            self._mirror.cache.set(float(percent))

    def export_result(self, signal: str, outcome: str, count: int = 1) -> None:
        """Count an exporter outcome (``ok``, ``failed``, ``dropped``) for a signal."""
        key = (signal, outcome)
        with self._lock:
            self._exports[key] = self._exports.get(key, 0) + count

    # -- reads for /health ----------------------------------------------------------------
    @property
    def active(self) -> int:
        """Requests in flight now."""
        return self._active

    @property
    def cache_hit_rate(self) -> float | None:
        """The last cache hit rate set, in percent."""
        return self._cache_hit_rate

    def export_counts(self) -> dict[tuple[str, str], int]:
        """A copy of the exporter outcome counters."""
        with self._lock:
            return dict(self._exports)

    # -- collection-time callbacks ---------------------------------------------------------
    def _observe_requests(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._requests.items())
        return [
            Observation(
                n,
                {names.LABEL_METHOD: m, names.LABEL_ENDPOINT: e, names.LABEL_STATUS: str(s)},
            )
            for (m, e, s), n in items
        ]

    def _observe_active(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self._active)]

    def _observe_errors(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._errors.items())
        return [Observation(n, {names.LABEL_ERROR_TYPE: t}) for t, n in items]

    def _observe_cache(self, options: CallbackOptions) -> Iterable[Observation]:
        rate = self._cache_hit_rate  # 0 until a rate is set, as the seed's Gauge showed
        return [Observation(0.0 if rate is None else rate)]

    def _observe_cpu(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(self.cpu.percent())]

    def _observe_memory(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(psutil.virtual_memory().percent)]

    def _observe_disk(self, options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(psutil.disk_usage(self._disk_path).percent)]

    def _observe_exports(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._exports.items())
        return [Observation(n, {"signal": s, "outcome": o}) for (s, o), n in items]
