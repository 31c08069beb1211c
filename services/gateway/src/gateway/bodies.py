"""Reading a request's body from the client, at the client's pace but never slower than
`timeout` seconds per 64 KiB (API.md §11).

Bodies up to `BUFFERED_BODY` are read whole before any upstream connection is taken (a client
that holds its body back then holds nothing of the upstream's), within `timeout`; larger ones
stream through, each further 64 KiB within another `timeout`. A client too slow gets a 408
(`ClientTooSlow`), one over the size limit a 413 (`BodyTooLarge`), one that leaves `ClientGone`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from starlette.types import Message, Receive

# Bodies up to this size are read whole before they are sent on (and can be sent again).
BUFFERED_BODY = 64 * 1024


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


class ClientTooSlow(Exception):
    """The client did not send its body at the required pace."""


class BodyReader:
    def __init__(self, receive: Receive, timeout: float, max_body: int) -> None:
        self.receive = receive
        self.timeout = timeout
        self.max_body = max_body
        self.received = 0
        self.started: float | None = None
        self.done = False

    async def _next(self) -> bytes:
        """The next chunk; `done` is set with the last."""
        loop = asyncio.get_running_loop()
        if self.started is None:
            self.started = loop.time()
        # The deadline moves on by `timeout` with every 64 KiB received.
        deadline = self.started + self.timeout * (1 + self.received // BUFFERED_BODY)
        try:
            async with asyncio.timeout_at(deadline):
                message: Message = await self.receive()
        except TimeoutError:
            raise ClientTooSlow from None
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk: bytes = message.get("body", b"")
        self.received += len(chunk)
        if self.received > self.max_body:
            raise BodyTooLarge
        if not message.get("more_body", False):
            self.done = True
        return chunk

    async def read(self, limit: int) -> bytes:
        """The whole body, at most `limit` bytes (else `BodyTooLarge`)."""
        chunks = []
        while not self.done:
            chunks.append(await self._next())
            if self.received > limit:
                raise BodyTooLarge
        return b"".join(chunks)

    async def read_up_to(self, limit: int) -> list[bytes]:
        """What arrives until the body ends (`done`) or passes `limit` bytes."""
        chunks = []
        while not self.done and self.received <= limit:
            chunks.append(await self._next())
        return chunks

    async def stream(self, first: list[bytes]) -> AsyncIterator[bytes]:
        """`first` (what was read already), then the rest as it arrives."""
        for chunk in first:
            if chunk:
                yield chunk
        while not self.done:
            chunk = await self._next()
            if chunk:
                yield chunk
