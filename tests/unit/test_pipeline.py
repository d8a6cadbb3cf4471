"""The log pipeline seen from the seed's API: fields, safety, secrets, OTel records."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import logging
from pathlib import Path
from typing import Any

from conftest import Harness
from opentelemetry.sdk.trace import TracerProvider

import hapa_telemetry
from hapa_telemetry import APIMonitor, PerformanceMonitor, StructuredLogger, names, runtime
from hapa_telemetry.testing import reset as reset_telemetry


def test_structured_logger_accepts_any_field_name_including_message(harness: Harness) -> None:
    """Fields named like LogRecord attributes or fixed keys keep their value, no crash."""
    StructuredLogger("svc").info("hello", message="m", args=[1], msg="x", name="n", level="L")
    line = harness.lines()[-1]
    assert line["message"] == "hello"
    assert line["field_message"] == "m" and line["field_level"] == "L"
    assert line["args"] == [1] and line["msg"] == "x" and line["name"] == "n"


def test_unserializable_fields_are_rendered_not_dropped(harness: Harness) -> None:
    """datetime, Decimal, bytes, sets, objects, exceptions and cycles never crash a call."""

    class Thing:
        def __repr__(self) -> str:
            return "<Thing>"

    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    StructuredLogger("svc").info(
        "odd fields",
        when=dt.datetime(2024, 12, 28, 10, 30),
        price=decimal.Decimal("1.10"),
        raw=b"\xff\x00abc",
        tags={"a"},
        thing=Thing(),
        err=ValueError("nope"),
        loop=cyclic,
    )
    line = harness.lines()[-1]
    assert line["when"].startswith("2024-12-28T10:30")
    assert "1.10" in str(line["price"])
    assert line["tags"] == ["a"]
    assert line["thing"] == "<Thing>"
    assert "nope" in line["err"]
    assert "cycle" in json.dumps(line["loop"])


def test_logger_exception_keeps_stack_trace(harness: Harness) -> None:
    """logger.exception() (exc_info with a traceback) writes the stack, not a crash."""
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        StructuredLogger("svc").exception("division failed", user_id="u9")
        logging.getLogger("plain").exception("stdlib too")
    lines = harness.lines()
    ours, stdlib = lines[-2], lines[-1]
    assert ours["error_type"] == "ZeroDivisionError" and "Traceback" in ours["exception"]
    assert stdlib["logger"] == "plain" and "ZeroDivisionError" in stdlib["exception"]


def test_newlines_cannot_forge_a_second_line(harness: Harness) -> None:
    """A message with newlines and control characters stays one JSON line."""
    StructuredLogger("svc").info('evil\n{"level":"CRITICAL","message":"forged"}\r\x1b[31m')
    harness.telemetry.pipeline.flush(5)
    raw = harness.stream.getvalue().splitlines()
    assert not any('"forged"' in r and r.startswith('{"level"') for r in raw)
    assert "forged" in harness.lines()[-1]["message"]


def test_megabyte_message_is_truncated_with_marker(harness: Harness) -> None:
    """A message of megabytes is cut with a visible marker."""
    StructuredLogger("svc").info("x" * 3_000_000)
    line = harness.lines()[-1]
    assert len(line["message"]) < 100_000 and "truncated" in line["message"]


SECRETS = ["hunter2", "sk-abcdefghijklmnopqrstuvwx1234", "tok_9f8e7d6c5b4a", "c00kie-val"]


def test_secrets_never_reach_stdout_files_or_otlp(harness: Harness) -> None:
    """Passwords, tokens, API keys and bearer tokens are redacted in every sink."""
    StructuredLogger("auth").info(
        "login Authorization: Bearer tok_9f8e7d6c5b4a for key sk-abcdefghijklmnopqrstuvwx1234",
        password="hunter2",
        headers={"Cookie": "c00kie-val", "Accept": "json"},
        url="https://x/api?api_key=sk-abcdefghijklmnopqrstuvwx1234&page=2",
    )
    harness.telemetry.force_flush(5)
    stdout = harness.stream.getvalue()
    files = "".join(p.read_text() for p in Path(harness.log_dir).glob("*.log"))
    otlp = json.dumps([r.log_record.body for r in harness.logs.get_finished_logs()]) + json.dumps(
        [dict(r.log_record.attributes or {}) for r in harness.logs.get_finished_logs()]
    )
    for sink in (stdout, files, otlp):
        assert "login" in sink
        for secret in SECRETS:
            assert secret not in sink
    line = harness.lines()[-1]
    assert line["headers"]["Accept"] == "json" and "page=2" in line["url"]


def test_client_ip_policy_anonymize_and_drop(tmp_path: Path) -> None:
    """client_ip can be anonymised or dropped by policy."""
    for policy, expect in (("anonymize", "10.1.2.0"), ("drop", None)):
        reset_telemetry()
        buf = io.StringIO()
        t = runtime.configure(
            set_global=False, log_stream=buf, log_directory=None, client_ip=policy
        )
        APIMonitor().log_request_start("GET", "/x", client_ip="10.1.2.3")
        t.pipeline.flush(5)
        line = json.loads(buf.getvalue().splitlines()[-1])
        assert line.get("client_ip") == expect
    reset_telemetry()


def test_otel_log_records_carry_trace_context_and_resource(harness: Harness) -> None:
    """Each line is also an OTel log record with severity, body, attributes and trace ids."""
    tracer = harness.telemetry.tracer
    with tracer.start_as_current_span("work") as span:
        StructuredLogger("svc").warning("careful", user_id="u1", event_type="error")
    harness.telemetry.force_flush(5)
    record = harness.logs.get_finished_logs()[-1].log_record
    assert record.body == "careful"
    assert record.severity_text == "WARNING" and record.severity_number.name == "WARN"
    assert record.attributes is not None and record.attributes["user_id"] == "u1"
    assert record.trace_id == span.get_span_context().trace_id
    assert record.span_id == span.get_span_context().span_id
    res = harness.logs.get_finished_logs()[-1].resource.attributes
    assert res["service.name"] == "hapa-backend"
    for key in ("service.version", "deployment.environment.name", "service.instance.id"):
        assert key in res


def test_seed_api_monitor_updates_lines_and_metrics(harness: Harness) -> None:
    """APIMonitor's calls write their event lines and move the instruments like the seed."""
    m = APIMonitor()
    m.log_request_start("POST", "/api/v1/code/generate", client_ip="1.2.3.4")
    assert harness.sample(names.ACTIVE_CONNECTIONS) == 1
    m.log_request_end("POST", "/api/v1/code/generate", 200, 0.5, client_ip="1.2.3.4")
    m.log_ai_inference(1.5, 10, 20, cached=False)
    m.log_ai_inference(0.0, 10, 20, cached=True)
    m.log_cache_metrics(0.5, 3)
    m.log_error(RuntimeError("x"), {"k": "v"})
    kinds = [line.get("event_type") for line in harness.lines()]
    assert kinds == [
        "request_start", "request_end", "ai_inference", "ai_inference", "cache_metrics", "error",
    ]
    assert harness.sample(names.ACTIVE_CONNECTIONS) == 0
    assert harness.sample(
        names.API_REQUESTS_TOTAL, method="POST", endpoint="/api/v1/code/generate", status="200"
    ) == 1
    assert harness.sample(names.AI_INFERENCE_DURATION_SECONDS, "_count") == 1
    assert harness.sample(names.CACHE_HIT_RATE) == 50.0
    assert harness.sample(names.API_ERRORS_TOTAL, error_type="RuntimeError") == 1
    assert harness.lines()[-1]["context"] == {"k": "v"}


