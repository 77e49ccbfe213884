"""No provider key appears in any log line, response body or header, or metric.

A real gateway process gets real-looking keys for all seven providers (each simulator
expects its own), logs at debug level with telemetry on, and is driven through every
provider and API, streamed and not, including error answers that echo the key back. Then
every line it wrote, every answer and the scrape are searched for every key.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import string
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.upstream import REDACTED, KeyRedactor
from tests.gateway.test_llms import CASES
from tests.hardening.faulty_upstream import FaultyUpstream
from tests.hardening.process import GatewayProcess, gateway_process
from tests.simulators import SIMULATORS, ProviderSimulator
from tests.simulators.fixtures import gateway_env
from tests.support.server import RunningServer, serve

MODELS = {case.provider: case.model for case in CASES}
ALNUM = string.ascii_letters + string.digits


def _random(n: int, alphabet: str = ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def real_looking_keys() -> dict[str, str]:
    """Fresh keys in each provider's own format."""
    return {
        "openai": "sk-proj-" + _random(48, ALNUM + "-_"),
        "groq": "gsk_" + _random(52),
        "anthropic": "sk-ant-api03-" + _random(93, ALNUM + "-_") + "AA",
        "google": "AIzaSy" + _random(33, ALNUM + "-_"),
        "cohere": _random(40),
        "cloudflare": _random(40, ALNUM + "-_"),
        "ollama": "ollama-" + _random(32),  # configured, though Ollama takes none
    }


@pytest.fixture(scope="module")
def keyed() -> Iterator[tuple[dict[str, str], dict[str, ProviderSimulator]]]:
    """Seven fresh simulators, each expecting its real-looking key."""
    keys = real_looking_keys()
    sims: dict[str, ProviderSimulator] = {}
    with contextlib.ExitStack() as stack:
        for pid, cls in SIMULATORS.items():
            sim = cls(api_key=keys[pid])
            sim.origin = stack.enter_context(serve(sim.app, server_header=False)).url
            stack.callback(sim.reset)  # runs first: releases anything held before the stop
            sims[pid] = sim
        yield keys, sims


def _echoing_error(key: str) -> dict[str, object]:
    """An error body every dialect can read, echoing `key` in message, code and type."""
    said = f"Incorrect API key provided: {key}"
    return {"error": {"message": said, "code": key, "type": key, "status": key},
            "message": said, "errors": [{"code": 10000, "message": said}], "success": False,
            "type": "error"}


def _traffic(gw: GatewayProcess, pid: str, sim: ProviderSimulator, key: str
             ) -> list[httpx.Response]:
    """Every kind of call for one provider, with and without upstream failures."""
    model = MODELS[pid]
    hi = [{"role": "user", "content": "hi"}]
    url = gw.url
    answers = [
        httpx.get(f"{url}/llms/{pid}", timeout=20),
        httpx.post(f"{url}/llms/{pid}/generate", json={"model": model, "messages": hi},
                   timeout=20),
        httpx.post(f"{url}/llms/{pid}/generate",
                   json={"model": model, "messages": hi, "stream": True}, timeout=20),
        httpx.post(f"{url}/v1/chat/completions",
                   json={"model": f"{pid}/{model}", "messages": hi, "stream": True}, timeout=20),
        httpx.post(f"{url}/v1/messages",
                   json={"model": f"{pid}/{model}", "max_tokens": 20, "messages": hi},
                   timeout=20),
    ]
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    for status in (400, 401, 500):
        headers = {"x-request-key": key, "www-authenticate": f"Bearer {key}"}
        sim.fail_next(status, body=_echoing_error(key), headers=headers)
        answers.append(httpx.post(f"{url}/llms/{pid}/generate",
                                  json={"model": model, "messages": hi}, timeout=20))
        sim.fail_next(status, body=f"invalid key {key}")  # a plain-text echo
        answers.append(httpx.post(f"{url}/v1/chat/completions",
                                  json={"model": f"{pid}/{model}", "messages": hi}, timeout=20))
        sim.fail_next(status, body=_echoing_error(key))
        answers.append(httpx.post(f"{url}/v1/messages", json={
            "model": f"{pid}/{model}", "max_tokens": 20, "messages": hi, "stream": True},
            timeout=20))
        sim.fail_next(status, body=_echoing_error(key))
        answers.append(httpx.get(f"{url}/llms/{pid}", timeout=20))
    assert all(r.status_code >= 400 for r in answers[5:]), [r.text for r in answers[5:]]
    return answers


