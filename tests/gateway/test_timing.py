"""`gateway.timing.limited`: a bound on one wait, armed only when the wait really waits."""

from __future__ import annotations

import asyncio

import pytest

from gateway.timing import Limited, limited


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
