"""Redactor: secrets never survive, ordinary values and token-usage numbers do."""

from __future__ import annotations

import re

import pytest

from hapa_telemetry.logs.redact import (
    REDACTED,
    Redactor,
    anonymize_ip,
    apply_ip_policy,
    default_redactor,
)

SECRET = "hunter2-S3cr3tValue"


@pytest.fixture
def r() -> Redactor:
    return Redactor()


def test_marker_does_not_contain_secret() -> None:
    """The replacement marker is a fixed string with no part of any secret."""
    assert REDACTED == "[REDACTED]"
    assert SECRET not in REDACTED


@pytest.mark.parametrize(
    "key",
    ["password", "PASSWORD", "db_password", "passwd", "secret", "client-secret", "token",
     "access_token", "refresh_token", "api_key", "apikey", "api-key", "X-API-Key",
     "authorization", "Authorization", "cookie", "set-cookie", "session", "session_id",
     "private_key", "credential", "credentials", "aws_access_key_id", "auth", "pwd"],
)
def test_sensitive_keys_are_redacted(r: Redactor, key: str) -> None:
    """Values under keys named like secrets are replaced, whatever the case or separator."""
    out = r.redact_mapping({key: SECRET, "other": "visible"})
    assert out[key] == REDACTED
    assert out["other"] == "visible"


def test_numeric_password_is_still_redacted(r: Redactor) -> None:
    """An int under a secret key (a PIN, a numeric password) is redacted too."""
    out = r.redact_mapping({"password": 123456, "pin": 1234, "api_key": 99})
    assert out == {"password": REDACTED, "pin": REDACTED, "api_key": REDACTED}


@pytest.mark.parametrize(
    "key",
    ["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "prompt_tokens",
     "completion_tokens", "total_tokens", "max_tokens", "token_count", "session_count",
     "session_ttl"],
)
def test_token_usage_numbers_stay_visible(r: Redactor, key: str) -> None:
    """GenAI token counts and other count-like numbers are kept although 'token' matches."""
    assert r.redact_mapping({key: 42})[key] == 42


def test_count_like_key_with_string_value_is_redacted(r: Redactor) -> None:
    """A count-like sensitive key holding a string is still treated as a secret."""
    assert r.redact_mapping({"token_count": SECRET})["token_count"] == REDACTED


def test_token_usage_mapping_is_searched_not_hidden(r: Redactor) -> None:
    """A usage dict under a token-ish key is kept and its inner fields decide."""
    out = r.redact_mapping({"token_usage": {"input": 5, "output": 7, "api_key": SECRET}})
    assert out["token_usage"] == {"input": 5, "output": 7, "api_key": REDACTED}


def test_tokenizer_and_token_type_are_not_secrets(r: Redactor) -> None:
    """'tokenizer' and the GenAI attribute gen_ai.token.type are not redacted."""
    ev = {"tokenizer": "cl100k_base", "gen_ai.token.type": "input"}
    assert r.redact_mapping(ev) == ev


def test_none_and_bool_under_secret_key_are_kept(r: Redactor) -> None:
    """None and booleans cannot carry a secret, so they stay informative."""
    ev = {"password": None, "has_token": True}
    assert r.redact_mapping(ev) is ev


def test_unchanged_mapping_is_returned_as_is(r: Redactor) -> None:
    """With nothing to redact the very same dict comes back (no copy on the hot path)."""
    ev = {"message": "Request completed", "method": "GET", "endpoint": "/api/v1/items/{id}",
          "status_code": 200, "duration": 0.01, "user_id": "u1", "client_ip": "10.0.0.1"}
    assert r.redact_mapping(ev) is ev
    assert r.redact_mapping(ev) is ev  # cached path


def test_changed_mapping_is_a_copy(r: Redactor) -> None:
    """When something is redacted the caller's dict is not modified."""
    ev = {"password": SECRET, "a": 1}
    out = r.redact_mapping(ev)
    assert out is not ev and ev["password"] == SECRET and out["a"] == 1


def test_nested_dicts_and_lists_are_redacted(r: Redactor) -> None:
    """Secrets inside nested dicts and lists are replaced; the rest is kept."""
    ev = {"request": {"headers": {"Authorization": f"Bearer {SECRET}", "Accept": "json"},
                      "items": [{"token": SECRET}, "plain", f"key sk-{SECRET}abcdefghijk"]}}
    out = r.redact_mapping(ev)
    assert SECRET not in repr(out)
    assert out["request"]["headers"]["Accept"] == "json"
    assert out["request"]["items"][1] == "plain"


def test_string_values_are_text_redacted(r: Redactor) -> None:
    """A secret inside an ordinary field's text is found by pattern."""
    out = r.redact_mapping({"message": f"calling with Authorization: Bearer {SECRET}"})
    assert SECRET not in out["message"]
    assert out["message"].startswith("calling with Authorization: Bearer ")


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {SECRET}",
        f"header bearer {SECRET}",
        "Authorization: Basic dXNlcjpwYXNzd29yZA==",
        "key=sk-proj-abcdefghijklmnop1234567890",
        "using sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345",
        "aws AKIAIOSFODNN7EXAMPLE here",
        "gh token ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "slack xoxb-123456789012-abcdefghijkl",
        "hf hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36",
        f"password={SECRET}",
        f'{{"password": "{SECRET}"}}',
        f"db_password: {SECRET}",
        f"GET /items?token={SECRET}&page=2",
        f"https://x.test/cb?api_key={SECRET}",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
    ],
)
def test_redact_text_removes_secrets(r: Redactor, text: str) -> None:
    """Bearer/Basic credentials, API-key formats, JWTs, key=value secrets are removed."""
    out = r.redact_text(text)
    assert REDACTED in out
    for secret in (SECRET, "dXNlcjpwYXNzd29yZA", "abcdefghijklmnop1234567890",
                   "AKIAIOSFODNN7EXAMPLE", "ghp_abcdef", "xoxb-1234", "hf_abcdef",
                   "SflKxwRJSMeKKF2QT4fwpMeJf36", "MIIEowIBAAKCAQEA"):
        assert secret not in out


