"""The inference helper: one GenAI span, the seed's ``ai_inference_duration_seconds``
(not for cache hits) and ``ai_inference`` line, the GenAI semantic-convention metrics,
cache lookups, streamed answers and opt-in content capture — as a context manager or a
decorator. See :class:`hapa_telemetry.genai.call.inference`.
"""

from __future__ import annotations

from hapa_telemetry.genai.call import inference

__all__ = ["inference"]
