"""`python -m gateway` as an operator runs it: a real process, settings from the environment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import trustme

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gateway_process(env: Mapping[str, str], *, scheme: str = "http",
                    verify: object = True, pythonpath: str | None = None,
                    cwd: Path = ROOT) -> Iterator[str]:
    """Start `python -m gateway` and wait for /health; stops it with SIGTERM."""
    port = free_port()
    full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full_env |= {"SERVER_HOST": "127.0.0.1", "SERVER_PORT": str(port), **env}
    full_env["PYTHONPATH"] = pythonpath or str(ROOT)
    proc = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=cwd, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/health", verify=verify, timeout=1).status_code == 200:  # type: ignore[arg-type]
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout else ""
                raise AssertionError(f"gateway did not start: {out}")
            time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


def test_starts_without_any_key_and_answers_health() -> None:
    with gateway_process({}) as url:
        r = httpx.get(f"{url}/health")
        assert r.status_code == 200 and r.json() == {"message": "OK"}
        listed = httpx.get(f"{url}/llms", timeout=15).json()
        assert {e["provider"] for e in listed} <= {"ollama"}  # the one provider without a key


def test_serves_https_with_the_configured_certificate(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    env = {"SERVER_TLS_CERT_PATH": str(cert_path), "SERVER_TLS_KEY_PATH": str(key_path)}
    import ssl

    context = ssl.create_default_context(cafile=str(ca_path))
    with gateway_process(env, scheme="https", verify=context) as url:
        r = httpx.get(f"{url}/health", verify=context)
        assert r.status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(url.replace("https", "http") + "/health", timeout=2)


@pytest.mark.parametrize(("env", "needle"), [
    ({"SERVER_PORT": "not-a-port"}, "SERVER_PORT"),
    ({"SERVER_READ_TIMEOUT": "soon"}, "SERVER_READ_TIMEOUT"),
    ({"SERVER_TLS_CERT_PATH": "/nonexistent/cert.pem"}, "SERVER_TLS"),
])
def test_bad_settings_exit_with_one_clear_line(env: dict[str, str], needle: str) -> None:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.run([sys.executable, "-m", "gateway"], cwd=ROOT, env=full_env,
                          capture_output=True, timeout=30, check=False)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert needle in err and "Traceback" not in err
