"""Doubles of auth and users on loopback ports: they echo what reached them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def echo_app(name: str) -> FastAPI:
    app = FastAPI(openapi_url="/openapi.json")
    app.state.calls = 0
    app.state.hang = 0.0

    @app.post("/api/v1/auth/login", summary="Log in")
    async def login(request: Request) -> dict[str, Any]:
        app.state.calls += 1
        form = await request.form()
        return {"access_token": "t", "token_type": "bearer", "username": form.get("username")}

    @app.get("/internal/v1/secret", summary="Internal")
    async def secret() -> dict[str, str]:
        return {"secret": "never through the gateway"}

    @app.api_route(
        "/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False
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
    """An ASGI app under uvicorn on a spare loopback port, inside the test's event loop."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_config=None,
                lifespan="on",
                server_header=False,
                date_header=False,
                proxy_headers=False,
            )
        )
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
