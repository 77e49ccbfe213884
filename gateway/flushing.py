"""Writes held during one iteration of the event loop and sent when its ready callbacks have
run: one callback per iteration for every holder, the server's connections to clients and
the upstream client's connections to providers (see `gateway.http11` and `gateway.client`).

On a local connection every write is a system call that delivers to the reader inside it,
and wakes the reader if it sleeps. Writes spread over an iteration wake the reader once
each; written together, they reach it at once, and it reads them in one wake-up.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Protocol

log = logging.getLogger("gateway")


class Holder(Protocol):
    def flush(self) -> None:
        """Write what is held."""


class Flusher:
    """Flushes the holders `add`ed during an iteration of one loop, in the order added, once
    the callbacks ready in that iteration have run. One that fails is logged; the others
    are flushed all the same (their requests and answers would otherwise wait forever)."""

    __slots__ = ("loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: list[Holder] = []

    def add(self, holder: Holder) -> None:
        if not self.pending:
            self.loop.call_soon(self.flush)
        self.pending.append(holder)

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        for holder in pending:
            try:
                holder.flush()
            except Exception:
                log.exception("writing held bytes failed")


_FLUSHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Flusher] = (
    weakref.WeakKeyDictionary())


def flusher(loop: asyncio.AbstractEventLoop) -> Flusher:
    """The `Flusher` of `loop` (made on first use)."""
    found = _FLUSHERS.get(loop)
    if found is None:
        found = _FLUSHERS[loop] = Flusher(loop)
    return found
