"""GenAI semantic-convention instruments beside the seed's six, and the cache lookup counter.

Names, units, attributes and advised bucket boundaries follow the OpenTelemetry semantic
conventions for generative AI metrics (v1.41.0, ``docs/gen-ai/gen-ai-metrics.md``); the
constants live in :mod:`hapa_telemetry.names`. Histograms get their boundaries through the
API's bucket advisory, so no View is needed (a user's View still wins).

Request-path cost: attribute dicts are built once per (operation, provider, model, error)
and reused; the cache counter is a plain integer reported at collection time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from hapa_telemetry import names

_Key = tuple[str, str, str, str]  # operation, provider, model, error type ("" = none)


class GenAIInstruments:
    """``gen_ai.client.operation.duration``, ``gen_ai.client.token.usage``,
    ``gen_ai.server.time_to_first_token``, ``gen_ai.server.time_per_output_token`` and
    ``ai_inference_cache_lookups_total{result,model}``."""

    def __init__(self, meter: Meter, mirror: Any = None) -> None:
        self._mirror = mirror  # a multiproc.PromMirror when several workers share /metrics
        self._lock = threading.Lock()
        self._attrs: dict[_Key, Mapping[str, str]] = {}
        self._token_attrs: dict[tuple[_Key, str], Mapping[str, str]] = {}
        self._cache: dict[tuple[str, str], int] = {}
        self.duration = meter.create_histogram(
            names.GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(names.GEN_AI_DURATION_BUCKETS),
        )
        self.tokens = meter.create_histogram(
            names.GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(names.GEN_AI_TOKEN_BUCKETS),
        )
        self.ttft = meter.create_histogram(
            names.GEN_AI_SERVER_TIME_TO_FIRST_TOKEN,
            unit="s",
            description="Time to generate first token for successful responses.",
            explicit_bucket_boundaries_advisory=list(names.GEN_AI_TTFT_BUCKETS),
        )
        self.tpot = meter.create_histogram(
            names.GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN,
            unit="s",
            description=(
                "Time per output token generated after the first token for successful "
                "responses."
            ),
            explicit_bucket_boundaries_advisory=list(names.GEN_AI_TPOT_BUCKETS),
        )
        meter.create_observable_counter(
            names.AI_INFERENCE_CACHE_LOOKUPS_TOTAL,
            callbacks=[self._observe_cache],
            description="Inference cache lookups by result (hit, miss) and model",
        )

    def attributes(
        self, operation: str, provider: str | None, model: str | None, error_type: str = ""
    ) -> Mapping[str, str]:
        """The metric attributes of one kind of call (cached; do not mutate)."""
        key = (operation, provider or names.GEN_AI_PROVIDER_UNKNOWN, model or "", error_type)
        attrs = self._attrs.get(key)
        if attrs is None:
            built = {
                names.ATTR_GEN_AI_OPERATION_NAME: key[0],
                names.ATTR_GEN_AI_PROVIDER_NAME: key[1],
            }
            if model:
                built[names.ATTR_GEN_AI_REQUEST_MODEL] = model
            if error_type:
                built[names.ATTR_ERROR_TYPE] = error_type
            attrs = self._attrs[key] = built
        return attrs

    def operation(
        self,
        duration: float,
        *,
        operation: str,
        provider: str | None,
        model: str | None,
        error_type: str = "",
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        ttft: float | None = None,
        tpot: float | None = None,
    ) -> None:
        """Record one finished (uncached) model operation."""
        attrs = self.attributes(operation, provider, model, error_type)
        self.duration.record(duration, attrs)
        plain = attrs if not error_type else self.attributes(operation, provider, model)
        if input_tokens is not None:
            self.tokens.record(input_tokens, self._typed(plain, "input"))
        if output_tokens is not None:
            self.tokens.record(output_tokens, self._typed(plain, "output"))
        if ttft is not None:
            self.ttft.record(ttft, plain)
        if tpot is not None:
            self.tpot.record(tpot, plain)
        if self._mirror is not None:
            self._mirror_operation(
                duration, (operation, provider or names.GEN_AI_PROVIDER_UNKNOWN, model or ""),
                error_type, input_tokens, output_tokens, ttft, tpot,
            )

    def _mirror_operation(
        self,
        duration: float,
        base: tuple[str, str, str],
        error_type: str,
        input_tokens: int | None,
        output_tokens: int | None,
        ttft: float | None,
        tpot: float | None,
    ) -> None:
        m = self._mirror
        m.child(m.genai_duration, (*base, error_type)).observe(duration)
        if input_tokens is not None:
            m.child(m.genai_tokens, (*base, "input")).observe(input_tokens)
        if output_tokens is not None:
            m.child(m.genai_tokens, (*base, "output")).observe(output_tokens)
        if ttft is not None:
            m.child(m.genai_ttft, base).observe(ttft)
        if tpot is not None:
            m.child(m.genai_tpot, base).observe(tpot)

    def _typed(self, attrs: Mapping[str, str], token_type: str) -> Mapping[str, str]:
        key = (
            (
                attrs[names.ATTR_GEN_AI_OPERATION_NAME],
                attrs[names.ATTR_GEN_AI_PROVIDER_NAME],
                attrs.get(names.ATTR_GEN_AI_REQUEST_MODEL, ""),
                "",
            ),
            token_type,
        )
        typed = self._token_attrs.get(key)
        if typed is None:
            typed = self._token_attrs[key] = {**attrs, names.ATTR_GEN_AI_TOKEN_TYPE: token_type}
        return typed

    def cache_lookup(self, hit: bool, model: str | None) -> None:
        """Count one cache lookup (``result`` = hit or miss)."""
        key = ("hit" if hit else "miss", model or "")
        with self._lock:
            self._cache[key] = self._cache.get(key, 0) + 1
        if self._mirror is not None:
            self._mirror.child(self._mirror.cache_lookups, key).inc()

    def _observe_cache(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            items = list(self._cache.items())
        out: list[Observation] = []
        for (result, model), n in items:
            labels: dict[str, Any] = {names.LABEL_CACHE_RESULT: result}
            if model:
                labels[names.LABEL_MODEL] = model
            out.append(Observation(n, labels))
        return out