def test_logger_error_counts_error_type_like_the_seed(harness: Harness) -> None:
    """StructuredLogger.error counts api_errors_total{error_type} (default 'unknown')."""
    StructuredLogger("svc").error("db down", error_type="DBError")
    StructuredLogger("svc").error("mystery")
    assert harness.sample(names.API_ERRORS_TOTAL, error_type="DBError") == 1
    assert harness.sample(names.API_ERRORS_TOTAL, error_type="unknown") == 1
    error_file = next(Path(harness.log_dir).glob("error_*.log")).read_text().splitlines()
    assert len(error_file) == 2


def test_level_filtering_keeps_debug_out_at_info(tmp_path: Path) -> None:
    """Lines below LOG_LEVEL are not written anywhere."""
    reset_telemetry()
    buf = io.StringIO()
    t = runtime.configure(set_global=False, log_stream=buf, log_directory=None, log_level="INFO")
    StructuredLogger("svc").debug("hidden")
    StructuredLogger("svc").info("shown")
    t.pipeline.flush(5)
    assert "hidden" not in buf.getvalue() and "shown" in buf.getvalue()
    reset_telemetry()


def test_development_format_is_the_seed_plain_line(tmp_path: Path) -> None:
    """DEBUG=True prints the seed's plain line on stdout while files stay JSON."""
    reset_telemetry()
    buf = io.StringIO()
    t = runtime.configure(
        set_global=False, log_stream=buf, log_directory=str(tmp_path), debug=True,
        log_format="plain", environment="development",
    )
    StructuredLogger("api_monitor").info("API request start: POST /api/v1/code/generate")
    t.pipeline.flush(5)
    line = buf.getvalue().splitlines()[-1]
    import re

    assert re.match(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} - api_monitor - INFO - API request start", line
    )
    file_line = json.loads(next(tmp_path.glob("hapa_*.log")).read_text().splitlines()[-1])
    assert file_line["environment"] == "development"
    reset_telemetry()


def test_configure_twice_adds_no_second_handler(harness: Harness) -> None:
    """configure() again returns the same handle; the root logger has one handler of ours."""
    again = hapa_telemetry.configure()
    assert again is harness.telemetry
    from hapa_telemetry.logs.pipeline import HapaHandler

    ours = [h for h in logging.getLogger().handlers if isinstance(h, HapaHandler)]
    assert len(ours) == 1
    StructuredLogger("svc").info("once")
    assert sum(1 for line in harness.lines() if line["message"] == "once") == 1


