"""`python -m gateway`: serve the gateway with settings from the environment."""

from __future__ import annotations

import importlib.util
import logging
import sys

import uvicorn

from gateway.app import create_app, secrets_of
from gateway.telemetry import configure_logging
from generated.settings import Settings, SettingsError


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
        http="httptools" if importlib.util.find_spec("httptools") else "h11",
        ssl_certfile=tls[0],
        ssl_keyfile=tls[1],
        timeout_keep_alive=max(1, int(settings.server_idle_timeout)),
        timeout_graceful_shutdown=30,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )


def main() -> int:
    """Load settings, start serving, and turn configuration errors into one clear line."""
    try:
        settings = Settings.from_env()
        config = server_config(settings)
    except (SettingsError, ValueError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, secrets_of(settings))
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its lines carry full URLs
    logging.getLogger("gateway").info("listening on %s:%s", settings.server_host,
                                      settings.server_port)
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
