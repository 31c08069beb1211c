"""common.serve: a service's server freezes the heap its startup built (`freeze_startup_heap`),
once the lifespan has started and before the first request; a test's servers do not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace

import httpx
import pytest
from common import serve
from common.serve import DrainingServer, server_for
from common.testing import free_port
from fastapi import FastAPI


def recording_app(events: list[str]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        events.append("lifespan started")
        yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        events.append("request")
        return {"ping": "pong"}

    return app


def recording_gc(monkeypatch: pytest.MonkeyPatch, events: list[str]) -> None:
    """serve's `gc`, recorded: the test process's own heap is left as it is."""

    def collect() -> int:
        events.append("collect")
        return 0

    monkeypatch.setattr(
        serve, "gc", SimpleNamespace(collect=collect, freeze=lambda: events.append("freeze"))
    )


@pytest.mark.parametrize("freeze_heap", [True, False], ids=["service", "test"])
async def test_the_heap_is_frozen_after_the_lifespan_started_and_before_a_request(
    monkeypatch: pytest.MonkeyPatch, freeze_heap: bool
) -> None:
    events: list[str] = []
    recording_gc(monkeypatch, events)
    app = recording_app(events)
    port = free_port()
    server = DrainingServer(serve.config_for(app, "127.0.0.1", port), app, freeze_heap)
    running = asyncio.create_task(server.serve())
    try:
        for _ in range(1000):  # up to 10 s
            if server.started:
                break
            await asyncio.sleep(0.01)
        assert server.started
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/ping")).status_code == 200
    finally:
        server.should_exit = True
        await running
    frozen = ["collect", "freeze"] if freeze_heap else []
    assert events == ["lifespan started", *frozen, "request"]


def test_a_service_is_served_with_its_heap_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """`serve` (what `python -m <service> serve` runs) is the one that freezes."""
    ran: list[bool] = []
    monkeypatch.setattr(DrainingServer, "run", lambda self: ran.append(self._freeze_heap))
    serve.serve(FastAPI(), "127.0.0.1", free_port())
    assert ran == [True]
    assert server_for(FastAPI(), "127.0.0.1", free_port())._freeze_heap is False
