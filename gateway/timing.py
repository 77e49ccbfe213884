"""Time limits on single waits that cost nothing when the wait does not wait, and alarms
that cost little to set and to clear.

`asyncio.timeout` costs about 9 µs per use on this stack (a context object, a task lookup,
a timer rescheduled twice), and most of the waits the gateway bounds finish without ever
suspending: a client's `send` while the socket takes the bytes, a `receive` of a body that
came with the headers. `limited(...)` runs the awaitable's first step at once; only if it
suspends is an alarm set, and an alarm that goes off cancels the task, the cancellation
becoming the caller's own error, as with `asyncio.timeout`.

Nearly every time limit the gateway sets is cleared again long before it is due: each
request's read timeout and routing deadline, each stream chunk's wait. A loop timer
(`call_later` and `cancel`) costs about 6,000 instructions on uvloop. `Alarms` keeps them
in slots of `TICK` seconds with one loop timer for the earliest slot: setting and clearing
one is a few dictionary operations.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Generator, Hashable
from heapq import heapify, heappop, heappush
from typing import Any, Generic, TypeVar

T = TypeVar("T")

TICK = 0.01
"""Alarms go off at most this late (plus the loop's own delay)."""
_TICKS_PER_SECOND = 100.0
# uvloop's timers count whole milliseconds and may fire up to half of one before their time:
# a slot is rung when it is due within this, so an alarm may go off up to 1 ms early.
_EARLY = 0.001
_HEAP_SLACK = 64


class Alarms:
    """Callbacks due at a loop time, in slots of `TICK` seconds (one `Alarms` per loop: see
    `alarms`). `set` returns the alarm's slot; `clear(slot, key)` forgets it. A key names one
    alarm in its slot: the object it is about (a future, a task), passed to its callback.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._slots: dict[int, dict[Hashable, Callable[[Any], object]]] = {}
        self._heap: list[int] = []  # slot numbers, some of them emptied and gone
        self._queued: set[int] = set()  # what `_heap` holds
        self._timer: asyncio.TimerHandle | None = None
        self._armed = math.inf  # the slot the loop timer is set for

    def set(self, when: float, key: Hashable, callback: Callable[[Any], object]) -> int:
        """Call `callback(key)` at loop time `when` (within a tick after it); returns the
        slot to `clear` it with. A key set twice in one slot keeps the later callback."""
        slot = int(when * _TICKS_PER_SECOND) + 1  # the next tick after `when`: never early
        alarms = self._slots.get(slot)
        if alarms is None:
            if slot not in self._queued:
                self._queue(slot)  # before the slot counts as held: see `_queue`
            alarms = self._slots[slot] = {}
        alarms[key] = callback
        return slot

    def clear(self, slot: int, key: Hashable) -> None:
        """Forget the alarm of `key` in `slot` (nothing if it went off or was cleared).

        A slot emptied here goes at once: kept until its time, the slots of two minutes of
        requests would hold megabytes."""
        alarms = self._slots.get(slot)
        if alarms is not None:
            alarms.pop(key, None)
            if not alarms:
                del self._slots[slot]

    def __len__(self) -> int:
        return sum(len(alarms) for alarms in self._slots.values())

    def _queue(self, slot: int) -> None:
        """Put a new slot on the heap, first compacting a heap grown to twice the slots held
        plus `_HEAP_SLACK`; so the heap never holds more (`slot` is not held yet)."""
        heap = self._heap
        if len(heap) >= 2 * len(self._slots) + _HEAP_SLACK:
            # Slots emptied and gone before their time: keep only the ones still held.
            heap[:] = [number for number in heap if number in self._slots]
            heapify(heap)
            self._queued = set(heap)
        if slot not in self._queued:
            heappush(heap, slot)
            self._queued.add(slot)
        if slot < self._armed:
            self._arm(slot)

    def _arm(self, slot: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = slot
        self._timer = self.loop.call_at(slot * TICK, self._ring)

    def _ring(self) -> None:
        self._timer = None
        self._armed = math.inf
        due = (self.loop.time() + _EARLY) * _TICKS_PER_SECOND
        heap, slots = self._heap, self._slots
        while heap and heap[0] <= due:
            slot = heappop(heap)
            self._queued.discard(slot)
            alarms = slots.pop(slot, None)
            if alarms:
                for key, callback in tuple(alarms.items()):
                    try:
                        callback(key)
                    except Exception as exc:  # as the loop treats a failing callback
                        self.loop.call_exception_handler({
                            "message": "an alarm's callback failed", "exception": exc})
        while heap and not slots.get(heap[0]):  # emptied slots need no wake-up
            slot = heappop(heap)
            slots.pop(slot, None)
            self._queued.discard(slot)
        if heap:
            self._arm(heap[0])


# The last loop asked for and its alarms, as one tuple: read and replaced whole, so that
# loops running in other threads never see one's loop with another's alarms.
_last: tuple[asyncio.AbstractEventLoop | None, Alarms | None] = (None, None)
_ALARMS: dict[asyncio.AbstractEventLoop, Alarms] = {}


def alarms(loop: asyncio.AbstractEventLoop) -> Alarms:
    """The `Alarms` of `loop` (made on first use; a closed loop's are dropped then)."""
    global _last
    last_loop, last_alarms = _last
    if last_loop is loop and last_alarms is not None:
        return last_alarms
    found = _ALARMS.get(loop)
    if found is None:
        for old in list(_ALARMS):  # a copy: other threads' loops may add theirs meanwhile
            if old.is_closed():
                _ALARMS.pop(old, None)
        found = _ALARMS[loop] = Alarms(loop)
    _last = (loop, found)
    return found


class Deadline:
    """Cancels the running task at loop time `when`, unless `end`ed first (an alarm).

    After a CancelledError, `absorbed()` tells whether it was this deadline's, and if so
    takes its cancellation back from the task (`uncancel`), so that the caller can raise its
    own error instead and the task goes on; a cancellation from elsewhere is not absorbed.
    """

    __slots__ = ("_passed", "_ring", "_slot", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        task = asyncio.current_task(loop)
        assert task is not None, "a deadline bounds the running task"
        self._task = task
        self._passed = False
        self._ring = alarms(loop)
        self._slot = self._ring.set(when, self, Deadline._expire)

    def end(self) -> None:
        """The bounded wait is over: the alarm is cleared."""
        self._ring.clear(self._slot, self)

    def absorbed(self) -> bool:
        """Whether the task's cancellation was this deadline's (and is now taken back)."""
        if not self._passed:
            return False
        self._passed = False
        self._task.uncancel()
        return True

    def _expire(self) -> None:
        if not self._task.done():
            self._passed = True
            self._task.cancel()


class Limited(Generic[T]):
    """Await `awaitable`; if it is still waiting `seconds` after it first suspended, raise
    `error` (its cancellation is absorbed). Await it once, from the task that runs it."""

    __slots__ = ("_awaitable", "_error", "_seconds")

    def __init__(self, awaitable: Awaitable[T], seconds: float,
                 error: type[BaseException] | BaseException) -> None:
        self._awaitable = awaitable
        self._seconds = seconds
        self._error = error

    def __await__(self) -> Generator[Any, Any, T]:
        inner = self._awaitable.__await__()
        try:
            signal = inner.send(None)
        except StopIteration as done:  # finished without waiting: no deadline at all
            return done.value  # type: ignore[no-any-return]
        loop = asyncio.get_running_loop()
        deadline = Deadline(loop, loop.time() + self._seconds)
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
            if not deadline.absorbed():
                raise
            raise self._error from None
        finally:
            deadline.end()


def limited(awaitable: Awaitable[T], seconds: float | None,
            error: type[BaseException] | BaseException) -> Awaitable[T]:
    """`awaitable` bounded to `seconds` after it starts waiting (`None`: not bounded)."""
    if seconds is None:
        return awaitable
    return Limited(awaitable, seconds, error)
