"""The per-loop flusher that writes what connections held during a loop iteration."""

from __future__ import annotations

import asyncio

import pytest

from gateway.flushing import flusher


class Holder:
    def __init__(self, name: str, log: list[str], *, fails: bool = False) -> None:
        self.name = name
        self.log = log
        self.fails = fails

    def flush(self) -> None:
        self.log.append(self.name)
        if self.fails:
            raise OSError("the transport refused the bytes")


def test_holders_are_flushed_once_in_the_order_added_by_one_loop_callback(
        caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        log: list[str] = []
        found = flusher(loop)
        assert flusher(loop) is found  # one per loop
        loop.call_soon(log.append, "ready before")
        found.add(Holder("a", log))
        found.add(Holder("b", log, fails=True))
        found.add(Holder("c", log))
        loop.call_soon(log.append, "ready after")
        assert log == []  # nothing is written while the iteration runs
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        found.add(Holder("d", log))  # a later iteration gets a flush of its own
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return log

    log = asyncio.run(main())
    # "b" failed: logged, and "c" was written all the same.
    assert log == ["ready before", "a", "b", "c", "ready after", "d"]
    assert "writing held bytes failed" in caplog.text
