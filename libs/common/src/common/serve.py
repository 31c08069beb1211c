"""Run a service under uvicorn with graceful shutdown.

On SIGTERM/SIGINT the app is marked draining (its `/ready` answers 503 at once, so load balancers
stop sending), then uvicorn stops accepting, finishes in-flight requests within the grace period,
and runs the lifespan shutdown that closes pools and consumers.

uvicorn writes a response's head and its body as two writes (two send syscalls, the socket being
idle); `CoalescingHttpTools` hands its protocol a transport that joins the writes made in one turn
of the event loop, and its `LeanCycle` writes a sized answer's head with its body, at once, in
one; it checks an answer's head for forbidden bytes in one pass over its names and one over its
values. The keep-alive of a server's idle connections is timed by one timer (`KeepAliveWatch`),
where uvicorn sets a timer after every answer and cancels it at the next request: the same
timeout, closed at the same time. An app can have some of its requests answered from the
protocol, in front of its ASGI stack (`answer_directly`: the gateway's proxied routes). A
service's server freezes the heap its startup built once the lifespan has started
(`freeze_startup_heap`).
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import weakref
from types import FrameType
from typing import Any, Protocol

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Scope
from uvicorn._types import ASGI3Application, ASGISendEvent
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string
from uvicorn.server import ServerState

from common.state import runtime_of

GRACEFUL_SHUTDOWN_SECONDS = 20


class CoalescingTransport:
    """`transport` whose writes of one event-loop turn go out as one, at the end of the turn
    (or before a close); everything else is the transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        # Asked once per request (uvicorn's response completion): not through __getattr__.
        self.is_closing = transport.is_closing

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(b"".join(pending))

    def write_now(self, data: bytes) -> None:
        """`data` at once, after what this turn wrote before it (one write for both)."""
        if self._pending:
            self._pending.append(data)
            self._flush()
        elif not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class KeepAliveWatch:
    """The keep-alive timeout of a server's idle connections, with one timer for them all.

    A connection is watched from the end of an answer until its next request (or its end). All
    share one timeout, so they are due in the order they were watched (a dict keeps that order):
    the one timer is due when the first is, and closes every connection due by then."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self.loop = loop
        self.timeout = timeout
        self.idle: dict[CoalescingHttpTools, float] = {}  # → when it is due, earliest first
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, protocol: CoalescingHttpTools) -> None:
        self.idle.pop(protocol, None)
        due = self.loop.time() + self.timeout
        self.idle[protocol] = due
        if self._timer is None:
            self._timer = self.loop.call_at(due, self._expire)

    def forget(self, protocol: CoalescingHttpTools) -> None:
        self.idle.pop(protocol, None)

    def _expire(self) -> None:
        self._timer = None
        now = self.loop.time()
        while self.idle:
            protocol, due = next(iter(self.idle.items()))
            if due > now:
                self._timer = self.loop.call_at(due, self._expire)
                return
            del self.idle[protocol]
            protocol.timeout_keep_alive_handler()


_KEEP_ALIVE: weakref.WeakKeyDictionary[ServerState, KeepAliveWatch] = weakref.WeakKeyDictionary()


# The bytes uvicorn refuses in a header name and in a value, taken from its own patterns.
BAD_NAME_BYTES = bytes(byte for byte in range(256) if HEADER_RE.match(bytes([byte])))
BAD_VALUE_BYTES = bytes(byte for byte in range(256) if HEADER_VALUE_RE.match(bytes([byte])))


def holds_any(data: bytes, refused: bytes) -> bool:
    """Whether `data` holds one of the `refused` bytes (one pass in C: `translate` deletes them;
    uvicorn's character-class search costs several times more per byte)."""
    return len(data.translate(None, refused)) != len(data)


class LeanCycle(RequestResponseCycle):
    """uvicorn's request-response cycle, the answer's head built by `_head`. A sized
    answer's head (Content-Length) is held until the first body message and written with it in
    one write, straight to the socket (`CoalescingTransport.write_now`, no callback at the end of
    the turn); a streamed answer's goes at once. The body's framing, keep-alive and completion
    are uvicorn's rules (RequestResponseCycle.send), as are its errors."""

    head = b""  # the answer's head, until the first body message takes it along

    async def send(self, message: ASGISendEvent) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(
                    f"Expected ASGI message 'http.response.start', but got '{message['type']}'."
                )
            self.response_started = True
            self.waiting_for_100_continue = False
            status_code = message["status"]
            headers = self.default_headers + list(message.get("headers", []))
            if self.access_log:  # off in every service (server_for); uvicorn's line otherwise
                self.access_logger.info(
                    '%s - "%s %s HTTP/%s" %d',
                    get_client_addr(self.scope),
                    self.scope["method"],
                    get_path_with_query_string(self.scope),
                    self.scope["http_version"],
                    status_code,
                )
            head = self._head(status_code, headers)
            if self.chunked_encoding is False:  # a sized answer: its body follows, held for it
                self.head = head
            else:  # streamed: the head goes at once (with what else this turn writes)
                self.transport.write(head)
            return
        if self.response_complete:
            raise RuntimeError(
                f"Unexpected ASGI message '{message['type']}' sent, "
                "after response already completed."
            )
        if message["type"] != "http.response.body":
            raise RuntimeError(
                f"Expected ASGI message 'http.response.body', but got '{message['type']}'."
            )
        body: bytes = message.get("body", b"")
        more_body = message.get("more_body", False)
        head, self.head = self.head, b""
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            out = head
        elif self.chunked_encoding:
            out = (head + b"%x\r\n%b\r\n" % (len(body), body)) if body else head
            if not more_body:
                out += b"0\r\n\r\n"
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            out = head + body
        if out:
            self.transport.write_now(out)  # type: ignore[attr-defined]
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()

    def _head(self, status_code: int, headers: list[tuple[bytes, bytes]]) -> bytes:
        """The answer's head as uvicorn writes it, the cycle's framing and keep-alive set from
        its fields as uvicorn sets them: all the header names checked in one pass and all the
        values in another (a forbidden byte is in the join exactly when it is in one of them),
        where uvicorn runs two regular-expression searches per header; the same RuntimeError
        for a bad name or value."""
        if holds_any(b"".join([name for name, _ in headers]), BAD_NAME_BYTES):
            raise RuntimeError("Invalid HTTP header name.")
        if holds_any(b"".join([value for _, value in headers]), BAD_VALUE_BYTES):
            raise RuntimeError("Invalid HTTP header value.")
        content = [STATUS_LINE[status_code]]
        has_connection_close = False
        for name, value in headers:
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
                if b"close" in connection:
                    self.keep_alive = False
                    has_connection_close = True
            content.extend([name, b": ", value, b"\r\n"])
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if (
            self.chunked_encoding is None
            and self.scope["method"] != "HEAD"
            and status_code not in (204, 304)
        ):
            self.chunked_encoding = True  # neither Content-Length nor Transfer-Encoding
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        return b"".join(content)


class DirectAnswers(Protocol):
    """Requests an app answers in front of its ASGI stack (`answer_directly`)."""

    def answerer(self, scope: Scope) -> ASGIApp | None:
        """What answers this request (an ASGI callable, given uvicorn's scope, receive and
        send), or None: the app."""


# app → its direct answers; the app's lifetime, no longer.
_DIRECT: weakref.WeakKeyDictionary[object, DirectAnswers] = weakref.WeakKeyDictionary()


def answer_directly(app: object, answers: DirectAnswers) -> None:
    """Served by `config_for`, `app`'s requests that `answers` picks go to what it names, from
    the server's protocol, not through `app`: the app's own layers (Starlette's entry, its
    middleware) then cost such a request nothing. The answerer must do itself whatever of them
    its requests need."""
    _DIRECT[app] = answers


class CoalescingHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol on a `CoalescingTransport`, its answers' heads written by
    `LeanCycle`, its keep-alive timed by its server's `KeepAliveWatch`, and its app's direct
    answers (`answer_directly`) started in the app's place."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing: Any = CoalescingTransport(transport, self.loop)
        super().connection_made(coalescing)
        watch = _KEEP_ALIVE.get(self.server_state)
        if watch is None or watch.loop is not self.loop:
            watch = _KEEP_ALIVE[self.server_state] = KeepAliveWatch(
                self.loop, self.timeout_keep_alive
            )
        self.keep_alive_watch = watch
        self.direct = _DIRECT.get(self.app)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        cycle.__class__ = LeanCycle  # uvicorn's cycle, its `send` LeanCycle's (no other state)
        if self.direct is not None and app is self.app:  # not uvicorn's own 503 app
            # uvicorn's HTTPScope is a Scope, typed apart (typing.cast: a call per request).
            answerer = self.direct.answerer(cycle.scope)  # type: ignore[arg-type]
            if answerer is not None:
                app = answerer  # type: ignore[assignment]
        super()._start_asgi_task(cycle, app)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.keep_alive_watch.forget(self)

    def _unset_keepalive_if_required(self) -> None:
        self.keep_alive_watch.forget(self)

    def on_response_complete(self) -> None:
        """uvicorn's, but for the keep-alive timer: the watch's."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:  # pipelined requests: the next one starts
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.keep_alive_watch.watch(self)


def freeze_startup_heap() -> None:
    """Collect what starting up left in cycles, then move every object alive now (modules,
    models, routes, templates, the pools and caches the lifespan built) out of the garbage
    collector's sight, for good (`gc.freeze`). A full collection otherwise walks them all,
    though they live as long as the process: measured, a pause of about 100 ms in users every
    few seconds under load (the p99 of `GET /me`), about a tenth of its CPU. Objects made later
    are collected as before."""
    gc.collect()
    gc.freeze()


class DrainingServer(uvicorn.Server):
    """`freeze_heap`: once the lifespan has started, `freeze_startup_heap` (a service's process;
    not a test's, which starts many servers in one process)."""

    def __init__(self, config: uvicorn.Config, app: FastAPI, freeze_heap: bool = False) -> None:
        super().__init__(config)
        self._app = app
        self._freeze_heap = freeze_heap

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self._freeze_heap and not self.should_exit:  # should_exit: the startup failed
            freeze_startup_heap()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        runtime_of(self._app).draining = True
        super().handle_exit(sig, frame)


def config_for(app: ASGIApp, host: str, port: int) -> uvicorn.Config:
    """How every service is served: uvloop and httptools on `CoalescingHttpTools`, no access
    log, no Server or Date header, the lifespan run, a graceful shutdown's grace period."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        proxy_headers=False,
        lifespan="on",
        http=CoalescingHttpTools,
    )


def server_for(app: FastAPI, host: str, port: int, freeze_heap: bool = False) -> DrainingServer:
    return DrainingServer(config_for(app, host, port), app, freeze_heap)


def port_from_env(variable: str, default: int) -> int:
    return int(os.environ.get(variable, default))


def serve(app: FastAPI, host: str, port: int) -> None:
    server_for(app, host, port, freeze_heap=True).run()
