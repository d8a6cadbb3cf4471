"""Compatibility: ``from hapa_telemetry.inference import inference`` keeps working.

The helper lives in :mod:`hapa_telemetry.genai`; ``hapa_telemetry.inference`` (the
attribute) is the class itself as long as this module is not imported by name — importing
it makes the package attribute this module, so prefer ``hapa_telemetry.inference(...)``
or ``from hapa_telemetry import inference``.
"""

from __future__ import annotations

from hapa_telemetry.genai.call import inference

__all__ = ["inference"]
