"""render_json / render_dev: one event is one valid line, whatever the fields hold."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import math
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import orjson

from hapa_telemetry.logs.render import MAX_DEPTH, escape_control, render_dev, render_json


def _one(line: bytes) -> dict[str, object]:
    assert line.endswith(b"\n")
    text = line.decode("utf-8")
    assert len(text.splitlines()) == 1, text
    obj = json.loads(text)
    assert isinstance(obj, dict)
    return obj


def test_plain_event_keeps_insertion_order_and_values() -> None:
    """Keys come out in the order given, plain values unchanged, one trailing newline."""
    ev = {"timestamp": "2024-12-28T10:30:00+00:00", "level": "INFO", "logger": "api",
          "message": "hi", "line": 3, "duration": 0.25, "ok": True, "none": None}
    line = render_json(ev)
    assert line.count(b"\n") == 1
    out = _one(line)
    assert list(out) == list(ev)
    assert out == ev


def test_datetime_date_time_render_iso() -> None:
    """datetime, date and time values become ISO 8601 strings."""
    d = dt.datetime(2024, 12, 28, 10, 30, 0, 123000, tzinfo=dt.timezone.utc)
    out = _one(render_json({"a": d, "b": d.date(), "c": d.time()}))
    assert out == {"a": "2024-12-28T10:30:00.123000+00:00", "b": "2024-12-28",
                   "c": "10:30:00.123000"}


def test_decimal_bytes_sets_tuples_uuid_enum() -> None:
    """Decimal keeps all digits as a string; bytes decode as UTF-8; sets/tuples become lists."""

    class Color(enum.Enum):
        RED = "red"

    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    out = _one(render_json({
        "dec": decimal.Decimal("1.10"), "raw": b"caf\xc3\xa9 \xff", "s": {3}, "fs": frozenset({4}),
        "t": (1, "x"), "u": u, "e": Color.RED, "ba": bytearray(b"ab"),
    }))
    assert out["dec"] == "1.10"
    assert out["raw"] == "café \ufffd"
    assert out["s"] == [3] and out["fs"] == [4] and out["t"] == [1, "x"]
    assert out["u"] == str(u) and out["e"] == "red" and out["ba"] == "ab"


def test_exception_value_renders_type_and_message() -> None:
    """An exception field renders as 'ExcType: message'."""
    out = _one(render_json({"err": ValueError("bad input")}))
    assert out["err"] == "ValueError: bad input"


def test_arbitrary_object_uses_repr_and_bad_repr_is_guarded() -> None:
    """Unknown objects render by repr(); a repr that raises gives <unrepresentable Name>."""

    class Nice:
        def __repr__(self) -> str:
            return "<Nice 1>"

    class Nasty:
        def __repr__(self) -> str:
            raise RuntimeError("boom")

    out = _one(render_json({"a": Nice(), "b": Nasty(), "c": [Nasty()]}))
    assert out == {"a": "<Nice 1>", "b": "<unrepresentable Nasty>",
                   "c": ["<unrepresentable Nasty>"]}


def test_cyclic_structures_render_with_marker() -> None:
    """A list or dict containing itself renders with a <cycle> marker instead of crashing."""
    lst: list[object] = [1]
    lst.append(lst)
    d: dict[str, object] = {"x": 1}
    d["self"] = d
    out = _one(render_json({"message": "m", "l": lst, "d": d}))
    assert out["l"] == [1, "<cycle>"]
    assert out["d"] == {"x": 1, "self": "<cycle>"}
    assert out["message"] == "m"


def test_shared_but_not_cyclic_values_are_rendered_twice() -> None:
    """The same list referenced twice (no cycle) is rendered in full both times."""
    shared = [1, 2]
    out = _one(render_json({"a": shared, "b": shared, "bad": {1: 2}}))
    assert out["a"] == [1, 2] and out["b"] == [1, 2]


def test_non_str_keys_become_strings() -> None:
    """Non-str keys (int, None, tuple, bytes) are converted to strings, values kept."""
    out = _one(render_json({"m": {1: "a", None: "b", (1, 2): "c", b"k": "d"}}))
    assert out["m"] == {"1": "a", "None": "b", "(1, 2)": "c", "k": "d"}


def test_nan_and_infinity_render_as_null() -> None:
    """NaN and +-inf become null (valid JSON that keeps a numeric field mappable)."""
    out = _one(render_json({"a": math.nan, "b": math.inf, "c": -math.inf, "d": 1.5}))
    assert out == {"a": None, "b": None, "c": None, "d": 1.5}


def test_huge_int_and_lone_surrogate_are_rendered() -> None:
    """Integers beyond 64 bits become strings; lone surrogates are escaped, not fatal."""
    out = _one(render_json({"big": 2**80, "neg": -(2**70), "s": "a\ud800b"}))
    assert out["big"] == str(2**80) and out["neg"] == str(-(2**70))
    assert out["s"] == "a\\ud800b"


def test_very_deep_nesting_is_cut() -> None:
    """Nesting deeper than MAX_DEPTH is replaced by a marker; the line stays valid."""
    deep: object = "leaf"
    for _ in range(1000):
        deep = [deep]
    out = _one(render_json({"message": "deep", "d": deep}))
    level = out["d"]
    depth = 0
    while isinstance(level, list):
        level = level[0]
        depth += 1
    assert level == "<max depth>"
    assert depth <= MAX_DEPTH


def test_long_strings_are_truncated_with_marker() -> None:
    """A megabyte message is cut to max_value_chars and says how many chars were removed."""
    msg = "x" * (1024 * 1024 + 100)
    line = render_json({"message": msg, "short": "ok"}, max_value_chars=100)
    out = _one(line)
    assert out["message"] == "x" * 100 + f"…[truncated {len(msg) - 100} chars]"
    assert out["short"] == "ok"
    assert len(line) < 400


def test_truncation_applies_to_nested_and_repr_values() -> None:
    """Long strings inside lists and long reprs are truncated too."""

    class Big:
        def __repr__(self) -> str:
            return "r" * 500

    out = _one(render_json({"l": ["y" * 300], "o": Big()}, max_value_chars=50))
    assert out["l"] == ["y" * 50 + "…[truncated 250 chars]"]
    assert out["o"] == "r" * 50 + "…[truncated 450 chars]"


def test_default_limit_keeps_normal_values_intact() -> None:
    """Values under the default limit (32768 chars) are not touched, even in a big line."""
    ev = {f"k{i}": "v" * 1000 for i in range(40)}
    out = _one(render_json(ev))
    assert out == ev


def test_newlines_and_control_chars_cannot_forge_a_line() -> None:
    """\\n, \\r, other control chars and U+2028/2029/0085 stay escaped inside one line."""
    forged = 'ok"}\n{"level":"CRITICAL","message":"forged"}\r\x1b[31m\x00\u2028\u2029\x85end'
    line = render_json({"message": forged, "k\nx": forged})
    assert line.count(b"\n") == 1 and b"\r" not in line
    assert line.isascii()
    out = _one(line)
    assert out["message"] == forged
    assert out["k\nx"] == forged


def test_ordered_dict_and_mapping_subclasses_render() -> None:
    """OrderedDict and other Mapping types render as objects."""
    from types import MappingProxyType

    out = _one(render_json(OrderedDict([("b", 1), ("a", MappingProxyType({"z": 2}))])))
    assert out == {"b": 1, "a": {"z": 2}}


def test_dataclass_renders_as_object() -> None:
    """A dataclass field renders as a JSON object of its fields."""

    @dataclass
    class Usage:
        input_tokens: int
        output_tokens: int

    out = _one(render_json({"usage": Usage(3, 4), "other": {1: Usage(1, 2)}}))
    assert out["usage"] == {"input_tokens": 3, "output_tokens": 4}
    assert out["other"] == {"1": {"input_tokens": 1, "output_tokens": 2}}


def test_render_json_never_raises_on_hostile_mapping() -> None:
    """A mapping whose items() raises still yields one valid JSON line."""

    class Hostile(dict[str, object]):
        def items(self):  # type: ignore[override]
            raise RuntimeError("no")

        def __iter__(self):  # type: ignore[override]
            raise RuntimeError("no")

    cyc: list[object] = []
    cyc.append(cyc)  # forces the sanitizing fallback, which calls items()
    out = _one(render_json({"message": "m", "h": Hostile(a=1), "c": cyc}))
    assert out["message"] == "m" and out["c"] == ["<cycle>"]
    assert isinstance(out["h"], str | dict)


def test_fast_path_output_matches_orjson() -> None:
    """For plain events the output is exactly orjson's (no extra work on the common path)."""
    ev = {"message": "Request completed", "status_code": 200, "duration": 0.01}
    assert render_json(ev) == orjson.dumps(ev) + b"\n"


