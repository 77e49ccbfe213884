"""Start and drive the Node OpenID Connect provider in this folder (`server.mjs`) from tests."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

OIDC_DIR = Path(__file__).resolve().parent
CLIENT_ID = "llm-gateway-tests"
CLIENT_SECRET = "llm-gateway-tests-secret"
AUDIENCE = "llm-gateway"
RESOURCE = "urn:llm-gateway"
START_TIMEOUT = 20.0


def ensure_installed() -> None:
    """Install the provider's npm packages from the lockfile when they are missing."""
    if (OIDC_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to install the test OpenID Connect provider")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=OIDC_DIR, check=True,
                   timeout=300, stdout=subprocess.DEVNULL)


@dataclass
class IdentityProvider:
    """A running test IdP: its issuer URL and helpers for tokens, keys and counters."""

    url: str
    port: int
    process: subprocess.Popen[str]
    http: httpx.Client
    output: list[str] = field(default_factory=list)

    def token(self, *, resource: str = RESOURCE, scope: str = "llm:invoke") -> str:
        """An access token (a JWT) from the client-credentials grant."""
        response = self.http.post(f"{self.url}/token", auth=(CLIENT_ID, CLIENT_SECRET),
                              data={"grant_type": "client_credentials", "resource": resource,
                                    "scope": scope})
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def set_keys(self, keys: list[dict[str, Any]]) -> None:
        """Replace the provider's signing keys (private JWKs); its JWKS then lists only these."""
        response = self.http.post(f"{self.url}/admin/keys", json={"keys": keys})
        response.raise_for_status()

    def delay_jwks(self, seconds: float) -> None:
        """Make the provider answer its JWKS this much later (0 restores)."""
        response = self.http.post(f"{self.url}/admin/jwks-delay",
                                  json={"ms": int(seconds * 1000)})
        response.raise_for_status()

    def stats(self) -> dict[str, int]:
        """How many discovery, JWKS and token requests the provider has answered."""
        response = self.http.get(f"{self.url}/admin/stats")
        response.raise_for_status()
        counts: dict[str, int] = response.json()
        return counts


def _pump(stream: Any, lines: queue.Queue[str], log: list[str]) -> None:
    for line in stream:
        log.append(line)
        lines.put(line)


@contextlib.contextmanager
def running_provider(keys: list[dict[str, Any]], *, port: int = 0) -> Iterator[IdentityProvider]:
    """Run `node server.mjs` on 127.0.0.1 (`port` 0 picks one) with the given private JWKs."""
    ensure_installed()
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is needed to run the test OpenID Connect provider")
    env = {**os.environ, "OIDC_TEST_JWKS": json.dumps({"keys": keys})}
    process = subprocess.Popen([node, str(OIDC_DIR / "server.mjs"), str(port)], cwd=OIDC_DIR,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []
    reader = threading.Thread(target=_pump, args=(process.stdout, lines, log), daemon=True)
    reader.start()
    try:
        actual = _wait_ready(process, lines, log)
        with httpx.Client(timeout=10) as http:
            idp = IdentityProvider(url=f"http://127.0.0.1:{actual}", port=actual,
                                   process=process, http=http, output=log)
            _wait_discovery(http, idp.url)
            yield idp
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        reader.join(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def _wait_ready(process: subprocess.Popen[str], lines: queue.Queue[str], log: list[str]) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            if process.poll() is not None:
                break
            continue
        if line.startswith("ready "):
            return int(line.split()[1])
    raise RuntimeError("test OpenID Connect provider did not start:\n" + "".join(log))


def _wait_discovery(http: httpx.Client, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if http.get(f"{url}/.well-known/openid-configuration", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("test OpenID Connect provider never served discovery")
        time.sleep(0.05)
