"""The guard's one Redis call per request, pipelined over a single connection.

redis-py's asyncio client spends more CPU per command (pool checkout, retry wrapper, health check,
generic parser) than the rest of the gateway's checks together. The guard sends one command shape
only (EVALSHA, plus SCRIPT LOAD after a Redis restart), so it speaks RESP2 itself (packed here,
parsed by hiredis's reader, the C parser redis-py uses too): the commands made during a few turns
of the event loop go out in one write (`FLUSH_TURNS`: under load, the requests read in those turns
share one send system call, and their replies come back in one read), Redis answers in order, and
the replies resolve the waiting futures first in, first out. A reply that does not
come within the timeout means the connection is stuck: it is dropped, every request waiting on it
fails (the guard falls back), and the next request connects again. One timer watches the oldest
request waiting (not one timer per request).

Errors are redis-py's exception types, so callers handle both clients alike.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

# After a failed connection attempt, requests fail at once (to the fallback rules) for this long.
RECONNECT_PAUSE = 0.25
# The commands go out in one write this many turns of the event loop after the turn that made the
# first of them, with every command made meanwhile (by the requests read in those turns). Under
# the bench's load (wrk -c32, perf stat on two gateways before one users), a write carried 1.9
# commands when it went out in the next turn and 4 three turns later: the gateway's writes per
# request fell from 2.53 to 2.25 and its reads from 2.48 to 2.25 (the replies come back together
# too), its CPU per request by 1-8%. Idle, a turn takes microseconds.
FLUSH_TURNS = 3

Reply = int | bytes | list["Reply"] | None | ResponseError


def reply_error(text: str) -> ResponseError:
    """An error reply as redis-py's exception: NOSCRIPT is the one the script runner handles."""
    return NoScriptError(text) if text.startswith("NOSCRIPT") else ResponseError(text)


def reply_reader() -> hiredis.Reader:
    """A RESP2 parser (hiredis, in C): `feed` it bytes, `gets` the next whole reply or False.
    Errors come as `reply_error` values; a malformed stream raises RedisConnectionError."""
    return hiredis.Reader(protocolError=RedisConnectionError, replyError=reply_error)


def pack_arguments(*parts: bytes | str | int) -> bytes:
    """Bulk strings, without the array header: pieces of a command."""
    out = []
    for part in parts:
        encoded = part if isinstance(part, bytes) else str(part).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(encoded), encoded))
    return b"".join(out)


def pack_command(*parts: bytes | str | int) -> bytes:
    return b"*%d\r\n%b" % (len(parts), pack_arguments(*parts))


