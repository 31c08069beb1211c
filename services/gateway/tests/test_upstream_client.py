"""The proxy's own HTTP/1.1 client (gateway.upstream) against scripted raw upstreams: framing,
keep-alive reuse, HEAD and informational answers, timeouts, the pool limit, failures, streamed
bodies both ways with backpressure."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from gateway.upstream import (
    HIGH_WATER,
    Connection,
    Upstream,
    UpstreamBroken,
    UpstreamError,
    UpstreamProtocolError,
)

from .support import GatewayFactory

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


class RawUpstream:
    """A TCP server on a spare loopback port, each connection handled by `handler`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None
        # Each accepted connection's handler task: closing the listener does not end them
        # (Python 3.11's Server.close leaves accepted connections open).
        self.handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawUpstream:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        for task in self.handlers:
            task.cancel()
        await asyncio.gather(*self.handlers, return_exceptions=True)
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self.handlers.discard(task)

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """One request: its head, and a Content-Length or chunked body."""
        head = await reader.readuntil(b"\r\n\r\n")
        body = b""
        lowered = head.lower()
        if b"content-length:" in lowered:
            length = int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
        elif b"transfer-encoding: chunked" in lowered:
            while True:
                size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        self.requests.append(head + body)
        return head + body


def pool(url: str, **overrides: float) -> Upstream:
    options: dict[str, float] = {
        "limit": 8,
        "keepalive": 3.0,
        "connect_timeout": 1.0,
        "read_timeout": 2.0,
        **overrides,
    }
    return Upstream(
        url,
        limit=int(options["limit"]),
        keepalive=options["keepalive"],
        connect_timeout=options["connect_timeout"],
        read_timeout=options["read_timeout"],
    )


async def body_of(connection: Connection) -> bytes:
    parts = []
    while (chunk := await connection.read_chunk()) is not None:
        parts.append(chunk)
    return b"".join(parts)


async def fetch(client: Upstream, method: str = "GET", target: bytes = b"/x") -> tuple[int, bytes]:
    connection = await client.request(method, target, b"x-test: 1\r\n", None)
    try:
        return connection.status, await body_of(connection)
    finally:
        connection.finish()


def keep_answering(answer: bytes) -> Callable[[RawUpstream], Handler]:
    def make(upstream: RawUpstream) -> Handler:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await upstream.read_request(reader)
                writer.write(answer)
                await writer.drain()

        return handler

    return make


async def serving(make: Callable[[RawUpstream], Handler]) -> RawUpstream:
    upstream = RawUpstream(lambda r, w: asyncio.sleep(0))
    upstream.handler = make(upstream)
    return upstream


async def test_keep_alive_connections_are_reused_and_requests_are_well_formed() -> None:
    async with await serving(keep_answering(OK)) as upstream:
        client = pool(upstream.url + "/prefix")
        for _ in range(3):
            assert await fetch(client, target=b"/a/b?q=%20") == (200, b"ok")
        assert upstream.connections == 1
        request = upstream.requests[0]
        assert request.startswith(b"GET /prefix/a/b?q=%20 HTTP/1.1\r\nhost: 127.0.0.1:")
        assert b"x-test: 1\r\n" in request
        assert b"content-length" not in request  # a GET without a body says nothing of one
        client.close()


async def test_bodies_of_known_length_chunked_and_until_close() -> None:
    chunked = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    )
    async with await serving(keep_answering(chunked)) as upstream:
        client = pool(upstream.url)
        assert await fetch(client) == (200, b"abcde")
        assert await fetch(client) == (200, b"abcde")
        assert upstream.connections == 1

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nall of ")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"it")
        await writer.drain()

    async with RawUpstream(until_close) as upstream:
        client = pool(upstream.url)
        assert await fetch(client) == (200, b"all of it")
        assert await fetch(client) == (200, b"all of it")
        assert upstream.connections == 2  # such an answer ends its connection


