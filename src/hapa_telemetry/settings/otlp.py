"""OTLP endpoints and protocols per signal, as the OTel spec reads the environment.

- A signal's own ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` is used as it is; the base
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` gets ``/v1/<signal>`` appended for OTLP/HTTP.
- The protocol: the signal's own ``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL``, else
  ``OTEL_EXPORTER_OTLP_PROTOCOL``, else — nothing chosen — from the endpoint's port:
  4317 is the collector's OTLP/gRPC port, 4318 its OTLP/HTTP one (most OTel docs show
  ``http://collector:4317``); any other port gets the spec's default, http/protobuf.
- ``OTEL_<SIGNAL>_EXPORTER`` without ``otlp`` (e.g. ``none``) turns the signal off.

What was inferred, and a protocol that does not fit the port the user chose, are told
once at start-up (:func:`notices`), never silently guessed.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from hapa_telemetry.settings.resolve import Origin, Resolver

SIGNALS = ("traces", "metrics", "logs")
PROTOCOLS = ("grpc", "http/protobuf", "http/json")
DEFAULT_PROTOCOL = "http/protobuf"
_PORT_PROTOCOL = {4317: "grpc", 4318: "http/protobuf"}
_PORT_NAME = {4317: "OTLP/gRPC", 4318: "OTLP/HTTP"}


def port_of(url: str | None) -> int | None:
    """The explicit port of ``url``, or None."""
    if not url:
        return None
    try:
        return urlsplit(url).port
    except ValueError:
        return None


def inferred_protocol(url: str | None) -> str | None:
    """grpc for port 4317, http/protobuf for 4318, else None (nothing to infer)."""
    port = port_of(url)
    return _PORT_PROTOCOL.get(port) if port is not None else None


def _endpoint_url(r: Resolver, signal: str) -> str | None:
    """The URL this signal's protocol is decided on: its own endpoint, else the base."""
    own = r.explicit(f"otlp_{signal}_endpoint")
    return str(own) if own is not None else r.get("otlp_endpoint")


def protocol(r: Resolver, signal: str) -> str | None:
    """Rule for ``otlp_<signal>_protocol`` when the signal's own variable is unset: the
    general protocol, else the one of the endpoint's port, else (None) the default."""
    chosen = r.get("otlp_protocol")
    if chosen:
        return str(chosen)
    return inferred_protocol(_endpoint_url(r, signal))


def endpoint(r: Resolver, signal: str) -> str | None:
    """Default of ``otlp_<signal>_endpoint``: derived from the base endpoint."""
    base = r.get("otlp_endpoint")
    if not base:
        return None
    if r.get(f"otlp_{signal}_protocol") == "grpc":
        return str(base)
    return str(base).rstrip("/") + "/v1/" + signal


def exporter_on(r: Resolver, signal: str, value: Any) -> Any:
    """The endpoint, unless ``OTEL_<SIGNAL>_EXPORTER`` leaves OTLP out (e.g. ``none``)."""
    return value if "otlp" in r.get(f"{signal}_exporter") else None


def _named(origin: Origin | None, fallback: Any) -> str:
    if origin is None:
        return str(fallback)
    return f"{origin.label}={origin.raw}"


def notices(r: Resolver) -> tuple[str, ...]:
    """What to say once at start-up about the OTLP protocols.

    One line when a protocol was inferred from a port; one line per protocol/port
    mismatch the user chose (the chosen protocol is used all the same).
    """
    inferred: dict[tuple[str, str], list[str]] = {}
    lines: list[str] = []
    for signal in SIGNALS:
        if not r.get(f"otlp_{signal}_endpoint"):
            continue
        proto = r.get(f"otlp_{signal}_protocol")
        own = r.explicit(f"otlp_{signal}_endpoint") is not None
        url = _endpoint_url(r, signal)
        e_name = _named(r.origin(f"otlp_{signal}_endpoint" if own else "otlp_endpoint"), url)
        p_origin = r.origin(f"otlp_{signal}_protocol") or r.origin("otlp_protocol")
        port = port_of(url)
        if port is None or port not in _PORT_PROTOCOL:
            continue
        if p_origin is None:
            inferred.setdefault((proto, e_name), []).append(signal)
        elif (port == 4318 and proto == "grpc") or (port == 4317 and proto.startswith("http/")):
            line = (
                f"hapa-telemetry: {_named(p_origin, proto)} but {e_name} is on port {port}, "
                f"the usual {_PORT_NAME[port]} port; exporting with {proto} as chosen "
                "(if nothing arrives, change one of the two)"
            )
            if line not in lines:
                lines.append(line)
    if inferred:
        parts = [f"{', '.join(sig)} over {p} ({name})" for (p, name), sig in inferred.items()]
        lines.insert(
            0,
            "hapa-telemetry: OTLP protocol chosen from the endpoint's port (4317 gRPC, "
            "4318 HTTP; set OTEL_EXPORTER_OTLP_PROTOCOL to choose): " + "; ".join(parts),
        )
    return tuple(lines)
