"""The hot path's HTTP/1.1 client: a keep-alive pool of connections to one upstream, speaking
through asyncio protocols with httptools' response parser (llhttp, as uvicorn uses for requests).

aiohttp's client spent more CPU per proxied request than the gateway's own checks together
(request and response objects, header multidicts, tracing hooks, a reader and a writer stream
per exchange). The proxy needs much less: write one request (a head and a body known in advance,
or streamed), read one answer, relay its chunks. What it keeps of a full client:

- a pool of at most `limit` connections, the most recently used first, none reused after
  `keepalive` seconds idle (below the upstreams' own keep-alive, so the pool never picks a socket
  the upstream is closing); callers wait for a free connection when all are busy;
- `connect_timeout` for getting a connection (waiting for a free one included, as aiohttp's
  `connect`), `read_timeout` for the upstream's silence while a request is in flight (aiohttp's
  `sock_read`): a timeout raises `TimeoutError` and the connection is dropped;
- framing by Content-Length, chunked (the final transfer coding) or end of connection; HEAD
  answers; 1xx answers skipped;
- backpressure both ways: request bodies wait for the upstream to drain, and reading from the
  upstream pauses while the client has not taken what was read;
- a connection is reused only after a complete exchange on a keep-alive answer.

A connection's exchange goes through explicit phases (`Phase`): idle, sending, awaiting the
client (a streamed body's next chunk: the read timer pauses, the client's pace is not the
upstream's silence), awaiting the head, receiving, complete or failed. `Connection.send` is the
one way in; `Upstream.give_back` and `forget_closed` are how a connection leaves an exchange.

Connection failures and answers cut short raise `UpstreamError` (`UpstreamBroken` once the
answer started); a malformed answer raises `UpstreamProtocolError`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools
from common.enums import IdentityEnum

from gateway.edge import Headers

# Read from the upstream is paused while this much of an answer waits for the client.
HIGH_WATER = 256 * 1024


def ends_in_chunked(transfer_encoding: bytes) -> bool:
    """Chunked is the final coding: the answer is framed by it (RFC 9112 §6.3). Otherwise, as
    `chunked, gzip`, the answer ends with the connection."""
    return transfer_encoding.rpartition(b",")[2].strip().lower() == b"chunked"


class UpstreamError(Exception):
    """The connection failed, or closed before the answer was complete."""


class UpstreamBroken(UpstreamError):
    """The connection closed in the middle of an answer's body."""


class UpstreamProtocolError(Exception):
    """The upstream's answer is not valid HTTP/1.1."""


class PoolBusy(TimeoutError):
    """Every connection stayed busy for the connect timeout: the gateway's own limit, not a
    failure of the upstream."""


class Phase(IdentityEnum):
    """Where a connection's exchange stands."""

    IDLE = "idle"  # no exchange (in the pool, or just opened)
    SENDING = "sending"  # the request is being written
    AWAITING_CLIENT = "awaiting client"  # a streamed body: its next chunk is the client's to send
    AWAITING_HEAD = "awaiting head"  # the request is written; the answer has not begun
    RECEIVING = "receiving"  # the answer's head arrived; its body is arriving
    COMPLETE = "complete"  # the whole answer arrived
    FAILED = "failed"  # `error` says why; the connection is aborted


# The phases in which the upstream owes the gateway something: its silence is timed.
_TIMED = frozenset({Phase.SENDING, Phase.AWAITING_HEAD, Phase.RECEIVING})
# The phases in which an answer's head is awaited (it may come before the request is all sent).
_ASKED = frozenset({Phase.SENDING, Phase.AWAITING_CLIENT, Phase.AWAITING_HEAD})
_COMPLETE = Phase.COMPLETE


