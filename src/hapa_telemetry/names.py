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

# --- GenAI semantic conventions (semantic-conventions v1.41.0, docs/gen-ai/gen-ai-metrics.md)
# OTel instrument names; on Prometheus (the SDK's exporter and the collector's) dots become
# underscores and unit "s" adds "_seconds": gen_ai_client_operation_duration_seconds,
# gen_ai_client_token_usage (unit "{token}" adds nothing), gen_ai_server_time_to_first_token_
# seconds, gen_ai_server_time_per_output_token_seconds. Attribute keys likewise become
# gen_ai_operation_name, gen_ai_provider_name, gen_ai_request_model, gen_ai_token_type,
# error_type.
GEN_AI_CLIENT_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
GEN_AI_CLIENT_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
GEN_AI_SERVER_TIME_TO_FIRST_TOKEN: Final = "gen_ai.server.time_to_first_token"
GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN: Final = "gen_ai.server.time_per_output_token"
# Cache lookups of the inference helper (no semconv attribute fits a response cache; the
# gen_ai.usage.cache_* attributes are about the provider's prompt cache). Labels: result
# (hit|miss), model. A hit rate over any window: rate(hit) / rate(all).
AI_INFERENCE_CACHE_LOOKUPS_TOTAL: Final = "ai_inference_cache_lookups_total"
LABEL_CACHE_RESULT: Final = "result"

PROM_GEN_AI_OPERATION_DURATION: Final = "gen_ai_client_operation_duration_seconds"
PROM_GEN_AI_TOKEN_USAGE: Final = "gen_ai_client_token_usage"
PROM_GEN_AI_TIME_TO_FIRST_TOKEN: Final = "gen_ai_server_time_to_first_token_seconds"
PROM_GEN_AI_TIME_PER_OUTPUT_TOKEN: Final = "gen_ai_server_time_per_output_token_seconds"
GENAI_PROM_HISTOGRAMS: Final = (
    PROM_GEN_AI_OPERATION_DURATION,
    PROM_GEN_AI_TOKEN_USAGE,
    PROM_GEN_AI_TIME_TO_FIRST_TOKEN,
    PROM_GEN_AI_TIME_PER_OUTPUT_TOKEN,
)
GENAI_PROM_FAMILIES: Final = (*GENAI_PROM_HISTOGRAMS, AI_INFERENCE_CACHE_LOOKUPS_TOTAL)

ATTR_GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
ATTR_GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
ATTR_GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
ATTR_GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
ATTR_GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
ATTR_ERROR_TYPE: Final = "error.type"
GEN_AI_PROVIDER_UNKNOWN: Final = "_OTHER"  # gen_ai.provider.name is Required
ERROR_TYPE_CANCELLED: Final = "cancelled"  # the consumer stopped a stream before its end

# Advised bucket boundaries (ExplicitBucketBoundaries in the semconv).
GEN_AI_DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)
GEN_AI_TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
    67108864,
)
GEN_AI_TTFT_BUCKETS: Final = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
    10.0,
)
GEN_AI_TPOT_BUCKETS: Final = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
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
