"""Readiness and graceful shutdown: the `/ready` probe and a server that drains before it stops.

On the first SIGTERM (or SIGINT) `/ready` answers 503 at once while `/health` stays 200. The
listener stays open for SHUTDOWN_DRAIN_DELAY, so a load balancer polling `/ready` stops
sending traffic before connections are refused. Then uvicorn's own shutdown runs: it closes
the listener and the idle keep-alive connections, gives requests and streams in flight up to
SHUTDOWN_GRACE_PERIOD (`timeout_graceful_shutdown`) to finish, and runs the lifespan shutdown.
A second signal ends the drain delay early; a second SIGINT forces the exit.

uvicorn re-raises the signal it caught once it has shut down, so a process stopped by
SIGTERM would end as "killed by SIGTERM" (status 143). A drained stop is an orderly one, so
this server does not record the signal, and `python -m gateway` exits 0.

The readiness flag lives in a `Lifecycle` that the app's lifespan creates and hands to the
server through the ASGI lifespan state, the one channel uvicorn and the app share.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.requests import Request
from starlette.responses import Response

from gateway.responses import JSONResponse

log = logging.getLogger("gateway")

LIFECYCLE = "lifecycle"
"""The key of the `Lifecycle` in the lifespan state (and so in `request.state`)."""

_READY = b'{"message":"OK"}'


class Lifecycle:
    """Whether this process should get traffic: ready once started, not once draining."""

    def __init__(self) -> None:
        self._started = False
        self._draining = False

    @property
    def ready(self) -> bool:
        """Started and not shutting down."""
        return self._started and not self._draining

    @property
    def draining(self) -> bool:
        """A shutdown signal arrived."""
        return self._draining

    def start(self) -> None:
        """Start-up is complete: the upstream client exists."""
        self._started = True

    def drain(self) -> None:
        """Shutting down: report not ready from now on (safe to call from a signal handler)."""
        self._draining = True


async def readiness(request: Request) -> Response:
    """`GET /ready`: 200 while the gateway takes traffic, 503 while starting or draining."""
    lifecycle = getattr(request.state, LIFECYCLE, None)
    if isinstance(lifecycle, Lifecycle) and lifecycle.ready:
        return Response(_READY, media_type="application/json")
    if isinstance(lifecycle, Lifecycle) and lifecycle.draining:
        body = {"error": "the gateway is shutting down", "code": "shutting_down"}
    else:
        body = {"error": "the gateway is starting", "code": "not_ready"}
    return JSONResponse(body, status_code=503)


# Young-generation collections run every this many allocations (CPython's default is 700):
# a request allocates a few thousand objects, nearly all freed by reference counting.
GC_YOUNG_THRESHOLD = 20_000


def settle_memory() -> None:
    """Move everything start-up built out of the collector's sight, and collect less often.

    Modules, settings, the router and the pools live as long as the process: with
    `gc.freeze()` no later collection walks them again, which also keeps their pages shared
    between forked workers.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


class GatewayServer(uvicorn.Server):
    """uvicorn's server with a readiness drain before its shutdown, exiting 0 on SIGTERM.

    As one of several workers (`gateway.supervisor`) it also tells the parent when it has
    started (`on_started`), and drains by itself if that parent (`parent_pid`) goes away.
    """

    def __init__(self, config: uvicorn.Config, *, drain_delay: float = 0.0,
                 on_started: Callable[[], None] | None = None,
                 parent_pid: int | None = None) -> None:
        super().__init__(config)
        self.drain_delay = drain_delay
        self.on_started = on_started
        self.parent_pid = parent_pid
        self._drain_until: float | None = None
        self._drain_logged = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's start-up (the app's lifespan included), then `settle_memory`."""
        await super().startup(sockets)
        settle_memory()
        if self.on_started is not None:
            self.on_started()

    def lifecycle(self) -> Lifecycle | None:
        """The app's `Lifecycle`, once the lifespan has started."""
        lifespan = getattr(self, "lifespan", None)
        found = getattr(lifespan, "state", {}).get(LIFECYCLE)
        return found if isinstance(found, Lifecycle) else None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: report not ready and start the drain; later ones hurry it up.

        Runs as a signal handler, so it only flips flags. The signal is deliberately not
        recorded in `_captured_signals`, which uvicorn would re-raise after shutting down.
        """
        if self._drain_until is None:
            self._drain_until = time.monotonic() + max(0.0, self.drain_delay)
            lifecycle = self.lifecycle()
            if lifecycle is not None:
                lifecycle.drain()
            if self.drain_delay <= 0:
                self.should_exit = True
        elif self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        """uvicorn's tick, which also ends the drain delay when it has passed."""
        if self._drain_until is not None and not self._drain_logged:
            self._drain_logged = True
            log.info("shutdown signal received: not ready; closing the listener in %gs, "
                     "then draining for up to %ss", max(0.0, self.drain_delay),
                     self.config.timeout_graceful_shutdown)
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        if (counter % 10 == 0 and self.parent_pid is not None and self._drain_until is None
                and os.getppid() != self.parent_pid):
            # Killed outright, the parent cannot stop this worker: drain as on SIGTERM.
            log.warning("the supervising process is gone: shutting down")
            self.handle_exit(signal.SIGTERM, None)
        return await super().on_tick(counter)
