"""Settings: arguments over environment over defaults; bad values name the variable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hapa_telemetry import runtime
from hapa_telemetry.settings import Settings, SettingsError, _rows, parse_size
from hapa_telemetry.settings import kinds as k
from hapa_telemetry.testing import reset as reset_telemetry


def test_defaults_match_the_seed() -> None:
    """With no environment the seed's defaults apply."""
    s = Settings.load({})
    assert s.log_level == "INFO" and s.debug is False and s.environment == "production"
    assert s.enable_metrics is True and s.metrics_port == 8000
    assert s.log_directory == "logs" and s.log_max_bytes == 10 * 1024**2
    assert s.log_backup_count == 5 and s.service_name == "hapa-backend"
    assert s.otlp_enabled is False


def test_seed_env_vars_are_honoured() -> None:
    """The seed's .env variables are read."""
    s = Settings.load(
        {
            "LOG_LEVEL": "debug", "DEBUG": "True", "ENABLE_METRICS": "False",
            "METRICS_PORT": "9100", "LOG_DIRECTORY": "/var/log/hapa",
            "LOG_MAX_SIZE": "512KB", "LOG_BACKUP_COUNT": "9",
        }
    )
    assert s.log_level == "DEBUG" and s.debug and s.environment == "development"
    assert s.log_format == "plain" and not s.enable_metrics and s.metrics_port == 9100
    assert s.log_directory == "/var/log/hapa" and s.log_max_bytes == 512 * 1024
    assert s.log_backup_count == 9


def test_arguments_override_environment() -> None:
    """Keyword arguments beat environment variables."""
    s = Settings.load({"LOG_LEVEL": "ERROR"}, log_level="WARNING")
    assert s.log_level == "WARNING"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("LOG_MAX_SIZE", "ten"),
        ("LOG_LEVEL", "LOUD"),
        ("DEBUG", "maybe"),
        ("METRICS_PORT", "80000"),
        ("LOG_BACKUP_COUNT", "-1"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
        ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
        ("LOG_CLIENT_IP", "hash"),
        ("LOG_REDACT_PATTERNS", "([unclosed"),
    ],
)
def test_bad_value_is_an_error_naming_variable_and_value(var: str, value: str) -> None:
    """Every bad value stops start-up with the variable's name and the value."""
    with pytest.raises(SettingsError) as info:
        Settings.load({var: value})
    assert var in str(info.value) and repr(value) in str(info.value)


def test_otlp_endpoints_follow_the_otel_spec() -> None:
    """The base endpoint gets /v1/<signal> for HTTP; signal variables win; none = off."""
    s = Settings.load(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318/",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:4318/custom",
            "OTEL_METRICS_EXPORTER": "none",
        }
    )
    assert s.otlp_traces_endpoint == "http://127.0.0.1:4318/v1/traces"
    assert s.otlp_logs_endpoint == "http://logs:4318/custom"
    assert s.otlp_metrics_endpoint is None
    g = Settings.load(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    )
    assert g.otlp_traces_endpoint == "http://c:4317"


def test_resource_attributes_and_service_name() -> None:
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES shape the service identity."""
    s = Settings.load(
        {
            "OTEL_SERVICE_NAME": "svc",
            "OTEL_RESOURCE_ATTRIBUTES": "service.version=1.2.3,deployment.environment.name=stage",
        }
    )
    assert (s.service_name, s.service_version, s.environment) == ("svc", "1.2.3", "stage")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("10MB", 10 * 1024**2), ("512kb", 512 * 1024), ("1GiB", 1024**3), ("2048", 2048)],
)
def test_sizes(raw: str, expected: int) -> None:
    """LOG_MAX_SIZE accepts the seed's 10MB style and plain bytes."""
    assert parse_size(raw) == expected


