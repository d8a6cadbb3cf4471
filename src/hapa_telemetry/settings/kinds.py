"""The value kinds of the settings table: how a string is parsed and how a value is checked.

A kind does two things, the same way for every setting:

- ``parse(raw)`` turns an environment string (or a string argument) into a value;
- ``check(value)`` accepts or rejects a value however it arrived (environment, keyword
  argument, ``Settings(...)``), including its range.

Both raise :class:`Invalid` with what was expected; the caller names the variable.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f"})
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
SIZE_EXPECTED = "a size like 10MB, 512KB or 1048576"


class Invalid(Exception):
    """A value was rejected; ``expected`` says what would have been accepted."""

    def __init__(self, expected: str) -> None:
        super().__init__(expected)
        self.expected = expected


class Kind:
    """Text is kept as it is (stripped); any non-empty string is accepted."""

    expected = "a non-empty text"

    def parse(self, raw: str) -> Any:
        return raw

    def coerce(self, value: Any) -> Any:
        """A keyword argument of the right Python type, before :meth:`check`."""
        return value

    def check(self, value: Any) -> None:
        if not isinstance(value, str) or not value:
            raise Invalid(self.expected)

    def from_argument(self, value: Any) -> Any:
        """Strings are parsed like the environment's; other values are only coerced."""
        if isinstance(value, str):
            return self.parse(value.strip())
        return self.coerce(value)


class Text(Kind):
    """Plain text (a name, a host, a path)."""


class Bool(Kind):
    expected = "true or false"

    def parse(self, raw: str) -> Any:
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise Invalid(self.expected)

    def check(self, value: Any) -> None:
        if not isinstance(value, bool):
            raise Invalid(self.expected)


class GenAICapture(Bool):
    """true/false, or upstream GenAI instrumentations' modes (content on spans or not)."""

    expected = "true or false (or SPAN_ONLY, SPAN_AND_EVENT, EVENT_ONLY, NO_CONTENT)"

    def parse(self, raw: str) -> Any:
        low = raw.lower()
        if low in ("span_only", "span_and_event"):
            return True
        if low in ("no_content", "event_only"):
            return False
        return super().parse(raw)


