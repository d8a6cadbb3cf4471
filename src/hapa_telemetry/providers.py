"""Tracer, meter and logger providers: built once, idempotently, never twice globally.

The package owns the MeterProvider of its instruments (private, not global: /metrics
works whatever else is installed and shows nothing else) and reuses an SDK TracerProvider
that someone already set globally (e.g. another distro's configurator) instead of
creating a second one.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import _logs, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    LogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import Sampler
from prometheus_client import CollectorRegistry

from hapa_telemetry.exporting import (
    CountingLogExporter,
    CountingMetricExporter,
    CountingSpanExporter,
    ExportHealth,
)
from hapa_telemetry.histograms import PackageHistograms
from hapa_telemetry.instruments import views
from hapa_telemetry.settings import Settings

_EXEMPLAR_FILTERS: dict[str, Any] = {
    "trace_based": TraceBasedExemplarFilter,
    "always_on": AlwaysOnExemplarFilter,
    "always_off": AlwaysOffExemplarFilter,
}


@dataclass
class Providers:
    """The three providers plus what /metrics and /health need from them."""

    tracer_provider: trace.TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider | None
    registry: CollectorRegistry | None
    health: ExportHealth
    owned: list[Any] = field(default_factory=list)
    # The package's own log lines over OTLP/HTTP with its encoder skip the SDK's log
    # objects (otlp/batcher.py); other emitters still use logger_provider.
    log_batcher: Any = None
    # The request and inference duration histograms, when the package aggregates them.
    histograms: PackageHistograms | None = None

    def force_flush(self, timeout_millis: int = 5_000) -> bool:
        """Flush every owned provider; False when one did not finish in time."""
        ok = True
        for provider in self.owned:
            try:
                ok = bool(provider.force_flush(timeout_millis)) and ok
            except Exception:
                ok = False
        return ok

    def shutdown(self) -> None:
        """Shut every owned provider down (bounded by the exporters' timeouts)."""
        for provider in self.owned:
            try:
                provider.shutdown()
            except Exception:
                pass


def _is_unset(provider: object) -> bool:
    name = type(provider).__name__
    return name.startswith("Proxy") or name.startswith("_Proxy") or name.startswith("NoOp")


def build_providers(
    settings: Settings,
    resource: Resource,
    health: ExportHealth,
    *,
    span_exporter: SpanExporter | None = None,
    log_exporter: LogRecordExporter | None = None,
    metric_readers: tuple[MetricReader, ...] = (),
    set_global: bool = True,
) -> Providers:
    """Create (or reuse) the providers for ``settings``; exporters only where configured."""
    owned: list[Any] = []
    json_signals = [
        s for s in ("traces", "metrics", "logs")
        if getattr(settings, f"otlp_{s}_endpoint") and getattr(settings, f"otlp_{s}_protocol")
        == "http/json"
    ]  # fmt: skip
    if json_signals:  # the SDK has no JSON encoder; every OTLP/HTTP receiver takes protobuf
        sys.stderr.write(
            f"hapa-telemetry: OTLP http/json ({', '.join(json_signals)}) is sent as "
            "http/protobuf to the same endpoint\n"
        )

    # -- traces ---------------------------------------------------------------------------
    current = trace.get_tracer_provider()
    tracer_provider: trace.TracerProvider
    if set_global and isinstance(current, TracerProvider) and span_exporter is None:
        tracer_provider = current  # someone configured the SDK already: never a second one
    else:
        sdk_tp = TracerProvider(
            resource=resource, sampler=_sampler(settings), shutdown_on_exit=False
        )
        if span_exporter is not None:
            sdk_tp.add_span_processor(SimpleSpanProcessor(span_exporter))
        if settings.otlp_traces_endpoint:
            from hapa_telemetry.otlp.batcher import SpanBatchProcessor
            from hapa_telemetry.otlp.exporters import HapaSpanExporter

            inner = _otlp_exporter(settings, "traces", settings.otlp_traces_endpoint, health)
            ours = isinstance(inner, HapaSpanExporter)
            # the SDK's BatchSpanProcessor, with a full queue's drops counted (and, with
            # the package's encoder, spans encoded as they end)
            sdk_tp.add_span_processor(
                SpanBatchProcessor(
                    CountingSpanExporter(inner, health),
                    encode=inner.encode_one if ours else None,
                    on_unencodable=(lambda exc: inner.not_encodable(1, exc)) if ours else None,
                    max_queue=settings.bsp_max_queue_size,
                    batch_size=settings.bsp_max_export_batch_size,
                    delay_s=settings.bsp_schedule_delay_ms / 1000,
                    on_dropped=lambda count: health.dropped("traces", count),
                )
            )
        tracer_provider = sdk_tp
        owned.append(sdk_tp)
        if set_global and _is_unset(current):
            trace.set_tracer_provider(sdk_tp)

    # -- metrics --------------------------------------------------------------------------
    readers: list[MetricReader] = list(metric_readers)
    registry: CollectorRegistry | None = None
    if settings.enable_metrics and not settings.multiprocess_dir:
        from hapa_telemetry.exemplars import ExemplarPrometheusReader, ExemplarRegistry

        registry = ExemplarRegistry(auto_describe=True)  # exemplars on OpenMetrics scrapes
        readers.append(
            ExemplarPrometheusReader(registry=registry, scope_info_enabled=False)
        )
    if settings.otlp_metrics_endpoint:
        readers.append(
            PeriodicExportingMetricReader(
                CountingMetricExporter(
                    _otlp_exporter(settings, "metrics", settings.otlp_metrics_endpoint), health
                ),
                export_interval_millis=settings.metric_export_interval_ms,
                export_timeout_millis=settings.otlp_timeout_s * 1000,
            )
        )
    meter_provider = MeterProvider(
        resource=resource, metric_readers=readers, views=views(), shutdown_on_exit=False,
        # exemplars (trace/span id per bucket): OTEL_METRICS_EXEMPLAR_FILTER, trace-based
        exemplar_filter=_EXEMPLAR_FILTERS[settings.metrics_exemplar_filter](),
    )
    owned.append(meter_provider)
    # The two seed histograms aggregated once for all readers (histograms.py); None when
    # a reader cannot take them that way: then they are SDK instruments like the rest.
    aggregated = PackageHistograms(resource, settings.metrics_exemplar_filter)
    histograms = aggregated if aggregated.attach(readers) else None
    # Deliberately NOT set as the global MeterProvider: /metrics must show exactly the
    # package's families, and instrumentations that `opentelemetry-bootstrap` adds
    # (system-metrics, httpx, asyncio, ...) would record into a global one.

    # -- logs -----------------------------------------------------------------------------
    logger_provider: LoggerProvider | None = None
    log_batcher: Any = None
    # HAPA_LOGS_EXPORT=files: the JSON lines (files/stdout) are the transport; the
    # collector's filelog receiver makes the log records, so none are sent over OTLP.
    logs_endpoint = settings.otlp_logs_endpoint if settings.logs_export == "otlp" else None
    if log_exporter is not None or logs_endpoint:
        logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        if log_exporter is not None:
            logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
        if logs_endpoint:
            logger_provider.add_log_record_processor(
                BatchLogRecordProcessor(
                    CountingLogExporter(
                        _otlp_exporter(
                            settings, "logs", logs_endpoint, health
                        ),
                        health,
                    ),
                    max_queue_size=settings.log_queue_size,
                    max_export_batch_size=settings.blrp_max_export_batch_size,
                )
            )
        owned.append(logger_provider)
        if set_global and _is_unset(_logs.get_logger_provider()):
            _logs.set_logger_provider(logger_provider)
        if logs_endpoint and log_exporter is None:
            log_batcher = _event_batcher(settings, resource, logs_endpoint, health)
            if log_batcher is not None:
                owned.append(log_batcher)

    return Providers(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        logger_provider=logger_provider,
        registry=registry,
        health=health,
        owned=owned,
        log_batcher=log_batcher,
        histograms=histograms,
    )


def _event_batcher(
    settings: Settings, resource: Resource, endpoint: str, health: ExportHealth
) -> Any:
    """The package's own log lines straight to OTLP/HTTP (None: the SDK bridge is used).

    Only with the package's encoder over http/protobuf; gRPC and HAPA_OTLP_ENCODER=sdk
    keep the SDK's LogRecord path.
    """
    protocol = settings.otlp_logs_protocol or settings.otlp_protocol
    if protocol == "grpc" or settings.otlp_encoder != "hapa":
        return None
    import opentelemetry.sdk._logs as sdk_logs
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from hapa_telemetry._version import __version__
    from hapa_telemetry.otlp import batcher, events

    # the SDK's log record limits (OTEL_LOGRECORD_ATTRIBUTE_*), read the SDK's way;
    # LogRecordLimits from 1.45, LogLimits before
    limits = (getattr(sdk_logs, "LogRecordLimits", None) or sdk_logs.LogLimits)()
    return batcher.EventLogBatcher(
        _otlp_exporter(settings, "logs", endpoint, health),  # HapaLogExporter here
        events.EventEncoder(limits.max_attributes, limits.max_attribute_length),
        resource,
        InstrumentationScope("hapa_telemetry", __version__),
        max_queue=settings.log_queue_size,
        batch_size=settings.blrp_max_export_batch_size,
        delay_s=settings.blrp_schedule_delay_ms / 1000,
        on_result=lambda ok, items, error: health.record("logs", ok, items, error),
        on_dropped=lambda count: health.dropped("logs", count),
    )



_OTLP_EXPORTERS = {
    # signal: (gRPC module, HTTP module, class name)
    "traces": (
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "OTLPSpanExporter",
    ),
    "metrics": (
        "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
        "opentelemetry.exporter.otlp.proto.http.metric_exporter",
        "OTLPMetricExporter",
    ),
    "logs": (
        "opentelemetry.exporter.otlp.proto.grpc._log_exporter",
        "opentelemetry.exporter.otlp.proto.http._log_exporter",
        "OTLPLogExporter",
    ),
}


def _sampler(settings: Settings) -> Sampler:
    """The head sampler of ``OTEL_TRACES_SAMPLER`` / ``_ARG``, from the settings."""
    ratio = 1.0 if settings.traces_sampler_arg is None else settings.traces_sampler_arg
    root: Sampler = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(ratio),
    }[settings.traces_sampler.removeprefix("parentbased_")]
    if settings.traces_sampler.startswith("parentbased_"):
        return sampling.ParentBased(root)
    return root


