"""The OTel Resource: who is emitting (service, version, environment, worker instance).

Built from the settings alone — not ``Resource.create()``, which reads
``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME`` from the process environment a
second time (and so ignores ``configure(environ=...)``). It keeps what ``create()``
gives: the ``telemetry.sdk.*`` attributes, and the resource detectors named in
``OTEL_EXPERIMENTAL_RESOURCE_DETECTORS`` (``process``, ``os``, ``host``, … as installed).
"""

from __future__ import annotations

import logging
import os
import uuid
from importlib import metadata

from opentelemetry.sdk.resources import (
    TELEMETRY_SDK_LANGUAGE,
    TELEMETRY_SDK_NAME,
    TELEMETRY_SDK_VERSION,
    Resource,
    ResourceDetector,
    get_aggregated_resources,
)

from hapa_telemetry import _state
from hapa_telemetry._version import __version__
from hapa_telemetry.settings import Settings

_instance_id: tuple[int, str] | None = None
# resource detectors whose work the settings already do (service.*, instance id)
_OURS = frozenset({"otel", "service_instance"})


def _reset() -> None:
    global _instance_id
    _instance_id = None


_state.register(__name__, _reset)


def instance_id() -> str:
    """A fresh id per worker process, also after ``fork`` (keyed on the pid)."""
    global _instance_id
    pid = os.getpid()
    if _instance_id is None or _instance_id[0] != pid:
        _instance_id = (pid, str(uuid.uuid4()))
    return _instance_id[1]


def _sdk_version() -> str:
    try:
        return metadata.version("opentelemetry-sdk")
    except metadata.PackageNotFoundError:  # pragma: no cover - the SDK is a dependency
        return "unknown"


def _detectors(names: tuple[str, ...]) -> list[ResourceDetector]:
    """The installed resource detectors of these entry-point names (unknown: skipped)."""
    wanted = [n for n in names if n not in _OURS]
    if not wanted:
        return []
    found = {ep.name: ep for ep in metadata.entry_points(group="opentelemetry_resource_detector")}
    if "*" in wanted:
        wanted = [n for n in wanted if n != "*"] + sorted(set(found) - _OURS - set(wanted))
    detectors: list[ResourceDetector] = []
    for name in wanted:
        ep = found.get(name)
        if ep is None:
            logging.getLogger(__name__).warning("resource detector %r is not installed", name)
            continue
        try:
            detectors.append(ep.load()())
        except Exception as exc:  # a broken detector never stops start-up
            logging.getLogger(__name__).warning("resource detector %r failed: %r", name, exc)
    return detectors


def build_resource(settings: Settings) -> Resource:
    """SDK attributes, detected ones, ``OTEL_RESOURCE_ATTRIBUTES``, then our identity."""
    base = Resource(
        {
            TELEMETRY_SDK_LANGUAGE: "python",
            TELEMETRY_SDK_NAME: "opentelemetry",
            TELEMETRY_SDK_VERSION: _sdk_version(),
        }
    )
    detectors = _detectors(settings.resource_detectors)
    if detectors:
        base = get_aggregated_resources(detectors, base)
    attributes: dict[str, str | int] = dict(settings.resource_attributes)
    attributes.update(
        {
            "service.name": settings.service_name,
            "service.version": settings.service_version,
            "deployment.environment.name": settings.environment,
            "service.instance.id": instance_id(),
            "process.pid": os.getpid(),
            "telemetry.distro.name": "hapa-telemetry",
            "telemetry.distro.version": __version__,
        }
    )
    return base.merge(Resource(attributes))
