"""`python -m gateway`: serve the gateway with settings from the environment."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import math
import sys

import uvicorn

from gateway.app import create_app, secrets_of
from gateway.lifecycle import GatewayServer
from gateway.supervisor import Supervisor
from gateway.telemetry import configure_logging
from generated.settings import Settings, SettingsError


def http_protocol(settings: Settings) -> type[asyncio.Protocol] | str:
    """The gateway's own httptools protocol (`gateway.http11`); uvicorn's h11 when httptools
    is missing.

    h11 bounds the head's size itself (`h11_max_incomplete_event_size`, answered with 400),
    but has no time limit for it; httptools is a locked dependency, so h11 is a fallback only.
    """
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    from gateway.http11 import http_protocol as protocol

    return protocol(settings.max_header_bytes, settings.server_header_timeout)


def server_config(settings: Settings) -> uvicorn.Config:
    """uvicorn's configuration from the SERVER_* settings (uvloop/httptools when present)."""
    tls = settings.server_tls_cert_path, settings.server_tls_key_path
    if bool(tls[0]) != bool(tls[1]):
        raise SettingsError("SERVER_TLS_CERT_PATH and SERVER_TLS_KEY_PATH must be set together")
    return uvicorn.Config(
        create_app(settings),
        host=settings.server_host,
        port=settings.server_port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http=http_protocol(settings),
        h11_max_incomplete_event_size=settings.max_header_bytes,
        ssl_certfile=tls[0],
        ssl_keyfile=tls[1],
        timeout_keep_alive=max(1, int(settings.server_idle_timeout)),
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_period),
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )


def raise_open_file_limit() -> None:
    """Raise the soft limit on open files to the hard one.

    Every open stream holds two sockets (the client's and the provider's); the usual soft
    limit of 1024 would cap a worker at a few hundred open streams.
    """
    try:
        import resource
    except ImportError:  # not on this platform: nothing to raise
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # some systems refuse RLIM_INFINITY here
            pass


def main() -> int:
    """Load settings, start serving (one process, or SERVER_WORKERS under a supervisor), and
    turn configuration errors into one clear line before anything starts."""
    try:
        settings = Settings.from_env()
        config = server_config(settings)
    except (SettingsError, ValueError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    raise_open_file_limit()
    configure_logging(settings.log_level, secrets_of(settings))
    for name in ("httpx",):  # its lines may carry full URLs (the OIDC client)
        logging.getLogger(name).setLevel(logging.WARNING)
    log = logging.getLogger("gateway")
    log.info("listening on %s:%s", settings.server_host, settings.server_port)
    if settings.server_workers > 1:
        if not settings.redis_url:
            log.warning("SERVER_WORKERS=%d without REDIS_URL: each worker keeps its own "
                        "cooldowns, budgets and response cache", settings.server_workers)
        return Supervisor(config, workers=settings.server_workers,
                          drain_delay=settings.shutdown_drain_delay).run()
    GatewayServer(config, drain_delay=settings.shutdown_drain_delay).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