async def test_head_and_no_content_answers_have_no_body() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"
    async with await serving(keep_answering(head)) as upstream:
        client = pool(upstream.url)
        assert await fetch(client, "HEAD") == (200, b"")
        assert await fetch(client, "HEAD") == (200, b"")
        assert upstream.connections == 2  # never reused after HEAD: the parser expects a body
    async with await serving(keep_answering(b"HTTP/1.1 204 No Content\r\n\r\n")) as upstream:
        client = pool(upstream.url)
        assert await fetch(client, "DELETE") == (204, b"")
        assert await fetch(client, "DELETE") == (204, b"")
        assert upstream.connections == 1
        assert b"content-length: 0\r\n" in upstream.requests[0]


async def test_informational_answers_are_skipped() -> None:
    early = b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n" + OK
    async with await serving(keep_answering(early)) as upstream:
        client = pool(upstream.url)
        connection = await client.request("GET", b"/", b"", None)
        assert connection.status == 200
        assert connection.headers == [(b"content-length", b"2")]
        assert await body_of(connection) == b"ok"
        connection.finish()


async def test_header_names_are_lowercased() -> None:
    answer = b"HTTP/1.1 200 OK\r\nServer: leaky\r\nX-Thing: A\r\nContent-Length: 0\r\n\r\n"
    async with await serving(keep_answering(answer)) as upstream:
        client = pool(upstream.url)
        connection = await client.request("GET", b"/", b"", None)
        assert connection.headers == [
            (b"server", b"leaky"),
            (b"x-thing", b"A"),
            (b"content-length", b"0"),
        ]
        connection.finish()


async def test_silence_is_a_timeout_and_the_connection_is_dropped() -> None:
    upstream: RawUpstream

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if upstream.connections == 1:  # the first answer stops after its head, then none
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
            await writer.drain()
        await asyncio.sleep(5)

    async with RawUpstream(silent) as upstream:
        client = pool(upstream.url, read_timeout=0.3)
        connection = await client.request("GET", b"/", b"", None)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await body_of(connection)
        assert 0.2 < time.monotonic() - started < 3.0  # the timeout (0.3 s), not the 5 s silence
        connection.finish()
        assert client.count == 0
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await client.request("GET", b"/", b"", None)  # no head at all
        assert time.monotonic() - started < 3.0
        assert client.count == 0


async def test_each_exchange_is_timed_from_its_own_last_sign_of_life() -> None:
    """The pool times every exchange under way (one timer for them all): exchanges begun at
    different moments time out each read_timeout after its own start, an answered one never,
    and one begun after the others' timeout is timed anew."""
    answered = 0

    async def some_silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        while True:
            request = await reader.readuntil(b"\r\n\r\n")
            if b"/answer" in request:
                answered += 1
                writer.write(OK)
                await writer.drain()
            else:
                await asyncio.sleep(5)

    async with RawUpstream(some_silent) as upstream:
        client = pool(upstream.url, read_timeout=0.4)

        async def timed_out_after(delay: float) -> float:
            await asyncio.sleep(delay)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await client.request("GET", b"/silent", b"", None)
            return time.monotonic() - started

        async def answered_after(delay: float) -> tuple[int, bytes]:
            await asyncio.sleep(delay)
            return await fetch(client, target=b"/answer")

        first, second, ok, ok_later = await asyncio.gather(
            timed_out_after(0.0),
            timed_out_after(0.2),
            answered_after(0.1),
            answered_after(0.3),
        )
        for waited in (first, second):
            assert 0.35 < waited < 1.0
        assert ok == ok_later == (200, b"ok")
        assert answered == 2
        # Begun after the others timed out: the timer is set again for it.
        assert 0.35 < await timed_out_after(0.0) < 1.0
        assert await fetch(client, target=b"/answer") == (200, b"ok")
        assert not client.timed  # nothing under way is left timed
        client.close()