class Int(Kind):
    def __init__(
        self, minimum: int | None = None, maximum: int | None = None, expected: str = ""
    ) -> None:
        self.minimum, self.maximum = minimum, maximum
        if not expected:
            if maximum is not None:
                expected = f"an integer {minimum}-{maximum}"
            elif minimum is not None:
                expected = f"an integer >= {minimum}"
            else:
                expected = "an integer"
        self.expected = expected

    def parse(self, raw: str) -> Any:
        try:
            return int(raw)
        except ValueError:
            raise Invalid(self.expected) from None

    def check(self, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise Invalid(self.expected)
        if self.minimum is not None and value < self.minimum:
            raise Invalid(self.expected)
        if self.maximum is not None and value > self.maximum:
            raise Invalid(self.expected)


class Float(Kind):
    def __init__(self, minimum: float, maximum: float | None = None, *, above: bool = False):
        self.minimum, self.maximum, self.above = minimum, maximum, above
        if maximum is None:
            self.expected = f"a number {'>' if above else '>='} {minimum:g}"
        elif above:
            self.expected = f"a number > {minimum:g} and <= {maximum:g}"
        else:
            self.expected = f"a number {minimum:g}-{maximum:g}"

    def parse(self, raw: str) -> Any:
        try:
            return float(raw)
        except ValueError:
            raise Invalid(self.expected) from None

    def coerce(self, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    def check(self, value: Any) -> None:
        if not isinstance(value, float) or not math.isfinite(value):
            raise Invalid(self.expected)
        if value < self.minimum or (self.above and value == self.minimum):
            raise Invalid(self.expected)
        if self.maximum is not None and value > self.maximum:
            raise Invalid(self.expected)


class Choice(Kind):
    """One of a few words (compared lower-case)."""

    def __init__(self, *options: str) -> None:
        self.options = options
        self.expected = "one of " + ", ".join(options)

    def parse(self, raw: str) -> Any:
        return raw.lower()

    def check(self, value: Any) -> None:
        if value not in self.options:
            raise Invalid(self.expected)


class Level(Choice):
    """A ``logging`` level name; ``WARN`` is read as ``WARNING``."""

    def __init__(self) -> None:
        super().__init__(*LEVELS)

    def parse(self, raw: str) -> Any:
        up = raw.upper()
        return "WARNING" if up == "WARN" else up


class Size(Kind):
    """A byte count: ``10MB``, ``512KB``, ``1GiB`` or plain bytes."""

    expected = SIZE_EXPECTED

    def parse(self, raw: str) -> Any:
        return parse_size(raw)

    def check(self, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise Invalid(self.expected)


class Url(Kind):
    expected = "a URL like http://127.0.0.1:4318"

    def check(self, value: Any) -> None:
        if not isinstance(value, str) or not re.match(r"^https?://[^\s/]+", value):
            raise Invalid(self.expected)
        try:
            urlsplit(value).port  # noqa: B018 - raises on a port out of range
        except ValueError:
            raise Invalid(self.expected) from None


class Words(Kind):
    """A comma-separated list; a list or tuple as an argument."""

    expected = "a comma-separated list"

    def __init__(self, *, lower: bool = False) -> None:
        self.lower = lower

    def parse(self, raw: str) -> Any:
        parts = tuple(part.strip() for part in raw.split(",") if part.strip())
        return tuple(p.lower() for p in parts) if self.lower else parts

    def coerce(self, value: Any) -> Any:
        if isinstance(value, (list, tuple, set, frozenset)):
            return tuple(value)
        return value

    def check(self, value: Any) -> None:
        if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
            raise Invalid(self.expected)


class Patterns(Words):
    """A comma-separated list of regular expressions, each compiled once here."""

    expected = "comma-separated regular expressions"

    def check(self, value: Any) -> None:
        super().check(value)
        for part in value:
            try:
                re.compile(part)
            except re.error as exc:
                raise Invalid(f"valid regular expressions ({part!r}: {exc})") from None


class Pairs(Kind):
    """``key=value,key2=value2`` with percent-encoded values (the OTel spec's format)."""

    expected = "key=value pairs separated by commas"

    def parse(self, raw: str) -> Any:
        out: dict[str, str] = {}
        for item in raw.split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise Invalid(self.expected)
            out[unquote(key.strip())] = unquote(value.strip())
        return out

    def coerce(self, value: Any) -> Any:
        return dict(value) if isinstance(value, Mapping) else value

    def check(self, value: Any) -> None:
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in value.items()
        ):
            raise Invalid(self.expected)


class Optional(Kind):
    """Another kind, or None (unset, or one of ``none_words``)."""

    def __init__(self, inner: Kind, *none_words: str) -> None:
        self.inner, self.none_words = inner, none_words
        self.expected = inner.expected + (
            " or " + "/".join(none_words) if none_words else ""
        )

    def parse(self, raw: str) -> Any:
        if raw.lower() in self.none_words:
            return None
        return self.inner.parse(raw)

    def from_argument(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and value.strip().lower() in self.none_words:
            return None
        return self.inner.from_argument(value)

    def check(self, value: Any) -> None:
        if value is not None:
            try:
                self.inner.check(value)
            except Invalid:
                raise Invalid(self.expected) from None


def parse_size(raw: str) -> int:
    """Parse ``10MB``, ``512KB``, ``1GiB`` or a plain byte count into bytes."""
    match = _SIZE.match(raw)
    if not match:
        raise Invalid(SIZE_EXPECTED)
    number, unit = match.groups()
    key = (unit or "").upper().rstrip("B").rstrip("I")
    if key not in _SIZE_UNITS:
        raise Invalid(SIZE_EXPECTED)
    return int(float(number) * _SIZE_UNITS[key])
