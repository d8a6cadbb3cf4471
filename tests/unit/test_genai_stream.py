"""Streamed generation: call.stream() on sync and async iterators, early stop by the
consumer, failures mid-stream, the decorator on generator functions, nothing leaking."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator

import pytest
from conftest import Harness

import hapa_telemetry
from hapa_telemetry import names


def _span(harness: Harness, model: str) -> object:
    spans = [s for s in harness.spans.get_finished_spans() if s.name.endswith(" " + model)]
    assert len(spans) == 1, [s.name for s in harness.spans.get_finished_spans()]
    return spans[0]


def _line(harness: Harness, model: str) -> dict[str, object]:
    lines = [
        x for x in harness.lines()
        if x.get("event_type") == "ai_inference" and x.get("model") == model
    ]
    assert len(lines) == 1
    return lines[0]


def _count(harness: Harness, family: str, **labels: str) -> float | None:
    return harness.sample(family, "_count", **labels)


def test_sync_stream_times_first_token_and_ends_with_the_stream(harness: Harness) -> None:
    """The span and duration end when the stream is exhausted, after the with block; the
    line says streamed, chunks, output tokens and time to first token."""

    def tokens() -> Iterator[str]:
        yield from ["def", " f", "():", " pass"]

    with hapa_telemetry.inference(model="s1", prompt="p") as call:
        stream = call.stream(tokens())
    assert isinstance(stream, Iterator)
    assert not harness.spans.get_finished_spans()  # still open: nothing consumed yet
    assert list(stream) == ["def", " f", "():", " pass"]
    span = _span(harness, "s1")
    attrs = span.attributes  # type: ignore[attr-defined]
    assert attrs["gen_ai.request.stream"] is True
    assert attrs["gen_ai.usage.output_tokens"] == 4
    assert attrs["gen_ai.response.time_to_first_chunk"] >= 0
    assert "error.type" not in attrs
    line = _line(harness, "s1")
    assert line["streamed"] is True and line["chunks"] == 4 and line["output_tokens"] == 4
    assert line["response_length"] == len("def f(): pass")
    assert 0 <= line["ttft"] <= line["duration"]  # type: ignore[operator]
    assert _count(harness, names.PROM_GEN_AI_TIME_TO_FIRST_TOKEN, gen_ai_request_model="s1") == 1
    assert _count(harness, names.AI_INFERENCE_DURATION_SECONDS, model="s1") == 1


async def test_async_stream_returns_an_async_iterator_and_measures_ttft(harness: Harness) -> None:
    """An async iterator gives an async iterator back; TTFT covers the prefill delay and
    the duration covers the whole stream."""

    async def tokens() -> AsyncIterator[str]:
        await asyncio.sleep(0.05)
        for t in ["a", "b", "c"]:
            await asyncio.sleep(0.01)
            yield t

    with hapa_telemetry.inference(model="a1") as call:
        stream = call.stream(tokens())
    assert isinstance(stream, AsyncIterator)
    assert [t async for t in stream] == ["a", "b", "c"]
    assert call.time_to_first_token is not None and call.time_to_first_token >= 0.05
    assert call.duration is not None and call.duration >= 0.08
    assert call.duration > call.time_to_first_token
    span = _span(harness, "a1")
    assert span.attributes["gen_ai.usage.output_tokens"] == 3  # type: ignore[attr-defined]


async def test_span_is_current_while_the_model_code_runs(harness: Harness) -> None:
    """Spans the model code opens while producing items are children of the inference span."""
    tracer = harness.telemetry.tracer

    async def tokens() -> AsyncIterator[str]:
        with tracer.start_as_current_span("model step"):
            yield "x"

    with hapa_telemetry.inference(model="ctx") as call:
        stream = call.stream(tokens())
    assert [t async for t in stream] == ["x"]
    spans = {s.name: s for s in harness.spans.get_finished_spans()}
    child, parent = spans["model step"], spans["text_completion ctx"]
    assert child.parent is not None and child.parent.span_id == parent.context.span_id


def test_usage_overrides_the_item_count(harness: Harness) -> None:
    """When the caller reports usage (chunks of several tokens), its count wins."""
    with hapa_telemetry.inference(model="u") as call:
        for _ in call.stream(["two tokens", "three more tokens"]):
            pass
        call.usage(output_tokens=5)
    assert _span(harness, "u").attributes["gen_ai.usage.output_tokens"] == 5  # type: ignore[attr-defined]


def test_consumer_stops_early_sync(harness: Harness) -> None:
    """A consumer that stops early: the span ends, says error.type=cancelled, the source
    generator is closed, the seed histogram is not fed, the line says cancelled."""
    closed = []

    def tokens() -> Iterator[str]:
        try:
            for i in range(100):
                yield str(i)
        finally:
            closed.append(True)

    with hapa_telemetry.inference(model="early") as call:
        stream = call.stream(tokens())
    assert next(stream) == "0" and next(stream) == "1"
    stream.close()  # type: ignore[attr-defined]
    assert closed == [True]
    span = _span(harness, "early")
    assert span.attributes["error.type"] == names.ERROR_TYPE_CANCELLED  # type: ignore[attr-defined]
    assert span.status.status_code.name == "ERROR"  # type: ignore[attr-defined]
    assert _count(
        harness, names.PROM_GEN_AI_OPERATION_DURATION, gen_ai_request_model="early",
        error_type="cancelled",
    ) == 1
    assert _count(harness, names.AI_INFERENCE_DURATION_SECONDS, model="early") is None
    assert _line(harness, "early")["error_type"] == "cancelled"
    assert not [x for x in harness.lines() if x.get("event_type") == "error"]


async def test_consumer_stops_early_async_by_cancellation(harness: Harness) -> None:
    """A task cancelled while waiting for the next item (a client that went away)."""

    async def tokens() -> AsyncIterator[str]:
        yield "first"
        await asyncio.sleep(30)
        yield "never"

    with hapa_telemetry.inference(model="cancel") as call:
        stream = call.stream(tokens())

    async def consume() -> None:
        async for _ in stream:
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = _span(harness, "cancel")
    assert span.attributes["error.type"] == "cancelled"  # type: ignore[attr-defined]
    # the first token came: TTFT is known and recorded; time per token is not
    ttft = names.PROM_GEN_AI_TIME_TO_FIRST_TOKEN
    assert _count(harness, ttft, gen_ai_request_model="cancel") == 1
    assert _count(
        harness, names.PROM_GEN_AI_TIME_PER_OUTPUT_TOKEN, gen_ai_request_model="cancel"
    ) is None


async def test_async_stream_closed_with_aclose(harness: Harness) -> None:
    """aclose() after a few items ends the call as cancelled and closes the source."""
    closed = []

    async def tokens() -> AsyncIterator[str]:
        try:
            for i in range(100):
                yield str(i)
        finally:
            closed.append(True)

    with hapa_telemetry.inference(model="aclose") as call:
        stream = call.stream(tokens())
    assert await stream.__anext__() == "0"
    await stream.aclose()  # type: ignore[attr-defined]
    assert closed == [True]
    assert _span(harness, "aclose").attributes["error.type"] == "cancelled"  # type: ignore[attr-defined]


def test_stream_never_iterated_and_dropped_ends_the_span(harness: Harness) -> None:
    """A stream handed out but never consumed (the response was never sent) still ends."""
    with hapa_telemetry.inference(model="dropped") as call:
        stream = call.stream(iter(["x"]))
    assert not harness.spans.get_finished_spans()
    del stream
    gc.collect()
    assert _span(harness, "dropped").attributes["error.type"] == "cancelled"  # type: ignore[attr-defined]


def test_failure_mid_stream_reraises_and_logs_once(harness: Harness) -> None:
    """An exception from the source: same object re-raised to the consumer, error.type
    on the span and the duration metric, one error line."""
    boom = ConnectionResetError("model server went away")

    def tokens() -> Iterator[str]:
        yield "a"
        raise boom

    with hapa_telemetry.inference(model="midfail") as call:
        stream = call.stream(tokens())
    with pytest.raises(ConnectionResetError) as caught:
        list(stream)
    assert caught.value is boom
    span = _span(harness, "midfail")
    assert span.attributes["error.type"] == "ConnectionResetError"  # type: ignore[attr-defined]
    errors = [x for x in harness.lines() if x.get("event_type") == "error"]
    assert len(errors) == 1 and errors[0]["error_type"] == "ConnectionResetError"
    assert _count(
        harness, names.PROM_GEN_AI_OPERATION_DURATION, gen_ai_request_model="midfail",
        error_type="ConnectionResetError",
    ) == 1
    assert _count(
        harness, names.PROM_GEN_AI_TIME_TO_FIRST_TOKEN, gen_ai_request_model="midfail"
    ) is None


def test_stream_consumed_inside_the_with_block(harness: Harness) -> None:
    """Consumed within the block, the call ends at the block's end (one span, one line)."""
    with hapa_telemetry.inference(model="inside") as call:
        assert list(call.stream(range(3))) == [0, 1, 2]
        assert not harness.spans.get_finished_spans()
    _span(harness, "inside")
    _line(harness, "inside")


