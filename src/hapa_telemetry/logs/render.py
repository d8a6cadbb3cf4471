"""Turn one log event into one line of bytes: JSON for production, the seed's plain line for
development.

Both renderers run for every log line, so the common case is one ``orjson.dumps`` call:

* ``render_json`` hands the event to orjson with a ``default`` hook that converts the few
  types orjson does not know (Decimal, bytes, sets, exceptions, arbitrary objects). Only when
  that fails (cyclic data, non-str keys, integers beyond 64 bits, lone surrogates, nesting
  deeper than orjson's limit) or when the line is longer than ``max_value_chars`` (so some
  string *might* be too long) does it walk the event with :func:`sanitize` and render again.
* It never raises: if even the sanitized event cannot be rendered, a minimal line saying so
  is returned instead.

One event is always exactly one line: JSON escaping turns ``\\n``, ``\\r`` and every other
control character into ``\\uXXXX``/``\\n`` escapes, and the three characters orjson leaves
raw that ``str.splitlines`` still treats as line breaks (U+0085, U+2028, U+2029) are escaped
here too.

Rendering choices (documented in docs/logs-internals.md):

* ``datetime``/``date``/``time`` -> ISO 8601 string (orjson's RFC 3339 form on the fast path);
* ``Decimal`` -> string (keeps every digit; a JSON number would round through float);
* ``bytes``/``bytearray``/``memoryview`` -> UTF-8 text, invalid bytes replaced by U+FFFD;
* ``set``/``frozenset``/``tuple`` -> list; other mappings -> object;
* exceptions -> ``"ExcType: message"``;
* anything else -> ``repr()``; a ``repr`` that raises -> ``"<unrepresentable ClassName>"``;
* a container met again inside itself -> ``"<cycle>"``; nesting deeper than
  :data:`MAX_DEPTH` -> ``"<max depth>"``;
* non-str keys -> ``str(key)``;
* NaN and +-infinity -> ``null`` (orjson's behaviour; a string would break a numeric field
  mapping in Elasticsearch and reject the whole document);
* strings longer than ``max_value_chars`` -> cut, followed by ``"…[truncated N chars]"``
  where N is the number of characters removed.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import enum
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any, Final

import orjson

from hapa_telemetry import _state

__all__ = [
    "DEFAULT_MAX_VALUE_CHARS",
    "MAX_DEPTH",
    "escape_control",
    "render_dev",
    "render_json",
    "sanitize",
    "truncate",
]

DEFAULT_MAX_VALUE_CHARS: Final = 32768
#: Containers nested deeper than this are replaced by ``"<max depth>"`` (orjson's own limit
#: is 254; we stop well before it so one hostile field cannot make a line huge).
MAX_DEPTH: Final = 32

CYCLE_MARKER: Final = "<cycle>"
DEPTH_MARKER: Final = "<max depth>"

_OPT: Final = orjson.OPT_APPEND_NEWLINE
_dumps = orjson.dumps

# Characters that str.splitlines() treats as line breaks but orjson emits raw (UTF-8).
_NEL: Final = b"\xc2\x85"
_LS: Final = b"\xe2\x80\xa8"
_PS: Final = b"\xe2\x80\xa9"


def truncate(s: str, max_chars: int) -> str:
    """Return ``s`` cut to ``max_chars`` characters plus a visible marker (or ``s`` itself)."""
    n = len(s)
    if max_chars <= 0 or n <= max_chars:
        return s
    return f"{s[:max_chars]}…[truncated {n - max_chars} chars]"


def _safe_repr(obj: object) -> str:
    try:
        r = repr(obj)
    except Exception:
        return f"<unrepresentable {type(obj).__name__}>"
    if type(r) is not str:  # a __repr__ returning a str subclass is fine, anything else is not
        return f"<unrepresentable {type(obj).__name__}>"
    return r


def _exc_text(exc: BaseException) -> str:
    try:
        msg = str(exc)
    except Exception:
        msg = "<unprintable message>"
    name = type(exc).__name__
    return f"{name}: {msg}" if msg else name


def _bytes_text(b: bytes | bytearray | memoryview) -> str:
    return bytes(b).decode("utf-8", "replace")


def _default(obj: Any) -> Any:
    """orjson's hook for types it does not serialize itself (fast path)."""
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _bytes_text(obj)
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, BaseException):
        return _exc_text(obj)
    if isinstance(obj, Mapping):
        return dict(obj)
    return _safe_repr(obj)


