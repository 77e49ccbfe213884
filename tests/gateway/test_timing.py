"""`gateway.timing.limited`: a bound on one wait, armed only when the wait really waits; and
`gateway.timing.Alarms`, the cheap timers it uses."""

from __future__ import annotations

import asyncio
import random

import pytest
import uvloop

from gateway.timing import TICK, Alarms, Limited, alarms, limited


class Stalled(Exception):
    """The error the tests ask for."""


async def _value(value: int) -> int:
    return value


def test_a_wait_that_does_not_suspend_arms_no_timer() -> None:
    async def main() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        armed = []
        original = loop.call_later

        def spy(*args: object, **kwargs: object) -> asyncio.TimerHandle:
            armed.append(args)
            return original(*args, **kwargs)  # type: ignore[arg-type]

        loop.call_later = spy  # type: ignore[method-assign]
        try:
            value = await Limited(_value(7), 0.0, Stalled)
        finally:
            loop.call_later = original  # type: ignore[method-assign]
        return value, len(armed)

    assert asyncio.run(main()) == (7, 0)


def test_a_wait_past_its_limit_raises_the_given_error_and_the_task_goes_on() -> None:
    async def main() -> str:
        never = asyncio.get_running_loop().create_future()
        with pytest.raises(Stalled):
            await Limited(never, 0.01, Stalled)
        await asyncio.sleep(0)  # the task was un-cancelled: it keeps running normally
        return "went on"

    assert asyncio.run(main()) == "went on"


def test_a_wait_within_its_limit_returns_its_value() -> None:
    async def slow() -> str:
        await asyncio.sleep(0.01)
        return "done"

    async def main() -> str:
        return await Limited(slow(), 30.0, Stalled)

    assert asyncio.run(main()) == "done"


def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    async def main() -> None:
        started = asyncio.Event()

        async def waiter() -> None:
            started.set()
            await Limited(asyncio.sleep(30), 30.0, Stalled)

        task = asyncio.create_task(waiter())
        await started.wait()
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_errors_of_the_wait_pass_through() -> None:
    async def broken() -> None:
        await asyncio.sleep(0)
        raise KeyError("boom")

    async def main() -> None:
        with pytest.raises(KeyError):
            await Limited(broken(), 30.0, Stalled)

    asyncio.run(main())


def test_no_limit_is_the_wait_itself() -> None:
    awaitable = _value(1)
    assert limited(awaitable, None, Stalled) is awaitable
    awaitable.close()


def _on_both_loops(main):  # type: ignore[no-untyped-def]
    """Run `main` on asyncio's own loop and on uvloop (whose timers count milliseconds)."""
    asyncio.run(main())
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def test_alarms_go_off_in_time_order_within_a_tick_after_their_time() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ring = alarms(loop)
        assert alarms(loop) is ring
        rang: list[tuple[str, float]] = []
        done = loop.create_future()
        start = loop.time()
        due = {"late": start + 0.15, "early": start + 0.03, "middle": start + 0.08,
               "next": start + 0.03 + 1.5 * TICK}  # in the slot after "early"'s
        for name in ("late", "next", "early", "middle"):  # sooner ones set after later ones
            ring.set(due[name], name, lambda key: rang.append((key, loop.time())))
        ring.set(start + 0.2, "end", lambda key: done.set_result(key))
        await done
        assert [name for name, _ in rang] == ["early", "next", "middle", "late"]
        for name, at in rang:
            assert due[name] - 0.0011 <= at <= due[name] + TICK + 0.05, name
        assert len(ring) == 0

    _on_both_loops(main)


def test_a_cleared_alarm_never_goes_off_and_others_in_its_slot_do() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ring = Alarms(loop)
        rang: list[str] = []
        when = loop.time() + 0.02
        slots = {name: ring.set(when, name, rang.append) for name in ("a", "b", "c")}
        ring.clear(slots["b"], "b")
        ring.clear(slots["b"], "b")  # twice: nothing
        await asyncio.sleep(0.02 + 2 * TICK + 0.02)
        assert rang == ["a", "c"]
        ring.clear(slots["a"], "a")  # after it went off: nothing

    _on_both_loops(main)


def test_alarms_cleared_long_before_their_time_leave_nothing_behind() -> None:
    # Each request sets its read timeout and deadline and clears them a moment later: they
    # must leave nothing behind, however many there are (the soak test's memory stays flat).
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ring = Alarms(loop)
        rng = random.Random(6)
        kept = []
        for number in range(50_000):
            key = object()
            slot = ring.set(loop.time() + 60 + rng.random(), key, print)
            if number % 5000 == 0:
                kept.append((slot, key))
            else:
                ring.clear(slot, key)
        assert len(ring) == len(kept) == 10
        assert len(ring._slots) <= 10  # the emptied ones are gone
        assert len(ring._heap) <= 2 * 10 + 64 + 1
        assert len(ring._queued) == len(ring._heap)
        for slot, key in kept:
            ring.clear(slot, key)
        assert len(ring) == 0

    _on_both_loops(main)


def test_a_slot_emptied_and_gone_is_queued_again_when_set_again() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ring = Alarms(loop)
        rang: list[str] = []
        first = ring.set(loop.time() + 0.01, "gone", rang.append)
        ring.clear(first, "gone")
        ring.set(loop.time() + 0.03, "later", rang.append)
        await asyncio.sleep(0.01 + 2 * TICK)  # the emptied slot's wake-up has passed
        again = ring.set(loop.time() + 0.01, "again", rang.append)
        await asyncio.sleep(0.05 + 2 * TICK)
        assert rang == ["later", "again"] or rang == ["again", "later"]
        assert again not in ring._slots and len(ring) == 0

    _on_both_loops(main)


def test_a_failing_alarm_is_reported_and_the_rest_still_go_off() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reported: list[BaseException] = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))
        ring = Alarms(loop)
        rang: list[str] = []

        def broken(key: str) -> None:
            raise RuntimeError(key)

        when = loop.time() + 0.01
        ring.set(when, "first", broken)
        ring.set(when, "second", rang.append)
        ring.set(when + 0.05, "third", rang.append)
        await asyncio.sleep(0.01 + 0.05 + 2 * TICK + 0.02)
        assert rang == ["second", "third"]
        assert [str(exc) for exc in reported] == ["first"]

    _on_both_loops(main)


def test_limited_clears_its_alarm_when_the_wait_ends() -> None:
    async def main() -> None:
        ring = alarms(asyncio.get_running_loop())
        assert await Limited(asyncio.sleep(0.001, "slept"), 30.0, Stalled) == "slept"
        assert len(ring) == 0

    _on_both_loops(main)

