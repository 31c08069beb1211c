"""common.serve's transport: a response's writes of one event-loop turn leave as one."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from common.serve import (
    CoalescingHttpTools,
    CoalescingTransport,
    LeanCycle,
    answer_directly,
    server_for,
)
from common.testing import free_port
from fastapi import FastAPI
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle


class Recorded:
    """A transport double: what was written, and whether it was closed."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    write_now = write  # CoalescingTransport's: at once

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None


async def test_the_writes_of_one_turn_leave_in_one_write_in_order() -> None:
    inner = Recorded()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"body")
    assert inner.writes == []
    await asyncio.sleep(0)
    assert inner.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert inner.writes[1:] == [b"next"]
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)  # the rest is the transport's


async def test_a_close_sends_what_was_written_first() -> None:
    inner = Recorded()
    transport = CoalescingTransport(inner, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"the last answer")
    transport.close()
    assert inner.writes == [b"the last answer"]
    assert inner.closed
    await asyncio.sleep(0)
    assert inner.writes == [b"the last answer"]  # nothing twice


def test_services_are_served_on_it() -> None:
    """(The graceful-shutdown tests answer real requests through it.)"""
    assert server_for(FastAPI(), "127.0.0.1", 0).config.http is CoalescingHttpTools


# method, status, head, keep-alive, the body (as one message)
HEADS: list[tuple[str, int, list[tuple[bytes, bytes]], bool, bytes]] = [
    ("GET", 200, [(b"content-type", b"application/json"), (b"content-length", b"2")], True, b"{}"),
    (
        "GET",
        200,
        [(b"Content-Length", b"2"), (b"X-Thing", b"a\tb"), (b"vary", b"Origin")],
        True,
        b"ok",
    ),
    ("GET", 200, [(b"transfer-encoding", b"chunked")], True, b"chunk"),
    ("GET", 200, [(b"x-a", b"1")], True, b"chunk"),  # no framing: chunked added
    ("HEAD", 200, [(b"x-a", b"1")], True, b""),
    ("GET", 204, [], True, b""),
    ("GET", 304, [(b"etag", b'"x"')], True, b""),
    ("GET", 200, [(b"content-length", b"0"), (b"connection", b"keep-alive, Close")], True, b""),
    ("GET", 200, [(b"content-length", b"0")], False, b""),  # HTTP/1.0 or a closing request
    ("GET", 200, [(b"content-length", b"1"), (b"content-length", b"2")], True, b"1"),
]
BAD_HEADS = [
    [(b"x-ok", b"1"), (b"bad name", b"1")],
    [(b"x-ok", b"1"), (b"x-bad", b"line\r\nbreak")],
    [(b"x-bad", b"nul\x00")],
    [(b"x:bad", b"1")],
]


def cycle_of(
    cls: type[RequestResponseCycle], method: str, keep_alive: bool
) -> tuple[RequestResponseCycle, Recorded]:
    transport = Recorded()
    scope: Any = {"method": method, "http_version": "1.1", "path": "/", "query_string": b""}
    cycle = cls(
        scope=scope,
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=False,
        default_headers=[(b"server", b"t")],
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: None,
    )
    return cycle, transport


async def test_the_lean_cycle_writes_uvicorns_head_and_refuses_what_it_refuses() -> None:
    """common.serve.LeanCycle checks a head's names and values at once: the same bytes out,
    the same framing state, the same error for a bad name or value."""
    for method, status, headers, keep_alive, body in HEADS:
        written = []
        for cls in (RequestResponseCycle, LeanCycle):
            cycle, transport = cycle_of(cls, method, keep_alive)
            start: Any = {"type": "http.response.start", "status": status, "headers": headers}
            await cycle.send(start)
            state = (cycle.keep_alive, cycle.chunked_encoding, cycle.expected_content_length)
            await cycle.send({"type": "http.response.body", "body": body})
            written.append((b"".join(transport.writes), state, cycle.response_complete))
        assert written[0] == written[1], headers
    for headers in BAD_HEADS:
        errors = []
        for cls in (RequestResponseCycle, LeanCycle):
            cycle, transport = cycle_of(cls, "GET", True)
            start = {"type": "http.response.start", "status": 200, "headers": headers}
            with pytest.raises(RuntimeError) as raised:
                await cycle.send(start)
            errors.append((str(raised.value), transport.writes))
        assert errors[0] == errors[1], headers


async def test_a_sized_answer_leaves_in_one_write_a_streamed_head_at_once() -> None:
    sized, transport = cycle_of(LeanCycle, "GET", True)
    start: Any = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-length", b"2")],
    }
    await sized.send(start)
    assert transport.writes == []  # held for its body
    await sized.send({"type": "http.response.body", "body": b"{}"})
    assert transport.writes == [b"HTTP/1.1 200 OK\r\nserver: t\r\ncontent-length: 2\r\n\r\n{}"]
    streamed, transport = cycle_of(LeanCycle, "GET", True)
    await streamed.send({"type": "http.response.start", "status": 200, "headers": []})
    assert transport.writes == [
        b"HTTP/1.1 200 OK\r\nserver: t\r\ntransfer-encoding: chunked\r\n\r\n"
    ]
    await streamed.send({"type": "http.response.body", "body": b"a", "more_body": True})
    await streamed.send({"type": "http.response.body", "body": b""})
    assert transport.writes[1:] == [b"1\r\na\r\n", b"0\r\n\r\n"]


