"""Start the gateway in-process on an ephemeral loopback port, configured by an env dict."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from gateway.app import create_app
from generated.settings import Settings
from tests.support.server import RunningServer, serve


@contextlib.contextmanager
def run_gateway(env: Mapping[str, str]) -> Iterator[RunningServer]:
    """Serve `create_app(Settings.from_env(env))` until the block exits."""
    settings = Settings.from_env(dict(env))
    with serve(create_app(settings)) as server:
        yield server