async def test_decorator_on_async_generator_function(harness: Harness) -> None:
    """@inference on an async generator function: one call per generator, ended with it."""

    @hapa_telemetry.inference(model="deco", provider="hapa")
    async def generate(n: int) -> AsyncIterator[str]:
        for i in range(n):
            await asyncio.sleep(0)
            yield f"t{i}"

    assert [t async for t in generate(3)] == ["t0", "t1", "t2"]
    assert [t async for t in generate(2)] == ["t0", "t1"]
    spans = [s for s in harness.spans.get_finished_spans() if s.name == "text_completion deco"]
    assert [s.attributes["gen_ai.usage.output_tokens"] for s in spans] == [3, 2]
    assert spans[0].attributes["gen_ai.provider.name"] == "hapa"
    assert _count(
        harness, names.PROM_GEN_AI_OPERATION_DURATION, gen_ai_provider_name="hapa",
        gen_ai_request_model="deco",
    ) == 2


def test_decorator_on_sync_generator_function(harness: Harness) -> None:
    """@inference on a sync generator function works the same way."""

    @hapa_telemetry.inference(model="sdeco")
    def generate() -> Iterator[str]:
        yield "x"
        yield "y"

    assert list(generate()) == ["x", "y"]
    assert _span(harness, "sdeco").attributes["gen_ai.usage.output_tokens"] == 2  # type: ignore[attr-defined]


def test_stream_outside_a_running_call_is_a_clear_error(harness: Harness) -> None:
    """stream() before the block or after the call ended says how to use it."""
    call = hapa_telemetry.inference(model="x")
    with pytest.raises(RuntimeError, match="inside `with`"):
        call.stream([1])
    with call:
        pass
    with pytest.raises(RuntimeError, match="inside `with`"):
        call.stream([1])


async def test_task_cancelled_inside_the_block_is_cancelled_not_a_failure(
    harness: Harness,
) -> None:
    """A request task cancelled while waiting for a (non-streamed) model answer ends the
    call as cancelled: no error line, no exception event; the cancellation propagates."""

    async def call_model() -> None:
        with hapa_telemetry.inference(model="waiting"):
            await asyncio.sleep(30)

    task = asyncio.create_task(call_model())
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    span = _span(harness, "waiting")
    assert span.attributes["error.type"] == "cancelled"  # type: ignore[attr-defined]
    assert not span.events  # type: ignore[attr-defined]
    assert not [x for x in harness.lines() if x.get("event_type") == "error"]