class _Protocol(asyncio.Protocol):
    def __init__(self, pipe: PipelinedRedis, loop: asyncio.AbstractEventLoop) -> None:
        self.pipe = pipe
        # The connection's loop, kept: `asyncio.get_running_loop()` costs a getpid system call
        # (CPython 3.11 checks for a fork), once per request on the hot path.
        self.loop = loop
        self.reader = reply_reader()
        self.transport: asyncio.Transport | None = None
        # Commands made since the last write, written together by `PipelinedRedis._flush`.
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        # The reader keeps a partial reply's start until the rest comes (RESP2 has no false).
        reader = self.reader
        waiting = self.pipe.waiting
        try:
            reader.feed(data)
            reply = reader.gets()
            while reply is not False:
                if not waiting:
                    raise RedisConnectionError("a reply nobody asked for")
                future = waiting.popleft()[0]
                if not future.done():
                    if isinstance(reply, ResponseError):
                        future.set_exception(reply)
                    else:
                        future.set_result(reply)
                reply = reader.gets()
        except RedisConnectionError as exc:
            self.pipe.drop(self, RedisConnectionError(f"bad reply from redis: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe.drop(self, RedisConnectionError("connection to redis lost"))


class PipelinedRedis:
    """One pipelined connection to the Redis at `url` (redis://[user:password@]host[:port][/db])."""

    def __init__(self, url: str, timeout: float = 1.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "redis" or not parts.hostname:
            raise ValueError("PipelinedRedis takes redis://host[:port][/db] URLs only")
        self.host = parts.hostname
        self.port = parts.port or 6379
        path = parts.path.strip("/")
        self.db = int(path) if path else 0
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        # Futures waiting for a reply, oldest first, each with the time its reply is due.
        self.waiting: deque[tuple[asyncio.Future[Reply], float]] = deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None
        self._down_until = 0.0

    async def execute(self, *parts: bytes | str | int) -> Reply:
        return await self.execute_packed(pack_command(*parts))

    async def execute_packed(self, command: bytes) -> Reply:
        """`command` as `pack_command` makes it."""
        protocol = self._protocol
        if protocol is None or protocol.transport is None or protocol.transport.is_closing():
            protocol = await self._connect()
        return await self._send(protocol, command)

    def _send(self, protocol: _Protocol, command: bytes) -> asyncio.Future[Reply]:
        loop = protocol.loop
        future: asyncio.Future[Reply] = loop.create_future()
        due = loop.time() + self.timeout
        self.waiting.append((future, due))
        if not protocol.pending:
            loop.call_soon(self._flush, protocol, FLUSH_TURNS)
        protocol.pending.append(command)
        if self._watchdog is None:
            self._watchdog = loop.call_at(due, self._watch, protocol)
        return future

    def _flush(self, protocol: _Protocol, turns: int = 1) -> None:
        """Write the commands made so far, in the order they were made. Called with `turns`
        over 1, it runs again in the next turn of the loop with one less, and writes then.
        A connection dropped since has failed their futures already; a failed write fails
        them now."""
        if turns > 1:
            protocol.loop.call_soon(self._flush, protocol, turns - 1)
            return
        commands, protocol.pending = protocol.pending, []
        transport = protocol.transport
        if self._protocol is not protocol or transport is None or transport.is_closing():
            return
        try:
            transport.write(b"".join(commands))
        except Exception as exc:
            self.drop(protocol, RedisConnectionError(f"cannot write to redis: {exc}"))

    def _watch(self, protocol: _Protocol) -> None:
        """Fires when the oldest request then waiting was due: drop the connection if the
        oldest request still waiting is overdue, else look again when it is due."""
        self._watchdog = None
        if self._protocol is not protocol or not self.waiting:
            return
        due = self.waiting[0][1]
        loop = asyncio.get_running_loop()
        if loop.time() >= due:
            self.drop(protocol, RedisTimeoutError("redis did not answer in time"))
        else:
            self._watchdog = loop.call_at(due, self._watch, protocol)

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        if loop.time() < self._down_until:
            raise RedisConnectionError("redis unavailable (a connection just failed)")
        async with self._connecting:
            current = self._protocol
            if current is not None:
                if current.transport is not None and not current.transport.is_closing():
                    return current
                self.drop(current, RedisConnectionError("connection to redis closed"))
            # Requests that queued behind a failed attempt fail at once rather than each
            # waiting out a timeout of its own in turn.
            if loop.time() < self._down_until:
                raise RedisConnectionError("redis unavailable (a connection just failed)")
            try:
                return await self._open(loop)
            except BaseException:
                self._down_until = loop.time() + RECONNECT_PAUSE
                raise

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        try:
            async with asyncio.timeout(self.timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Protocol(self, loop), self.host, self.port
                )
        except TimeoutError as exc:
            raise RedisTimeoutError("connecting to redis timed out") from exc
        except OSError as exc:
            raise RedisConnectionError(f"cannot connect to redis: {exc}") from exc
        self._protocol = protocol
        setup: list[asyncio.Future[Reply]] = []
        if self.password is not None:
            credentials = [self.username, self.password] if self.username else [self.password]
            setup.append(self._send(protocol, pack_command("AUTH", *credentials)))
        if self.db:
            setup.append(self._send(protocol, pack_command("SELECT", self.db)))
        try:
            await asyncio.gather(*setup)
        except BaseException:
            self.drop(protocol, RedisConnectionError("redis refused the connection setup"))
            raise
        return protocol

    def drop(self, protocol: _Protocol, error: Exception) -> None:
        """Forget a broken connection and fail every request waiting on it."""
        if self._protocol is protocol:
            self._protocol = None
            if self._watchdog is not None:
                self._watchdog.cancel()
                self._watchdog = None
            waiting, self.waiting = self.waiting, deque()
            for future, _ in waiting:
                if not future.done():
                    future.set_exception(error)
        if protocol.transport is not None and not protocol.transport.is_closing():
            protocol.transport.abort()

    async def aclose(self) -> None:
        if self._protocol is not None:
            self.drop(self._protocol, RedisConnectionError("closed"))


_INT = frozenset({int})


def as_ints(reply: Any) -> list[int]:
    """`reply` if it is a list of integers (its items' types checked in C, once a request)."""
    if type(reply) is not list or not _INT.issuperset(map(type, reply)):
        raise ResponseError(f"unexpected script reply {reply!r}")
    return reply
