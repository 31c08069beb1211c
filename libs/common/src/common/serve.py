"""Run a service under uvicorn with graceful shutdown.

On SIGTERM/SIGINT the app is marked draining (its `/ready` answers 503 at once, so load balancers
stop sending), then uvicorn stops accepting, finishes in-flight requests within the grace period,
and runs the lifespan shutdown that closes pools and consumers.

uvicorn writes a response's head and its body as two writes (two send syscalls, the socket being
idle); `CoalescingHttpTools` hands its protocol a transport that joins the writes made in one turn
of the event loop, so a whole small answer leaves in one.
"""

from __future__ import annotations

import asyncio
import os
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from common.state import runtime_of

GRACEFUL_SHUTDOWN_SECONDS = 20


class CoalescingTransport:
    """`transport` whose writes of one event-loop turn go out as one, at the end of the turn
    (or before a close); everything else is the transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol on a `CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        coalescing: Any = CoalescingTransport(transport, self.loop)
        super().connection_made(coalescing)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        runtime_of(self._app).draining = True
        super().handle_exit(sig, frame)


def server_for(app: FastAPI, host: str, port: int) -> DrainingServer:
    config = uvicorn.Config(
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
    return DrainingServer(config, app)


def port_from_env(variable: str, default: int) -> int:
    return int(os.environ.get(variable, default))


def serve(app: FastAPI, host: str, port: int) -> None:
    server_for(app, host, port).run()
