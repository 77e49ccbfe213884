"""No secret reaches a log line or an exported span, whatever carries it."""

from __future__ import annotations

import json
import logging

import pytest

from gateway.errors import UpstreamError
from gateway.telemetry import Redactor, configure_logging, logs
from tests.telemetry.conftest import SECRET, Live

CLIENT_SECRET = "oidc-client-secret-value"
JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl"
UNLISTED_KEYS = ["zz-unlisted-key-1", "zz-unlisted-key-2", "zz-unlisted-key-3"]


def lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize(("text", "keeps"), [
    ("Authorization: Bearer abc.def-123", "Authorization: "),
    ("GET /v1beta/models?key=zz-unlisted-key-1&alt=sse", "&alt=sse"),
    ('{"x-api-key": "zz-unlisted-key-2", "model": "m"}', '"model": "m"'),
    ("{'api_key': 'zz-unlisted-key-3'}", "{'api_key': '"),
    (f"token was {JWT}", "token was "),
    ("failed with sk-ant-api03-abcdefghijklmnopqrstuvwx", "failed with "),
])
def test_credential_shapes_are_redacted(text: str, keeps: str) -> None:
    clean = Redactor([]).text(text)
    assert "[REDACTED]" in clean and keeps in clean
    assert not any(k in clean for k in [*UNLISTED_KEYS, JWT, "abc.def-123", "abcdefghijklmn"])


def test_ordinary_text_is_left_alone() -> None:
    text = "max_tokens=5 input_tokens: 4 monkey=3 path=/v1/openai/models"
    assert Redactor([SECRET]).text(text) == text


def test_configured_secrets_are_redacted_longest_first() -> None:
    r = Redactor(["abc", "abcdef"])
    assert r.text("x abcdef y abc") == "x [REDACTED] y [REDACTED]"
    assert r.value({"a": ["abc", 1], "b": ("abcdef",)}) == {"a": ["[REDACTED]", 1],
                                                           "b": ("[REDACTED]",)}


def test_log_lines_are_json_and_free_of_secrets(
        capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging("debug", [SECRET, CLIENT_SECRET])
    log = logging.getLogger("gateway.test")
    log.info("calling upstream with %s", SECRET)
    log.debug("oidc secret %s, header Authorization: Bearer %s", CLIENT_SECRET, JWT)
    log.warning("retry", extra={"upstream_url": f"https://x.test/m?key={SECRET}",
                                "headers": {"x-api-key": SECRET}})
    out = capsys.readouterr().out
    assert SECRET not in out and CLIENT_SECRET not in out and JWT not in out
    first, second, third = lines(out)
    assert first["msg"] == "calling upstream with [REDACTED]"
    assert (first["level"], first["logger"]) == ("info", "gateway.test")
    assert second["level"] == "debug"
    assert third["upstream_url"] == "https://x.test/m?key=[REDACTED]"
    assert third["headers"] == {"x-api-key": "[REDACTED]"}


def test_expected_error_is_logged_without_traceback(
        capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging("info", [SECRET])
    try:
        raise UpstreamError(f"provider said: invalid key {SECRET}", provider="openai")
    except UpstreamError:
        logging.getLogger("gateway.test").exception("upstream failed")
    (line,) = lines(capsys.readouterr().out)
    assert line["error"] == {"type": "UpstreamError",
                             "message": "provider said: invalid key [REDACTED]"}


def test_unexpected_error_has_redacted_message_and_traceback(
        capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging("info", [SECRET])

    def inner() -> None:
        raise KeyError(f"Bearer {SECRET}")

    try:
        try:
            inner()
        except KeyError as exc:
            raise RuntimeError(f"wrapped: api_key={SECRET}") from exc
    except RuntimeError:
        logging.getLogger("gateway.test").exception("unexpected")
    out = capsys.readouterr().out
    assert SECRET not in out
    (line,) = lines(out)
    error = line["error"]
    assert isinstance(error, dict)
    assert error["type"] == "RuntimeError"
    assert error["message"] == "wrapped: api_key=[REDACTED]"
    assert "in inner" in error["traceback"] and "KeyError" in error["traceback"]
    assert "Bearer [REDACTED]" in error["traceback"]


def test_log_level_filters(capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging("warning", [])
    configure_logging("WARNING", [])  # a second call replaces, never duplicates
    logging.getLogger("gateway.test").info("hidden")
    logging.getLogger("gateway.test").warning("shown")
    assert [line["msg"] for line in lines(capsys.readouterr().out)] == ["shown"]


def test_exported_spans_are_scrubbed_even_if_a_caller_misuses_the_hooks(live: Live) -> None:
    with live.telemetry.upstream_attempt(provider="openai", model=f"key={SECRET}",
                                         operation="chat", server_address="h") as attempt:
        attempt.set_error(f"Bearer {SECRET}")
    (span,) = live.finished("CLIENT")
    exported = span.to_json()
    assert SECRET not in exported
    assert span.attributes is not None
    assert span.attributes["gen_ai.request.model"] == "key=[REDACTED]"
    assert span.status.description == "Bearer [REDACTED]"
    assert span.name == "chat key=[REDACTED]"


@pytest.mark.parametrize(("method", "path", "provider", "model", "request_id", "callers"), [
    ("POST", "/v1/chat/completions", "openai", "openai/gpt-4o", "0" * 32, False),
    ("GET", "/missing", None, None, "f" * 32, False),
    ("POST", f"/llms/{SECRET}/generate", "x", f"m-{SECRET}", f"rid {SECRET}", True),
    ("PATCH", '/odd/"quoted"/\\/é/\u2028', "groq", "llama", 'id "with" quotes', True),
    (None, "", "p", ["a", "list"], "rid-1", True),
])
def test_access_lines_are_the_json_lines_logging_would_write(
        monkeypatch: pytest.MonkeyPatch, method: str | None, path: str, provider: str | None,
        model: str | None, request_id: str, callers: bool) -> None:
    """The access line rendered from its cached parts is, character for character, the
    redacted JSON line built from its fields, on the first request and the next."""
    monkeypatch.setattr(logs.time, "time_ns", lambda: 1769092764_123456789)
    formatter = logs.JsonLineFormatter(Redactor([SECRET]))
    fields = {"method": method, "path": path, "status": 201, "provider": provider,
              "model": model, "duration_ms": 0.512, "request_id": request_id,
              "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736" if callers else None}
    trusted = {"status", "duration_ms", "trace_id", *(() if callers else ("request_id",))}
    expected = formatter.access_line(fields, trusted)
    for _ in range(2):
        line = formatter.request_line(method, path, 201, provider, model, 0.512, request_id,
                                      callers, fields["trace_id"])
        assert line == expected
    parsed = json.loads(line)
    assert parsed["ts"] == "2026-01-22T14:39:24.123+00:00"
    assert list(parsed)[4:] == list(fields) and SECRET not in line
