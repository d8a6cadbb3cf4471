"""Wrappers that time a streamed answer: the first item, the item count and the end.

``wrap_sync`` returns a generator for a sync iterable, ``wrap_async`` an async generator
for an async iterable. Each step of the wrapped iterator runs with the inference span as
the current span (so calls the model code makes are its children), and the stream tells
its call how it ended:

* exhausted -> ``done()``;
* an exception from the wrapped iterator -> ``done(exc)`` and the exception propagates
  unchanged;
* closed by the consumer before the end (``close()``/``aclose()``, a cancelled task, a
  client that went away from a ``StreamingResponse``) -> ``done(cancelled=True)`` and
  the wrapped iterator is closed too;
* never iterated and dropped -> the same as closed early (a ``weakref.finalize``).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from opentelemetry import context as otel_context

T = TypeVar("T")


class StreamOwner(Protocol):
    """What a stream needs from its inference call."""

    _ctx: Any

    def _item(self, item: object) -> None: ...

    def _stream_done(
        self, exc: BaseException | None = None, *, cancelled: bool = False
    ) -> None: ...


class _State:
    """Whether one stream has told its call how it ended."""

    __slots__ = ("call", "ended")

    def __init__(self, call: StreamOwner) -> None:
        self.call = call
        self.ended = False

    def done(self, exc: BaseException | None = None, *, cancelled: bool = False) -> None:
        if not self.ended:
            self.ended = True
            self.call._stream_done(exc, cancelled=cancelled)

    def abandoned(self) -> None:
        self.done(cancelled=True)


def wrap_sync(call: StreamOwner, source: Iterable[T]) -> Iterator[T]:
    """A generator yielding ``source``'s items while timing them for ``call``."""
    it = iter(source)
    state = _State(call)
    gen = _sync(state, call, it)
    # A generator that is never started runs no code when it is closed or collected:
    # the finalizer ends the call then (a no-op when the stream already ended).
    weakref.finalize(gen, state.abandoned)
    return gen


def wrap_async(call: StreamOwner, source: AsyncIterable[T]) -> AsyncIterator[T]:
    """An async generator yielding ``source``'s items while timing them for ``call``."""
    ait = source.__aiter__()
    state = _State(call)
    gen = _async(state, call, ait)
    weakref.finalize(gen, state.abandoned)
    return gen


def _sync(state: _State, call: StreamOwner, it: Iterator[T]) -> Iterator[T]:
    attach, detach = otel_context.attach, otel_context.detach
    ctx = call._ctx
    try:
        while True:
            token = attach(ctx)
            try:
                item = next(it)
            except StopIteration:
                break
            finally:
                detach(token)
            call._item(item)
            yield item
    except GeneratorExit:
        state.done(cancelled=True)
        close = getattr(it, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                pass
        raise
    except BaseException as exc:
        state.done(exc)
        raise
    state.done()


async def _async(state: _State, call: StreamOwner, ait: AsyncIterator[T]) -> AsyncIterator[T]:
    attach, detach = otel_context.attach, otel_context.detach
    ctx = call._ctx
    try:
        while True:
            token = attach(ctx)
            try:
                item = await ait.__anext__()
            except StopAsyncIteration:
                break
            finally:
                detach(token)
            call._item(item)
            yield item
    except (GeneratorExit, asyncio.CancelledError):
        state.done(cancelled=True)
        aclose = getattr(ait, "aclose", None)
        if aclose is not None:
            try:
                await aclose()
            except BaseException:  # already being torn down: closing is best effort
                pass
        raise
    except BaseException as exc:
        state.done(exc)
        raise
    state.done()