def _clean_str(s: str, max_chars: int) -> str:
    if type(s) is not str:
        s = str.__str__(s)
    s = truncate(s, max_chars)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: orjson refuses them
        s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    return s


_INT64_MIN: Final = -(2**63)
_UINT64_MAX: Final = 2**64 - 1


def sanitize(obj: Any, max_chars: int = DEFAULT_MAX_VALUE_CHARS) -> Any:
    """Return a copy of ``obj`` made only of dict/list/str/int/float/bool/None.

    Never raises for ordinary objects (see the module docstring for every conversion).
    """
    return _sanitize(obj, max_chars, set(), 0)


def _sanitize(obj: Any, max_chars: int, path: set[int], depth: int) -> Any:
    t = type(obj)
    if obj is None or t is bool:
        return obj
    if t is str or isinstance(obj, str):
        return _clean_str(obj, max_chars)
    if t is int or (isinstance(obj, int) and not isinstance(obj, enum.Enum)):
        i = int(obj)
        if _INT64_MIN <= i <= _UINT64_MAX:
            return i
        try:
            return truncate(str(i), max_chars)
        except ValueError:  # more digits than sys.get_int_max_str_digits()
            return f"<int of {i.bit_length()} bits>"
    if t is float or isinstance(obj, float):
        return float(obj)  # orjson writes NaN/inf as null
    if isinstance(obj, (_dt.datetime, _dt.date, _dt.time)):
        return obj.isoformat()
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, uuid.UUID):
        return str(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _clean_str(_bytes_text(obj), max_chars)
    if isinstance(obj, BaseException):
        return _clean_str(_exc_text(obj), max_chars)
    if isinstance(obj, enum.Enum):
        return _sanitize(obj.value, max_chars, path, depth)
    is_mapping = isinstance(obj, Mapping)
    is_seq = isinstance(obj, (list, tuple, set, frozenset))
    is_dc = dataclasses.is_dataclass(obj) and not isinstance(obj, type)
    if not (is_mapping or is_seq or is_dc):
        return _clean_str(_safe_repr(obj), max_chars)
    oid = id(obj)
    if oid in path:
        return CYCLE_MARKER
    if depth >= MAX_DEPTH:
        return DEPTH_MARKER
    path.add(oid)
    try:
        if is_seq:
            return [_sanitize(v, max_chars, path, depth + 1) for v in obj]
        if is_dc:
            items: Any = ((f.name, getattr(obj, f.name, None)) for f in dataclasses.fields(obj))
        else:
            items = obj.items()
        out: dict[str, Any] = {}
        for k, v in items:
            key = _clean_str(k, max_chars) if isinstance(k, str) else _key_text(k, max_chars)
            out[key] = _sanitize(v, max_chars, path, depth + 1)
        return out
    except Exception:  # a mapping whose items() raises, a dataclass property that raises ...
        return _clean_str(_safe_repr(obj), max_chars)
    finally:
        path.discard(oid)


def _key_text(k: Any, max_chars: int) -> str:
    if isinstance(k, (bytes, bytearray)):
        return _clean_str(_bytes_text(k), max_chars)
    if isinstance(k, enum.Enum):
        k = k.value
    try:
        return _clean_str(str(k), max_chars)
    except Exception:  # str() raising, or an int with too many digits
        return _clean_str(_safe_repr(k), max_chars)


def _escape_line_breaks(out: bytes) -> bytes:
    if _LS in out:
        out = out.replace(_LS, b"\\u2028")
    if _PS in out:
        out = out.replace(_PS, b"\\u2029")
    if _NEL in out:
        out = out.replace(_NEL, b"\\u0085")
    return out


def _emergency_line(event: Any, exc: BaseException) -> bytes:
    msg: Any = None
    try:
        if isinstance(event, Mapping):
            msg = event.get("message")
        msg = truncate(str(msg), 1024) if msg is not None else None
        msg = _clean_str(msg, 1024) if msg is not None else None
    except Exception:
        msg = None
    line = {
        "level": "ERROR",
        "logger": "hapa_telemetry",
        "message": "hapa-telemetry could not render a log record",
        "error_type": type(exc).__name__,
        "original_message": msg,
    }
    return _escape_line_breaks(_dumps(line, option=_OPT))


def render_json(
    event: Mapping[str, Any], *, max_value_chars: int = DEFAULT_MAX_VALUE_CHARS
) -> bytes:
    """One JSON object followed by ``b"\\n"``, keys in insertion order. Never raises."""
    try:
        out = _dumps(event, default=_default, option=_OPT)
        if max_value_chars > 0 and len(out) > max_value_chars:
            out = _dumps(_sanitize(event, max_value_chars, set(), 0), option=_OPT)
    except Exception:
        try:
            out = _dumps(_sanitize(event, max_value_chars, set(), 0), option=_OPT)
        except Exception as exc:  # pragma: no cover - a bug in sanitize; stay alive
            return _emergency_line(event, exc)
    if not out.isascii():  # isascii is one fast C pass; U+0085/2028/2029 are non-ASCII
        out = _escape_line_breaks(out)
    return out


# --- development format ------------------------------------------------------------------

# Every character that could end or disturb a terminal line: C0 controls, DEL, C1 controls
# and the Unicode line/paragraph separators.
_CONTROL_RE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(m: re.Match[str]) -> str:
    c = m.group()
    e = _ESCAPES.get(c)
    if e is not None:
        return e
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def escape_control(s: str) -> str:
    """Escape control characters (``\\n`` -> ``\\\\n``) so ``s`` stays on one line."""
    if _CONTROL_RE.search(s) is None:
        return s
    return _CONTROL_RE.sub(_escape_one, s)


_last: tuple[int, str] = (-1, "")  # (second, formatted prefix); one tuple = thread-safe swap


def _reset() -> None:
    global _last
    _last = (-1, "")


_state.register(__name__, _reset)


def _local_prefix(ts: float) -> tuple[str, int]:
    global _last
    # Whole milliseconds first (a tiny epsilon so 10:30:00.123 is not shown as ,122).
    total_ms = int(ts * 1000 + 1e-3)
    sec, msecs = divmod(total_ms, 1000)
    cached = _last
    if cached[0] == sec:
        return cached[1], msecs
    prefix = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sec))
    _last = (sec, prefix)
    return prefix, msecs


def render_dev(
    timestamp: float,
    logger: str,
    level: str,
    message: str,
    *,
    max_value_chars: int = DEFAULT_MAX_VALUE_CHARS,
) -> bytes:
    """The seed's development line ``2024-12-28 10:30:00,123 - name - INFO - message\\n``.

    Local time with comma milliseconds, like ``logging.Formatter``'s default ``asctime``.
    Control characters in any part are escaped so one event is one line. Never raises.
    """
    try:
        prefix, msecs = _local_prefix(timestamp)
        if type(message) is not str:
            message = str(message)
        message = escape_control(truncate(message, max_value_chars))
        line = (
            f"{prefix},{msecs:03d} - {escape_control(str(logger))} - "
            f"{escape_control(str(level))} - {message}\n"
        )
        return line.encode("utf-8", "backslashreplace")
    except Exception as exc:
        return f"- hapa_telemetry - ERROR - unrenderable log line ({type(exc).__name__})\n".encode()
