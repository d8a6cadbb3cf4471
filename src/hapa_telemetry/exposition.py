"""Prometheus exposition of the package's own registry (text, or OpenMetrics on request).

Only this package's families are exposed (no prometheus_client default process/GC
collectors): the six seed metrics, the system gauges, the self-metrics and target_info.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client.exposition import choose_encoder

if TYPE_CHECKING:
    from hapa_telemetry.runtime import Telemetry


def render_metrics(telemetry: Telemetry, accept: str | None) -> tuple[bytes, str]:
    """Body and content type for a scrape with the given Accept header."""
    registry = telemetry.metrics_registry
    if registry is None:
        return b"", "text/plain; charset=utf-8"
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
