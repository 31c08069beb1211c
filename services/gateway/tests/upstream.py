"""Doubles of auth and users on loopback ports: they echo what reached them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from common.serve import config_for
from common.testing import free_port
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse


def echo_app(name: str, jwks: dict[str, Any] | None = None) -> FastAPI:
    """An upstream that answers with what reached it; with `jwks`, auth's key set as well."""
    app = FastAPI(openapi_url="/openapi.json")
    app.state.calls = 0
    app.state.hang = 0.0
    app.state.jwks_fetches = 0

    if jwks is not None:

        @app.get("/.well-known/jwks.json", summary="Key set")
        async def key_set() -> dict[str, Any]:
            app.state.jwks_fetches += 1
            return jwks

    @app.post("/api/v1/auth/login", summary="Log in")
    async def login(request: Request) -> dict[str, Any]:
        app.state.calls += 1
        form = await request.form()
        return {"access_token": "t", "token_type": "bearer", "username": form.get("username")}

    @app.get("/internal/v1/secret", summary="Internal")
    async def secret() -> dict[str, str]:
        return {"secret": "never through the gateway"}

    @app.api_route(
        "/{path:path}",
        methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def echo(request: Request, path: str) -> Response:
        app.state.calls += 1
        if path.endswith("hang"):
            await asyncio.sleep(app.state.hang or 30)
        if path.endswith("redirect"):
            return RedirectResponse("http://elsewhere.example/next", status_code=302)
        if path.endswith("stream"):

            async def chunks() -> AsyncIterator[bytes]:
                for i in range(50):
                    yield f"chunk {i}\n".encode()

            return StreamingResponse(chunks(), media_type="text/plain")
        body = await request.body()
        return JSONResponse(
            {
                "service": name,
                "method": request.method,
                "path": request.url.path,
                "raw_path": request.scope.get("raw_path", b"").decode("latin-1"),
                "query": request.url.query,
                "headers": {k: v for k, v in request.headers.items()},
                "body_length": len(body),
            },
            headers={"server": "leaky/1.0", "x-powered-by": "secrets"},
        )

    return app


class Served:
    """An ASGI app under uvicorn on a spare loopback port, inside the test's event loop, served
    as `python -m <service> serve` serves it (common.serve.config_for)."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        # Served as the services are (common.serve: its protocol, its cycle, the gateway's
        # direct answers), on the test's loop.
        self.server = uvicorn.Server(config_for(app, "127.0.0.1", self.port))
        self.task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self.task.done():
                await self.task
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.server.should_exit = True
        if self.task is not None:
            await self.task
        self.server = uvicorn.Server(self.server.config)
        self.server.config.loaded = False


class DroppingUpstream:
    """A raw TCP upstream that closes its first `drops` connections without a word (a connection
    failure the gateway may retry), then answers each request with 200 and closes.

    With `request_id`, only connections whose request carries that X-Request-ID are the test's:
    they are read, then dropped or answered, and counted in `connections`; any other connection
    is closed unanswered and counted in `strangers` only. Its port is the machine's, picked
    free a moment before: a client that was talking to whatever had it last (a breaker probe,
    in this session or in another suite running beside it) may connect to it, and must not
    spend a drop meant for the gateway under test."""

    def __init__(self, drops: int, request_id: str | None = None) -> None:
        self.drops = drops
        self.request_id = request_id
        self.port = free_port()
        self.connections = 0
        self.strangers = 0
        self.answered = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def _is_ours(self, head: bytes) -> bool:
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"x-request-id":
                return value.strip().decode("latin-1") == self.request_id
        return False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = b""
            if self.request_id is not None:
                try:
                    async with asyncio.timeout(5):
                        head = await reader.readuntil(b"\r\n\r\n")
                except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    self.strangers += 1
                    return
                if not self._is_ours(head):
                    self.strangers += 1
                    return
            self.connections += 1
            if self.connections <= self.drops:
                return
            if not head:
                head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            self.answered += 1
            body = b'{"answered": true}'
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
        finally:
            writer.close()