async def test_the_pool_limit_makes_requests_wait_within_the_connect_timeout() -> None:
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await reader.readuntil(b"\r\n\r\n")
            await release.wait()
            writer.write(OK)
            await writer.drain()

    async with RawUpstream(slow) as upstream:
        client = pool(upstream.url, limit=1, connect_timeout=0.3)
        first = asyncio.create_task(fetch(client))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await fetch(client)  # the one connection is busy past the connect timeout
        second = asyncio.create_task(fetch(client))
        await asyncio.sleep(0.05)
        release.set()
        assert await first == (200, b"ok")
        assert await second == (200, b"ok")  # handed the connection the first one released
        assert upstream.connections == 1
        assert client.count == 1


async def test_failures_before_and_during_an_answer() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    async with RawUpstream(hang_up) as upstream:
        client = pool(upstream.url)
        with pytest.raises(UpstreamError) as caught:
            await fetch(client)
        assert not isinstance(caught.value, UpstreamBroken)

    async def cut_short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this")
        await writer.drain()

    async with RawUpstream(cut_short) as upstream:
        client = pool(upstream.url)
        with pytest.raises(UpstreamBroken):
            await fetch(client)
        assert client.count == 0

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async with RawUpstream(garbage) as upstream:
        client = pool(upstream.url)
        with pytest.raises(UpstreamProtocolError):
            await fetch(client)

    client = pool("http://127.0.0.1:9")  # discard: nothing listens
    with pytest.raises(UpstreamError):
        await fetch(client)
    assert client.count == 0


async def test_stale_keep_alive_connections_leave_the_pool() -> None:
    async def once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)  # keep-alive by HTTP/1.1 default, then closed all the same
        await writer.drain()

    async with RawUpstream(once) as upstream:
        client = pool(upstream.url)
        assert await fetch(client) == (200, b"ok")
        await asyncio.sleep(0.1)  # the close arrives while the connection is idle
        assert client.idle == []
        assert await fetch(client) == (200, b"ok")
        assert upstream.connections == 2


async def test_idle_connections_are_not_reused_after_the_keepalive() -> None:
    async with await serving(keep_answering(OK)) as upstream:
        client = pool(upstream.url, keepalive=0.1)
        assert await fetch(client) == (200, b"ok")
        await asyncio.sleep(0.2)
        assert await fetch(client) == (200, b"ok")
        assert upstream.connections == 2
        assert client.count == 1


