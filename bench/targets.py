"""What is measured: this gateway, the plain-Starlette floors and the peers, as data.

Each target is one server process started against a mock upstream, with one or more
routes (a table row each): the request path, its headers and bodies, and the shape of its
streamed events (for the time-to-first-chunk client).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import peers
from bench.mock import MODEL
from bench.procs import GATEWAY_CORE, Proc, base_env, start

ROOT = Path(__file__).resolve().parent.parent
BENCH_PYTHON = ROOT / "bench" / ".peers" / "venv" / "bin" / "python"
# The gateway runs on its locked runtime in a venv of the bench interpreter (bench/interpreter.py).
GATEWAY_PYTHON = ROOT / "bench" / ".peers" / "gateway" / "bin" / "python"
MESSAGES = [{"role": "user", "content": "Say hello to the benchmark."}]
API_KEY = "sk-bench"


@dataclass(frozen=True)
class Route:
    """One measured request path of a target (a row in the table)."""

    label: str
    path: str
    body: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    stream_format: str = "openai"  # or "generate": where a streamed event carries its text
    optional: bool = False  # measured only if the target answers it (not 404)

    def payload(self, *, stream: bool) -> bytes:
        """The request body, streamed or not."""
        return json.dumps({**self.body, "stream": stream}).encode()

    def request_headers(self, upstream: str) -> dict[str, str]:
        """The headers, with `{upstream}` replaced by the mock's base URL (for Portkey)."""
        return {name: value.replace("{upstream}", upstream)
                for name, value in self.headers.items()}


Launcher = Callable[[str, int, Path, Mapping[str, str]], Proc]


@dataclass(frozen=True)
class Target:
    """A server under test: how to start it against an upstream, and its routes."""

    key: str
    label: str
    group: str  # "project", "floor" or "peer"
    routes: tuple[Route, ...]
    launch: Launcher
    ready_timeout: float = 30.0
    version: Callable[[], str] = lambda: ""
    unavailable: Callable[[], str | None] = lambda: None  # a reason, or None when runnable


# Every bench connection comes from 127.0.0.1, so the per-client in-flight limit (meant for
# many clients) is raised above the highest concurrency the bench opens.
PER_CLIENT_LIMIT = "20000"


def gateway_env(upstream: str, port: int, extra: Mapping[str, str]) -> dict[str, str]:
    """The gateway's settings: OpenAI at the mock, telemetry off unless `extra` says so."""
    return base_env({
        "SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(port), "OPENAI_API_URL": upstream,
        "OPENAI_API_KEY": API_KEY, "ENABLE_TELEMETRY": "false", "ENABLE_AUTH": "false",
        "MAX_CONCURRENT_REQUESTS_PER_CLIENT": PER_CLIENT_LIMIT, **extra})


def telemetry_env(collector: str) -> dict[str, str]:
    """Settings that turn the gateway's telemetry on, traces and metrics sent to `collector`
    over OTLP/HTTP (the mock, which accepts /v1/traces and /v1/metrics)."""
    return {"ENABLE_TELEMETRY": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": collector}


def launch_gateway(upstream: str, port: int, log_dir: Path, extra: Mapping[str, str], *,
                   source: Path = ROOT) -> Proc:
    """`python -m gateway`, one worker, pinned to the gateway core; the package is imported
    from `source` (a checkout of another revision, for `bench.compare`)."""
    return start("gateway", [str(GATEWAY_PYTHON), "-m", "gateway"], core=GATEWAY_CORE,
                 env=gateway_env(upstream, port, extra), log_dir=log_dir, cwd=source)


def _floor(kind: str) -> Launcher:
    def launch(upstream: str, port: int, log_dir: Path, extra: Mapping[str, str]) -> Proc:
        return start(f"floor-{kind}", [str(BENCH_PYTHON), "-m", "bench.floors", kind, str(port),
                                       upstream],
                     core=GATEWAY_CORE, env=base_env(extra), log_dir=log_dir, cwd=ROOT)
    return launch


def _package_version(name: str) -> Callable[[], str]:
    def version() -> str:
        return peers.venv_package_version(BENCH_PYTHON, name)
    return version


OPENAI_BODY = {"model": MODEL, "messages": MESSAGES, "max_tokens": 64}
BEARER = {"Authorization": f"Bearer {API_KEY}"}


def openai_route(label: str, **headers: str) -> Route:
    """An OpenAI-compatible chat-completions route, as the floors and peers serve it."""
    return Route(label, "/v1/chat/completions", body=OPENAI_BODY, headers={**BEARER, **headers})


GATEWAY = Target(
    key="gateway", label="this gateway", group="project",
    routes=(
        Route("gateway POST /llms/openai/generate", "/llms/openai/generate",
              body={"model": MODEL, "messages": MESSAGES, "max_tokens": 64},
              stream_format="generate"),
        Route("gateway POST /v1/chat/completions", "/v1/chat/completions",
              body={"model": f"openai/{MODEL}", "messages": MESSAGES, "max_tokens": 64},
              optional=True),
    ),
    launch=launch_gateway, version=lambda: peers.git_revision(ROOT))

FLOORS = tuple(
    Target(key=f"floor-{kind}", label=label, group="floor",
           routes=(openai_route(label),),
           launch=_floor(kind), version=_package_version(package))
    for kind, label, package in (
        ("httpx", "floor: Starlette + httpx", "httpx"),
        ("httpx-aiohttp", "floor: Starlette + httpx-aiohttp", "httpx-aiohttp"),
        ("aiohttp", "floor: Starlette + aiohttp", "aiohttp"),
    ))

LITELLM = Target(
    key="litellm", label=f"LiteLLM proxy {peers.LITELLM_VERSION}", group="peer",
    routes=(openai_route(f"LiteLLM {peers.LITELLM_VERSION}",
                         Authorization=f"Bearer {peers.LITELLM_MASTER_KEY}"),),
    launch=peers.launch_litellm, ready_timeout=120.0,
    version=lambda: peers.LITELLM_VERSION, unavailable=peers.litellm_unavailable)

PORTKEY = Target(
    key="portkey", label=f"Portkey gateway {peers.PORTKEY_VERSION}", group="peer",
    routes=(openai_route(f"Portkey {peers.PORTKEY_VERSION}",
                         **{"x-portkey-provider": "openai",
                            "x-portkey-custom-host": peers.PORTKEY_HOST_PLACEHOLDER}),),
    launch=peers.launch_portkey, ready_timeout=60.0,
    version=lambda: peers.PORTKEY_VERSION, unavailable=peers.portkey_unavailable)

ALL = (GATEWAY, *FLOORS, LITELLM, PORTKEY)
