"""Broken upstreams: each fault gives its documented error, frees its connection, and the
gateway keeps serving.

One gateway serves the whole module with a pool of two upstream connections and a one-second
pool timeout, and every fault is provoked more times than the pool is large: a connection
leaked by a fault would leave the following good request waiting for the pool (504).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest
import trustme

from tests.gateway.test_llms import CASES
from tests.hardening.conftest import generate, sse_payloads
from tests.hardening.faulty_upstream import MAX_FRAMES, FaultyUpstream
from tests.hardening.process import free_port
from tests.simulators import SIMULATORS, ProviderSimulator
from tests.simulators.fixtures import gateway_env
from tests.support.gateway import run_gateway
from tests.support.server import RunningServer, serve

MODELS = {case.provider: case.model for case in CASES}
POOL = 2
REPEAT = POOL + 2
CAP = 65_536


@pytest.fixture(scope="module")
def self_signed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """An HTTPS server whose certificate the gateway does not trust."""
    tmp = tmp_path_factory.mktemp("tls")
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    with serve(FaultyUpstream().app, ssl_certfile=str(cert_path),
               ssl_keyfile=str(key_path)) as server:
        yield server


@pytest.fixture(scope="module")
def gateway(request: pytest.FixtureRequest, faulty_server: tuple[FaultyUpstream, RunningServer],
            self_signed_server: RunningServer) -> Iterator[RunningServer]:
    """The gateway: openai is the FaultyUpstream, groq/cohere/google/cloudflare unreachable."""
    sims = {pid: request.getfixturevalue(f"{pid}_sim_server") for pid in SIMULATORS}
    env = gateway_env(sims) | {
        "OPENAI_API_URL": faulty_server[1].url,
        "GROQ_API_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "COHERE_API_URL": "http://nonexistent.invalid",  # never resolves (RFC 6761)
        "GOOGLE_API_URL": sims["google"].url.replace("http://", "https://"),  # plain HTTP
        "CLOUDFLARE_API_URL": self_signed_server.url + "/client/v4/accounts/{account_id}",
        "CLIENT_MAX_CONNECTIONS": str(POOL),
        "CLIENT_CONNECT_TIMEOUT": "1s",
        "CLIENT_READ_TIMEOUT": "1s",
        "MAX_UPSTREAM_RESPONSE_BYTES": str(CAP),
        # One attempt per request and no cooldown: each request meets its fault.
        "ROUTING_RETRIES": "0",
        "COOLDOWN_BASE": "0s",
    }
    with run_gateway(env) as server:
        yield server


@dataclass(frozen=True)
class Fault:
    """One way an upstream fails, and what the caller must see."""

    name: str
    provider: str
    arrange: Callable[[FaultyUpstream, dict[str, ProviderSimulator]], None]
    status: int
    code: str
    stream: bool = False


def _mode(mode: str) -> Callable[[FaultyUpstream, dict[str, ProviderSimulator]], None]:
    def arrange(faulty: FaultyUpstream, sims: dict[str, ProviderSimulator]) -> None:
        faulty.mode = mode
    return arrange


def _nothing(faulty: FaultyUpstream, sims: dict[str, ProviderSimulator]) -> None:
    """The fault is in the configuration (an unreachable URL)."""


def _reset(faulty: FaultyUpstream, sims: dict[str, ProviderSimulator]) -> None:
    sims["anthropic"].reset_midstream(1, times=REPEAT)


def _reset_stream(faulty: FaultyUpstream, sims: dict[str, ProviderSimulator]) -> None:
    sims["anthropic"].reset_midstream(5, times=REPEAT)  # after the first text event


def _truncate(faulty: FaultyUpstream, sims: dict[str, ProviderSimulator]) -> None:
    sims["anthropic"].malformed_json(times=REPEAT)


FAULTS = [
    Fault("connection refused", "groq", _nothing, 502, "upstream_unavailable"),
    Fault("dns failure", "cohere", _nothing, 502, "upstream_unavailable"),
    Fault("tls to a plain http server", "google", _nothing, 502, "upstream_unavailable"),
    Fault("tls with an untrusted certificate", "cloudflare", _nothing, 502,
          "upstream_unavailable"),
    Fault("reset mid-body", "anthropic", _reset, 502, "upstream_unavailable"),
    Fault("truncated json", "anthropic", _truncate, 502, "invalid_upstream_response"),
    Fault("html with status 200", "openai", _mode("html"), 502, "invalid_upstream_response"),
    Fault("html with status 200, streamed", "openai", _mode("html"), 502,
          "invalid_upstream_response", stream=True),
    Fault("larger than the cap, with content-length", "openai", _mode("huge"), 502,
          "upstream_response_too_large"),
    Fault("larger than the cap, chunked", "openai", _mode("huge_chunked"), 502,
          "upstream_response_too_large"),
    # After the first byte the status is 200 and the error is the stream's last event.
    Fault("endless stream", "openai", _mode("endless"), 200, "upstream_response_too_large",
          stream=True),
    Fault("stream that stalls", "openai", _mode("stall"), 200, "upstream_timeout", stream=True),
    Fault("reset mid-stream", "anthropic", _reset_stream, 200, "upstream_unavailable",
          stream=True),
]


def _error_of(response: httpx.Response, stream: bool) -> tuple[int, str, str]:
    """Status, code and message, from the body or from the stream's last event."""
    if response.status_code != 200 or not stream:
        body = response.json()
        return response.status_code, body["code"], body["error"]
    last = sse_payloads(response.text)[-1]
    assert isinstance(last, dict) and "error" in last, response.text[-500:]
    return 200, last["code"], last["error"]


