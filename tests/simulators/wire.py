"""The ASGI response every simulator answers with: written frame by frame, optionally cut off.

Each frame goes out as its own `http.response.body` message, so uvicorn flushes it on its own
(chunked transfer encoding for streams); a slow stream therefore really trickles, and a reset
really leaves the client with a half-read body.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class WireResponse(Response):
    """A status, headers and body frames, written one by one with optional pauses."""

    def __init__(self, status: int, headers: dict[str, str], frames: list[bytes], *,
                 chunk_delay: float = 0.0, cut_after: int | None = None,
                 content_length: bool = False,
                 on_cancel: Callable[[], None] | None = None) -> None:
        self.status_code = status
        self.on_cancel = on_cancel
        self.frames = frames
        self.chunk_delay = chunk_delay
        self.cut_after = cut_after
        self.background = None
        names = {name.lower() for name in headers}
        pairs = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if content_length and "content-length" not in names:
            pairs.append((b"content-length", str(sum(len(f) for f in frames)).encode()))
        self.raw_headers = pairs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Write the frames; stop early when the client goes away (and call `on_cancel`)."""
        written = False
        async with anyio.create_task_group() as group:

            async def watch_disconnect() -> None:
                """Cancel the writer once the client has gone."""
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch_disconnect)
            await self._write(send)
            written = True
            group.cancel_scope.cancel()
        if not written and self.on_cancel is not None:
            self.on_cancel()

    async def _write(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        for index, frame in enumerate(self.frames):
            if self.cut_after is not None and index >= self.cut_after:
                # Returning without the final message makes uvicorn drop the connection:
                # the client sees an incomplete body, like a peer reset mid-answer.
                return
            if index and self.chunk_delay:
                await anyio.sleep(self.chunk_delay)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
        if self.cut_after is not None:
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def truncate_first_payload(frames: list[bytes]) -> list[bytes]:
    """Cut the JSON of the first frame that has one in half, keeping the frame's terminator."""
    result = list(frames)
    for index, frame in enumerate(result):
        start = frame.find(b"{")
        if start < 0:
            continue
        content = frame.rstrip(b"\r\n")
        terminator = frame[len(content):]
        half = start + max(1, (len(content) - start) // 2)
        result[index] = content[:half] + terminator
        return result
    return result
