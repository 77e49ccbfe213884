"""Time limits on single waits that cost nothing when the wait does not wait.

`asyncio.timeout` costs about 9 µs per use on this stack (a context object, a task lookup,
a timer rescheduled twice), and most of the waits the gateway bounds finish without ever
suspending: a client's `send` while the socket takes the bytes, a `receive` of a body that
came with the headers. `limited(...)` runs the awaitable's first step at once; only if it
suspends is a timer armed (one `call_later`), and a timer that fires cancels the task, the
cancellation becoming the caller's own error, as with `asyncio.timeout`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Generator
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Limited(Generic[T]):
    """Await `awaitable`; if it is still waiting `seconds` after it first suspended, raise
    `error` (its cancellation is absorbed). Await it once, from the task that runs it."""

    __slots__ = ("_awaitable", "_error", "_expired", "_seconds", "_task")

    def __init__(self, awaitable: Awaitable[T], seconds: float,
                 error: type[BaseException] | BaseException) -> None:
        self._awaitable = awaitable
        self._seconds = seconds
        self._error = error
        self._expired = False
        self._task: asyncio.Task[Any] | None = None

    def __await__(self) -> Generator[Any, Any, T]:
        inner = self._awaitable.__await__()
        try:
            signal = inner.send(None)
        except StopIteration as done:  # finished without waiting: no timer at all
            return done.value  # type: ignore[no-any-return]
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task(loop)
        handle = loop.call_later(max(0.0, self._seconds), self._expire)
        try:
            while True:
                try:
                    sent = yield signal
                except BaseException as exc:  # a cancellation (ours or not), or a throw
                    signal = inner.throw(exc)
                else:
                    signal = inner.send(sent)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        except asyncio.CancelledError:
            if not self._expired:
                raise
            assert self._task is not None
            self._task.uncancel()
            raise self._error from None
        finally:
            handle.cancel()

    def _expire(self) -> None:
        if self._task is not None and not self._task.done():
            self._expired = True
            self._task.cancel()


def limited(awaitable: Awaitable[T], seconds: float | None,
            error: type[BaseException] | BaseException) -> Awaitable[T]:
    """`awaitable` bounded to `seconds` after it starts waiting (`None`: not bounded)."""
    if seconds is None:
        return awaitable
    return Limited(awaitable, seconds, error)
