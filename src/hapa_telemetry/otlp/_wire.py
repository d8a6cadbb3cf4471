"""Protobuf wire format, written directly: varints, AnyValue/KeyValue, resource, scope.

Everything returns ``bytes`` ready to be joined; nested messages are sized bottom-up
(encode the body, then prefix tag + length). Encoded attribute keys, frequent
``(key, value)`` pairs and each resource/scope header are cached (bounded) so that the
per-item work is mostly dict look-ups and one ``b"".join``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

_MASK64 = (1 << 64) - 1
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

# Lengths below 16 KiB (nearly every attribute, span and record) come from this table.
_SMALL = 1 << 14
_VARINTS: list[bytes] = [bytes((n,)) for n in range(128)] + [
    bytes(((n & 0x7F) | 0x80, n >> 7)) for n in range(128, _SMALL)
]

pack_double = struct.Struct("<d").pack
pack_fixed32 = struct.Struct("<I").pack
pack_fixed64 = struct.Struct("<Q").pack


def varint(n: int) -> bytes:
    """Base-128 varint of a non-negative int (negative int64 as its two's complement)."""
    if 0 <= n < _SMALL:
        return _VARINTS[n]
    n &= _MASK64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field_bytes(tag: bytes, data: bytes) -> bytes:
    """A length-delimited field: tag, length, data."""
    n = len(data)
    return tag + (_VARINTS[n] if n < _SMALL else varint(n)) + data


def text(tag: bytes, value: str) -> bytes:
    """A string field (lone surrogates replaced: the receiver rejects invalid UTF-8)."""
    data = value.encode("utf-8", "replace")
    n = len(data)
    return tag + (_VARINTS[n] if n < _SMALL else varint(n)) + data


# -- AnyValue ---------------------------------------------------------------------------
_TRUE = b"\x10\x01"
_FALSE = b"\x10\x00"
_EMPTY = b""


def any_value(value: Any) -> bytes:
    """The body of an ``AnyValue`` message for a Python value (as the SDK maps it)."""
    t = type(value)
    if t is str:
        return text(b"\x0a", value)
    if t is bool:
        return _TRUE if value else _FALSE
    if t is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return b"\x18" + varint(value)
        return text(b"\x0a", str(value))  # out of int64: kept as text, never lost
    if t is float:
        return b"\x21" + pack_double(value)
    if value is None:
        return _EMPTY
    return _other_value(value)


def _other_value(value: Any) -> bytes:
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, str):
        return text(b"\x0a", value)
    if isinstance(value, int):
        return any_value(int(value))
    if isinstance(value, float):
        return b"\x21" + pack_double(float(value))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return field_bytes(b"\x3a", bytes(value))
    if isinstance(value, Sequence):
        inner = b"".join([field_bytes(b"\x0a", any_value(v)) for v in value])
        return field_bytes(b"\x2a", inner)
    if isinstance(value, Mapping):
        inner = b"".join([b"\x0a" + key_value(str(k), v) for k, v in value.items()])
        return field_bytes(b"\x32", inner)
    return text(b"\x0a", str(value))  # unknown type: its text rather than nothing


# -- KeyValue (with caches) -------------------------------------------------------------
_KEYS: dict[str, bytes] = {}
_MAX_KEYS = 256
# key -> {value: length-prefixed KeyValue}; str and int values in separate tables so
# that 1, 1.0 and True never share an entry.
_STR_PAIRS: dict[str, dict[str, bytes]] = {}
_INT_PAIRS: dict[str, dict[int, bytes]] = {}
_MAX_VALUES_PER_KEY = 64  # beyond this a key is high-cardinality: encoded every time
_MAX_CACHED_CHARS = 64  # worst case ~256 keys x 64 values x ~150 B per table


def _key(key: str) -> bytes:
    enc = _KEYS.get(key)
    if enc is None:
        enc = text(b"\x0a", key)
        if len(_KEYS) >= _MAX_KEYS:
            _KEYS.clear()
        _KEYS[key] = enc
    return enc


def key_value(key: str, value: Any) -> bytes:
    """A ``KeyValue`` message prefixed with its length (the caller adds the field tag)."""
    t = type(value)
    if t is str:
        table = _STR_PAIRS.get(key)
        if table is not None:
            hit = table.get(value)
            if hit is not None:
                return hit
        return _remember(_STR_PAIRS, key, value, len(value) <= _MAX_CACHED_CHARS)
    if t is int:
        itable = _INT_PAIRS.get(key)
        if itable is not None:
            ihit = itable.get(value)
            if ihit is not None:
                return ihit
        return _remember(_INT_PAIRS, key, value, True)
    return _encode_pair(key, value)


def _encode_pair(key: str, value: Any) -> bytes:
    kb = _KEYS.get(key) or _key(key)
    if type(value) is str:  # the common miss, written out: AnyValue{string_value}
        data = value.encode("utf-8", "replace")
        n = len(data)
        if n < 127:  # AnyValue = 0x0a, n, data: its length is n + 2
            kv = kb + b"\x12" + _VARINTS[n + 2] + b"\x0a" + _VARINTS[n] + data
            return (_VARINTS[len(kv)] if len(kv) < _SMALL else varint(len(kv))) + kv
    av = any_value(value)
    kv = kb + (field_bytes(b"\x12", av) if av else b"\x12\x00")
    return varint(len(kv)) + kv


