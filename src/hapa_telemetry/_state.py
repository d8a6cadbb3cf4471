"""The package's process-wide state, listed in one place, with the one reset.

A handful of modules keep a module global (the configured Telemetry, the worker's
instance id, lazily built monitors, FastAPI's patched ``__init__``, small caches). Each
registers here, next to its global, the function that puts it back to its import-time
value; :func:`reset` runs them all. ``hapa_telemetry.testing.reset()`` (the test fixture's
reset) is this function. A test in tests/unit checks that every module with a ``global``
statement registers a reset, so nothing is left out.

A leaf module: it imports nothing from the package.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable

_RESETS: dict[str, Callable[[], None]] = {}
_lock = threading.Lock()


def register(owner: str, reset_fn: Callable[[], None]) -> None:
    """Register how ``owner`` (a module's ``__name__``) resets its globals (idempotent:
    the last registration per owner wins, so re-importing a module does not add one)."""
    with _lock:
        _RESETS[owner] = reset_fn


def owners() -> tuple[str, ...]:
    """The modules with process-wide state, in registration order."""
    with _lock:
        return tuple(_RESETS)


def reset() -> None:
    """Put every registered piece of state back to its import-time value.

    The configured Telemetry (``hapa_telemetry.runtime``) is shut down first: its handler
    leaves the root logger and its exporters stop. A reset that fails is reported on
    stderr and the others still run.
    """
    with _lock:
        items = sorted(_RESETS.items(), key=lambda kv: kv[0] != "hapa_telemetry.runtime")
    for owner, reset_fn in items:
        try:
            reset_fn()
        except Exception as exc:
            sys.stderr.write(f"hapa-telemetry: resetting {owner} failed: {exc!r}\n")