def test_redact_text_keeps_context_around_secret(r: Redactor) -> None:
    """Only the secret is replaced: the rest of a URL or sentence stays readable."""
    assert r.redact_text(f"GET /items?token={SECRET}&page=2") == (
        f"GET /items?token={REDACTED}&page=2"
    )


@pytest.mark.parametrize(
    "text",
    ["Request completed", "Basic information about the author=Jane", "prompt_tokens=123",
     "GET /api/v1/code/generate", "0af7651916cd43dd8448eb211c80319c", "2024-12-28T10:30:00Z",
     "user u1 logged in from 10.0.0.1", "token usage: 42 tokens"],
)
def test_redact_text_leaves_ordinary_text_alone(r: Redactor, text: str) -> None:
    """Ordinary text (and token counts in text) is returned unchanged, as the same object."""
    assert r.redact_text(text) is text


def test_extra_keys_and_patterns(r: Redactor) -> None:
    """Configured extra keys and regex patterns are redacted as well."""
    red = Redactor(extra_keys=["ssn", "Customer-Ref"], extra_patterns=[r"\bACME-\d{6}\b"])
    out = red.redact_mapping({"ssn": "123-45-6789", "customer_ref": "c1",
                              "note": "order ACME-123456 ok", "text": "ssn=999"})
    assert out == {"ssn": REDACTED, "customer_ref": REDACTED,
                   "note": f"order {REDACTED} ok", "text": f"ssn={REDACTED}"}
    # The default redactor does not know these.
    assert r.redact_text("order ACME-123456 ok") == "order ACME-123456 ok"


def test_bad_extra_pattern_fails_at_construction() -> None:
    """An invalid extra pattern is reported when the Redactor is built, not at log time."""
    with pytest.raises(re.error):
        Redactor(extra_patterns=["(unclosed"])


def test_redact_query_string(r: Redactor) -> None:
    """Secret query parameters are replaced; the others and the order are kept."""
    qs = f"page=2&token={SECRET}&api_key={SECRET}&q=cats&prompt_tokens=5&flag"
    assert r.redact_query_string(qs) == (
        f"page=2&token={REDACTED}&api_key={REDACTED}&q=cats&prompt_tokens=5&flag"
    )
    assert r.redact_query_string("a=1&b=2") == "a=1&b=2"
    assert r.redact_query_string(f"api%5Fkey={SECRET}") == f"api%5Fkey={REDACTED}"


def test_redact_headers(r: Redactor) -> None:
    """Authorization, Cookie, Set-Cookie and X-API-Key values never survive; others do."""
    headers = [("Authorization", f"Bearer {SECRET}"), ("Cookie", f"sid={SECRET}"),
               ("Set-Cookie", f"sid={SECRET}; HttpOnly"), ("X-API-Key", SECRET),
               ("Accept", "application/json"), ("X-Custom", f"Bearer {SECRET}"),
               ("Accept", "text/plain")]
    out = r.redact_headers(headers)
    assert out["authorization"] == REDACTED and out["cookie"] == REDACTED
    assert out["set-cookie"] == REDACTED and out["x-api-key"] == REDACTED
    assert out["accept"] == "application/json, text/plain"
    assert SECRET not in out["x-custom"]


def test_redact_headers_accepts_asgi_bytes(r: Redactor) -> None:
    """ASGI (bytes, bytes) header pairs are decoded and redacted the same way."""
    out = r.redact_headers([(b"authorization", SECRET.encode()), (b"host", b"x.test")])
    assert out == {"authorization": REDACTED, "host": "x.test"}


@pytest.mark.parametrize(
    ("ip", "expected"),
    [("203.0.113.77", "203.0.113.0"), ("10.1.2.3", "10.1.2.0"),
     ("2001:db8:1234:5678::1", "2001:db8:1234::"), ("::ffff:192.0.2.9", "192.0.2.0"),
     ("testclient", REDACTED), ("", REDACTED)],
)
def test_anonymize_ip(ip: str, expected: str) -> None:
    """IPv4 loses its last octet, IPv6 is cut to /48, non-addresses are redacted."""
    assert anonymize_ip(ip) == expected


def test_apply_ip_policy() -> None:
    """keep/anonymize/drop policies; an unknown policy is an error."""
    assert apply_ip_policy("10.1.2.3", "keep") == "10.1.2.3"
    assert apply_ip_policy("10.1.2.3", "anonymize") == "10.1.2.0"
    assert apply_ip_policy("10.1.2.3", "drop") is None
    with pytest.raises(ValueError, match="policy"):
        apply_ip_policy("10.1.2.3", "hash")


def test_default_redactor_is_shared() -> None:
    """default_redactor() returns one shared instance."""
    assert default_redactor() is default_redactor()


def test_caches_stay_bounded(r: Redactor) -> None:
    """Many distinct keys and values do not grow memory without bound."""
    for i in range(20000):
        r.redact_mapping({f"k{i}": f"value number {i}"})
    assert len(r._key_cache) <= 4096 and len(r._text_cache) <= 4096


def test_error_message_with_secret_after_colon(r: Redactor) -> None:
    """'Invalid token: <value>' in an error message loses the value, keeps the words."""
    assert r.redact_text(f"Invalid token: {SECRET}") == f"Invalid token: {REDACTED}"
    assert r.redact_text("tokens: 42") == "tokens: 42"
