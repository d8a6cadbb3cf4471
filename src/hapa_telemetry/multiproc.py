"""Several worker processes, one truthful ``/metrics``: prometheus_client's multiprocess mode.

With ``PROMETHEUS_MULTIPROC_DIR`` set (an empty directory shared by the workers of one
server, wiped at deploy), every worker also records the six seed metrics into
prometheus_client's memory-mapped files, and ``/metrics`` — whichever worker answers —
merges all workers' files: counters and histograms are summed, ``active_connections`` is
the live sum over running workers, ``cache_hit_rate`` the most recent value. The OTel
instruments still feed OTLP per worker (each with its own ``service.instance.id``).

A worker that dies without running its exit hooks (SIGKILL, OOM killer) leaves its
``gauge_livesum_<pid>.db`` behind, and its in-flight count would stay in the
``active_connections`` sum for ever. Each worker therefore removes, when it starts, the live
gauge files of pids that no longer exist (:func:`remove_dead_workers`; the server restarts a
killed worker, so the next start comes right after the death). gunicorn users can do it at
the moment of death too, in a ``child_exit`` hook of their gunicorn config:
``prometheus_client.multiprocess.mark_process_dead(worker.pid)``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from hapa_telemetry import names


def _enable(directory: str) -> None:
    """Switch prometheus_client to memory-mapped values in ``directory``."""
    os.makedirs(directory, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    if values.ValueClass is values.MutexValue:  # imported before the variable was set
        values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


_LIVE_FILE = re.compile(r"^gauge_live(?:sum|all|max|min)_(\d+)\.db$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, owned by someone else
        return True
    return True


def remove_dead_workers(directory: str) -> list[int]:
    """Remove the live gauge files of worker pids that no longer run; return those pids.

    Counters, histograms and the ``mostrecent`` cache gauge of a dead worker are kept (what
    it counted happened). A file that another worker removes at the same moment is fine.
    """
    try:
        entries = os.listdir(directory)
    except OSError:
        return []
    dead = sorted({
        int(m.group(1)) for m in map(_LIVE_FILE.match, entries)
        if m and int(m.group(1)) != os.getpid() and not _alive(int(m.group(1)))
    })
    for pid in dead:
        try:
            mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
        except OSError:  # removed by another worker in the meantime
            pass
    return dead


class PromMirror:
    """prometheus_client twins of the seed instruments, in multiprocess mode."""

    def __init__(self, directory: str) -> None:
        _enable(directory)
        self.directory = directory
        remove_dead_workers(directory)
        own = CollectorRegistry(auto_describe=False)  # keeps them out of the global REGISTRY
        self.requests = Counter(
            names.API_REQUESTS_TOTAL.removesuffix("_total"),
            "Finished API requests by method, route template and status",
            (names.LABEL_METHOD, names.LABEL_ENDPOINT, names.LABEL_STATUS),
            registry=own,
        )
        self.duration = Histogram(
            names.API_REQUEST_DURATION_SECONDS,
            "API request duration in seconds",
            (names.LABEL_METHOD, names.LABEL_ENDPOINT),
            buckets=names.REQUEST_DURATION_BUCKETS,
            registry=own,
        )
        self.inference = Histogram(
            names.AI_INFERENCE_DURATION_SECONDS,
            "AI model inference duration in seconds (cache hits not recorded)",
            (names.LABEL_MODEL,),
            buckets=names.INFERENCE_DURATION_BUCKETS,
            registry=own,
        )
        self.active = Gauge(
            names.ACTIVE_CONNECTIONS, "Requests in flight", registry=own,
            multiprocess_mode="livesum",
        )
        self.errors = Counter(
            names.API_ERRORS_TOTAL.removesuffix("_total"),
            "API errors by exception type",
            (names.LABEL_ERROR_TYPE,),
            registry=own,
        )
        self.cache = Gauge(
            names.CACHE_HIT_RATE, "Cache hit rate in percent (0-100)", registry=own,
            multiprocess_mode="mostrecent",
        )
        self._children: dict[Any, Any] = {}
        self._genai(own)

    def _genai(self, own: CollectorRegistry) -> None:
        """Twins of the GenAI semconv histograms and the cache lookup counter (issue 13).

        prometheus_client needs fixed label names: an attribute the OTel side omits (no
        model, no error) is an empty label, which Prometheus treats as absent.
        """
        base = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model")
        self.genai_duration = Histogram(
            names.PROM_GEN_AI_OPERATION_DURATION.removesuffix("_seconds"),
            "GenAI operation duration.", (*base, "error_type"), unit="seconds",
            buckets=names.GEN_AI_DURATION_BUCKETS, registry=own,
        )
        self.genai_tokens = Histogram(
            names.PROM_GEN_AI_TOKEN_USAGE, "Number of input and output tokens used.",
            (*base, "gen_ai_token_type"), buckets=names.GEN_AI_TOKEN_BUCKETS, registry=own,
        )
        self.genai_ttft = Histogram(
            names.PROM_GEN_AI_TIME_TO_FIRST_TOKEN.removesuffix("_seconds"),
            "Time to generate first token for successful responses.", base, unit="seconds",
            buckets=names.GEN_AI_TTFT_BUCKETS, registry=own,
        )
        self.genai_tpot = Histogram(
            names.PROM_GEN_AI_TIME_PER_OUTPUT_TOKEN.removesuffix("_seconds"),
            "Time per output token generated after the first token for successful responses.",
            base, unit="seconds", buckets=names.GEN_AI_TPOT_BUCKETS, registry=own,
        )
        self.cache_lookups = Counter(
            names.AI_INFERENCE_CACHE_LOOKUPS_TOTAL.removesuffix("_total"),
            "Inference cache lookups by result (hit, miss) and model",
            (names.LABEL_CACHE_RESULT, names.LABEL_MODEL), registry=own,
        )

    def child(self, metric: Any, labels: tuple[str, ...]) -> Any:
        """The labelled child, cached (``labels()`` takes a lock and builds a key)."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = metric.labels(*labels)
            self._children[key] = child
        return child

    def process_exit(self) -> None:
        """Remove this worker's live gauges (its in-flight count ends with it)."""
        try:
            mark_process_dead(os.getpid(), self.directory)  # type: ignore[no-untyped-call]
        except OSError:
            pass


class _LiveCollector:
    """System gauges and target_info, computed by the worker that answers the scrape."""

    def __init__(self, instruments: Any, resource: Mapping[str, Any]) -> None:
        self._instruments = instruments
        skip = {"service.instance.id", "process.pid"}  # per worker; this view is per server
        self._info = {
            k.replace(".", "_"): str(v) for k, v in resource.items() if k not in skip
        }

    def collect(self) -> Iterable[Metric]:
        import psutil

        yield InfoMetricFamily("target", "Target metadata", value=self._info)
        for name, value in (
            (names.SYSTEM_CPU_PERCENT, self._instruments.cpu.percent()),
            (names.SYSTEM_MEMORY_PERCENT, psutil.virtual_memory().percent),
            (names.SYSTEM_DISK_PERCENT, psutil.disk_usage("/").percent),
        ):
            yield GaugeMetricFamily(name, name.replace("_", " "), value=value)


def exposition_registry(
    directory: str, instruments: Any, resource: Mapping[str, Any]
) -> CollectorRegistry:
    """The registry /metrics serves in multiprocess mode: all workers merged + live gauges."""
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    registry.register(_LiveCollector(instruments, resource))
    return registry
