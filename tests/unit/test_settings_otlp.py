"""OTLP protocol per signal: an explicit choice wins, else the endpoint's port decides."""

from __future__ import annotations

import pytest

from hapa_telemetry import runtime
from hapa_telemetry.settings import Settings
from hapa_telemetry.testing import reset as reset_telemetry

BASE = "OTEL_EXPORTER_OTLP_ENDPOINT"
PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"


def _protocols(s: Settings) -> tuple[str, str, str]:
    return (s.otlp_traces_protocol, s.otlp_metrics_protocol, s.otlp_logs_protocol)


def test_port_4317_selects_grpc_and_says_so_once() -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4317 alone exports over gRPC (the
    base URL as is, no /v1/ path) and one start-up line says why."""
    s = Settings.load({BASE: "http://collector:4317"})
    assert _protocols(s) == ("grpc", "grpc", "grpc")
    assert s.otlp_traces_endpoint == s.otlp_logs_endpoint == "http://collector:4317"
    assert len(s.notices) == 1
    line = s.notices[0]
    assert "traces, metrics, logs over grpc" in line and f"{BASE}=http://collector:4317" in line
    assert PROTOCOL in line  # how to choose otherwise


def test_port_4318_selects_http_protobuf() -> None:
    """:4318 is OTLP/HTTP: the signal paths are appended."""
    s = Settings.load({BASE: "http://collector:4318/"})
    assert _protocols(s) == ("http/protobuf",) * 3
    assert s.otlp_metrics_endpoint == "http://collector:4318/v1/metrics"
    assert len(s.notices) == 1 and "over http/protobuf" in s.notices[0]


@pytest.mark.parametrize("url", ["http://collector:8080", "https://otlp.example.com"])
def test_other_ports_get_the_spec_default_silently(url: str) -> None:
    """Any other port (or none) means http/protobuf, the spec's default, with no notice."""
    s = Settings.load({BASE: url})
    assert _protocols(s) == ("http/protobuf",) * 3 and s.notices == ()
    assert s.otlp_traces_endpoint == url + "/v1/traces"


@pytest.mark.parametrize(
    ("protocol", "url", "port_kind"),
    [("grpc", "http://c:4318", "OTLP/HTTP"), ("http/protobuf", "http://c:4317", "OTLP/gRPC"),
     ("http/json", "http://c:4317", "OTLP/gRPC")],
)  # fmt: skip
def test_explicit_protocol_wins_and_a_mismatch_is_told(
    protocol: str, url: str, port_kind: str
) -> None:
    """A chosen protocol is used even on the other protocol's port, and one line names
    both variables and their values."""
    s = Settings.load({BASE: url, PROTOCOL: protocol})
    assert _protocols(s) == (protocol,) * 3
    assert len(s.notices) == 1
    line = s.notices[0]
    assert f"{PROTOCOL}={protocol}" in line and f"{BASE}={url}" in line and port_kind in line


def test_explicit_matching_protocol_is_quiet() -> None:
    """grpc on 4317, chosen by the user: nothing to say."""
    s = Settings.load({BASE: "http://c:4317", PROTOCOL: "grpc"})
    assert _protocols(s) == ("grpc",) * 3 and s.notices == ()


def test_per_signal_endpoints_decide_per_signal() -> None:
    """Each signal's own endpoint decides its protocol; a signal without one uses the base."""
    s = Settings.load(
        {
            BASE: "http://base:4318",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://tempo:4317",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "http://logs:9999/ingest",
        }
    )
    assert _protocols(s) == ("grpc", "http/protobuf", "http/protobuf")
    assert s.otlp_traces_endpoint == "http://tempo:4317"
    assert s.otlp_metrics_endpoint == "http://base:4318/v1/metrics"
    assert s.otlp_logs_endpoint == "http://logs:9999/ingest"
    assert len(s.notices) == 1
    assert "traces over grpc (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://tempo:4317)" in (
        s.notices[0]
    )
    assert "metrics over http/protobuf (OTEL_EXPORTER_OTLP_ENDPOINT=http://base:4318)" in (
        s.notices[0]
    )


