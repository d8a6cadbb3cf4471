"""Settings: arguments over environment over defaults; bad values name the variable."""

from __future__ import annotations

import pytest

from hapa_telemetry.settings import Settings, SettingsError, parse_size


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