def _remember(tables: dict[str, dict[Any, bytes]], key: str, value: Any, ok: bool) -> bytes:
    enc = _encode_pair(key, value)
    if ok:
        table = tables.get(key)
        if table is None:
            if len(tables) >= _MAX_KEYS:
                tables.clear()
            table = tables[key] = {}
        if len(table) < _MAX_VALUES_PER_KEY:
            table[value] = enc
    return enc


def attributes(tag: bytes, attrs: Mapping[str, Any] | None) -> bytes:
    """Every attribute as a repeated ``KeyValue`` field with ``tag`` (empty when none)."""
    if not attrs:
        return _EMPTY
    # the SDK's BoundedAttributes iterates in Python; its plain dict does not
    plain = getattr(attrs, "_dict", attrs)
    out: list[bytes] = []
    append = out.append
    str_pairs = _STR_PAIRS
    int_pairs = _INT_PAIRS
    keys = _KEYS
    for k, v in plain.items():
        t = type(v)
        if t is str:  # cache hits inline: most attributes of a server span
            table = str_pairs.get(k)
            if table is not None:
                hit = table.get(v)
                if hit is not None:
                    append(hit)
                    continue
        elif t is int:
            itable = int_pairs.get(k)
            if itable is not None:
                ihit = itable.get(v)
                if ihit is not None:
                    append(ihit)
                    continue
        elif t is float:  # durations: never repeat, 11 fixed bytes after the key
            kb = keys.get(k) or _key(k)
            kv = kb + b"\x12\x09\x21" + pack_double(v)
            append(_VARINTS[len(kv)] + kv if len(kv) < _SMALL else varint(len(kv)) + kv)
            continue
        append(key_value(k, v))
    return tag + tag.join(out)


# -- resource and scope headers (cached per object) -------------------------------------
class HeaderCache:
    """Encoded bytes per long-lived object (resource, scope), keyed by identity."""

    def __init__(self, encode: Callable[[Any], bytes], limit: int = 64) -> None:
        self._encode = encode
        self._limit = limit
        self._entries: dict[int, tuple[Any, bytes]] = {}

    def get(self, obj: Any) -> bytes:
        entry = self._entries.get(id(obj))
        if entry is not None and entry[0] is obj:
            return entry[1]
        enc = self._encode(obj)
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[id(obj)] = (obj, enc)  # holding obj keeps its id from being reused
        return enc


def encode_resource(resource: Any) -> bytes:
    """``resource`` field (1) of ResourceSpans/ResourceLogs; the schema URL is separate."""
    body = attributes(b"\x0a", resource.attributes)
    return field_bytes(b"\x0a", body)


def encode_scope(scope: Any) -> bytes:
    """``scope`` field (1) of ScopeSpans/ScopeLogs followed by the scope's schema URL."""
    if scope is None:
        return b"\x0a\x00"
    body = b""
    if scope.name:
        body += text(b"\x0a", scope.name)
    if scope.version:
        body += text(b"\x12", scope.version)
    body += attributes(b"\x1a", getattr(scope, "attributes", None))
    return field_bytes(b"\x0a", body)


def schema_url(tag: bytes, obj: Any) -> bytes:
    url = getattr(obj, "schema_url", None) if obj is not None else None
    return text(tag, url) if url else _EMPTY


def group(
    items: Sequence[Any],
    encode_item: Callable[[Any], bytes],
    origin: Callable[[Any], tuple[Any, Any]],
    pause: Callable[[], None] | None,
    every: int,
    on_error: Callable[[BaseException], None] | None = None,
) -> list[tuple[Any, Any, list[bytes]]]:
    """Encode items, grouped by ``origin(item)`` = (resource, scope) in first-seen order.

    An item that cannot be encoded is left out (``on_error`` is told) instead of failing
    the whole batch.
    """
    groups: dict[tuple[int, int], tuple[Any, Any, list[bytes]]] = {}
    for i, item in enumerate(items):
        if pause is not None and i and i % every == 0:
            pause()
        try:
            encoded = encode_item(item)
            resource, scope = origin(item)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(exc)
            continue
        gkey = (id(resource), id(scope))
        entry = groups.get(gkey)
        if entry is None:
            entry = groups[gkey] = (resource, scope, [])
        entry[2].append(encoded)
    return list(groups.values())


_RESOURCES = HeaderCache(encode_resource)
_SCOPES = HeaderCache(encode_scope, limit=256)


def request(groups: list[tuple[Any, Any, list[bytes]]], item_tag: bytes) -> bytes:
    """Assemble ``Export*ServiceRequest``: resource -> scope -> items (tag ``item_tag``).

    Every message of the three levels uses the same field numbers for traces and logs
    (1 resource/scope, 2 scope_*/items, 3 schema_url), so one function serves both.
    """
    by_resource: dict[int, tuple[Any, list[bytes]]] = {}
    for resource, scope, encoded in groups:
        items = item_tag + item_tag.join([varint(len(e)) + e for e in encoded])
        scope_body = _SCOPES.get(scope) + items + schema_url(b"\x1a", scope)
        entry = by_resource.get(id(resource))
        if entry is None:
            entry = by_resource[id(resource)] = (resource, [])
        entry[1].append(field_bytes(b"\x12", scope_body))
    out = []
    for resource, scopes in by_resource.values():
        body = _RESOURCES.get(resource) + b"".join(scopes) + schema_url(b"\x1a", resource)
        out.append(field_bytes(b"\x0a", body))
    return b"".join(out)