def test_public_api_is_complete_and_lazy() -> None:
    """Every name in __all__ resolves; importing the package alone loads no OTel SDK."""
    import subprocess
    import sys

    import hapa_telemetry

    for name in hapa_telemetry.__all__:
        assert getattr(hapa_telemetry, name) is not None
    out = subprocess.run(
        [sys.executable, "-c",
         "import sys, hapa_telemetry, hapa_telemetry.cli; "
         "print(any(m.startswith('opentelemetry.sdk') for m in sys.modules))"],
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "False"


# -- one table, one check ----------------------------------------------------------------

_BAD_TEXT: list[tuple[type[k.Kind], str]] = [
    (k.Bool, "maybe"), (k.Int, "many"), (k.Float, "lots"), (k.Choice, "zzz-none"),
    (k.Size, "ten"), (k.Url, "nope"), (k.Pairs, "novalue"), (k.Patterns, "([unclosed"),
]  # fmt: skip


def _bad_text(kind: k.Kind) -> str | None:
    inner = kind.inner if isinstance(kind, k.Optional) else kind
    for cls, text in _BAD_TEXT:
        if isinstance(inner, cls):
            return text
    return None  # free text: nothing to reject


_ENV_ROWS = [(name, var) for name, row in _rows().items() for var in row.env]


@pytest.mark.parametrize(("name", "var"), _ENV_ROWS, ids=[v for _, v in _ENV_ROWS])
def test_every_variable_is_parsed_and_checked_by_its_row(name: str, var: str) -> None:
    """Each environment variable of the table rejects a value of the wrong kind with an
    error naming that variable and the value (free-text variables are taken as given)."""
    bad = _bad_text(_rows()[name].kind)
    if bad is None:
        assert getattr(Settings.load({var: " some text "}), name) in ("some text", ("some text",))
        return
    with pytest.raises(SettingsError) as info:
        Settings.load({var: bad})
    assert str(info.value).startswith(f"invalid {var}={bad!r}: expected ")


def test_every_default_is_accepted_back_as_an_argument() -> None:
    """Passing each default as a keyword argument changes nothing: defaults and checks agree."""
    defaults = Settings.load({})
    again = Settings.load({}, **{name: getattr(defaults, name) for name in _rows()})
    assert again == defaults


def test_bad_env_var_does_not_break_an_argument_for_it(tmp_path: Path) -> None:
    """configure(log_level="INFO") works with LOG_LEVEL=x in the environment: the argument
    wins and the variable is never parsed."""
    reset_telemetry()
    try:
        t = runtime.configure(
            environ={"LOG_LEVEL": "x", "METRICS_PORT": "huge"}, log_level="INFO",
            metrics_port=0, set_global=False, log_directory=None, log_to_stdout=False,
        )  # fmt: skip
        assert (t.settings.log_level, t.settings.metrics_port) == ("INFO", 0)
    finally:
        reset_telemetry()
    with pytest.raises(SettingsError, match=r"^invalid LOG_LEVEL='x': expected one of DEBUG"):
        Settings.load({"LOG_LEVEL": "x"})


@pytest.mark.parametrize(
    ("argument", "value", "expected"),
    [
        ("metrics_port", 70000, "a port 0-65535"),
        ("metrics_port", -1, "a port 0-65535"),
        ("log_queue_size", 0, "an integer >= 1"),
        ("log_backup_count", -1, "an integer >= 0"),
        ("cpu_threshold", 101, "a number 0-100"),
        ("error_rate_threshold", 1.5, "a number 0-1"),
        ("log_level", "LOUD", "one of DEBUG"),
        ("client_ip", "hash", "one of keep, anonymize, drop"),
        ("otlp_endpoint", "localhost:4317", "a URL like"),
        ("otlp_protocol", "carrier-pigeon", "one of grpc, http/protobuf, http/json"),
        ("redact_patterns", ["(["], "valid regular expressions"),
        ("debug", "maybe", "true or false"),
        ("log_max_bytes", "ten", "a size like"),
        ("otlp_timeout_s", 0, "a number > 0"),
    ],
)
def test_arguments_get_the_same_checks_at_configure(
    argument: str, value: object, expected: str
) -> None:
    """A bad keyword argument stops configure() with a SettingsError naming the argument."""
    reset_telemetry()
    with pytest.raises(SettingsError) as info:
        runtime.configure(environ={}, set_global=False, log_directory=None, **{argument: value})
    message = str(info.value)
    assert message.startswith(f"invalid {argument}={value!r} (argument): expected ")
    assert expected in message
    assert runtime.current() is None


def test_string_arguments_are_read_like_the_environment() -> None:
    """configure(log_max_bytes="10MB", log_level="warn", debug="true") means what the
    same text in the environment means."""
    s = Settings.load({}, log_max_bytes="10MB", log_level="warn", debug="true", metrics_port="0")
    assert (s.log_max_bytes, s.log_level, s.debug, s.metrics_port) == (10 * 1024**2, "WARNING",
                                                                        True, 0)
    assert s.log_format == "plain"  # the DEBUG rule follows the argument too


def test_settings_built_directly_are_checked_too() -> None:
    """Settings(metrics_port=70000) is refused like the argument is."""
    with pytest.raises(SettingsError, match=r"invalid metrics_port=70000 \(argument\)"):
        Settings(metrics_port=70000)


def test_empty_variables_count_as_unset() -> None:
    """VAR= (set but empty) gives the default, as the OTel spec says."""
    s = Settings.load({"LOG_LEVEL": "", "METRICS_PORT": " ", "LOG_DIRECTORY": ""})
    assert (s.log_level, s.metrics_port, s.log_directory) == ("INFO", 8000, "logs")


def test_first_set_variable_of_a_row_wins() -> None:
    """OTEL_PYTHON_FASTAPI_EXCLUDED_URLS wins over OTEL_PYTHON_EXCLUDED_URLS, which is the
    fallback (contrib's rule)."""
    both = {"OTEL_PYTHON_FASTAPI_EXCLUDED_URLS": "/a,/b", "OTEL_PYTHON_EXCLUDED_URLS": "/c"}
    assert Settings.load(both).excluded_urls == ("/a", "/b")
    assert Settings.load({"OTEL_PYTHON_EXCLUDED_URLS": "/c"}).excluded_urls == ("/c",)


def test_rows_of_the_other_components() -> None:
    """Headers are URL-decoded pairs, compression none is None, the batch sizes default to
    128 (never above the log queue), LOG_RETENTION_DAYS defaults to 14."""
    s = Settings.load(
        {
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc, x-team = ml ",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2.5",
            "LOG_QUEUE_SIZE": "50",
            "HAPA_LOGS_EXPORT": "files",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
        }
    )
    assert dict(s.otlp_headers) == {"authorization": "Bearer abc", "x-team": "ml"}
    assert s.otlp_compression is None and s.otlp_timeout_s == 2.5
    assert (s.bsp_max_export_batch_size, s.blrp_max_export_batch_size) == (128, 50)
    assert s.log_retention_days == 14 and s.logs_export == "files" and s.genai_capture_content
    with pytest.raises(SettingsError, match="OTEL_BLRP_MAX_EXPORT_BATCH_SIZE='100'"):
        Settings.load({"LOG_QUEUE_SIZE": "50", "OTEL_BLRP_MAX_EXPORT_BATCH_SIZE": "100"})


@pytest.fixture
def leaky_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A process environment that must NOT reach configure(environ={...})."""
    for var, value in {
        "OTEL_RESOURCE_ATTRIBUTES": "service.name=leak,team=leak",
        "OTEL_SERVICE_NAME": "leak",
        "OTEL_TRACES_SAMPLER": "always_off",
        "LOG_ACCESS": "true",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "not-a-number",
    }.items():
        monkeypatch.setenv(var, value)
    reset_telemetry()
    yield
    reset_telemetry()


@pytest.mark.usefixtures("leaky_environ")
def test_configure_with_environ_reads_nothing_else() -> None:
    """configure(environ={...}) is isolated: resource, sampler and LOG_ACCESS come from the
    given mapping only, while the SDK's telemetry.sdk.* attributes are kept."""
    import logging

    t = runtime.configure(
        environ={"OTEL_RESOURCE_ATTRIBUTES": "team=ml"}, set_global=False,
        log_directory=None, log_to_stdout=False,
    )  # fmt: skip
    attrs = dict(t.providers.tracer_provider.resource.attributes)  # type: ignore[attr-defined]
    assert attrs["service.name"] == "hapa-backend" and attrs["team"] == "ml"
    assert attrs["telemetry.sdk.language"] == "python" and "telemetry.sdk.version" in attrs
    assert attrs["service.instance.id"] and attrs["process.pid"]
    with t.tracer.start_as_current_span("sampled") as span:
        assert span.get_span_context().trace_flags.sampled
    assert logging.getLogger("uvicorn.access").level == logging.WARNING


def test_resource_detectors_are_run_when_asked() -> None:
    """OTEL_EXPERIMENTAL_RESOURCE_DETECTORS=process adds the process detector's attributes;
    an unknown name is skipped, not fatal."""
    from hapa_telemetry.resource import build_resource

    res = build_resource(
        Settings.load({"OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "process,no_such_detector"})
    )
    assert res.attributes["process.runtime.name"] and res.attributes["service.name"]


def test_sampler_comes_from_the_settings() -> None:
    """OTEL_TRACES_SAMPLER=always_off given to configure() samples nothing."""
    reset_telemetry()
    try:
        t = runtime.configure(
            environ={"OTEL_TRACES_SAMPLER": "always_off"}, set_global=False,
            log_directory=None, log_to_stdout=False,
        )  # fmt: skip
        with t.tracer.start_as_current_span("dropped") as span:
            assert not span.get_span_context().trace_flags.sampled
    finally:
        reset_telemetry()


def test_log_access_setting_keeps_uvicorns_access_line() -> None:
    """LOG_ACCESS=true (from the settings, not os.environ) leaves uvicorn.access on."""
    import logging

    reset_telemetry()
    try:
        runtime.configure(
            environ={"LOG_ACCESS": "true"}, set_global=False, log_directory=None,
            log_to_stdout=False,
        )  # fmt: skip
        assert logging.getLogger("uvicorn.access").level == logging.NOTSET
    finally:
        reset_telemetry()
    runtime.route_framework_loggers()
    assert logging.getLogger("uvicorn.access").level == logging.WARNING


def test_readme_lists_every_variable_of_the_table() -> None:
    """The README's Settings section names every environment variable the table reads
    (``OTEL_{TRACES,METRICS,LOGS}_EXPORTER`` stands for its three variables)."""
    import itertools
    import re

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("\n## Settings", 1)[1].split("\n## ", 1)[0]
    listed: set[str] = set()
    for token in re.findall(r"`([A-Z0-9_{},]+)`", section):
        parts = re.split(r"\{([A-Z0-9_,]+)\}", token)
        choices = [p.split(",") if i % 2 else [p] for i, p in enumerate(parts)]
        listed.update("".join(c) for c in itertools.product(*choices))
    assert sorted({var for _, var in _ENV_ROWS} - listed) == []
