"""A slow OpenAI-style streaming upstream, for the many-open-streams check.

`python -m bench.slow_upstream PORT TARGET HOLD_S WAIT_S` answers every POST with the mock's
stream: the role and first token at once, then nothing until TARGET streams are open at the
same time (or WAIT_S passed), then HOLD_S more seconds, then the rest. So every stream is
held open concurrently; `GET /stats` reports the most that were open at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from dataclasses import dataclass, field

from bench.mock import stream_events


@dataclass
class State:
    """Counters shared by all connections."""

    target: int
    hold_s: float
    wait_s: float
    open: int = 0
    max_open: int = 0
    served: int = 0
    released: asyncio.Event = field(default_factory=asyncio.Event)


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def _read_request(reader: asyncio.StreamReader) -> str | None:
    """The request line of the next request (its body is read and dropped), or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return lines[0]


async def _stream(state: State, writer: asyncio.StreamWriter) -> None:
    events = stream_events()
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n" + _chunk(events[0] + events[1]))
    await writer.drain()
    state.open += 1
    state.max_open = max(state.max_open, state.open)
    if state.open >= state.target:
        state.released.set()
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.released.wait(), state.wait_s)
        await asyncio.sleep(state.hold_s)
        writer.write(b"".join(_chunk(e) for e in events[2:]) + b"0\r\n\r\n")
        await writer.drain()
        state.served += 1
    finally:
        state.open -= 1


async def _serve(state: State, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
    try:
        while (line := await _read_request(reader)) is not None:
            if line.startswith("GET /stats"):
                body = json.dumps({"max_open": state.max_open, "served": state.served,
                                   "open": state.open}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
            else:
                await _stream(state, writer)
    except ConnectionError:
        pass
    finally:
        writer.close()


async def main(port: int, target: int, hold_s: float, wait_s: float) -> None:
    """Serve on 127.0.0.1:`port` until killed."""
    state = State(target=target, hold_s=hold_s, wait_s=wait_s)
    server = await asyncio.start_server(lambda r, w: _serve(state, r, w), "127.0.0.1", port,
                                        backlog=8192)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]),
                     float(sys.argv[4])))
