"""OTLP/HTTP transport: one persistent connection, gzip, retries, partial success.

What users rely on from the SDK's OTLP/HTTP exporter, on ``http.client``:

- ``Content-Encoding: gzip`` when compression is ``gzip`` (zlib releases the GIL);
- configured headers on every request (``OTEL_EXPORTER_OTLP_HEADERS``);
- one timeout bounding the whole export, retries included;
- retry with exponential backoff and ±20 % jitter on 429/502/503/504 and on connection
  errors, waiting what ``Retry-After`` asks for when the server sends it; a retry that
  would end after the deadline is not made, and shutdown cuts a wait short;
- a 2xx response carrying ``partial_success`` reports how many items were rejected.
"""

from __future__ import annotations

import http.client
import math
import os
import random
import threading
import time
import urllib.parse
import zlib
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

RETRYABLE = frozenset({429, 502, 503, 504})
_MAX_ATTEMPTS = 6


@dataclass(frozen=True)
class SendResult:
    """What one export's request(s) ended in."""

    ok: bool
    status: int | None = None
    error: str | None = None
    rejected: int = 0
    message: str = ""
    attempts: int = 1
    retry_after: float | None = None


class OtlpHttpClient:
    """POSTs serialized OTLP requests to one endpoint over a reused connection."""

    def __init__(
        self,
        endpoint: str,
        *,
        headers: dict[str, str] | None = None,
        compression: str | None = None,
        timeout: float = 10.0,
        content_type: str = "application/x-protobuf",
        user_agent: str = "hapa-telemetry",
        backoff_base: float = 1.0,
    ) -> None:
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"OTLP/HTTP endpoint must be an http(s) URL, got {endpoint!r}")
        self._https = url.scheme == "https"
        self._host = url.hostname
        self._port = url.port or (443 if self._https else 80)
        self._path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        self._gzip = (compression or "none").lower() == "gzip"
        self._timeout = timeout
        self._backoff_base = backoff_base
        self._headers = {"Content-Type": content_type, "User-Agent": user_agent}
        for key, value in (headers or {}).items():
            self._headers[key] = value
        if self._gzip:
            self._headers["Content-Encoding"] = "gzip"
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()  # one request at a time on the one connection
        self._closed = threading.Event()
        self._pid = os.getpid()

    @property
    def timeout(self) -> float:
        return self._timeout

    def send(self, body: bytes, timeout: float | None = None) -> SendResult:
        """POST ``body`` with retries, all within ``timeout`` (default: the client's)."""
        if self._closed.is_set():
            return SendResult(False, error="exporter is shut down", attempts=0)
        if self._pid != os.getpid():  # forked (e.g. gunicorn --preload): own socket and lock
            self._pid = os.getpid()
            self._conn = None
            self._lock = threading.Lock()
        deadline = time.monotonic() + (self._timeout if timeout is None else timeout)
        data = zlib.compress(body, 6, wbits=31) if self._gzip else body
        result = SendResult(False, error="no attempt made", attempts=0)
        for attempt in range(_MAX_ATTEMPTS):
            result = self._attempt(data, deadline, attempt + 1)
            if result.ok or not self._retryable(result):
                return result
            wait = result_delay(result, attempt, self._backoff_base)
            if attempt + 1 == _MAX_ATTEMPTS or time.monotonic() + wait >= deadline:
                break
            if self._closed.wait(wait):
                return SendResult(False, result.status, "shut down while retrying",
                                  attempts=attempt + 1)
        return result

    def close(self) -> None:
        """Stop retrying and close the connection (idempotent)."""
        self._closed.set()
        with self._lock:
            self._drop()

    # -- internals ------------------------------------------------------------------------
    @staticmethod
    def _retryable(result: SendResult) -> bool:
        return result.status is None or result.status in RETRYABLE

    def _attempt(self, data: bytes, deadline: float, attempt: int) -> SendResult:
        with self._lock:
            for fresh in (False, True):  # a stale pooled connection gets one fresh retry
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return SendResult(False, error="timed out", attempts=attempt)
                reused = self._conn is not None
                try:
                    status, headers, payload = self._post(data, remaining)
                except (OSError, http.client.HTTPException) as exc:
                    self._drop()
                    if reused and not fresh and not isinstance(exc, TimeoutError):
                        continue
                    return SendResult(False, error=f"{type(exc).__name__}: {exc}",
                                      attempts=attempt)
                if 200 <= status < 300:
                    rejected, message = parse_partial_success(payload)
                    return SendResult(True, status, rejected=rejected, message=message,
                                      attempts=attempt)
                error = f"HTTP {status}: {error_message(payload)}".rstrip(": ")
                return SendResult(False, status, error, attempts=attempt,
                                  retry_after=parse_retry_after(headers.get("retry-after")))
            raise AssertionError("unreachable")  # pragma: no cover

    def _post(self, data: bytes, timeout: float) -> tuple[int, dict[str, str], bytes]:
        conn = self._conn
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._conn = cls(self._host, self._port, timeout=timeout)
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        conn.request("POST", self._path, body=data, headers=self._headers)
        response = conn.getresponse()
        payload = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
        if response.will_close:
            self._drop()
        return response.status, headers, payload

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # pragma: no cover - closing a broken socket
                pass
            self._conn = None


def result_delay(result: SendResult, attempt: int, base: float) -> float:
    """Retry-After when the server sent one, else base * 2**attempt with ±20 % jitter."""
    if result.retry_after is not None:
        return result.retry_after
    return float(base * 2**attempt * random.uniform(0.8, 1.2))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


# -- response bodies (tiny protobuf reader) ---------------------------------------------
def _fields(data: bytes) -> list[tuple[int, Any]]:
    """Top-level (field number, value) pairs; bytes for length-delimited, int for varint."""
    out: list[tuple[int, Any]] = []
    i, n = 0, len(data)
    while i < n:
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(data, i)
            out.append((number, value))
        elif wire == 2:
            size, i = _read_varint(data, i)
            out.append((number, data[i : i + size]))
            i += size
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def parse_partial_success(payload: bytes) -> tuple[int, str]:
    """(rejected items, error message) from an Export*ServiceResponse; (0, "") if none."""
    try:
        for number, value in _fields(payload):
            if number == 1 and isinstance(value, bytes):
                rejected, message = 0, ""
                for inner, v in _fields(value):
                    if inner == 1 and isinstance(v, int):
                        rejected = v - (1 << 64) if v >= 1 << 63 else v
                    elif inner == 2 and isinstance(v, bytes):
                        message = v.decode("utf-8", "replace")
                return rejected, message
    except (ValueError, IndexError):
        pass
    return 0, ""


def error_message(payload: bytes) -> str:
    """The message of a ``google.rpc.Status`` error body (field 2), else its text."""
    try:
        for number, value in _fields(payload):
            if number == 2 and isinstance(value, bytes):
                return value.decode("utf-8", "replace")[:200]
    except (ValueError, IndexError):
        pass
    return payload[:200].decode("utf-8", "replace").strip()
