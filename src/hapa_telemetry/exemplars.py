"""Exemplars on the app's own /metrics: a sampled request's trace on the bucket it fell in.

The SDK samples them on the request path (trace-based filter, one exemplar per bucket
in the aligned histogram reservoir: no allocation beyond it). opentelemetry-exporter-
prometheus drops them when it turns data points into prometheus_client families, so
the reader below picks them up from the same collection, keeps the newest one per
series and bucket (cumulative, like prometheus_client's own histograms), and the
registry puts them on the ``_bucket`` samples it yields. The OpenMetrics encoder writes
them (``# {trace_id="…",span_id="…"} 2.61 1764755000.123``); the plain text format has
no exemplars and prometheus_client's text encoder ignores them, so it is unchanged.
Everything here runs at scrape time, never on the request path.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import Histogram, MetricsData
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar

from hapa_telemetry import names

EXEMPLAR_FAMILIES = frozenset(
    {names.API_REQUEST_DURATION_SECONDS, names.AI_INFERENCE_DURATION_SECONDS}
)
TRACE_ID_LABEL = "trace_id"
SPAN_ID_LABEL = "span_id"

_Key = tuple[str, frozenset[tuple[str, str]], float]


class ExemplarStore:
    """The newest exemplar per (family, series labels, bucket upper bound)."""

    def __init__(self, families: Iterable[str] = EXEMPLAR_FAMILIES) -> None:
        self._families = frozenset(families)
        self._lock = threading.Lock()
        self._latest: dict[_Key, Exemplar] = {}
        self.errors = 0  # collections whose exemplars could not be read (never raised)

    def harvest(self, metrics_data: MetricsData) -> None:
        """Keep the exemplars of one collection (called by the reader at scrape time)."""
        try:
            found = list(self._exemplars(metrics_data))
        except Exception:  # a surprise in SDK data must not fail the scrape
            self.errors += 1
            return
        if found:
            with self._lock:
                self._latest.update(found)

    def _exemplars(self, metrics_data: MetricsData) -> Iterator[tuple[_Key, Exemplar]]:
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name not in self._families or not isinstance(
                        metric.data, Histogram
                    ):
                        continue
                    for point in metric.data.data_points:
                        if not point.exemplars:
                            continue
                        series = frozenset(
                            (str(k), str(v)) for k, v in (point.attributes or {}).items()
                        )
                        bounds = point.explicit_bounds
                        for ex in point.exemplars:
                            if not ex.trace_id or not ex.span_id:
                                continue
                            i = bisect_left(bounds, ex.value)
                            bound = float(bounds[i]) if i < len(bounds) else math.inf
                            labels = {
                                TRACE_ID_LABEL: format(ex.trace_id, "032x"),
                                SPAN_ID_LABEL: format(ex.span_id, "016x"),
                            }
                            yield (
                                (metric.name, series, bound),
                                Exemplar(labels, float(ex.value), ex.time_unix_nano / 1e9),
                            )

    def attach(self, family: Metric) -> Metric:
        """The family with the stored exemplars on its ``_bucket`` samples."""
        if family.type != "histogram" or family.name not in self._families:
            return family
        bucket_name = family.name + "_bucket"
        with self._lock:
            if not self._latest:
                return family
            latest = self._latest
            samples = []
            for sample in family.samples:
                if sample.name == bucket_name and "le" in sample.labels:
                    series = frozenset(
                        (k, v) for k, v in sample.labels.items() if k != "le"
                    )
                    exemplar = latest.get((family.name, series, float(sample.labels["le"])))
                    if exemplar is not None:
                        sample = sample._replace(exemplar=exemplar)
                samples.append(sample)
        family.samples = samples
        return family

    def __len__(self) -> int:
        with self._lock:
            return len(self._latest)


class ExemplarRegistry(CollectorRegistry):
    """A CollectorRegistry whose histogram families carry the stored exemplars."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exemplars = ExemplarStore()

    def collect(self) -> Iterator[Metric]:
        """Every family of the registry, exemplars attached to the two histograms."""
        for family in super().collect():
            yield self.exemplars.attach(family)


class ExemplarPrometheusReader(PrometheusMetricReader):
    """opentelemetry-exporter-prometheus' reader that also hands exemplars to the store."""

    def __init__(self, registry: ExemplarRegistry, **kwargs: Any) -> None:
        super().__init__(registry=registry, **kwargs)
        self._exemplar_store = registry.exemplars

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        if metrics_data is not None:
            self._exemplar_store.harvest(metrics_data)
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)