def _healthy(gateway: RunningServer, faulty: FaultyUpstream) -> None:
    """Good requests through the same pool, to a simulator and to the repaired upstream."""
    faulty.mode = "ok"
    for provider in ("anthropic", "openai", "anthropic"):
        started = time.monotonic()
        r = generate(gateway.url, provider, MODELS[provider])
        assert r.status_code == 200, r.text
        assert time.monotonic() - started < 1, "waited for the pool: a connection leaked"
    assert httpx.get(f"{gateway.url}/ready").status_code == 200


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_is_reported_and_frees_its_connection(
        fault: Fault, gateway: RunningServer, faulty: FaultyUpstream,
        simulators: dict[str, ProviderSimulator]) -> None:
    fault.arrange(faulty, simulators)
    for _ in range(REPEAT):
        r = generate(gateway.url, fault.provider, MODELS[fault.provider], stream=fault.stream)
        status, code, message = _error_of(r, fault.stream)
        assert (status, code) == (fault.status, fault.code), r.text[-500:]
        assert fault.provider in message
        assert "Traceback" not in r.text and "127.0.0.1" not in r.text
    _healthy(gateway, faulty)


def test_an_endless_stream_is_cut_at_the_cap_and_its_connection_closed(
        gateway: RunningServer, faulty: FaultyUpstream) -> None:
    faulty.mode = "endless"
    started, ended, frames = faulty.streams_started, faulty.streams_ended, faulty.frames_sent
    r = generate(gateway.url, "openai", MODELS["openai"], stream=True)
    events = sse_payloads(r.text)
    assert events[-1]["code"] == "upstream_response_too_large"
    # What the caller got is what fitted under the cap, and the upstream was stopped long
    # before its own bound (socket buffers hold far less than MAX_FRAMES frames).
    assert len(r.content) < 2 * CAP
    assert faulty.frames_sent - frames < MAX_FRAMES
    deadline = time.monotonic() + 5
    while faulty.streams_ended - ended < faulty.streams_started - started:
        assert time.monotonic() < deadline, "the gateway kept the endless stream open"
        time.sleep(0.02)


def test_the_cap_does_not_cut_answers_below_it(gateway: RunningServer,
                                               faulty: FaultyUpstream) -> None:
    faulty.mode = "ok"
    r = generate(gateway.url, "openai", MODELS["openai"])
    assert r.status_code == 200 and r.json()["response"]["content"] == "hello"

