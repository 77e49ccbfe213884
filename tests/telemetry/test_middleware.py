"""The middleware over real HTTP: request ids, streaming pass-through, the access log."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from gateway.telemetry import NoopTelemetry, configure_logging
from tests.hardening.process import gateway_process
from tests.support.server import serve
from tests.telemetry.conftest import Live, StreamGate, build_app, eventually


def client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, trust_env=False, timeout=10)


def test_caller_request_id_is_kept_returned_and_visible_to_routes() -> None:
    with serve(build_app(NoopTelemetry())) as s, client(s.url) as c:
        r = c.get("/v1/openai/models", headers={"X-Request-ID": "req 42/abc"})
    assert r.headers["x-request-id"] == "req 42/abc"
    assert r.json()["request_id"] == "req 42/abc"


def test_missing_request_id_is_created_fresh_for_each_request() -> None:
    with serve(build_app(NoopTelemetry())) as s, client(s.url) as c:
        first = c.get("/v1/openai/models")
        second = c.get("/v1/openai/models")
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert ids[0] != ids[1]
    assert first.json()["request_id"] == ids[0]
    assert len(first.headers.get_list("x-request-id")) == 1


@pytest.mark.parametrize("bad", [b"x" * 129, b"caf\xe9", b"a\tb"], ids=["long", "latin1", "tab"])
def test_invalid_request_id_is_replaced(bad: bytes) -> None:
    with serve(build_app(NoopTelemetry())) as s, client(s.url) as c:
        r = c.get("/v1/openai/models", headers=[(b"x-request-id", bad)])
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


def test_request_id_of_128_printable_characters_is_accepted() -> None:
    rid = "A" * 128
    with serve(build_app(NoopTelemetry())) as s, client(s.url) as c:
        assert c.get("/boom", headers={"X-Request-ID": rid}).headers["x-request-id"] == rid


def test_streamed_body_passes_chunk_by_chunk_and_duration_runs_to_its_end(live: Live) -> None:
    gate = StreamGate()
    held = 0.3
    with serve(build_app(live.telemetry, gate)) as s, client(s.url) as c:
        with c.stream("GET", "/stream") as r:
            chunks = r.iter_raw()
            first = next(chunks)
            # The app is parked between its chunks: the first one was not buffered.
            assert first == b"first\n"
            assert not gate.finished.is_set()
            time.sleep(held)
            gate.release.set()
            rest = b"".join(chunks)
    assert rest == b"second\n"
    assert not gate.timed_out
    points = eventually(lambda: live.points("http.server.request.duration"))
    assert points[0].attributes is not None
    assert points[0].attributes["http.route"] == "/stream"
    assert points[0].sum >= held


def test_access_log_has_one_json_line_per_request_even_with_telemetry_off(
        capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging("info", [])
    with serve(build_app(NoopTelemetry())) as s, client(s.url) as c:
        r = c.get("/v1/groq/models?model=llama-3", headers={"X-Request-ID": "rid-1"})
        c.get("/missing")
    lines = eventually(lambda: access_lines(capsys.readouterr().out, count=2))
    found, missing = lines
    assert found["method"] == "GET"
    assert found["path"] == "/v1/groq/models"  # never the query string
    assert found["status"] == 200
    assert (found["provider"], found["model"]) == ("groq", "llama-3")
    assert found["request_id"] == "rid-1" == r.headers["x-request-id"]
    assert found["trace_id"] is None
    assert isinstance(found["duration_ms"], float) and found["duration_ms"] >= 0
    assert (missing["path"], missing["status"], missing["provider"]) == ("/missing", 404, None)


def test_access_log_carries_the_trace_id_when_telemetry_is_on(
        live: Live, capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging("info", [])
    with serve(build_app(live.telemetry)) as s, client(s.url) as c:
        c.get("/v1/openai/models")
    (line,) = eventually(lambda: access_lines(capsys.readouterr().out, count=1))
    (server,) = eventually(lambda: live.finished("SERVER"))
    assert line["trace_id"] == f"{server.context.trace_id:032x}"


def test_noop_telemetry_hooks_are_shared_constants() -> None:
    telemetry = NoopTelemetry()
    a = telemetry.upstream_attempt(provider="p", model="m", operation="chat", server_address="h")
    b = telemetry.upstream_attempt(provider="q", model=None, operation="chat", server_address="h")
    assert a is b
    assert telemetry.observe_request({}) is telemetry.observe_request({"type": "http"})
    with a as attempt:
        assert attempt.headers == {}
        attempt.headers["authorization"] = "x"
        assert attempt.headers == {}  # never a shared mutable dict
    assert telemetry.metrics_routes() == []


def test_a_callers_request_id_is_returned_as_sent_but_logged_redacted(
        capsys: pytest.CaptureFixture[str], restore_logging: None) -> None:
    configure_logging("info", [])
    with serve(build_app(NoopTelemetry())) as s, client(s.url) as c:
        r = c.get("/v1/openai/models", headers={"X-Request-ID": "token=abc123def"})
    (line,) = eventually(lambda: access_lines(capsys.readouterr().out, count=1))
    assert r.headers["x-request-id"] == "token=abc123def"
    assert line["request_id"] == "token=[REDACTED]"


def test_access_lines_reach_the_output_while_the_gateway_runs(tmp_path: Path) -> None:
    with gateway_process({"ENABLE_TELEMETRY": "false"}, tmp_path) as gw:
        rid = httpx.get(f"{gw.url}/health", timeout=10).headers["x-request-id"]
        # Buffered, but flushed within moments, not at exit.
        line = eventually(lambda: next((json.loads(text) for text in gw.output().splitlines()
                                        if rid in text), None))
        assert gw.proc.poll() is None
    assert (line["logger"], line["path"], line["status"]) == ("gateway.access", "/health", 200)


def access_lines(out: str, count: int) -> list[dict[str, object]] | None:
    """The access-log records in `out`, once there are `count` of them."""
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    access = [r for r in records if r["logger"] == "gateway.access"]
    return access if len(access) == count else None


def test_the_apps_own_request_id_header_is_replaced_whatever_its_case() -> None:
    from gateway.telemetry.middleware import _with_request_id

    given = [(b"X-Request-ID", b"apps"), (b"x-other-head", b"1"), (b"content-type", b"a/b"),
             (b"x-request-id", b"again")]
    assert _with_request_id({"headers": given}, "rid") == [
        (b"x-other-head", b"1"), (b"content-type", b"a/b"), (b"x-request-id", b"rid")]
    plain = [(b"x-other-head", b"1")]  # a name of the same length, not the id
    assert _with_request_id({"headers": plain}, "rid") == [*plain, (b"x-request-id", b"rid")]
    assert plain == [(b"x-other-head", b"1")]  # the app's list is left as it was
    assert _with_request_id({}, "rid") == [(b"x-request-id", b"rid")]
