"""Every name that dashboards, alert rules and log queries depend on, in one place.

The instruments module builds the OTel instruments from these; the alert rules, the
Grafana dashboard and the tests read them from here, so a rename breaks a test instead of
a dashboard in production.
"""

from __future__ import annotations

from typing import Final

# --- Prometheus families (as scraped from /metrics and from the collector) ---------------
API_REQUESTS_TOTAL: Final = "api_requests_total"
API_REQUEST_DURATION_SECONDS: Final = "api_request_duration_seconds"
AI_INFERENCE_DURATION_SECONDS: Final = "ai_inference_duration_seconds"
ACTIVE_CONNECTIONS: Final = "active_connections"
API_ERRORS_TOTAL: Final = "api_errors_total"
CACHE_HIT_RATE: Final = "cache_hit_rate"

SEED_FAMILIES: Final = (
    API_REQUESTS_TOTAL,
    API_REQUEST_DURATION_SECONDS,
    AI_INFERENCE_DURATION_SECONDS,
    ACTIVE_CONNECTIONS,
    API_ERRORS_TOTAL,
    CACHE_HIT_RATE,
)

# System gauges (psutil), observed at collection time.
SYSTEM_CPU_PERCENT: Final = "system_cpu_percent"
SYSTEM_MEMORY_PERCENT: Final = "system_memory_percent"
SYSTEM_DISK_PERCENT: Final = "system_disk_percent"
SYSTEM_FAMILIES: Final = (SYSTEM_CPU_PERCENT, SYSTEM_MEMORY_PERCENT, SYSTEM_DISK_PERCENT)

# Self-telemetry: what the exporters did (per signal: traces, metrics, logs).
TELEMETRY_EXPORT_TOTAL: Final = "hapa_telemetry_export_total"  # labels: signal, outcome

# Label keys.
LABEL_METHOD: Final = "method"
LABEL_ENDPOINT: Final = "endpoint"
LABEL_STATUS: Final = "status"
LABEL_ERROR_TYPE: Final = "error_type"
LABEL_MODEL: Final = "model"
LABEL_CACHED: Final = "cached"

# Histogram buckets in seconds (the OTel defaults are for milliseconds).
REQUEST_DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0,
    7.5, 10.0, 30.0, 60.0,
)
INFERENCE_DURATION_BUCKETS: Final = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0, 30.0,
    60.0, 120.0,
)

# --- Log line fields -------------------------------------------------------------------
EVENT_REQUEST_START: Final = "request_start"
EVENT_REQUEST_END: Final = "request_end"
EVENT_AI_INFERENCE: Final = "ai_inference"
EVENT_ERROR: Final = "error"
EVENT_CACHE_METRICS: Final = "cache_metrics"
EVENT_PERFORMANCE_UPDATE: Final = "performance_update"
EVENT_TYPES: Final = (
    EVENT_REQUEST_START,
    EVENT_REQUEST_END,
    EVENT_AI_INFERENCE,
    EVENT_ERROR,
    EVENT_CACHE_METRICS,
    EVENT_PERFORMANCE_UPDATE,
)

# Trailing fields of every line with HAPA_LOGS_EXPORT=files (the lines are then the log
# transport, and the collector's filelog receiver makes these resource attributes).
FIELD_SERVICE_VERSION: Final = "service_version"
FIELD_SERVICE_INSTANCE_ID: Final = "service_instance_id"

LOG_FILE_PREFIX: Final = "hapa_"
ERROR_FILE_PREFIX: Final = "error_"
ES_LOG_INDEX_PREFIX: Final = "hapa-backend"
ES_TRACE_INDEX_PREFIX: Final = "hapa-traces"
DEFAULT_SERVICE_NAME: Final = "hapa-backend"
