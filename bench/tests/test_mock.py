"""The nginx mock upstream over real HTTP on 127.0.0.1."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from bench.mock import start_mock

pytestmark = pytest.mark.skipif(shutil.which("nginx") is None or shutil.which("taskset") is None,
                                reason="nginx and taskset are installed by `make bench`")


def test_the_otlp_receiver_takes_export_requests_larger_than_nginx_default(
        tmp_path: Path) -> None:
    """A telemetry-on run exports to the mock; a batch of 8,192 spans is about 2.8 MB, more
    than nginx takes by default (1 MiB, answered 413), and the SDK sends up to 64 MiB."""
    mock = start_mock(tmp_path, tmp_path)
    try:
        body = bytes(3 * 1024 * 1024)
        for signal in ("traces", "metrics"):
            answer = httpx.post(f"{mock.json_url}/v1/{signal}", content=body,
                                headers={"content-type": "application/x-protobuf"},
                                trust_env=False, timeout=10)
            assert answer.status_code == 200, signal
    finally:
        mock.proc.stop()
