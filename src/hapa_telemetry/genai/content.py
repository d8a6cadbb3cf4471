"""Opt-in prompt/response capture (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``).

Recorded the way the GenAI semantic conventions say for spans (v1.41.0, "Recording content
on attributes"): ``gen_ai.input.messages`` and ``gen_ai.output.messages`` as JSON strings
(the Python SDK has no structured span attributes) following the input/output message
schemas — ``[{"role": "user", "parts": [{"type": "text", "content": ...}]}]``. The text
goes through the same redaction as log fields first, then is capped at
:data:`CONTENT_MAX_CHARS` characters per message. Nothing here runs when capture is off.
"""

from __future__ import annotations

import json
from typing import Any, Final

INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
CONTENT_MAX_CHARS: Final = 8192
# Redaction looks at a little more than what is kept, so a secret cut by the cap is still
# recognised as a whole (and never kept half-way); beyond that, text is dropped unread.
_REDACT_WINDOW: Final = CONTENT_MAX_CHARS * 2


def clean(text: str, redactor: Any, total: int | None = None) -> str:
    """Redacted text, capped at CONTENT_MAX_CHARS (with a marker saying how much was cut).

    ``total``: the full length when ``text`` is only the kept beginning of a stream.
    """
    full = max(len(text), total or 0)
    window = text[:_REDACT_WINDOW]
    redacted: str = redactor.redact_text(window) if redactor is not None else window
    if len(redacted) <= CONTENT_MAX_CHARS and full <= len(window):
        return redacted
    return redacted[:CONTENT_MAX_CHARS] + f"…[truncated, {full} chars in all]"


def input_messages(prompt: str, redactor: Any) -> str:
    """The ``gen_ai.input.messages`` value for one user prompt."""
    message = {"role": "user", "parts": [{"type": "text", "content": clean(prompt, redactor)}]}
    return json.dumps([message], ensure_ascii=False)


def output_messages(
    text: str, redactor: Any, finish_reason: str | None, total: int | None = None
) -> str:
    """The ``gen_ai.output.messages`` value for one assistant answer."""
    message: dict[str, Any] = {
        "role": "assistant",
        "parts": [{"type": "text", "content": clean(text, redactor, total)}],
    }
    if finish_reason:
        message["finish_reason"] = finish_reason
    return json.dumps([message], ensure_ascii=False)


class TextBuffer:
    """Streamed text parts, kept only up to the redaction window (bounded memory)."""

    __slots__ = ("parts", "size", "total")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.total = 0

    def add(self, item: object) -> None:
        """Keep a str (or UTF-8 bytes) item while under the window; count all of them."""
        if isinstance(item, bytes | bytearray):
            item = bytes(item).decode("utf-8", "replace")
        if not isinstance(item, str):
            return
        self.total += len(item)
        if self.size < _REDACT_WINDOW:
            self.parts.append(item)
            self.size += len(item)

    def text(self) -> str:
        """The kept text (``total`` says how long the whole stream was)."""
        return "".join(self.parts)
