"""The OTel Resource: who is emitting (service, version, environment, worker instance)."""

from __future__ import annotations

import os
import uuid

from opentelemetry.sdk.resources import Resource

from hapa_telemetry import _state
from hapa_telemetry.settings import Settings

_instance_id: tuple[int, str] | None = None


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


def build_resource(settings: Settings) -> Resource:
    """Merge OTEL_RESOURCE_ATTRIBUTES with the settings' service identity."""
    attributes: dict[str, str | int] = dict(settings.resource_attributes)
    attributes.update(
        {
            "service.name": settings.service_name,
            "service.version": settings.service_version,
            "deployment.environment.name": settings.environment,
            "service.instance.id": instance_id(),
            "process.pid": os.getpid(),
            "telemetry.distro.name": "hapa-telemetry",
        }
    )
    return Resource.create(attributes)
