"""Opt-in prompt/response capture: off by default (and then not even computed), on with
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, redacted like log fields, capped."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from conftest import Harness
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import hapa_telemetry
from hapa_telemetry import runtime
from hapa_telemetry.genai import content
from hapa_telemetry.settings import Settings, SettingsError
from hapa_telemetry.testing import reset as reset_telemetry

SECRET_PROMPT = (
    "write a client; my key is api_key=sk-live-0123456789abcdefghijklmnop and the header "
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlX2hlcmU"
)
SECRETS = ("sk-live-0123456789abcdefghijklmnop", "eyJhbGciOiJIUzI1NiJ9")


@pytest.fixture
def capture(harness: Harness) -> Harness:
    """The harness reconfigured with content capture on (from the environment variable)."""
    reset_telemetry()
    harness.spans = InMemorySpanExporter()  # the old one was shut down with its provider
    settings = Settings.load(
        {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"},
        log_directory=str(harness.log_dir),
    )
    harness.telemetry = runtime.configure(
        settings=settings, set_global=False, span_exporter=harness.spans,
        log_stream=harness.stream,
    )
    return harness


def _attrs(harness: Harness) -> dict[str, object]:
    return dict(harness.spans.get_finished_spans()[-1].attributes or {})


def test_off_by_default_and_not_computed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the variable no content attribute exists and no content code runs."""

    def boom(*args: object) -> str:
        raise AssertionError("content computed while capture is off")

    monkeypatch.setattr(content, "input_messages", boom)
    monkeypatch.setattr(content, "output_messages", boom)
    monkeypatch.setattr(content.TextBuffer, "add", boom)
    assert harness.telemetry.settings.genai_capture_content is False
    with hapa_telemetry.inference(model="m", prompt=SECRET_PROMPT) as call:
        call.set_response("the answer")
        list(call.stream(iter(["a", "b"])))
    attrs = _attrs(harness)
    assert content.INPUT_MESSAGES not in attrs and content.OUTPUT_MESSAGES not in attrs
    assert call._prompt is None  # the prompt's text is not kept past the start


def test_on_records_semconv_messages_redacted(capture: Harness) -> None:
    """With capture on, prompt and answer are on the span as gen_ai.input.messages /
    gen_ai.output.messages JSON (the semconv's message schema), secrets redacted."""
    with hapa_telemetry.inference(model="m", prompt=SECRET_PROMPT) as call:
        call.finish_reasons = ["stop"]
        call.set_response("here you go, token=abc123secretvalue ok")
    attrs = _attrs(capture)
    inp = json.loads(str(attrs[content.INPUT_MESSAGES]))
    out = json.loads(str(attrs[content.OUTPUT_MESSAGES]))
    assert inp[0]["role"] == "user" and inp[0]["parts"][0]["type"] == "text"
    assert "write a client" in inp[0]["parts"][0]["content"]
    assert out[0]["role"] == "assistant" and out[0]["finish_reason"] == "stop"
    assert "here you go" in out[0]["parts"][0]["content"]
    everything = json.dumps(attrs)
    for secret in (*SECRETS, "abc123secretvalue"):
        assert secret not in everything
    assert "[REDACTED]" in inp[0]["parts"][0]["content"]


def test_streamed_answer_is_captured_and_capped(capture: Harness) -> None:
    """A streamed answer is joined from its str/bytes items and capped with a marker
    giving the full length; the secret in it is redacted."""

    def tokens() -> Iterator[object]:
        yield "password=hunter2hunter2 "
        yield b"bytes too "
        for _ in range(5000):
            yield "abcd"

    with hapa_telemetry.inference(model="m", prompt="p") as call:
        list(call.stream(tokens()))
    out = json.loads(str(_attrs(capture)[content.OUTPUT_MESSAGES]))
    text = out[0]["parts"][0]["content"]
    full = len("password=hunter2hunter2 ") + len("bytes too ") + 4 * 5000
    assert "hunter2hunter2" not in text and "bytes too" in text
    assert text.endswith(f"…[truncated, {full} chars in all]")
    assert len(text) <= content.CONTENT_MAX_CHARS + 60


def test_capture_variable_values() -> None:
    """true/false and upstream's newer modes are understood; anything else is an error."""
    var = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
    assert Settings.load({var: "True"}).genai_capture_content is True
    assert Settings.load({var: "SPAN_ONLY"}).genai_capture_content is True
    assert Settings.load({var: "false"}).genai_capture_content is False
    assert Settings.load({var: "NO_CONTENT"}).genai_capture_content is False
    assert Settings.load({}).genai_capture_content is False
    with pytest.raises(SettingsError, match=var):
        Settings.load({var: "sometimes"})
