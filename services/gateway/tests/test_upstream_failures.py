"""Upstreams that hang, are down, or come back: 504 / 503 within bounds, and the breaker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from common.testing import TokenFactory

from .conftest import GatewayFactory, bearer
from .upstream import Served

pytestmark = pytest.mark.fault


async def test_hanging_upstream_is_504_within_the_timeout(
    make_gateway: GatewayFactory, tokens: TokenFactory, upstreams: dict[str, Served]
) -> None:
    gateway = await make_gateway(upstream_read_timeout=0.5)
    upstreams["users"].app.state.hang = 5.0
    started = time.monotonic()
    response = await gateway.get("/api/v1/users/hang", headers=bearer(tokens))
    assert response.status_code == 504
    assert time.monotonic() - started < 2.0
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_down_upstream_is_503_and_the_breaker_opens_then_closes(
    make_gateway: GatewayFactory, tokens: TokenFactory, upstreams: dict[str, Served]
) -> None:
    gateway = await make_gateway(breaker_failures=3, breaker_open_seconds=0.5)
    users = upstreams["users"]
    await users.stop()
    statuses = [
        (await gateway.get("/api/v1/users/me", headers=bearer(tokens))).status_code
        for _ in range(5)
    ]
    assert statuses == [503] * 5
    metrics = (await gateway.get("/metrics")).text
    assert 'gatehouse_gateway_circuit_open{upstream="users"} 1.0' in metrics
    assert 'kind="circuit_open"' in metrics
    # auth is unaffected by the users breaker.
    assert (await gateway.post("/api/v1/auth/revoke")).status_code == 200
    await users.start()
    await asyncio.sleep(0.6)  # the breaker lets a probe through, which succeeds
    assert (await gateway.get("/api/v1/users/me", headers=bearer(tokens))).status_code == 200
    metrics = (await gateway.get("/metrics")).text
    assert 'gatehouse_gateway_circuit_open{upstream="users"} 0.0' in metrics


async def test_body_limits(make_gateway: GatewayFactory, upstreams: dict[str, Served]) -> None:
    gateway = await make_gateway(max_body_bytes=2048)
    before = upstreams["users"].app.state.calls
    too_big = await gateway.post("/api/v1/users/", content=b"x" * 4096)
    assert too_big.status_code == 413
    assert upstreams["users"].app.state.calls == before

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 1024

    streamed = await gateway.post("/api/v1/users/", content=chunks())  # chunked, no length
    assert streamed.status_code == 413
    ok = await gateway.post("/api/v1/users/", content=b"z" * 1000)
    assert ok.status_code == 200
    assert ok.json()["body_length"] == 1000


async def test_login_bodies_are_bounded(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(
        "/api/v1/auth/login",
        content=b"username=" + b"a" * 20_000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 413