def _otlp_exporter(
    settings: Settings, signal: str, endpoint: str | None, health: ExportHealth | None = None
) -> Any:
    """The OTLP exporter of one signal for the configured protocol (imported lazily).

    Spans and log records over OTLP/HTTP use the package's own encoder and client
    (hapa_telemetry.otlp, several times cheaper than the SDK's; it writes protobuf, also
    when http/json was asked for, as the SDK's HTTP exporters would); gRPC, metrics and
    ``HAPA_OTLP_ENCODER=sdk`` use the SDK's exporters with the same headers,
    compression and timeout.
    """
    # a per-signal protocol when the settings have one, else the general one
    protocol = getattr(settings, f"otlp_{signal}_protocol", None) or settings.otlp_protocol
    grpc = protocol == "grpc"
    if endpoint and signal in ("traces", "logs") and not grpc and settings.otlp_encoder == "hapa":
        from hapa_telemetry.otlp import build_exporter

        return build_exporter(
            signal,
            endpoint,
            headers=dict(settings.otlp_headers),
            compression=settings.otlp_compression,
            timeout=settings.otlp_timeout_s,
            on_rejected=health.rejected if health is not None else None,
        )
    grpc_module, http_module, name = _OTLP_EXPORTERS[signal]
    module = importlib.import_module(grpc_module if grpc else http_module)
    kwargs: dict[str, Any] = {"endpoint": endpoint, "timeout": settings.otlp_timeout_s}
    if settings.otlp_headers:
        kwargs["headers"] = dict(settings.otlp_headers)
    if settings.otlp_compression == "gzip":
        if grpc:
            from grpc import Compression as GrpcCompression  # type: ignore[import-untyped]

            kwargs["compression"] = GrpcCompression.Gzip
        else:
            from opentelemetry.exporter.otlp.proto.http import Compression

            kwargs["compression"] = Compression.Gzip
    return getattr(module, name)(**kwargs)
