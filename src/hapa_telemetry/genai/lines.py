"""The lines an inference call writes: the seed's ``ai_inference`` line, one ``error``
line for a failure, and the once-per-kind report of a telemetry failure on stderr."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Any

from hapa_telemetry import names, runtime

_LOGGER_NAME = "api_monitor"  # the seed's APIMonitor logger writes the ai_inference line
_reported: set[str] = set()


def inference_line(
    call: Any, streamed: bool, output_tokens: int | None, error_type: str
) -> None:
    """The seed's ``ai_inference`` line (same message and fields), plus the stream's."""
    duration = call.duration or 0.0
    prompt_length = call.prompt_length or 0
    response_length = call.response_length
    if response_length is None and call.chunks:
        response_length = call._chars
    response_length = response_length or 0
    fields: dict[str, Any] = dict(call.fields)
    if call.model:
        fields["model"] = call.model
    if call.input_tokens is not None:
        fields["input_tokens"] = call.input_tokens
    if output_tokens is not None:
        fields["output_tokens"] = output_tokens
    if streamed:
        fields["streamed"] = True
        fields["chunks"] = call.chunks
        if call.time_to_first_token is not None:
            # "ttft", not "time_to_first_token": keys with "token" are redacted
            fields["ttft"] = round(call.time_to_first_token, 6)
    if error_type:
        fields["error_type"] = error_type
    write(
        logging.INFO,
        f"AI inference done: {duration:.4f}s (prompt {prompt_length} chars, "
        f"response {response_length} chars, cached: {call.cached})",
        {
            "duration": duration,
            "prompt_length": prompt_length,
            "response_length": response_length,
            "cached": call.cached,
            "event_type": names.EVENT_AI_INFERENCE,
            **fields,
        },
    )


def error_line(call: Any, exc: BaseException) -> None:
    """One ``error`` line for a failed call; marks the exception so nobody logs it again."""
    if getattr(exc, "__hapa_logged__", False):
        return
    fields: dict[str, Any] = {
        "error_type": type(exc).__name__,
        "error_message": str(exc),
        "event_type": names.EVENT_ERROR,
        "duration": call.duration,
    }
    if call.model:
        fields["model"] = call.model
    write(
        logging.ERROR,
        f"AI inference failed: {type(exc).__name__}: {exc}",
        fields,
        (type(exc), exc, exc.__traceback__),
    )
    try:
        exc.__hapa_logged__ = True  # type: ignore[attr-defined]
    except Exception:
        pass


def write(level: int, message: str, fields: dict[str, Any], exc_info: Any = None) -> None:
    """One line through the seed's StructuredLogger path (code location = the caller)."""
    _logger()._log(level, message, fields, exc_info=exc_info)


@functools.cache
def _logger() -> Any:
    from hapa_telemetry.monitors import StructuredLogger

    return StructuredLogger(_LOGGER_NAME)


def internal_error(error: Exception) -> None:
    """Count a telemetry failure; print the first of each kind with its traceback."""
    current = runtime.current()
    if current is not None:
        current.pipeline.errors += 1
    kind = type(error).__name__
    if kind in _reported:
        return
    _reported.add(kind)
    import traceback

    err = sys.__stderr__
    if err is not None:
        try:
            err.write("hapa-telemetry: inference telemetry failed (further failures of this "
                      "kind are only counted):\n")
            traceback.print_exception(error, file=err)
        except Exception:
            pass
