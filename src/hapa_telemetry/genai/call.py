"""One AI model call: a GenAI span, the seed's histogram and line, the GenAI metrics.

    with hapa_telemetry.inference(model="codegen-small", prompt=prompt) as call:
        text, cached = generate(prompt)
        call.cached = cached
        call.set_response(text)
        call.usage(input_tokens=12, output_tokens=80)

    with hapa_telemetry.inference(model="codegen-small", prompt=prompt) as call:
        return StreamingResponse(call.stream(model.generate_stream(prompt)))

The call ends when the ``with`` block ends, or — when it handed out a stream — when that
stream ends (exhausted, failed, or closed early by the consumer), whichever is later.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

import hapa_telemetry.genai.content as content
import hapa_telemetry.genai.lines as lines
import hapa_telemetry.genai.stream as stream
from hapa_telemetry import names, runtime

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")



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
        self._prompt = prompt
        self.response_length: int | None = None
        self._cached: bool | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.response_model: str | None = None
        self.finish_reasons: list[str] | None = None
        self.fields = fields
        self.duration: float | None = None
        self.time_to_first_token: float | None = None
        self.chunks = 0
        self._chars = 0
        self._span: trace.Span | None = None
        self._ctx: Any = None
        self._token: Any = None
        self._start = 0.0
        self._first = 0.0
        self._streams = 0
        self._streamed = False
        self._exited = False
        self._done = False
        self._cancelled = False
        self._capture = False
        self._redactor: Any = None
        self._response_text: str | None = None
        self._buffer: content.TextBuffer | None = None

    # -- what the caller sets ----------------------------------------------------------------
    @property
    def cached(self) -> bool:
        """True when the answer came from a cache (set it; counts a hit or a miss)."""
        return bool(self._cached)

    @cached.setter
    def cached(self, value: bool) -> None:
        self._cached = bool(value)

    def usage(self, *, input_tokens: int | None = None, output_tokens: int | None = None) -> None:
        """Record token usage (``gen_ai.usage.input_tokens`` / ``output_tokens``)."""
        if input_tokens is not None:
            self.input_tokens = input_tokens
        if output_tokens is not None:
            self.output_tokens = output_tokens

    def set_response(self, text: str) -> None:
        """The answer's text: its length for the line; its content only when captured."""
        self.response_length = len(text)
        if self._capture:
            self._response_text = text

    @overload
    def stream(self, source: AsyncIterable[T]) -> AsyncIterator[T]: ...

    @overload
    def stream(self, source: Iterable[T]) -> Iterator[T]: ...

    def stream(self, source: Any) -> Any:
        """Wrap a streamed answer (sync or async iterable; returns the same kind).

        Times the first item (``gen_ai.server.time_to_first_token``), counts the items as
        output tokens unless :meth:`usage` says otherwise, and ends the call when the
        stream ends — also when the consumer stops early (``error.type=cancelled``).
        """
        if self._span is None or self._done:
            raise RuntimeError("call.stream() needs a running call: use it inside `with`")
        self._streams += 1
        self._streamed = True
        if self._span.is_recording():
            self._span.set_attribute("gen_ai.request.stream", True)
        if self._capture and self._buffer is None:
            self._buffer = content.TextBuffer()
        if hasattr(source, "__aiter__"):
            return stream.wrap_async(self, source)
        return stream.wrap_sync(self, source)

    # -- context manager -----------------------------------------------------------------
    def __enter__(self) -> inference:
        self._begin()
        self._token = trace.use_span(self._span, end_on_exit=False)  # type: ignore[arg-type]
        self._token.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._token.__exit__(None, None, None)
        finally:
            self._exited = True
            if isinstance(exc, asyncio.CancelledError | GeneratorExit):
                self._cancelled = True  # the request went away: no failure of the model
                self._end(None)
            elif exc is not None:
                self._end(exc)
            elif self._streams == 0:
                self._end(None)

    def _begin(self) -> None:
        t = runtime.get()
        if t.settings.genai_capture_content:
            self._capture = True
            self._redactor = t.pipeline.builder.redactor
        attributes: dict[str, Any] = {names.ATTR_GEN_AI_OPERATION_NAME: self.operation}
        if self.model:
            attributes[names.ATTR_GEN_AI_REQUEST_MODEL] = self.model
        attributes[names.ATTR_GEN_AI_PROVIDER_NAME] = (
            self.provider or names.GEN_AI_PROVIDER_UNKNOWN
        )
        name = f"{self.operation} {self.model}" if self.model else self.operation
        span = t.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        self._span = span
        self._ctx = trace.set_span_in_context(span)
        if self._capture and self._prompt is not None:
            _safely(
                span.set_attribute,
                content.INPUT_MESSAGES,
                content.input_messages(self._prompt, self._redactor),
            )
        self._prompt = None  # the text is not kept past the start
        self._start = time.perf_counter()

    # -- stream callbacks --------------------------------------------------------------------
    def _item(self, item: object) -> None:
        if self.chunks == 0:
            self._first = time.perf_counter()
        self.chunks += 1
        if isinstance(item, str | bytes):
            self._chars += len(item)
        if self._buffer is not None:
            self._buffer.add(item)

    def _stream_done(self, exc: BaseException | None = None, *, cancelled: bool = False) -> None:
        if self._done:
            return
        self._cancelled = self._cancelled or cancelled
        self._streams -= 1
        if exc is not None or cancelled or (self._exited and self._streams <= 0):
            self._end(exc)

    # -- the end -----------------------------------------------------------------------------
    def _end(self, exc: BaseException | None) -> None:
        if self._done:
            return
        self._done = True
        end = time.perf_counter()
        self.duration = end - self._start
        span = self._span
        if span is None:
            return
        token = otel_context.attach(self._ctx)  # the line carries the span's trace id
        try:
            self._record(span, exc, end)
        except Exception as error:  # telemetry must never break the call
            lines.internal_error(error)
        finally:
            otel_context.detach(token)
            span.end()

    def _record(self, span: trace.Span, exc: BaseException | None, end: float) -> None:
        assert self.duration is not None
        t = runtime.get()
        streamed = self._streamed
        cancelled = exc is None and self._cancelled
        error_type = (
            _error_type(exc) if exc is not None else names.ERROR_TYPE_CANCELLED if cancelled else ""
        )
        if self.chunks:
            self.time_to_first_token = self._first - self._start
        output_tokens = self.output_tokens
        if output_tokens is None and self.chunks:
            output_tokens = self.chunks
        if span.is_recording():
            self._span_attributes(span, exc, error_type, output_tokens)
        genai = t.instruments.genai
        if self._cached is not None:
            genai.cache_lookup(self._cached, self.model)
        if not self.cached:
            ttft = self.time_to_first_token if not exc else None
            tpot = None
            if not error_type and ttft is not None and output_tokens and output_tokens > 1:
                tpot = (end - self._first) / (output_tokens - 1)
            genai.operation(
                self.duration,
                operation=self.operation,
                provider=self.provider,
                model=self.model,
                error_type=error_type,
                input_tokens=self.input_tokens,
                output_tokens=output_tokens,
                ttft=ttft,
                tpot=tpot,
            )
        if exc is not None:
            lines.error_line(self, exc)
            return
        if not self.cached and not cancelled:
            t.instruments.inference(self.duration, self.model)
        lines.inference_line(self, streamed, output_tokens, error_type)

    def _span_attributes(
        self,
        span: trace.Span,
        exc: BaseException | None,
        error_type: str,
        output_tokens: int | None,
    ) -> None:
        attrs: dict[str, Any] = {"hapa.cache_hit": self.cached}
        if self.input_tokens is not None:
            attrs["gen_ai.usage.input_tokens"] = self.input_tokens
        if output_tokens is not None:
            attrs["gen_ai.usage.output_tokens"] = output_tokens
        if self.response_model:
            attrs[names.ATTR_GEN_AI_RESPONSE_MODEL] = self.response_model
        if self.finish_reasons:
            attrs["gen_ai.response.finish_reasons"] = list(self.finish_reasons)
        if self.time_to_first_token is not None:
            attrs["gen_ai.response.time_to_first_chunk"] = self.time_to_first_token
        if self._capture:
            text = self._response_text
            total = None
            if text is None and self._buffer is not None:
                text, total = self._buffer.text(), self._buffer.total
            if text is not None:
                reason = self.finish_reasons[0] if self.finish_reasons else None
                attrs[content.OUTPUT_MESSAGES] = content.output_messages(
                    text, self._redactor, reason, total
                )
        if error_type:
            attrs[names.ATTR_ERROR_TYPE] = error_type
        span.set_attributes(attrs)
        if exc is not None:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
        elif error_type:
            span.set_status(
                Status(StatusCode.ERROR, "the consumer closed the stream before its end")
            )

    # -- decorator -----------------------------------------------------------------------
    def __call__(self, func: F) -> F:
        """Use as a decorator: every call of ``func`` is one (uncached) inference.

        Async and sync functions are timed until they return; generator functions (sync or
        async) until the generator they return is exhausted or closed.
        """
        if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):

            @functools.wraps(func)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                call = self._clone()
                call._begin()
                call._exited = True
                try:
                    source = func(*args, **kwargs)
                except BaseException as exc:
                    call._end(exc)
                    raise
                return call.stream(source)

            return gen_wrapper  # type: ignore[return-value]

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


def _error_type(exc: BaseException) -> str:
    """``error.type``: the exception's class name (as ``api_errors_total`` labels it)."""
    return type(exc).__qualname__


def _safely(func: Callable[..., Any], *args: Any) -> None:
    try:
        func(*args)
    except Exception as error:
        lines.internal_error(error)