def test_render_dev_matches_seed_format() -> None:
    """The development line is 'YYYY-mm-dd HH:MM:SS,mmm - logger - LEVEL - message'."""
    ts = time.mktime((2024, 12, 28, 10, 30, 0, 0, 0, -1)) + 0.123
    line = render_dev(ts, "api_monitor", "INFO", "Request completed")
    assert line == b"2024-12-28 10:30:00,123 - api_monitor - INFO - Request completed\n"


def test_render_dev_escapes_newlines_and_controls() -> None:
    """A newline in the message shows as \\n, so one event stays one line."""
    line = render_dev(time.time(), "a\nb", "INFO", "first\nINFO - forged\r\x1b[0m\u2028")
    assert line.count(b"\n") == 1
    text = line.decode()
    assert len(text.splitlines()) == 1
    assert text.endswith(" - a\\nb - INFO - first\\nINFO - forged\\r\\x1b[0m\\u2028\n")


def test_render_dev_truncates_and_survives_bad_message() -> None:
    """Huge messages are truncated with a marker; a non-str message is str()-ed."""
    line = render_dev(time.time(), "x", "INFO", "m" * 200, max_value_chars=10)
    assert line.endswith(b"mmmmmmmmmm\xe2\x80\xa6[truncated 190 chars]\n")
    assert render_dev(time.time(), "x", "INFO", 42).endswith(b" - 42\n")  # type: ignore[arg-type]


def test_escape_control_returns_same_object_when_clean() -> None:
    """Clean text is returned unchanged (no copy on the hot path)."""
    s = "plain message"
    assert escape_control(s) is s
