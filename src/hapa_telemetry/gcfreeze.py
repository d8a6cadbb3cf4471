"""``HAPA_GC_FREEZE``: the heap built before the server started leaves the cyclic GC's view.

CPython's full (generation-2) collections walk every tracked object. Under load a web
app triggers one every few seconds (each request's in-flight objects are promoted to the
old generation at gen-1 collections); with FastAPI, pydantic and the OTel SDK loaded that
walk is 50-75k objects, 40-55 ms holding the GIL — measured in bench/ as the tail of the
paced p99 — and far more with a model's tokenizer or other big Python structures loaded
at start-up. ``gc.freeze()`` once the server has started (the application's startup hooks
ran) moves what exists then to the permanent generation: later full collections walk
only what was made since (~0.5 ms measured).

The trade-off is CPython's: reference cycles among the frozen objects are never
collected. Off by default — it changes interpreter-wide state — and done at most once per
process (each worker freezes its own heap).
"""

from __future__ import annotations

import gc
import os

from hapa_telemetry import _state

_frozen_in: int | None = None  # pid of the process that froze its heap


def freeze_startup_heap() -> bool:
    """Collect once, then freeze every tracked object; False if this process did already."""
    global _frozen_in
    pid = os.getpid()
    if _frozen_in == pid:
        return False
    _frozen_in = pid
    gc.collect()
    gc.freeze()
    return True


def _reset() -> None:
    global _frozen_in
    if _frozen_in is not None:
        gc.unfreeze()
        _frozen_in = None


_state.register(__name__, _reset)
