"""HAPA_GC_FREEZE: the heap that exists when the server starts is frozen once, only when
asked, and the reset gives it back to the collector."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import hapa_telemetry
from hapa_telemetry import gcfreeze
from hapa_telemetry.testing import reset


@pytest.fixture(autouse=True)
def _clean() -> Any:
    reset()
    yield
    reset()


def _serve(tmp_path: Path, **settings: Any) -> None:
    hapa_telemetry.configure(set_global=False, log_to_stdout=False,
                             log_directory=str(tmp_path), **settings)
    app = FastAPI()

    @app.get("/ping")
    def ping() -> str:
        return "pong"

    hapa_telemetry.instrument_fastapi(app)
    with TestClient(app) as client:  # lifespan startup: the server has started
        assert client.get("/ping").status_code == 200


def test_the_startup_heap_is_frozen_when_asked(tmp_path: Path) -> None:
    """With gc_freeze, once the server started the objects made before it are out of the
    collector's generations (permanent); a second start in the same process does not
    freeze again; the reset unfreezes."""
    assert gc.get_freeze_count() == 0
    _serve(tmp_path, gc_freeze=True)
    frozen = gc.get_freeze_count()
    assert frozen > 1000  # FastAPI, pydantic and the SDK alone are tens of thousands
    made_after = [[i] for i in range(10_000)]  # tracked objects made after the start
    assert gcfreeze.freeze_startup_heap() is False
    # not frozen again (frozen objects may still be freed, so the count can only drop)
    assert gc.get_freeze_count() < frozen + len(made_after)
    reset()
    assert gc.get_freeze_count() == 0


def test_nothing_is_frozen_by_default(tmp_path: Path) -> None:
    """The default leaves the interpreter's GC alone."""
    _serve(tmp_path)
    assert gc.get_freeze_count() == 0
