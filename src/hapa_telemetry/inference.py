"""An inference helper: one span with GenAI semantic-convention attributes, the
``ai_inference_duration_seconds`` histogram (not for cache hits) and the ``ai_inference``
log line, as a context manager or a decorator.

    with hapa_telemetry.inference(model="codegen-small", prompt=prompt) as call:
        text, cached = generate(prompt)
        call.cached = cached
        call.response_length = len(text)
        call.usage(input_tokens=12, output_tokens=80)
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from hapa_telemetry import _state, runtime

F = TypeVar("F", bound=Callable[..., Any])


class inference:
    """Context manager / decorator around one AI model call."""

    def __init__(
        self,
        model: str | None = None,
        *,
        operation: str = "text_completion",
        provider: str | None = None,
        prompt: str | None = None,
        prompt_length: int | None = None,
        **fields: Any,
    ) -> None:
        self.model = model
        self.operation = operation
        self.provider = provider
        self.prompt_length = len(prompt) if prompt is not None else prompt_length
        self.response_length: int | None = None
        self.cached = False
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.response_model: str | None = None
        self.fields = fields
        self.duration: float | None = None
        self._span: trace.Span | None = None
        self._token: Any = None
        self._start = 0.0

    def usage(self, *, input_tokens: int | None = None, output_tokens: int | None = None) -> None:
        """Record token usage (``gen_ai.usage.input_tokens`` / ``output_tokens``)."""
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens

    def __enter__(self) -> inference:
        t = runtime.get()
        attributes: dict[str, Any] = {"gen_ai.operation.name": self.operation}
        if self.model:
            attributes["gen_ai.request.model"] = self.model
        if self.provider:
            attributes["gen_ai.provider.name"] = self.provider
        name = f"{self.operation} {self.model}" if self.model else self.operation
        self._span = t.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        self._token = trace.use_span(self._span, end_on_exit=False)
        self._token.__enter__()
        self._start = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.duration = time.perf_counter() - self._start
        span = self._span
        assert span is not None
        try:
            self._finish(span, exc)
        finally:
            self._token.__exit__(exc_type, exc, tb)
            span.end()

    def _finish(self, span: trace.Span, exc: BaseException | None) -> None:
        assert self.duration is not None
        if span.is_recording():
            attrs: dict[str, Any] = {"hapa.cache_hit": self.cached}
            if self.input_tokens is not None:
                attrs["gen_ai.usage.input_tokens"] = self.input_tokens
            if self.output_tokens is not None:
                attrs["gen_ai.usage.output_tokens"] = self.output_tokens
            if self.response_model:
                attrs["gen_ai.response.model"] = self.response_model
            span.set_attributes(attrs)
            if exc is not None:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.set_attribute("error.type", type(exc).__name__)
        if exc is not None:
            return  # the error is logged/counted by whoever handles it
        extra: dict[str, Any] = dict(self.fields)
        if self.model:
            extra["model"] = self.model
        if self.input_tokens is not None:
            extra["input_tokens"] = self.input_tokens
        if self.output_tokens is not None:
            extra["output_tokens"] = self.output_tokens
        _monitor().log_ai_inference(
            self.duration,
            self.prompt_length or 0,
            self.response_length or 0,
            cached=self.cached,
            **extra,
        )

    def __call__(self, func: F) -> F:
        """Use as a decorator: every call of ``func`` is one (uncached) inference."""
        import inspect

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                with self._clone():
                    return await func(*args, **kwargs)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._clone():
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def _clone(self) -> inference:
        return inference(
            self.model,
            operation=self.operation,
            provider=self.provider,
            prompt_length=self.prompt_length,
            **self.fields,
        )


_MONITOR: Any = None


def _reset() -> None:
    global _MONITOR
    _MONITOR = None


_state.register(__name__, _reset)


def _monitor() -> Any:
    global _MONITOR
    if _MONITOR is None:
        from hapa_telemetry.monitors import APIMonitor

        _MONITOR = APIMonitor()
    return _MONITOR
