"""Clients that send their bodies slowly cannot hold upstream connections (API.md §11): small
bodies are read whole, within CLIENT_BODY_TIMEOUT, before a connection is taken; large ones are
capped per client IP and must keep a pace; a client's stalls and waits for a free connection never
count as upstream failures for the circuit breaker. Real sockets trickle the bodies."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from common.testing import TokenFactory

from .support import GatewayClient, GatewayFactory, bearer
from .upstream import Served

pytestmark = pytest.mark.fault

ME = "/api/v1/users/me"


async def circuit_open(gateway: GatewayClient, upstream: str = "users") -> bool:
    metrics = (await gateway.get("/metrics")).text
    return f'gatehouse_gateway_circuit_open{{upstream="{upstream}"}} 1.0' in metrics


@contextlib.asynccontextmanager
async def raw_connection(
    gateway: GatewayClient,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A socket from the gateway client's own address (so it shares its per-IP counters)."""
    port = gateway.base_url.port
    assert port is not None
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(gateway.source, 0)
    )
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def head(path: str, framing: str, token: str | None = None) -> bytes:
    auth = f"authorization: Bearer {token}\r\n" if token else ""
    return (
        f"PUT {path} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/octet-stream\r\n"
        f"{auth}{framing}\r\n\r\n"
    ).encode()


async def status_of(reader: asyncio.StreamReader, within: float) -> int:
    line = await asyncio.wait_for(reader.readline(), within)
    return int(line.split()[1])


async def test_a_stalled_small_body_is_408_and_never_reaches_the_upstream(
    make_gateway: GatewayFactory, tokens: TokenFactory, upstreams: dict[str, Served]
) -> None:
    gateway = await make_gateway(client_body_timeout=0.5)
    token = tokens.access_token("0b6f7c4e-4c1e-4f53-9a38-6f0c5d0f0a11")
    before = upstreams["users"].app.state.calls
    async with raw_connection(gateway) as (reader, writer):
        writer.write(head("/api/v1/users/me/blob", "content-length: 1000", token) + b"x" * 10)
        await writer.drain()
        started = time.monotonic()
        assert await status_of(reader, within=3.0) == 408
        assert time.monotonic() - started < 2.0
    assert upstreams["users"].app.state.calls == before


async def test_trickled_chunked_bodies_hold_no_upstream_connection(
    make_gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    """One pool connection; a client trickles a chunked body while others are served, and the
    circuit stays closed."""
    gateway = await make_gateway(
        upstream_pool_size=1,
        upstream_connect_timeout=0.3,
        breaker_failures=1,
        client_body_timeout=1.5,
    )
    token = tokens.access_token("0b6f7c4e-4c1e-4f53-9a38-6f0c5d0f0a11")
    async with raw_connection(gateway) as (reader, writer):
        writer.write(head("/api/v1/users/me/blob", "transfer-encoding: chunked", token))

        async def trickle() -> None:
            for _ in range(25):
                writer.write(b"1\r\na\r\n")
                await writer.drain()
                await asyncio.sleep(0.1)

        trickling = asyncio.create_task(trickle())
        try:
            await asyncio.sleep(0.3)
            statuses = [
                (await gateway.get(ME, headers=bearer(tokens))).status_code for _ in range(3)
            ]
            assert statuses == [200, 200, 200]
            assert not await circuit_open(gateway)
            assert await status_of(reader, within=5.0) == 408
        finally:
            trickling.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await trickling
    assert (await gateway.get(ME, headers=bearer(tokens))).status_code == 200
    assert not await circuit_open(gateway)


async def test_a_client_stalling_a_large_upload_is_not_an_upstream_failure(
    make_gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    gateway = await make_gateway(
        breaker_failures=1, upstream_read_timeout=0.5, client_body_timeout=1.0
    )
    token = tokens.access_token("0b6f7c4e-4c1e-4f53-9a38-6f0c5d0f0a11")
    async with raw_connection(gateway) as (reader, writer):
        writer.write(head("/api/v1/users/me/blob", "content-length: 204800", token))
        writer.write(b"x" * 70_000)  # past the 64 KiB read whole: streamed upstream
        await writer.drain()
        status = await status_of(reader, within=6.0)
    assert status == 408
    assert not await circuit_open(gateway)
    assert (await gateway.get(ME, headers=bearer(tokens))).status_code == 200


async def test_large_uploads_at_once_are_capped_per_client_ip(
    make_gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    gateway = await make_gateway(client_uploads_per_ip=1, client_body_timeout=5.0)
    other = await make_gateway(client_uploads_per_ip=1)
    token = tokens.access_token("0b6f7c4e-4c1e-4f53-9a38-6f0c5d0f0a11")
    body = b"y" * 204_800
    async with raw_connection(gateway) as (reader, writer):
        writer.write(head("/api/v1/users/me/blob", f"content-length: {len(body)}", token))
        writer.write(body[:70_000])
        await writer.drain()
        await asyncio.sleep(0.3)  # the first upload is under way
        second = await gateway.put("/api/v1/users/me/blob", content=body, headers=bearer(tokens))
        assert second.status_code == 429
        assert second.headers["content-type"].startswith("application/problem+json")
        assert "retry-after" in second.headers
        # Another address is not affected (a gateway of its own: a source address of its own).
        elsewhere = await other.put("/api/v1/users/me/blob", content=body, headers=bearer(tokens))
        assert elsewhere.status_code == 200
        writer.write(body[70_000:])
        await writer.drain()
        assert await status_of(reader, within=5.0) == 200
    after = await gateway.put("/api/v1/users/me/blob", content=body, headers=bearer(tokens))
    assert after.status_code == 200


async def test_waits_for_a_free_upstream_connection_do_not_open_the_circuit(
    make_gateway: GatewayFactory, tokens: TokenFactory, upstreams: dict[str, Served]
) -> None:
    gateway = await make_gateway(
        upstream_pool_size=1, upstream_connect_timeout=0.3, breaker_failures=1
    )
    users = upstreams["users"].app.state
    users.hang = 1.5
    before = users.calls
    slow = asyncio.create_task(gateway.get("/api/v1/users/hang", headers=bearer(tokens)))
    for _ in range(1000):  # until the one pool connection is taken
        if users.calls != before:
            break
        await asyncio.sleep(0.01)
    busy = await gateway.get(ME, headers=bearer(tokens))
    assert busy.status_code == 503
    assert "retry-after" in busy.headers
    assert (await slow).status_code == 200
    assert not await circuit_open(gateway)
    assert (await gateway.get(ME, headers=bearer(tokens))).status_code == 200