class Connection(asyncio.Protocol):
    """One connection to the upstream; between `send` and `finish`, it holds one exchange (and
    is its response: `status`, `headers`, `read_chunk()`)."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.loop = upstream.loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.counted = True  # in the pool's count until it is forgotten
        self.phase = Phase.IDLE
        self.idle_since = 0.0
        self.parser = httptools.HttpResponseParser(self)
        self.reset(False)

    def reset(self, head_only: bool) -> None:
        self.head_only = head_only  # a HEAD request: the answer has no body whatever it says
        self.status = 0
        self.headers: Headers = []
        self.framed = False  # Content-Length or chunked: the end is not the connection's close
        self.head_ready: asyncio.Future[None] | None = None
        self.buffer: deque[bytes] = deque()
        self.buffered = 0
        self.reusable = False  # the answer allows keep-alive
        self.sent = False  # the whole request reached the transport (an answer may come first)
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.write_paused = False
        self.drained: asyncio.Future[None] | None = None
        self.read_paused = False
        self.active_at = 0.0

    @property
    def complete(self) -> bool:
        return self.phase is Phase.COMPLETE

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.phase is Phase.IDLE:
            self.abort()  # nothing was asked: the connection is out of step
            return
        self.active_at = self.loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(UpstreamProtocolError(f"malformed answer: {exc}"))
        except httptools.HttpParserUpgrade:
            self.fail(UpstreamProtocolError("the upstream switched protocols"))

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.upstream.forget_closed(self)
        phase = self.phase
        if phase in (Phase.IDLE, Phase.COMPLETE, Phase.FAILED):
            return
        if phase is Phase.RECEIVING and not self.framed and exc is None:
            self.phase = Phase.COMPLETE  # an answer delimited by the (clean) end of the connection
            self._wake()
            return
        started = phase is Phase.RECEIVING
        self.fail((UpstreamBroken if started else UpstreamError)("the upstream closed"))

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)

    # httptools callbacks

    def on_message_begin(self) -> None:
        if self.phase is _COMPLETE:
            self.reusable = False  # more than the one answer asked for
            return
        self.headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.phase is not _COMPLETE:
            self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self.phase not in _ASKED:
            return  # a second answer, or one after a failure
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # informational (the request never asks to continue): the answer follows
        self.status = status
        for name, value in self.headers:
            if name == b"content-length":
                self.framed = True
                break
            if name == b"transfer-encoding":  # the last field's final coding decides
                self.framed = ends_in_chunked(value)
        if status in (204, 304):
            self.framed = True
        # The parser would wait for the body a HEAD answer lacks.
        self.phase = Phase.COMPLETE if self.head_only else Phase.RECEIVING
        if self.head_ready is not None and not self.head_ready.done():
            self.head_ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.phase is _COMPLETE:
            return
        self.buffer.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status == 0:
            return  # the end of an informational answer
        if self.phase is Phase.RECEIVING:
            self.phase = _COMPLETE
            self.reusable = self.parser.should_keep_alive()
            self._wake()

    # the exchange

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        if self.phase is not Phase.COMPLETE:
            self.phase = Phase.FAILED
        if self.head_ready is not None and not self.head_ready.done():
            self.head_ready.set_exception(error)
        self._wake()
        self.abort()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.abort()

    def _arm(self) -> None:
        """Time the upstream's silence from now on (the pool's one timer, `Upstream._watch`)."""
        self.active_at = self.loop.time()
        self.upstream.time_silence(self)

    async def _drain(self) -> None:
        if self.write_paused and not self.closed:
            self.drained = self.loop.create_future()
            waiting = asyncio.ensure_future(self.drained)
            if self.head_ready is not None:
                await asyncio.wait([waiting, self.head_ready], return_when=asyncio.FIRST_COMPLETED)
            else:
                await waiting
        if self.error is not None:
            raise self.error

    def write(self, data: bytes) -> None:
        if self.closed or self.transport is None:
            raise UpstreamError("the connection to the upstream is closed")
        try:
            self.transport.write(data)
        except (OSError, RuntimeError) as exc:  # uvloop raises on a transport closing
            raise UpstreamError(f"cannot write to the upstream: {exc}") from exc

    async def send(
        self,
        method: str,
        start: bytes,
        body: bytes | AsyncIterator[bytes] | None,
        length: int | None,
    ) -> None:
        """Send one request and wait for the head of its answer. `start` is the request line and
        header lines, without framing; a streamed `body` goes with `length` as Content-Length,
        or chunked without one."""
        self.reset(method == "HEAD")
        self.phase = Phase.SENDING
        head_ready = self.head_ready = self.loop.create_future()
        self._arm()
        if body is None or isinstance(body, bytes):
            if body or method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
                start += b"content-length: %d\r\n\r\n%b" % (len(body or b""), body or b"")
            else:
                start += b"\r\n"
            self.write(start)
            self._sent()
        elif length is not None:
            await self._send_stream(start + b"content-length: %d\r\n\r\n" % length, body, False)
        else:
            await self._send_stream(start + b"transfer-encoding: chunked\r\n\r\n", body, True)
        await head_ready

    def _sent(self) -> None:
        self.sent = True
        if self.phase is Phase.SENDING:
            self.phase = Phase.AWAITING_HEAD

    async def _send_stream(self, head: bytes, body: AsyncIterator[bytes], chunked: bool) -> None:
        self.write(head)
        chunks = aiter(body)
        while True:
            if self.phase is Phase.SENDING:
                self.phase = Phase.AWAITING_CLIENT
            try:
                chunk = await anext(chunks)
            except StopAsyncIteration:
                break
            finally:
                if self.phase is Phase.AWAITING_CLIENT:
                    self.phase = Phase.SENDING
            if self.error is not None:
                raise self.error
            assert self.head_ready is not None
            if self.head_ready.done() or self.closed:
                return  # answered (or gone) before the body was all sent: not reusable
            self.active_at = self.loop.time()
            self.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
            await self._drain()
        if chunked:
            self.write(b"0\r\n\r\n")
        self._sent()

    async def read_chunk(self) -> bytes | None:
        """The next part of the answer's body as it arrives; None at its end."""
        while True:
            if self.buffer:
                chunk = self.buffer.popleft()
                self.buffered -= len(chunk)
                if self.read_paused and self.buffered <= HIGH_WATER // 4:
                    self.read_paused = False
                    if self.transport is not None and not self.closed:
                        self.transport.resume_reading()
                return chunk
            if self.complete:
                return None
            if self.error is not None:
                raise self.error
            self.waiter = self.loop.create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    def body_if_complete(self) -> bytes | None:
        """The whole body when it has all arrived already (most answers: one read)."""
        if not self.complete or self.error is not None:
            return None
        body = b"".join(self.buffer)
        self.buffer.clear()
        self.buffered = 0
        return body

    def finish(self) -> None:
        """The exchange is over: the connection goes back to the pool, or is closed."""
        complete = self.phase is Phase.COMPLETE
        self.phase = Phase.IDLE
        self.upstream.timed.discard(self)
        ready = self.head_ready
        if ready is not None and ready.done() and not ready.cancelled():
            ready.exception()  # a failure that arrived while nobody awaited it is not logged
        reusable = (
            complete
            and self.reusable
            and self.sent
            and not self.head_only
            and self.error is None
            and not self.closed
            and not self.buffer
        )
        if not reusable:
            self.abort()
        self.upstream.give_back(self, reusable)