def _leaks(text: str, keys: dict[str, str]) -> list[str]:
    """Which keys (whole, URL-encoded, or their random part) appear in `text`."""
    found = []
    for pid, key in keys.items():
        forms = {key, quote(key, safe=""), key[-24:]}
        if any(form in text for form in forms):
            found.append(pid)
    return found


def _everything(answers: list[httpx.Response]) -> str:
    return "\n".join(f"{r.status_code} {r.headers.multi_items()} {r.text}" for r in answers)


def test_no_key_in_any_log_line_answer_or_metric(
        tmp_path: Path, keyed: tuple[dict[str, str], dict[str, ProviderSimulator]]) -> None:
    keys, sims = keyed
    env = gateway_env(sims) | {f"{pid.upper()}_API_KEY": key for pid, key in keys.items()}
    env |= {"LOG_LEVEL": "debug", "ENABLE_TELEMETRY": "true"}
    with gateway_process(env, tmp_path) as gw:
        answers = [r for pid in MODELS for r in _traffic(gw, pid, sims[pid], keys[pid])]
        metrics = httpx.get(f"{gw.url}/metrics", timeout=10)
        assert metrics.status_code == 200 and "gen_ai" in metrics.text
        gw.signal(signal.SIGTERM)
        assert gw.wait(20) == 0
        logs = gw.output()
    # The keys were really used, and the errors really echoed them.
    for pid in MODELS:
        if pid != "ollama":
            assert keys[pid] in repr([r.headers for r in sims[pid].requests]) + repr(
                [r.query for r in sims[pid].requests]), pid
    assert len(logs.splitlines()) > len(answers)  # an access line per request, at least
    assert _leaks(logs, keys) == []
    assert _leaks(_everything(answers), keys) == []
    assert _leaks(metrics.text, keys) == []


@pytest.fixture(scope="module")
def echoing() -> Iterator[tuple[FaultyUpstream, RunningServer]]:
    """An OpenAI-dialect upstream that echoes the bearer token it is sent."""
    faulty = FaultyUpstream()
    with serve(faulty.app) as server:
        yield faulty, server


@pytest.mark.parametrize(("mode", "stream"), [("echo_error", False), ("echo_error", True),
                                              ("echo_body", False), ("echo_stream", True)])
def test_an_upstream_echoing_the_key_cannot_make_the_gateway_leak_it(
        mode: str, stream: bool, tmp_path: Path,
        echoing: tuple[FaultyUpstream, RunningServer]) -> None:
    faulty, server = echoing
    faulty.mode = mode
    key = real_looking_keys()["openai"]
    env = {"OPENAI_API_URL": server.url, "OPENAI_API_KEY": key, "LOG_LEVEL": "debug",
           "ENABLE_TELEMETRY": "true"}
    hi = [{"role": "user", "content": "hi"}]
    with gateway_process(env, tmp_path) as gw:
        answers = [
            httpx.post(f"{gw.url}/llms/openai/generate",
                       json={"model": "gpt-4o-mini", "messages": hi, "stream": stream}),
            httpx.post(f"{gw.url}/v1/chat/completions",
                       json={"model": "openai/gpt-4o-mini", "messages": hi, "stream": stream}),
            httpx.post(f"{gw.url}/v1/messages", json={
                "model": "openai/gpt-4o-mini", "max_tokens": 9, "messages": hi,
                "stream": stream}),
        ]
        metrics = httpx.get(f"{gw.url}/metrics").text
        gw.signal(signal.SIGTERM)
        assert gw.wait(20) == 0
    everything = _everything(answers)
    assert "[REDACTED]" in everything  # the echo arrived, and was replaced
    assert _leaks(everything + gw.output() + metrics, {"openai": key}) == []


@settings(max_examples=200, deadline=None, database=None)
@given(before=st.binary(max_size=40), after=st.binary(max_size=40),
       cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6),
       copies=st.integers(min_value=0, max_value=3))
def test_the_redactor_finds_the_key_however_the_stream_is_cut(
        before: bytes, after: bytes, cuts: list[int], copies: int) -> None:
    key = b"sk-proj-" + b"Ab3" * 10
    whole = before + (key + b"-") * copies + after
    points = sorted({min(c, len(whole)) for c in cuts})
    pieces = [whole[a:b] for a, b in zip([0, *points], [*points, len(whole)], strict=True)]
    redactor = KeyRedactor(key.decode())
    out = b"".join(redactor.feed(piece) for piece in pieces) + redactor.close()
    assert out == whole.replace(key, REDACTED)