async def stream(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_request_bodies_buffered_and_streamed() -> None:
    async with await serving(keep_answering(OK)) as upstream:
        client = pool(upstream.url)
        bodies: list[tuple[bytes | AsyncIterator[bytes], int | None]] = [
            (b"whole", None),
            (stream([b"a" * 70_000, b"b" * 70_000]), 140_000),
            (stream([b"c" * 10, b"d" * 5]), None),
        ]
        for body, length in bodies:
            connection = await client.request("PUT", b"/up", b"", body, length=length)
            assert await body_of(connection) == b"ok"
            connection.finish()
        assert upstream.connections == 1
        first, second, third = upstream.requests
        assert first.endswith(b"content-length: 5\r\n\r\nwhole")
        assert b"content-length: 140000\r\n" in second
        assert second.endswith(b"a" * 70_000 + b"b" * 70_000)
        assert b"transfer-encoding: chunked\r\n" in third
        assert third.endswith(b"c" * 10 + b"d" * 5)


async def test_an_answer_before_the_whole_body_ends_the_upload() -> None:
    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 413 Too Large\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"z" * 65536
            await asyncio.sleep(0.01)

    async with RawUpstream(refuse) as upstream:
        client = pool(upstream.url)
        connection = await client.request("POST", b"/", b"", endless())
        assert connection.status == 413
        connection.finish()
        assert client.count == 0  # the body was cut short: the connection is not reused


async def test_large_answers_arrive_whole_through_backpressure() -> None:
    size = HIGH_WATER * 6
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size + b"w" * size
    async with await serving(keep_answering(answer)) as upstream:
        client = pool(upstream.url)
        connection = await client.request("GET", b"/", b"", None)
        received = 0
        while (chunk := await connection.read_chunk()) is not None:
            received += len(chunk)
            await asyncio.sleep(0.001)  # a slow client
        assert received == size
        connection.finish()
        assert await fetch(client) == (200, b"w" * size)
        assert upstream.connections == 1


async def test_upstream_urls_are_checked() -> None:
    for url in ("ftp://x", "http://", "http://u:p@host", "http://host/?q"):
        with pytest.raises(ValueError, match="upstream"):
            pool(url)


async def test_capitalised_hop_by_hop_banner_and_echoed_id_headers_are_not_relayed(
    make_gateway: GatewayFactory,
) -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\nServer: leaky/1.0\r\nX-Powered-By: secrets\r\n"
        b"Connection: close, X-Hop\r\nX-Hop: 1\r\nContent-Type: text/plain\r\n"
        b"X-Request-ID: req-echoed\r\nContent-Length: 2\r\n\r\nok"
    )
    async with await serving(keep_answering(answer)) as upstream:
        gateway = await make_gateway(auth_url=upstream.url)
        response = await gateway.post("/api/v1/auth/revoke", headers={"X-Request-ID": "req-1"})
        assert response.status_code == 200
        assert response.text == "ok"
        for name in ("server", "x-powered-by", "x-hop"):
            assert name not in response.headers, name
        assert response.headers.get("connection") != "close"
        # The service echoes the id it was sent; the answer carries it once, from the gateway.
        assert response.headers.get_list("x-request-id") == ["req-1"]
        assert b"x-request-id: req-1\r\n" in upstream.requests[0]


async def test_a_slow_but_steady_answer_is_no_timeout() -> None:
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        for _ in range(6):  # 0.9 s in all, never 0.3 s quiet
            await asyncio.sleep(0.15)
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with RawUpstream(trickle) as upstream:
        client = pool(upstream.url, read_timeout=0.3)
        assert await fetch(client) == (200, b"xxxxxx")