def test_no_otlp_endpoint_means_no_exporter(harness: Harness) -> None:
    """Without an OTLP endpoint no exporter exists, so nothing connects anywhere."""
    tp = harness.telemetry.providers.tracer_provider
    assert isinstance(tp, TracerProvider)
    processors = tp._active_span_processor._span_processors
    assert [type(p).__name__ for p in processors] == ["SimpleSpanProcessor"]  # the test's own
    assert harness.telemetry.settings.otlp_enabled is False


def test_performance_monitor_update_metrics_logs_and_health_uses_live_traffic(
    harness: Harness,
) -> None:
    """update_metrics logs performance_update; health figures come from live traffic."""
    pm = PerformanceMonitor()
    pm.update_metrics(requests_per_minute=999, custom=1)
    assert harness.lines()[-1]["event_type"] == "performance_update"
    assert pm.get_health_status()["application"]["requests_per_minute"] == 999
    m = APIMonitor()
    for status in (200, 200, 200, 500):
        m.log_request_start("GET", "/x")
        m.log_request_end("GET", "/x", status, 0.2)
    app = pm.get_health_status()["application"]
    assert app["requests_per_minute"] == 4
    assert app["error_rate"] == 0.25
    assert abs(app["average_response_time"] - 0.2) < 1e-6
    assert app["custom"] == 1


def test_uvicorn_access_line_has_secret_query_params_redacted(harness: Harness) -> None:
    """uvicorn's access line (off by default) never carries secret query parameters."""
    access = logging.getLogger("uvicorn.access")
    assert access.getEffectiveLevel() > logging.INFO  # off by default: request_end says it all
    access.setLevel(logging.INFO)
    try:
        access.info(
            '%s - "%s %s HTTP/%s" %d', "1.2.3.4:5", "GET",
            "/api/v1/items?token=abc123secret&api_key=sk-zzzzzzzzzzzzzzzzzzzz&page=2", "1.1", 200,
        )
    finally:
        access.setLevel(logging.WARNING)
    line = harness.lines()[-1]
    assert line["logger"] == "uvicorn.access" and "page=2" in line["message"]
    assert "abc123secret" not in json.dumps(line) and "sk-zzzz" not in json.dumps(line)


def test_otlp_logs_follow_the_trace_sampling_below_warning(harness: Harness) -> None:
    """Below WARNING, lines of a sampled-out trace stay local; warnings and errors export."""
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, use_span

    unsampled = NonRecordingSpan(
        SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=False,
                    trace_flags=TraceFlags(TraceFlags.DEFAULT))
    )
    with use_span(unsampled):
        StructuredLogger("svc").info("routine")
        StructuredLogger("svc").warning("suspicious")
    harness.telemetry.force_flush(5)
    exported = [r.log_record.body for r in harness.logs.get_finished_logs()]
    assert exported == ["suspicious"]
    local = [line["message"] for line in harness.lines()]
    assert local == ["routine", "suspicious"]
    assert harness.lines()[0]["trace_id"] == format(0xABC, "032x")


def test_otlp_attributes_are_json_for_structures(harness: Harness) -> None:
    """Nested fields reach OTLP as JSON text, and resource duplicates are left out."""
    StructuredLogger("svc").info("with context", context={"model": "m", "n": 1})
    harness.telemetry.force_flush(5)
    attrs = dict(harness.logs.get_finished_logs()[-1].log_record.attributes or {})
    assert json.loads(attrs["context"]) == {"model": "m", "n": 1}
    assert "service" not in attrs and "environment" not in attrs


def test_structured_formatter_in_a_dictconfig_and_seed_helpers(harness: Harness) -> None:
    """StructuredFormatter works from a dictConfig like the seed's; setup_logging() keeps
    one handler; get_prometheus_metrics() returns the Prometheus text."""
    import logging.config

    buf = io.StringIO()
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"structured": {"()": hapa_telemetry.StructuredFormatter}},
            "handlers": {
                "mine": {"class": "logging.StreamHandler", "formatter": "structured",
                         "stream": buf}
            },
            "loggers": {"seedstyle": {"handlers": ["mine"], "level": "INFO",
                                      "propagate": False}},
        }
    )
    try:
        logging.getLogger("seedstyle").info("formatted", extra={"user_id": "u5"})
        with harness.telemetry.tracer.start_as_current_span("s") as span:
            logging.getLogger("seedstyle").warning("in span token=abcdef1234567890")
    finally:
        logging.getLogger("seedstyle").handlers.clear()
    first, second = (json.loads(x) for x in buf.getvalue().splitlines())
    assert list(first)[:4] == ["timestamp", "level", "logger", "message"]
    assert first["user_id"] == "u5" and first["logger"] == "seedstyle"
    assert second["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert "abcdef1234567890" not in second["message"]

    hapa_telemetry.setup_logging()
    from hapa_telemetry.logs.pipeline import HapaHandler

    assert sum(isinstance(h, HapaHandler) for h in logging.getLogger().handlers) == 1
    APIMonitor().log_request_end("GET", "/x", 200, 0.1)
    text = hapa_telemetry.get_prometheus_metrics().decode()
    assert 'api_requests_total{endpoint="/x",method="GET",status="200"} 1.0' in text
