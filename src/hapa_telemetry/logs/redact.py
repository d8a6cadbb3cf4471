"""Keep secrets out of every sink: key-based redaction of structured fields and pattern-based
redaction of free text, plus helpers for query strings, headers and client IPs.

Key rule (``Redactor.is_sensitive_key``): the key is lower-cased and ``-``, ``_``, ``.`` and
spaces are removed; it is sensitive when it *contains* one of :data:`SENSITIVE_KEY_PARTS`
(``password``, ``secret``, ``token``, ``apikey``, ``authorization``, ``cookie``, ``session``,
``credential``, ``privatekey``, ...) or *equals* one of :data:`SENSITIVE_EXACT_KEYS`
(``auth``, ``pass``, ``pwd``). The substrings ``tokenizer`` and ``tokentype`` are removed
first, so ``tokenizer`` and ``gen_ai.token.type`` stay visible.

Value rule for a sensitive key:

* ``None`` and booleans are never secrets and are kept;
* when the key also looks like a *count* (contains ``tokens``, ``count``, ``usage``, ``num``,
  ``length``, ``size``, ``limit``, ``max``, ``min``, ``total``, ``ttl``, ``expire``, ...):
  numbers are kept, mappings/lists are searched recursively, strings are redacted. That keeps
  GenAI token usage (``gen_ai.usage.input_tokens``, ``prompt_tokens``, ``max_tokens``,
  ``token_count``, ``token_usage={...}``) visible;
* otherwise the whole value is replaced by :data:`REDACTED` (an int ``password`` or ``pin``
  included).

Strings under non-sensitive keys are passed through :meth:`Redactor.redact_text`, which
replaces bearer/basic credentials, well-known API-key formats, JWTs, private-key blocks and
``key=value`` / ``"key": "value"`` pairs whose key is sensitive (so secret query parameters
inside URLs are covered too).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from hapa_telemetry import _state

__all__ = [
    "IP_POLICIES",
    "REDACTED",
    "SENSITIVE_EXACT_KEYS",
    "SENSITIVE_HEADERS",
    "SENSITIVE_KEY_PARTS",
    "Redactor",
    "anonymize_ip",
    "apply_ip_policy",
    "default_redactor",
]

REDACTED: Final = "[REDACTED]"

SENSITIVE_KEY_PARTS: Final = (
    "password", "passwd", "passphrase", "secret", "token", "apikey", "authorization",
    "cookie", "session", "credential", "privatekey", "accesskey", "signature", "jwt",
    "bearer",
)
SENSITIVE_EXACT_KEYS: Final = frozenset({"auth", "pass", "pwd", "pin", "otp", "sig"})
_NOT_SENSITIVE_PARTS: Final = ("tokenizer", "tokentype")
_COUNT_PARTS: Final = (
    "tokens", "count", "usage", "num", "length", "size", "limit", "max", "total", "ttl",
    "expire", "expiry", "timeout", "duration",
)
#: Header names whose values are always redacted (compared lower-cased).
SENSITIVE_HEADERS: Final = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key",
    "api-key", "x-auth-token", "x-access-token", "x-csrf-token", "x-xsrf-token",
    "x-amz-security-token", "x-goog-api-key", "openai-api-key", "anthropic-api-key",
})

IP_POLICIES: Final = ("keep", "anonymize", "drop")

_NOT_SENSITIVE: Final = 0
_SENSITIVE_COUNT: Final = 1
_SENSITIVE: Final = 2
_CACHE_MAX: Final = 4096

# Free-text patterns. Group "v" is the secret; everything else is kept.
_KEYWORDS: Final = (
    r"pass(?:word|wd|phrase)?|pwd|secret|token|api[-_]?key|auth(?:orization)?|cookie|"
    r"session(?:id)?|credentials?|private[-_]?key|access[-_]?key|signature|jwt"
)
_TEXT_PATTERNS: Final = (
    # key=value, key: value, "key": "value", ?token=...&  (key may carry a prefix/suffix;
    # bounded so a long run of word characters cannot make the search quadratic)
    r"(?P<k>\b[\w.-]{0,40}(?i:" + _KEYWORDS + r")[\w.-]{0,40})(?P<sep>[\"']?\s*[:=]\s*[\"']?)"
    r"(?P<scheme>(?i:bearer|basic|token)\s+)?(?P<v>[^\s\"'&,;}\])]+)",
    # Authorization schemes in free text: "Bearer abc.def", "Basic dXNlcjpwYXNz"
    r"\b(?P<scheme2>(?i:bearer))\s+(?P<v2>[A-Za-z0-9\-._~+/]{8,}=*)"
    r"|\b(?P<scheme3>(?i:basic))\s+(?P<v4>(?=[A-Za-z0-9+/]+[A-Z0-9+/=])[A-Za-z0-9+/]{8,}=*)",
    # Well-known key formats (case-sensitive)
    r"(?P<v3>\bsk-(?:ant-|proj-|live-|test-)?[A-Za-z0-9_\-]{16,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|\bgithub_pat_[A-Za-z0-9_]{20,}"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\bAIza[0-9A-Za-z\-_]{35}"
    r"|\bhf_[A-Za-z0-9]{30,}"
    r"|\bglpat-[A-Za-z0-9\-_]{20,}"
    r"|\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"
    r"|-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|$))",
)


# Cheap first pass on the lower-cased text: no built-in pattern can match unless one of these
# occurs. Grouped by first letter so the regex engine tries one branch per position.
_PRECHECK: Final = (
    r"a(?:pi[-_]?key|uth|ccess[-_]?key|kia|sia|iza)|b(?:earer|asic)|c(?:ookie|redential)|eyj|"
    r"g(?:h[pousr]_|ithub_pat_|lpat-)|hf_|jwt|p(?:ass|wd|rivate|in)|otp|"
    r"s(?:ecret|ession|ig|k-)|token|xox|-----begin"
)
_TEXT_CACHE_MAX_LEN: Final = 256
# Strings made only of these characters (hex ids, UUIDs, IPs, ISO timestamps, numbers) cannot
# contain any built-in keyword or key format: every one has a letter outside a-f.
_ID_CHARS: Final = "0123456789abcdefABCDEF-:.+TZ"
_UNCHANGED: Final = ""


def _normalize(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "").replace(".", "").replace(" ", "")


class Redactor:
    """Redacts structured fields by key and free text by pattern. Thread-safe; key decisions
    are cached in a plain dict (bounded, cleared when full)."""

    __slots__ = (
        "_exact", "_extra_re", "_id_shortcut", "_key_cache", "_parts", "_precheck",
        "_text_cache", "_text_re",
    )

    def __init__(self, *, extra_keys: Iterable[str] = (), extra_patterns: Iterable[str] = ()):
        extra_raw = [k for k in extra_keys if k and _normalize(k)]
        extra = [_normalize(k) for k in extra_raw]
        self._parts: tuple[str, ...] = SENSITIVE_KEY_PARTS + tuple(extra)
        self._exact = SENSITIVE_EXACT_KEYS
        self._key_cache: dict[str, int] = {}
        patterns = list(_TEXT_PATTERNS)
        if extra:
            patterns[0] = patterns[0].replace(
                _KEYWORDS, _KEYWORDS + "|" + "|".join(re.escape(k) for k in extra_raw)
            )
        precheck = _PRECHECK
        if extra:
            precheck += "|" + "|".join(re.escape(k.lower()) for k in extra_raw)
        self._precheck = re.compile(precheck)
        extra_pats = [p for p in extra_patterns if p]
        for p in extra_pats:
            re.compile(p)  # fail early (re.error names the bad pattern)
        self._extra_re = (
            re.compile("|".join(f"(?:{p})" for p in extra_pats)) if extra_pats else None
        )
        self._text_re = re.compile("|".join(patterns))
        self._text_cache: dict[str, str] = {}
        self._id_shortcut = self._extra_re is None and all(
            k.lower().strip(_ID_CHARS.lower()) for k in extra_raw
        )

    # --- keys -------------------------------------------------------------------------------
    def _classify(self, key: str) -> int:
        n = _normalize(key)
        for part in _NOT_SENSITIVE_PARTS:
            n = n.replace(part, "")
        if n in self._exact or any(p in n for p in self._parts):
            return _SENSITIVE_COUNT if any(c in n for c in _COUNT_PARTS) else _SENSITIVE
        return _NOT_SENSITIVE

    def is_sensitive_key(self, key: str) -> bool:
        """True when values under ``key`` are (at least partly) redacted."""
        return self._key_kind(key) != _NOT_SENSITIVE

    def _key_kind(self, key: Any) -> int:
        cache = self._key_cache
        kind = cache.get(key)
        if kind is None:
            kind = self._classify(key) if isinstance(key, str) else _NOT_SENSITIVE
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[key] = kind
        return kind

    # --- values -----------------------------------------------------------------------------
    def redact_mapping(self, d: Mapping[str, Any]) -> dict[str, Any]:
        """Return ``d`` itself when nothing is secret, else a shallow copy with secrets
        replaced (nested dicts/lists are copied only where they change)."""
        return self._mapping(d, 0)  # type: ignore[return-value]

    def _mapping(self, d: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
        # Hot path: written out by hand (cache lookups inlined) because it runs per field.
        out: dict[str, Any] | None = None
        key_cache = self._key_cache
        text_cache = self._text_cache
        for k, v in d.items():
            t = type(v)
            kind = key_cache.get(k)
            if kind is None:
                kind = self._key_kind(k)
            if kind == _NOT_SENSITIVE:
                if t is str:
                    if len(v) < 5 and self._extra_re is None:
                        continue
                    hit = text_cache.get(v)
                    if hit is _UNCHANGED:  # identity: the cache's own marker object
                        continue
                    nv: Any = hit if hit is not None else self._text_miss(v)
                elif t is int or t is float or t is bool or v is None:
                    continue
                else:
                    nv = self._value(v, depth)
            elif v is None or t is bool:
                continue
            elif kind == _SENSITIVE_COUNT and t is not str and t is not bytes:
                nv = v if isinstance(v, (int, float)) else self._value(v, depth)
            else:
                nv = REDACTED
            if nv is not v:
                if out is None:
                    out = dict(d)
                out[k] = nv
        return d if out is None else out

    def _value(self, v: Any, depth: int) -> Any:
        if depth > 32:
            return v
        if isinstance(v, str):
            return self.redact_text(v)
        if isinstance(v, Mapping):
            return self._mapping(v, depth + 1)
        if isinstance(v, (list, tuple)):
            new = [self._value(x, depth + 1) for x in v]
            if any(a is not b for a, b in zip(new, v, strict=True)):
                return new
            return v
        if isinstance(v, (bytes, bytearray)):
            text = bytes(v).decode("utf-8", "replace")
            red = self.redact_text(text)
            return v if red == text else red
        return v

    def redact_text(self, s: str) -> str:
        """Replace secrets inside free text; returns ``s`` itself when there is none.

        Cost when there is nothing to redact: one lower-case copy and one precheck regex
        search (about 0.5 us for a 30-character string); results for strings up to 256
        characters are cached, so repeated values (messages, routes) cost one dict lookup.
        """
        if len(s) < 5 and self._extra_re is None:
            return s
        if len(s) <= _TEXT_CACHE_MAX_LEN:
            hit = self._text_cache.get(s)
            if hit is not None:
                return s if hit is _UNCHANGED else hit
        return self._text_miss(s)

    def _text_miss(self, s: str) -> str:
        short = len(s) <= _TEXT_CACHE_MAX_LEN
        if short and self._id_shortcut and not s.strip(_ID_CHARS):
            return s  # an id or timestamp: unique values would only churn the cache
        out = s
        if self._precheck.search(s.lower()) is not None:
            out = self._text_re.sub(self._replace, out)
        if self._extra_re is not None:
            out = self._extra_re.sub(REDACTED, out)
        if out == s:
            out = s
        if short:
            cache = self._text_cache
            if len(cache) >= _CACHE_MAX:
                cache.clear()
            cache[s] = _UNCHANGED if out is s else out
        return out

    def _replace(self, m: re.Match[str]) -> str:
        g = m.groupdict()
        k = g.get("k")
        if k is not None:
            value = g["v"]
            kind = self._key_kind(k)
            if kind == _NOT_SENSITIVE or (kind == _SENSITIVE_COUNT and value.isdigit()):
                # "author=..." or "prompt_tokens=123": keep, but still look inside the value
                return f"{k}{g['sep']}{g['scheme'] or ''}{self.redact_text(value)}"
            return f"{k}{g['sep']}{g['scheme'] or ''}{REDACTED}"
        if g.get("v2") is not None:
            return f"{g['scheme2']} {REDACTED}"
        if g.get("v4") is not None:
            return f"{g['scheme3']} {REDACTED}"
        return REDACTED

    def redact_query_string(self, qs: str) -> str:
        """``a=1&token=abc`` -> ``a=1&token=[REDACTED]``; other values go through
        :meth:`redact_text`. Keeps the order and separators of the input."""
        if not qs:
            return qs
        parts = qs.split("&")
        changed = False
        for i, part in enumerate(parts):
            name, eq, value = part.partition("=")
            if not eq:
                continue
            if self._key_kind(_unquote_key(name)) == _NOT_SENSITIVE:
                new = self.redact_text(value)
                if new is value:
                    continue
                parts[i] = f"{name}={new}"
            elif self._key_kind(_unquote_key(name)) == _SENSITIVE_COUNT and value.isdigit():
                continue
            else:
                parts[i] = f"{name}={REDACTED}"
            changed = True
        return "&".join(parts) if changed else qs

    def redact_headers(
        self, headers: Iterable[tuple[str | bytes, str | bytes]]
    ) -> dict[str, str]:
        """Header pairs (str or ASGI bytes) -> ``{lower-case name: value}``; values of
        :data:`SENSITIVE_HEADERS` and of sensitive-looking names are redacted, the others go
        through :meth:`redact_text`. Repeated headers are joined with ``", "``."""
        out: dict[str, str] = {}
        for raw_name, raw_value in headers:
            name = (raw_name.decode("latin-1") if isinstance(raw_name, bytes) else raw_name)
            name = name.lower()
            value = raw_value.decode("latin-1") if isinstance(raw_value, bytes) else raw_value
            if name in SENSITIVE_HEADERS or self._key_kind(name) == _SENSITIVE:
                value = REDACTED
            else:
                value = self.redact_text(value)
            prev = out.get(name)
            out[name] = value if prev is None else f"{prev}, {value}"
        return out


def _unquote_key(name: str) -> str:
    if "%" in name or "+" in name:
        from urllib.parse import unquote_plus

        return unquote_plus(name)
    return name


# --- client IP --------------------------------------------------------------------------

_ip_cache: dict[str, str] = {}


def anonymize_ip(ip: str) -> str:
    """IPv4 -> last octet zeroed (``203.0.113.7`` -> ``203.0.113.0``); IPv6 -> its /48
    network address (``2001:db8:1234::``); an IPv4-mapped IPv6 address is treated as IPv4.
    Anything that is not an IP address (``"testclient"``, ``"unknown"``) -> :data:`REDACTED`."""
    cached = _ip_cache.get(ip)
    if cached is not None:
        return cached
    result = _anonymize(ip)
    if len(_ip_cache) >= _CACHE_MAX:
        _ip_cache.clear()
    _ip_cache[ip] = result
    return result


def _anonymize(ip: str) -> str:
    try:
        addr = ipaddress.ip_address(ip.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return REDACTED
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped
        if mapped is None:
            return str(ipaddress.IPv6Network((addr, 48), strict=False).network_address)
        addr = mapped
    return str(ipaddress.IPv4Network((addr, 24), strict=False).network_address)


def apply_ip_policy(ip: str | None, policy: str) -> str | None:
    """``keep`` -> ``ip``; ``anonymize`` -> :func:`anonymize_ip`; ``drop`` -> ``None`` (the
    caller leaves the field out). Raises ``ValueError`` for an unknown policy."""
    if policy == "keep" or ip is None:
        return ip
    if policy == "anonymize":
        return anonymize_ip(ip)
    if policy == "drop":
        return None
    raise ValueError(f"client_ip policy must be one of {IP_POLICIES}, got {policy!r}")


_default: Redactor | None = None


def default_redactor() -> Redactor:
    """A shared :class:`Redactor` with the built-in keys and patterns only."""
    global _default
    if _default is None:
        _default = Redactor()
    return _default


def _reset() -> None:
    global _default
    _default = None
    _ip_cache.clear()


_state.register(__name__, _reset)