async def test_a_slow_reader_upstream_gets_the_whole_streamed_body() -> None:
    size = 8 * 1024 * 1024
    received = 0

    async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        await reader.readuntil(b"\r\n\r\n")
        while received < size:
            received += len(await reader.read(65536))
            await asyncio.sleep(0.0005)
        writer.write(OK)
        await writer.drain()

    async def parts() -> AsyncIterator[bytes]:
        for _ in range(size // 65536):
            yield b"p" * 65536

    async with RawUpstream(slow_reader) as upstream:
        client = pool(upstream.url, read_timeout=5.0)
        connection = await client.request("PUT", b"/", b"", parts(), length=size)
        assert connection.write_paused is False
        assert await body_of(connection) == b"ok"
        connection.finish()
        assert received == size


async def test_out_of_step_upstreams_lose_their_connection() -> None:
    switching = b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: x\r\n\r\n"
    async with await serving(keep_answering(switching)) as upstream:
        with pytest.raises(UpstreamProtocolError):
            await fetch(pool(upstream.url))

    async with await serving(keep_answering(OK + OK)) as upstream:  # two answers to one request
        client = pool(upstream.url)
        assert await fetch(client) == (200, b"ok")
        assert await fetch(client) == (200, b"ok")
        assert upstream.connections == 2

    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(OK)
        await asyncio.sleep(0.05)
        writer.write(b"HTTP/1.1 200 OK\r\n")  # to nobody: the connection is idle
        await writer.drain()
        await asyncio.sleep(1)

    async with RawUpstream(chatty) as upstream:
        client = pool(upstream.url)
        assert await fetch(client) == (200, b"ok")
        await asyncio.sleep(0.15)
        assert client.idle == []
        assert client.count == 0


async def test_the_longest_idle_connection_is_let_go_on_release() -> None:
    async with await serving(keep_answering(OK)) as upstream:
        client = pool(upstream.url, keepalive=0.2)
        first, second = await asyncio.gather(
            client.request("GET", b"/", b"", None), client.request("GET", b"/", b"", None)
        )
        await body_of(first)
        await body_of(second)
        first.finish()
        await asyncio.sleep(0.25)
        second.finish()  # the first has been idle past the keep-alive: it is closed
        assert client.idle == [second]
        assert client.count == 1


async def raw_exchange(url: str, request: bytes) -> tuple[bytes, bytes]:
    """The head and the raw body of one answer, read to the end of the connection (httpx's h11
    does not take transfer codings other than chunked)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    answer = await reader.read()  # `connection: close`: to the end
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return head, body


def dechunked(body: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out, body = out + body[:size], body[size + 2 :]


@pytest.mark.parametrize("transfer_encoding", [b"gzip, chunked", b"gzip,chunked", b"GZIP, Chunked"])
async def test_answers_with_a_coding_before_chunked_are_framed_by_chunked(
    transfer_encoding: bytes,
) -> None:
    coded = gzip.compress(b"hello, gzip")
    chunks = b"".join(b"%x\r\n%b\r\n" % (len(part), part) for part in (coded[:5], coded[5:]))
    answer = b"HTTP/1.1 200 OK\r\ntransfer-encoding: %b\r\n\r\n%b0\r\n\r\n" % (
        transfer_encoding,
        chunks,
    )
    async with await serving(keep_answering(answer)) as upstream:
        client = pool(upstream.url)
        assert await fetch(client) == (200, coded)
        assert await fetch(client) == (200, coded)
        assert upstream.connections == 1  # framed: the connection goes on
        client.close()


@pytest.mark.parametrize(
    "fields",
    [
        b"transfer-encoding: chunked, gzip\r\n",
        b"transfer-encoding: chunked\r\ntransfer-encoding: gzip\r\n",
    ],
)
async def test_answers_whose_last_coding_is_not_chunked_end_with_the_connection(
    fields: bytes,
) -> None:
    """RFC 9112 §6.3: chunked not the final coding, the answer is delimited by the close."""
    coded = gzip.compress(b"hello, gzip")

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n%b\r\n%b" % (fields, coded))
        await writer.drain()

    async with RawUpstream(until_close) as upstream:
        client = pool(upstream.url)
        assert await fetch(client) == (200, coded)
        client.close()


@pytest.mark.parametrize(
    ("transfer_encoding", "relayed"),
    [(b"gzip, chunked", b"gzip"), (b"x-custom, gzip, chunked", b"x-custom, gzip")],
)
async def test_a_transfer_coding_before_chunked_reaches_the_client(
    make_gateway: GatewayFactory, transfer_encoding: bytes, relayed: bytes
) -> None:
    coded = gzip.compress(b"hello, gzip")
    answer = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: %b\r\n\r\n"
        b"%x\r\n%b\r\n0\r\n\r\n" % (transfer_encoding, len(coded), coded)
    )
    async with await serving(keep_answering(answer)) as upstream:
        gateway = await make_gateway(auth_url=upstream.url)
        head, body = await raw_exchange(
            str(gateway.base_url),
            b"POST /api/v1/auth/revoke HTTP/1.1\r\nhost: gatehouse.test\r\n"
            b"content-length: 0\r\nconnection: close\r\n\r\n",
        )
    lines = head.lower().split(b"\r\n")
    assert lines[0] == b"http/1.1 200 ok"
    codings = b", ".join(
        line.split(b":", 1)[1].strip() for line in lines if line.startswith(b"transfer-encoding:")
    )
    assert codings == relayed + b", chunked"  # the gateway frames it by chunked again
    assert not any(line.startswith(b"content-length:") for line in lines)
    assert dechunked(body) == coded
