"""`hapa-telemetry logs` never prints a logged control character raw to the terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _logdata import run_cli

from hapa_telemetry.analysis.render import safe

CLEAR = "\u001b[2J"
NASTY = f"boom{CLEAR}\u0007\u009b31m\u202etxt\u0000"


def _write(path: Path, records: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _records() -> list[dict[str, object]]:
    base = {"timestamp": "2026-11-26T06:00:00.000000+00:00", "logger": "app", "service": "s"}
    return [
        {**base, "level": "ERROR", "message": f"failed {NASTY}", "event_type": "error",
         "error_type": f"Bad{CLEAR}Error", "endpoint": f"/x{CLEAR}", "method": "GET"},
        {**base, "level": f"INFO{CLEAR}", "message": "ok", "event_type": f"request_end{CLEAR}",
         "endpoint": f"/api/{CLEAR}", "method": "GET", "status_code": 200, "duration": 0.01},
        {**base, "level": "INFO", "message": "gen", "event_type": "ai_inference",
         "model": f"m{CLEAR}", "duration": 0.5, "cached": False},
        {**base, "level": "INFO", "message": "c", "event_type": "cache_metrics",
         "hit_rate": 42.0, "cache_size": 10, "timestamp": f"2026-11-26T07:00:00{CLEAR}"},
    ]


@pytest.mark.parametrize("args", [[], ["errors"], ["latency"], ["inference"], ["--wide"]])
def test_no_raw_control_characters_in_any_table(tmp_path: Path, capsys, args) -> None:
    """Lines table and every report: ESC, BEL, C1 CSI, NUL and U+202E come out escaped."""
    logfile = _write(tmp_path / "logs" / "hapa_20261126.log", _records())
    status, out, err = run_cli(["logs", *args, str(logfile), "-q"], capsys)
    assert status == 0, err
    bad = [ch for ch in out if (ord(ch) < 32 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F
           or ch == "\u202e"]
    assert bad == [], repr(out)
    if not args or args == ["--wide"] or args == ["errors"]:
        assert "\\x1b[2J" in out


def test_safe_escapes_only_what_acts_on_a_terminal() -> None:
    """Readable text (Korean, accents, emoji) stays; controls become visible escapes."""
    assert safe("사용자 café 🙂 /api/v1") == "사용자 café 🙂 /api/v1"
    assert safe("a\u001b[2Jb\tc\nd\u009b\u202e\u0000") == "a\\x1b[2Jb\\tc\\nd\\x9b\\u202e\\x00"
    assert safe(12) == "12"
