"""Zero-code mode: ``opentelemetry-instrument uvicorn app:app`` with this package installed.

Three entry points (names of our own, so the package coexists with
``opentelemetry-distro``; pick ours with ``OTEL_PYTHON_DISTRO=hapa_telemetry`` and
``OTEL_PYTHON_CONFIGURATOR=hapa_telemetry`` when both are installed):

- :class:`HapaDistro` only ``setdefault``s environment variables the user has not set and
  skips contrib's global FastAPI/Starlette instrumentors (their server span and HTTP
  metrics would duplicate ours; FastAPI apps are instrumented by the entry below, which
  uses FastAPI's native telemetry or contrib's per-app instrumentation as fits) and the
  logging instrumentor (records would reach OTLP twice).
- :class:`HapaConfigurator` runs :func:`hapa_telemetry.configure` from the environment.
- :class:`HapaFastAPIInstrumentor` makes every ``FastAPI()`` call
  :func:`hapa_telemetry.instrument_fastapi` on itself (idempotent, so an app that also
  instruments itself explicitly is instrumented once).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro  # type: ignore[attr-defined]
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.sdk._configuration import _BaseConfigurator

from hapa_telemetry import _state

# contrib instrumentors whose work the package does itself: FastAPI/Starlette per app
# (one server span, no duplicate HTTP metrics); logging (the package's handler already
# writes trace ids and bridges records to OTLP — contrib's would export each one again)
_REPLACED = frozenset({"fastapi", "starlette", "logging"})

DEFAULTS = {
    # No OTEL_EXPORTER_OTLP_PROTOCOL default here: unset, the settings choose it from the
    # endpoint's port (4317 gRPC, 4318 HTTP, else the spec's http/protobuf).
    "OTEL_TRACES_SAMPLER": "parentbased_always_on",
}


class HapaDistro(BaseDistro):  # type: ignore[misc]
    """The distro: defaults only where the user has set nothing."""

    def _configure(self, **kwargs: Any) -> None:
        for key, value in DEFAULTS.items():
            os.environ.setdefault(key, value)

    def load_instrumentor(self, entry_point: Any, **kwargs: Any) -> None:
        if entry_point.name in _REPLACED:
            return
        super().load_instrumentor(entry_point, **kwargs)


class HapaConfigurator(_BaseConfigurator):
    """The configurator: the package's own set-up from the environment."""

    def _configure(self, **kwargs: Any) -> None:
        # A gunicorn master forks its workers after this runs: configuring here would hand
        # every worker the master's exporter threads and service.instance.id. Workers
        # configure themselves when the app is imported (FastAPI() -> instrument_fastapi).
        if os.path.basename(sys.argv[0] if sys.argv else "") == "gunicorn":
            return
        import hapa_telemetry

        hapa_telemetry.configure()


_original_init: Any = None


class HapaFastAPIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments every FastAPI application created after it is enabled."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("fastapi >= 0.100",)

    def _instrument(self, **kwargs: Any) -> None:
        global _original_init
        import fastapi

        if _original_init is not None:
            return
        _original_init = fastapi.FastAPI.__init__

        def __init__(app: Any, *args: Any, **kw: Any) -> None:
            _original_init(app, *args, **kw)
            try:
                from hapa_telemetry.fastapi import instrument_fastapi

                instrument_fastapi(app)
            except Exception as exc:  # telemetry never breaks the app
                sys.stderr.write(f"hapa-telemetry: could not instrument FastAPI app: {exc!r}\n")

        fastapi.FastAPI.__init__ = __init__  # type: ignore[method-assign,assignment]

    def _uninstrument(self, **kwargs: Any) -> None:
        global _original_init
        import fastapi

        if _original_init is not None:
            fastapi.FastAPI.__init__ = _original_init  # type: ignore[method-assign]
            _original_init = None


def _reset() -> None:
    """Give FastAPI back its own ``__init__`` if the instrumentor patched it."""
    instrumentor = HapaFastAPIInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    elif _original_init is not None:
        instrumentor._uninstrument()


_state.register(__name__, _reset)
