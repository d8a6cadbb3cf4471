"""The errors, latency and inference reports against Elasticsearch (aggregations only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hapa_telemetry import names
from hapa_telemetry.analysis.es import (
    MAX_GROUPS,
    Client,
    Layout,
    bool_query,
    filter_clauses,
    level_clause,
    to_record,
    total_hits,
)
from hapa_telemetry.analysis.filters import Filters
from hapa_telemetry.analysis.reports import NO_VALUE
from hapa_telemetry.analysis.trace_slowest import FIELDS, TOP


def _stats_aggs(duration: str) -> dict[str, Any]:
    return {
        "stats": {"stats": {"field": duration}},
        "pct": {"percentiles": {"field": duration, "percents": [50, 95, 99]}},
    }


def _stats(bucket: Mapping[str, Any]) -> dict[str, Any]:
    stats = bucket.get("stats", {})
    values = bucket.get("pct", {}).get("values", {})
    count = int(stats.get("count") or 0)

    def pct(key: str) -> float | None:
        value = values.get(key)
        return float(value) if count and value is not None else None

    return {
        "count": count,
        "avg": stats.get("avg") if count else None,
        "p50": pct("50.0"),
        "p95": pct("95.0"),
        "p99": pct("99.0"),
        "max": stats.get("max") if count else None,
    }


def _iso(bucket_value: Mapping[str, Any]) -> str | None:
    text = bucket_value.get("value_as_string")
    return str(text) if text else None


# --- reports ------------------------------------------------------------------------------


def errors_report(client: Client, layout: Layout, filters: Filters) -> dict[str, Any]:
    """Error documents (event error or level ERROR+) by error_type."""
    clauses = filter_clauses(filters, layout)
    clauses.append(
        {
            "bool": {
                "should": [
                    {"term": {layout["event_type"].exact: names.EVENT_ERROR}},
                    level_clause("ERROR", layout),
                ],
                "minimum_should_match": 1,
            }
        }
    )
    ts = layout["timestamp"].path
    keep = [layout[name].path for name in ("error_message", "message", "trace_id", "timestamp")]
    answer = client.search(
        {
            "size": 0,
            "track_total_hits": True,
            "query": bool_query(clauses),
            "aggs": {
                "types": {
                    "terms": {"field": layout["error_type"].exact, "size": MAX_GROUPS,
                              "missing": NO_VALUE},
                    "aggs": {
                        "first": {"min": {"field": ts}},
                        "last": {"max": {"field": ts}},
                        "example": {"top_hits": {"size": 1, "sort": [{ts: "asc"}],
                                                 "_source": {"includes": keep}}},
                    },
                }
            },
        }
    )
    types: list[dict[str, Any]] = []
    for bucket in answer["aggregations"]["types"]["buckets"]:
        hits = bucket["example"]["hits"]["hits"]
        example = to_record(hits[0], layout) if hits else {}
        text = example.get("error_message") or example.get("message")
        types.append(
            {
                "error_type": str(bucket["key"]),
                "count": int(bucket["doc_count"]),
                "first_seen": _iso(bucket["first"]),
                "last_seen": _iso(bucket["last"]),
                "example": None if text is None else str(text),
                "example_trace_id": example.get("trace_id"),
            }
        )
    types.sort(key=lambda row: (-int(row["count"]), str(row["error_type"])))
    return {"report": "errors", "total": total_hits(answer), "types": types}


def latency_report(client: Client, layout: Layout, filters: Filters) -> dict[str, Any]:
    """request_end durations, overall and per endpoint, with 5xx counts."""
    duration = layout["duration"].path
    clauses = filter_clauses(filters, layout)
    clauses += [
        {"term": {layout["event_type"].exact: names.EVENT_REQUEST_END}},
        {"exists": {"field": duration}},
    ]
    per_group = {
        **_stats_aggs(duration),
        "server_errors": {"filter": {"range": {layout["status_code"].path: {"gte": 500}}}},
    }
    answer = client.search(
        {
            "size": 0,
            "track_total_hits": True,
            "query": bool_query(clauses),
            "aggs": {
                **per_group,
                "endpoints": {
                    "terms": {"field": layout["endpoint"].exact, "size": MAX_GROUPS,
                              "missing": NO_VALUE},
                    "aggs": per_group,
                },
                "slowest": {"top_hits": {"size": TOP, "sort": [{duration: "desc"}]}},
            },
        }
    )
    aggs = answer["aggregations"]
    slowest = [{k: to_record(hit, layout).get(k) for k in FIELDS}
               for hit in aggs["slowest"]["hits"]["hits"]]
    endpoints = [
        {
            "endpoint": str(bucket["key"]),
            **_stats(bucket),
            "server_errors": int(bucket["server_errors"]["doc_count"]),
        }
        for bucket in aggs["endpoints"]["buckets"]
    ]
    endpoints.sort(key=lambda row: (-int(row["count"]), str(row["endpoint"])))
    return {
        "report": "latency",
        "unit": "seconds",
        "exact": False,
        "overall": {**_stats(aggs), "server_errors": int(aggs["server_errors"]["doc_count"])},
        "endpoints": endpoints,
        "slowest": slowest,
    }


def inference_report(client: Client, layout: Layout, filters: Filters) -> dict[str, Any]:
    """ai_inference durations: overall, cached vs not, per model; cache hit rates."""
    duration = layout["duration"].path
    cached = layout["cached"].path
    clauses = filter_clauses(filters, layout)
    inference = [
        *clauses,
        {"term": {layout["event_type"].exact: names.EVENT_AI_INFERENCE}},
        {"exists": {"field": duration}},
    ]
    answer = client.search(
        {
            "size": 0,
            "query": bool_query(inference),
            "aggs": {
                **_stats_aggs(duration),
                "cached": {"filter": {"term": {cached: True}}, "aggs": _stats_aggs(duration)},
                "uncached": {
                    "filter": {"bool": {"must_not": [{"term": {cached: True}}]}},
                    "aggs": {**_stats_aggs(duration), **_generation_aggs(layout)},
                },
                "models": {
                    "terms": {"field": layout["model"].exact, "size": MAX_GROUPS},
                    "aggs": _stats_aggs(duration),
                },
            },
        }
    )
    aggs = answer["aggregations"]
    latest = client.search(
        {
            "size": 1,
            "query": bool_query(
                [*clauses, {"term": {layout["event_type"].exact: names.EVENT_CACHE_METRICS}},
                 {"exists": {"field": layout["hit_rate"].path}}]
            ),
            "sort": [{layout["timestamp"].path: "desc"}],
            "_source": {"includes": [layout[n].path for n in ("hit_rate", "cache_size",
                                                               "timestamp")]},
        }
    )
    reported: dict[str, Any] = {}
    if latest["hits"]["hits"]:
        reported = to_record(latest["hits"]["hits"][0], layout)
    overall = _stats(aggs)
    cached_stats = _stats(aggs["cached"])
    models = [{"model": str(b["key"]), **_stats(b)} for b in aggs["models"]["buckets"]]
    models.sort(key=lambda row: (-int(row["count"]), str(row["model"])))
    size = reported.get("cache_size")
    return {
        "report": "inference",
        "unit": "seconds",
        "exact": False,
        "overall": overall,
        "cached": cached_stats,
        "uncached": _stats(aggs["uncached"]),
        "cache_hit_rate": cached_stats["count"] / overall["count"] if overall["count"] else None,
        "reported_cache_hit_rate": reported.get("hit_rate"),
        "reported_cache_size": size if isinstance(size, int) else None,
        "reported_at": reported.get("timestamp"),
        "models": models,
        **_generation(aggs["uncached"]),
    }


def _generation_aggs(layout: Layout) -> dict[str, Any]:
    """Streamed answers (issue 13): TTFT percentiles, output tokens over generation time."""
    ttft = layout["ttft"].path
    tokens = layout["output_tokens"].path
    cancelled = {"term": {layout["error_type"].exact: names.ERROR_TYPE_CANCELLED}}
    return {
        "ttft": {"filter": {"exists": {"field": ttft}}, "aggs": _stats_aggs(ttft)},
        "cancelled": {"filter": cancelled},
        "generation": {
            "filter": {"bool": {"filter": [{"range": {tokens: {"gt": 0}}}],
                                "must_not": [cancelled]}},
            "aggs": {
                "tokens": {"sum": {"field": tokens}},
                "seconds": {"sum": {"field": layout["duration"].path}},
            },
        },
    }


def _generation(uncached: Mapping[str, Any]) -> dict[str, Any]:
    generation = uncached.get("generation", {})
    tokens = int(generation.get("tokens", {}).get("value") or 0)
    seconds = float(generation.get("seconds", {}).get("value") or 0.0)
    return {
        "time_to_first_token": _stats(uncached.get("ttft", {})),
        # per-call speeds need a script; Elasticsearch gives the aggregate only
        "tokens_per_second": _stats({}),
        "output_tokens": tokens,
        "output_tokens_per_second": tokens / seconds if seconds > 0 else None,
        "cancelled_streams": int(uncached.get("cancelled", {}).get("doc_count") or 0),
    }
