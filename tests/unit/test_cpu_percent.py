"""system_cpu_percent and /health's CPU figure use psutil's own cpu_percent formula."""

from __future__ import annotations

import itertools
from typing import Any

import psutil
import pytest

from hapa_telemetry import instruments
from hapa_telemetry.instruments import CpuSampler

_Times = type(psutil.cpu_times())


def _times(**values: float) -> Any:
    return _Times(**{name: values.get(name, 0.0) for name in _Times._fields})


def _psutil_percent(monkeypatch: pytest.MonkeyPatch, a: Any, b: Any) -> float:
    """What psutil.cpu_percent itself says for the interval a -> b."""
    samples = iter([a, b])
    monkeypatch.setattr(psutil, "cpu_times", lambda percpu=False: next(samples))
    value = psutil.cpu_percent(interval=0.001)
    monkeypatch.undo()
    return float(value)


def _sampler_percent(monkeypatch: pytest.MonkeyPatch, a: Any, b: Any) -> float:
    samples = itertools.chain([a, b], itertools.repeat(b))
    monkeypatch.setattr(instruments.psutil, "cpu_times", lambda: next(samples))
    sampler = CpuSampler(min_interval=0.0)
    value = sampler.percent()
    monkeypatch.undo()
    return value


@pytest.mark.skipif("guest" not in _Times._fields, reason="guest time is a Linux field")
def test_guest_time_is_not_counted_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host running VMs: guest time is already inside user time. 100 s of user time
    (80 of it guest) and 100 s idle is 50 % busy, as psutil and top say - not 60 %."""
    a = _times()
    b = _times(user=100.0, guest=80.0, idle=100.0)
    expected = _psutil_percent(monkeypatch, a, b)
    assert expected == 50.0
    assert _sampler_percent(monkeypatch, a, b) == expected


@pytest.mark.parametrize(
    "delta",
    [
        {"user": 30.0, "system": 10.0, "idle": 60.0},
        {"user": 5.0, "nice": 5.0, "iowait": 40.0, "idle": 50.0},
        {"user": 10.0, "idle": 0.0},
        {"idle": 10.0},
    ],
)
def test_same_value_as_psutil(monkeypatch: pytest.MonkeyPatch, delta: dict[str, float]) -> None:
    """For ordinary intervals (iowait, nice, all busy, all idle) the figures agree."""
    a = _times(user=1000.0, idle=5000.0)
    b = _Times(*(getattr(a, f) + delta.get(f, 0.0) for f in _Times._fields))
    assert _sampler_percent(monkeypatch, a, b) == _psutil_percent(monkeypatch, a, b)


def test_a_counter_going_backwards_counts_as_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """Like psutil: a field that decreased (seen on some kernels) adds nothing."""
    a = _times(user=100.0, idle=100.0, system=50.0)
    b = _times(user=150.0, idle=150.0, system=40.0)
    assert _sampler_percent(monkeypatch, a, b) == _psutil_percent(monkeypatch, a, b) == 50.0