def test_per_signal_protocol_wins_over_the_general_one() -> None:
    """OTEL_EXPORTER_OTLP_TRACES_PROTOCOL beats OTEL_EXPORTER_OTLP_PROTOCOL for traces only;
    its mismatch with the base port names the signal's variable."""
    s = Settings.load(
        {BASE: "http://c:4318", PROTOCOL: "http/protobuf",
         "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"}
    )  # fmt: skip
    assert _protocols(s) == ("grpc", "http/protobuf", "http/protobuf")
    assert s.otlp_traces_endpoint == "http://c:4318"
    assert s.otlp_logs_endpoint == "http://c:4318/v1/logs"
    assert len(s.notices) == 1
    assert "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=grpc" in s.notices[0]


def test_arguments_take_part_in_the_rule() -> None:
    """configure(otlp_endpoint=...) infers like the variable; otlp_protocol= chooses."""
    s = Settings.load({}, otlp_endpoint="http://127.0.0.1:4317")
    assert _protocols(s) == ("grpc",) * 3 and "otlp_endpoint=http://127.0.0.1:4317" in (
        s.notices[0]
    )
    chosen = Settings.load({BASE: "http://c:4317"}, otlp_protocol="http/protobuf")
    assert chosen.otlp_traces_endpoint == "http://c:4317/v1/traces"
    assert "otlp_protocol=http/protobuf" in chosen.notices[0]


def test_exporter_none_turns_a_signal_off_even_with_its_own_endpoint() -> None:
    """OTEL_TRACES_EXPORTER=none wins over OTEL_EXPORTER_OTLP_TRACES_ENDPOINT."""
    s = Settings.load(
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317",
         BASE: "http://c:4317"}
    )  # fmt: skip
    assert s.otlp_traces_endpoint is None and s.otlp_metrics_endpoint == "http://c:4317"
    assert "metrics, logs over grpc" in s.notices[0]


def test_the_exporter_class_follows_the_signal_protocol() -> None:
    """grpc gets the SDK's gRPC exporter, http/* the package's OTLP/HTTP one, with the
    endpoint as resolved."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
        OTLPSpanExporter as GrpcSpans,
    )

    from hapa_telemetry.otlp.exporters import HapaLogExporter as HttpLogs
    from hapa_telemetry.providers import _otlp_exporter

    s = Settings.load(
        {BASE: "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/json"}
    )
    spans = _otlp_exporter(s, "traces", s.otlp_traces_endpoint)
    logs = _otlp_exporter(s, "logs", s.otlp_logs_endpoint)
    try:
        assert isinstance(spans, GrpcSpans) and isinstance(logs, HttpLogs)
        assert s.otlp_logs_endpoint == "http://127.0.0.1:4317/v1/logs"
    finally:
        spans.shutdown()
        logs.shutdown()


def test_configure_prints_the_notice_once(capsys: pytest.CaptureFixture[str]) -> None:
    """The inferred protocol is one stderr line at configure(); configuring again (the same
    handle) says nothing more."""
    reset_telemetry()
    env = {BASE: "http://127.0.0.1:4317", "OTEL_METRICS_EXPORTER": "none",
           "OTEL_LOGS_EXPORTER": "none"}  # fmt: skip
    try:
        first = runtime.configure(environ=env, set_global=False, log_directory=None,
                                  log_to_stdout=False, enable_metrics=False)  # fmt: skip
        again = runtime.configure(environ=env, set_global=False)
        assert again is first
    finally:
        reset_telemetry()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "OTLP protocol" in line]
    assert len(lines) == 1 and "traces over grpc" in lines[0]


def test_distro_leaves_the_protocol_to_the_port_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under opentelemetry-instrument the distro presets no protocol, so :4317 still
    selects gRPC there."""
    from hapa_telemetry.distro import HapaDistro

    monkeypatch.delenv(PROTOCOL, raising=False)
    monkeypatch.delenv("OTEL_TRACES_SAMPLER", raising=False)
    HapaDistro()._configure()
    import os

    assert PROTOCOL not in os.environ
    assert os.environ["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"
