"""Contrib's FastAPI settings, kept working where the package replaces contrib:
excluded URLs and captured request/response headers.

Semantics as documented by opentelemetry-python-contrib (``opentelemetry-util-http``):

- ``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS`` (else ``OTEL_PYTHON_EXCLUDED_URLS``): comma-separated
  regular expressions, *searched* in the request URL ``scheme://host/path`` (no query);
  a matching request gets no span, no request lines and no counts.
- ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST`` / ``_RESPONSE``:
  comma-separated regular expressions *fully matched*, case-insensitively, against header
  names; a captured header becomes the span attribute ``http.request.header.<name>`` /
  ``http.response.header.<name>`` (name lower-cased, ``-`` → ``_``) whose value is the list
  of the header's values.
- ``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS``: regular expressions
  *searched*, case-insensitively, in captured header names; their values become
  ``[REDACTED]``.

Captured values always go through the package's redaction as well (sensitive header
names such as ``authorization`` or ``cookie`` are redacted, other values lose embedded
secrets), so capturing ``.*`` cannot leak a credential into a span.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from hapa_telemetry.logs.redact import REDACTED, SENSITIVE_HEADERS, Redactor

_CACHE_MAX = 1024  # header names seen; arbitrary client headers cannot grow it further


def _either(patterns: Sequence[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(patterns), re.IGNORECASE) if patterns else None


class ExcludedUrls:
    """Contrib's excluded-URL rule over an ASGI scope."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self._regex = re.compile("|".join(patterns))

    def matches(self, scope: Any) -> bool:
        """True when the request's ``scheme://host/path`` matches one of the patterns."""
        return self._regex.search(_url(scope)) is not None


def _url(scope: Any) -> str:
    """The URL contrib matches against: scheme, Host header (else server), path."""
    host = None
    for key, value in scope.get("headers", ()):
        if key == b"host":
            host = value.decode("latin-1")
            break
    if host is None:
        server = scope.get("server") or ("0.0.0.0", 80)
        host = server[0] if server[1] in (80, None) else f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}{scope.get('path', '')}"


class HeaderCapture:
    """Captured request/response headers as span attributes (lists of strings)."""

    def __init__(
        self,
        request: Sequence[str],
        response: Sequence[str],
        sanitize: Sequence[str],
        redactor: Redactor,
    ) -> None:
        from opentelemetry.util.http import (  # only when headers are captured
            normalise_request_header_name,
            normalise_response_header_name,
        )

        self._normalise_request = normalise_request_header_name
        self._normalise_response = normalise_response_header_name
        self._request = _either(request)
        self._response = _either(response)
        self._sanitize = _either(sanitize)
        self._redactor = redactor
        # header name -> (attribute key, redact whole value) or None when not captured
        self._request_names: dict[bytes, tuple[str, bool] | None] = {}
        self._response_names: dict[bytes, tuple[str, bool] | None] = {}

    @property
    def requests(self) -> bool:
        """True when some request header is to be captured."""
        return self._request is not None

    @property
    def responses(self) -> bool:
        """True when some response header is to be captured."""
        return self._response is not None

    def request_attributes(self, headers: Iterable[tuple[bytes, bytes]]) -> dict[str, list[str]]:
        """``http.request.header.*`` attributes of the captured request headers."""
        return self._capture(
            headers, self._request, self._request_names, self._normalise_request
        )

    def response_attributes(
        self, headers: Iterable[tuple[bytes, bytes]]
    ) -> dict[str, list[str]]:
        """``http.response.header.*`` attributes of the captured response headers."""
        return self._capture(
            headers, self._response, self._response_names, self._normalise_response
        )

    def _capture(
        self,
        headers: Iterable[tuple[bytes, bytes]],
        wanted: re.Pattern[str] | None,
        cache: dict[bytes, tuple[str, bool] | None],
        normalise: Any,
    ) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        if wanted is None:
            return out
        for raw_name, raw_value in headers:
            try:
                decision = cache[raw_name]
            except KeyError:
                decision = self._decide(raw_name, wanted, normalise)
                if len(cache) < _CACHE_MAX:
                    cache[raw_name] = decision
            if decision is None:
                continue
            key, redact = decision
            value = REDACTED if redact else self._redactor.redact_text(
                raw_value.decode("latin-1")
            )
            out.setdefault(key, []).append(value)
        return out

    def _decide(
        self, raw_name: bytes, wanted: re.Pattern[str], normalise: Any
    ) -> tuple[str, bool] | None:
        name = raw_name.decode("latin-1").lower()
        if not wanted.fullmatch(name):
            return None
        redact = (
            (self._sanitize is not None and self._sanitize.search(name) is not None)
            or name in SENSITIVE_HEADERS
            or self._redactor.is_sensitive_key(name)
        )
        return str(normalise(name)), redact
