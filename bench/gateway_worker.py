"""One gateway worker on a shared SO_REUSEPORT socket, for the two-worker measurement.

`python -m gateway` has no workers setting, so two of these run side by side (each pinned
to its own core); the kernel spreads connections between them. Everything else is what
`python -m gateway` does (keep it in step with `gateway/__main__.py:main`): the same
settings, uvicorn configuration, server class and logging.
"""

from __future__ import annotations

import logging
import socket
import sys

from gateway.__main__ import raise_open_file_limit, server_config
from gateway.app import secrets_of
from gateway.lifecycle import GatewayServer
from gateway.telemetry import configure_logging
from generated.settings import Settings


def main() -> int:
    """Serve one worker on SERVER_HOST:SERVER_PORT, sharing the port with its siblings."""
    settings = Settings.from_env()
    config = server_config(settings)
    raise_open_file_limit()
    configure_logging(settings.log_level, secrets_of(settings))
    for name in ("httpx", "aiohttp"):
        logging.getLogger(name).setLevel(logging.WARNING)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((settings.server_host, settings.server_port))
    GatewayServer(config, drain_delay=settings.shutdown_drain_delay).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