@asynccontextmanager
async def serving(app: FastAPI, keep_alive: float | None = None) -> AsyncIterator[int]:
    """`app` served by `server_for` on a free loopback port (its port), started (up to 10 s)
    and stopped around the block."""
    port = free_port()
    server = server_for(app, "127.0.0.1", port)
    if keep_alive is not None:
        server.config.timeout_keep_alive = keep_alive  # type: ignore[assignment]  # any number
    server.config.lifespan = "off"
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(1000):
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        yield port
    finally:
        server.should_exit = True
        await serving


@asynccontextmanager
async def serving_ping(keep_alive: float | None = None) -> AsyncIterator[int]:
    """A `GET /ping` app, `serving`."""
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"ping": "pong"}

    async with serving(app, keep_alive) as port:
        yield port


async def test_services_answer_through_the_lean_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    """A whole exchange through server_for's protocol: head and body as uvicorn writes them,
    sent by LeanCycle."""
    sent: list[str] = []
    lean_send = LeanCycle.send

    async def recorded(self: LeanCycle, message: Any) -> None:
        sent.append(message["type"])
        await lean_send(self, message)

    monkeypatch.setattr(LeanCycle, "send", recorded)
    async with serving_ping() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ping HTTP/1.1\r\nhost: t\r\n\r\n")
        answer = await reader.readuntil(b'pong"}')
        assert answer == (
            b"HTTP/1.1 200 OK\r\ncontent-length: 15\r\ncontent-type: application/json\r\n"
            b'\r\n{"ping":"pong"}'
        )
        assert sent == ["http.response.start", "http.response.body"]
        writer.close()


async def test_idle_connections_are_closed_after_the_keep_alive_and_busy_ones_are_not() -> None:
    """One timer for a server's idle connections (common.serve.KeepAliveWatch): each closes
    its keep-alive timeout after its last answer, not before; one still asking stays open."""
    request = b"GET /ping HTTP/1.1\r\nhost: t\r\n\r\n"
    async with serving_ping(keep_alive=0.4) as port:  # seconds: any number

        async def answered(writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK")
            await reader.readexactly(int(head.lower().split(b"content-length: ")[1][:2]))

        async def closed_after(delay: float) -> float:
            await asyncio.sleep(delay)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            await answered(writer, reader)
            idle_from = time.monotonic()
            assert await reader.read(1) == b""  # the server closes it
            writer.close()
            return time.monotonic() - idle_from

        async def asking() -> bool:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(8):  # 1.2 s in all, never 0.4 s idle
                await answered(writer, reader)
                await asyncio.sleep(0.15)
            await answered(writer, reader)
            writer.close()
            return True

        async with asyncio.timeout(10):
            first, second, third, steady = await asyncio.gather(
                closed_after(0.0), closed_after(0.1), closed_after(0.25), asking()
            )
        for idle in (first, second, third):
            assert 0.35 < idle < 1.0
        assert steady
        # After all were closed: a new connection is timed anew.
        assert 0.35 < await closed_after(0.0) < 1.0


class Answers:
    """Direct answers for `GET /direct`, recording the scopes it was asked about."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def answerer(self, scope: Any) -> Any:
        self.asked.append(scope["path"])
        return self.direct if scope["path"] == "/direct" else None

    async def direct(self, scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.request"
        body = f"direct {scope['method']} {scope['query_string'].decode()}".encode()
        headers = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


async def test_direct_answers_go_in_front_of_the_app_and_the_rest_through_it() -> None:
    """common.serve.answer_directly: the requests the answers pick skip the app and its
    middleware; every other goes through them, on the same connection, in order."""
    app = FastAPI()
    through_app: list[str] = []

    @app.middleware("http")
    async def record(request: Any, call_next: Any) -> Any:
        through_app.append(request.url.path)
        return await call_next(request)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"ping": "pong"}

    answers = Answers()
    answer_directly(app, answers)
    async with serving(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            # Pipelined: a direct answer, one of the app's, a direct one again.
            writer.write(
                b"GET /direct?a=1 HTTP/1.1\r\nhost: t\r\n\r\n"
                b"GET /ping HTTP/1.1\r\nhost: t\r\n\r\n"
                b"HEAD /direct HTTP/1.1\r\nhost: t\r\n\r\n"
            )
            async with asyncio.timeout(10):
                first = await reader.readuntil(b"direct GET a=1")
                second = await reader.readuntil(b'pong"}')
                third = await reader.readuntil(b"\r\n\r\n")
        finally:
            writer.close()
        assert first == b"HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\ndirect GET a=1"
        assert second.endswith(b'\r\n\r\n{"ping":"pong"}')
        # HEAD: the length of "direct HEAD ", no body
        assert third == b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\n\r\n"
        assert answers.asked == ["/direct", "/ping", "/direct"]
        assert through_app == ["/ping"]
