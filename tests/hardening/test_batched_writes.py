"""`BatchedWrites`: the writes of one loop iteration leave in one system call, none later."""

from __future__ import annotations

import asyncio

import uvicorn
from uvicorn.server import ServerState

from gateway.__main__ import server_config
from gateway.middleware.batched_writes import MAX_HELD_BYTES, BatchedWrites
from generated.settings import Settings


class Recorder(asyncio.Transport):
    """A transport that records each write it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0


def test_writes_of_one_iteration_are_joined_and_written_at_its_end() -> None:
    async def main() -> tuple[list[bytes], list[bytes]]:
        raw = Recorder()
        batched = BatchedWrites(raw, asyncio.get_running_loop())
        batched.write(b"HTTP/1.1 200 OK\r\n\r\n")
        batched.write(b"body")
        during = list(raw.writes)
        await asyncio.sleep(0)
        return during, raw.writes

    during, after = asyncio.run(main())
    assert during == []
    assert after == [b"HTTP/1.1 200 OK\r\n\r\nbody"]


def test_writes_of_later_iterations_are_not_held_back() -> None:
    async def main() -> list[bytes]:
        raw = Recorder()
        batched = BatchedWrites(raw, asyncio.get_running_loop())
        for event in (b"data: 1\n\n", b"data: 2\n\n"):
            batched.write(event)
            await asyncio.sleep(0)
        return raw.writes

    assert asyncio.run(main()) == [b"data: 1\n\n", b"data: 2\n\n"]


def test_close_writes_what_is_held_first_and_abort_drops_it() -> None:
    async def main() -> tuple[Recorder, Recorder]:
        loop = asyncio.get_running_loop()
        closing, aborting = Recorder(), Recorder()
        first, second = BatchedWrites(closing, loop), BatchedWrites(aborting, loop)
        first.write(b"last words")
        first.close()
        second.write(b"never sent")
        second.abort()
        await asyncio.sleep(0)
        return closing, aborting

    closing, aborting = asyncio.run(main())
    assert closing.writes == [b"last words"] and closing.closed
    assert aborting.writes == [] and aborting.aborted


def test_a_large_batch_is_written_at_once() -> None:
    async def main() -> list[int]:
        raw = Recorder()
        batched = BatchedWrites(raw, asyncio.get_running_loop())
        batched.write(b"x" * (MAX_HELD_BYTES + 1))
        sizes = [len(w) for w in raw.writes]
        await asyncio.sleep(0)
        return sizes

    assert asyncio.run(main()) == [MAX_HELD_BYTES + 1]


def test_the_server_protocol_writes_through_batched_writes() -> None:
    async def main() -> object:
        protocol_class = server_config(Settings.from_env({})).http
        assert isinstance(protocol_class, type)
        config = uvicorn.Config(app=None, loop="asyncio")  # type: ignore[arg-type]
        config.load()
        protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
        protocol.connection_made(Recorder())
        transport = protocol.transport
        protocol.connection_lost(None)
        return transport

    assert isinstance(asyncio.run(main()), BatchedWrites)
