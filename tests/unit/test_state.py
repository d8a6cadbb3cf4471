"""Process-wide state lives in known places and one reset clears all of it."""

from __future__ import annotations

import ast
import importlib
import logging
from pathlib import Path

import hapa_telemetry
from hapa_telemetry import _state, runtime
from hapa_telemetry.testing import reset

SRC = Path(__file__).resolve().parents[2] / "src" / "hapa_telemetry"


def _modules_with_globals() -> set[str]:
    found = set()
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        if any(isinstance(node, ast.Global) for node in ast.walk(tree)):
            rel = path.relative_to(SRC.parent).with_suffix("")
            found.add(".".join(rel.parts))
    return found


def test_every_module_that_rebinds_a_global_registers_its_reset() -> None:
    """A module with a ``global`` statement registers a reset in hapa_telemetry._state."""
    modules = _modules_with_globals()
    assert "hapa_telemetry.runtime" in modules  # the scan sees what it should
    for name in modules:
        importlib.import_module(name)
    assert modules <= set(_state.owners())


def test_reset_forgets_the_configured_telemetry_and_its_handler(tmp_path: Path) -> None:
    """After reset() the next configure() builds a new Telemetry and the old handler is
    gone from the root logger (no duplicate lines)."""
    reset()
    first = runtime.configure(set_global=False, log_directory=str(tmp_path), log_to_stdout=False)
    assert runtime.configure(set_global=False) is first  # idempotent until reset
    reset()
    assert runtime.current() is None
    assert first.handler not in logging.getLogger().handlers
    second = runtime.configure(set_global=False, log_directory=str(tmp_path),
                               log_to_stdout=False)
    assert second is not first
    reset()


def test_reset_gives_a_new_instance_id_and_unpatches_fastapi() -> None:
    """The worker instance id and the zero-code FastAPI patch are process state too."""
    import fastapi

    from hapa_telemetry.distro import HapaFastAPIInstrumentor
    from hapa_telemetry.resource import instance_id

    original = fastapi.FastAPI.__init__
    before = instance_id()
    HapaFastAPIInstrumentor().instrument()
    assert fastapi.FastAPI.__init__ is not original
    reset()
    assert fastapi.FastAPI.__init__ is original
    assert instance_id() != before
    assert hapa_telemetry.__version__
