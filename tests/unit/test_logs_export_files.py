"""HAPA_LOGS_EXPORT=files: no OTLP log records; the lines carry the worker's identity."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from hapa_telemetry import names, resource, runtime
from hapa_telemetry.settings import Settings, SettingsError
from hapa_telemetry.testing import reset as reset_telemetry


def test_setting_values() -> None:
    """Default otlp; files accepted in any case; anything else is a clear error."""
    assert Settings.load({}).logs_export == "otlp"
    assert Settings.load({"HAPA_LOGS_EXPORT": "Files"}).logs_export == "files"
    assert Settings.load({}, logs_export="files").logs_export == "files"
    with pytest.raises(SettingsError, match="HAPA_LOGS_EXPORT"):
        Settings.load({"HAPA_LOGS_EXPORT": "kafka"})
    with pytest.raises(SettingsError, match="logs_export"):
        Settings.load({}, logs_export="kafka")


@pytest.fixture
def files_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "DEBUG", "LOG_LEVEL", "HAPA_LOGS_EXPORT"):
        monkeypatch.delenv(var, raising=False)
    reset_telemetry()
    stream = io.StringIO()
    t = runtime.configure(
        set_global=False,
        log_stream=stream,
        log_directory=str(tmp_path / "logs"),
        logs_export="files",
        service_version="1.2.3",
        # an endpoint that nothing listens on: traces/metrics would go there, logs must not
        otlp_logs_endpoint="http://127.0.0.1:9/v1/logs",
    )
    yield t, stream
    reset_telemetry()


def test_files_mode_sends_no_otlp_log_records(files_mode) -> None:
    """With an OTLP logs endpoint set, files mode builds no log pipeline at all."""
    t, _ = files_mode
    assert t.providers.logger_provider is None
    assert t.pipeline.otel_logger is None


def test_lines_end_with_version_and_instance(files_mode) -> None:
    """Every line ends with service_version and this worker's service.instance.id (the
    resource's), after the seed's fields; a caller field of that name is kept aside."""
    t, stream = files_mode
    logging.getLogger("app").warning("hello", extra={"service_version": "mine"})
    t.pipeline.flush(5)
    line = json.loads(stream.getvalue().splitlines()[-1])
    keys = list(line)
    assert keys[-2:] == [names.FIELD_SERVICE_VERSION, names.FIELD_SERVICE_INSTANCE_ID]
    assert line["service_version"] == "1.2.3"
    assert line["service_instance_id"] == resource.instance_id()
    assert line["field_service_version"] == "mine"
    assert keys[:9] == ["timestamp", "level", "logger", "message", "module", "function",
                        "line", "service", "environment"]


def test_otlp_mode_lines_are_unchanged(harness) -> None:
    """The default transport keeps the seed's line exactly: no identity fields added."""
    logging.getLogger("app").warning("hello", extra={"service_version": "mine"})
    line = harness.lines()[-1]
    assert names.FIELD_SERVICE_INSTANCE_ID not in line
    assert line["service_version"] == "mine"