class Upstream:
    """The pool of connections to one upstream (`http://host[:port][/prefix]`, or https)."""

    def __init__(
        self,
        base_url: str,
        *,
        limit: int,
        keepalive: float,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"an upstream is http(s)://host[:port][/prefix], not {base_url!r}")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError(f"an upstream URL has no credentials, query or fragment: {base_url}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.tls: ssl.SSLContext | None = (
            ssl.create_default_context() if parts.scheme == "https" else None
        )
        self.host_header = parts.netloc.encode("ascii")
        self.prefix = parts.path.rstrip("/").encode("ascii")
        self.limit = limit
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.idle: list[Connection] = []  # most recently used last
        self.count = 0  # connections open or opening
        self.waiters: deque[asyncio.Future[Connection | None]] = deque()
        # Connections whose exchange is under way, their silence timed by one timer for them
        # all (not one per exchange): it is due at the earliest deadline among them.
        self.timed: set[Connection] = set()
        self._watchdog: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def time_silence(self, connection: Connection) -> None:
        """Time `connection`'s silence (its `active_at` is now). Every connection has the same
        read timeout and its deadline only moves later, so a timer already set is due no later
        than this one's deadline: the one timer stays the earliest."""
        self.timed.add(connection)
        if self._watchdog is None:
            self._watchdog = self.loop.call_at(
                connection.active_at + self.read_timeout, self._watch
            )

    def _watch(self) -> None:
        """The read timeout: fails each timed connection `read_timeout` after its last sign of
        life, then is set again for the earliest deadline left."""
        self._watchdog = None
        now = self.loop.time()
        limit = self.read_timeout
        due: float | None = None
        for connection in list(self.timed):
            phase = connection.phase
            if phase not in _TIMED:
                if phase is not Phase.AWAITING_CLIENT:
                    self.timed.discard(connection)  # over
                    continue
                # The client's next chunk is awaited: the upstream owes nothing (the client's
                # pace is the proxy's to limit); its silence counts from when the chunk comes.
                connection.active_at = now
            deadline = connection.active_at + limit
            if now >= deadline:
                self.timed.discard(connection)
                connection.fail(TimeoutError("the upstream did not answer in time"))
            elif due is None or deadline < due:
                due = deadline
        if due is not None:
            self._watchdog = self.loop.call_at(due, self._watch)

    async def request(
        self,
        method: str,
        target: bytes,
        headers: bytes,
        body: bytes | AsyncIterator[bytes] | None,
        *,
        length: int | None = None,
    ) -> Connection:
        """Send a request and wait for the head of its answer. `target` is the path and query,
        `headers` the header lines (each ending in CRLF, without Host and framing headers).
        A streamed `body` goes with `length` as Content-Length, or chunked without one.
        The caller reads the body from the returned connection, then calls its `finish()`."""
        connection = await self._acquire()
        start = b"%s %b%b HTTP/1.1\r\nhost: %b\r\n%b" % (
            method.encode("ascii"),
            self.prefix,
            target,
            self.host_header,
            headers,
        )
        try:
            await connection.send(method, start, body, length)
        except BaseException:
            connection.finish()
            raise
        return connection

    async def healthy(self, path: bytes = b"/health") -> bool:
        """Whether the upstream answers `GET /health` (any status under 500) within the connect
        timeout: the circuit breaker's probe."""
        try:
            async with asyncio.timeout(self.connect_timeout):
                connection = await self.request("GET", path, b"", None)
                try:
                    while await connection.read_chunk() is not None:
                        pass
                finally:
                    connection.finish()
        except (UpstreamError, UpstreamProtocolError, TimeoutError, OSError):
            return False
        return connection.status < 500

    async def _acquire(self) -> Connection:
        loop = self.loop
        now = loop.time()
        while self.idle:
            connection = self.idle.pop()
            if (
                not connection.closed
                and now - connection.idle_since < self.keepalive
                and connection.transport is not None
                and not connection.transport.is_closing()
            ):
                return connection
            connection.abort()
            self._forget(connection)
        if self.count < self.limit:
            self.count += 1
            return await self._connect()
        try:
            async with asyncio.timeout(self.connect_timeout):
                while True:
                    waiter: asyncio.Future[Connection | None] = loop.create_future()
                    self.waiters.append(waiter)
                    try:
                        handed = await waiter
                    except BaseException:
                        if waiter.done() and not waiter.cancelled():
                            self._hand_back(waiter.result())
                        raise
                    if handed is not None:
                        return handed
                    if self.count < self.limit:  # a slot was freed: open a connection
                        self.count += 1
                        return await self._connect()
        except TimeoutError:
            raise PoolBusy("no free connection to the upstream in time") from None

    def _hand_back(self, connection: Connection | None) -> None:
        """A waiter was handed a connection (or a free slot) it will not use: pass it on."""
        if connection is not None:
            self.give_back(connection, True)
        else:
            self._wake_waiter(None)

    async def _connect(self) -> Connection:
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await self.loop.create_connection(
                    lambda: Connection(self),
                    self.host,
                    self.port,
                    ssl=self.tls,
                    server_hostname=self.host if self.tls else None,
                )
        except TimeoutError:
            self._freed()
            raise TimeoutError("connecting to the upstream timed out") from None
        except OSError as exc:
            self._freed()
            raise UpstreamError(f"cannot connect to the upstream: {exc}") from exc
        except BaseException:
            self._freed()
            raise
        return connection

    def give_back(self, connection: Connection, reusable: bool) -> None:
        """The connection's exchange is over: to the next waiter, the idle list, or gone."""
        if not reusable:
            self._forget(connection)
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return
        now = self.loop.time()
        connection.idle_since = now
        self.idle.append(connection)
        oldest = self.idle[0]
        if now - oldest.idle_since >= self.keepalive:  # quiet for long: let one go
            del self.idle[0]
            oldest.abort()
            self._forget(oldest)

    def forget_closed(self, connection: Connection) -> None:
        """The connection closed; an idle one leaves the pool at once."""
        if connection in self.idle:
            self.idle.remove(connection)
            self._forget(connection)

    def _forget(self, connection: Connection) -> None:
        if connection.counted:
            connection.counted = False
            self._freed()

    def _freed(self) -> None:
        self.count -= 1
        self._wake_waiter(None)

    def _wake_waiter(self, connection: Connection | None) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(connection)
                return

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for connection in self.idle:
            connection.abort()
        self.idle.clear()
