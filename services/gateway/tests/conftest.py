"""The gateway under uvicorn in front of echoing doubles of auth and users; real Redis (DB 2)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from common.revocation import EPOCH_KEY
from common.testing import AUDIENCE, ISSUER, TokenFactory
from fastapi import FastAPI
from gateway.main import create_app

from .support import (
    REDIS_URL,
    GatewayClient,
    GatewayFactory,
    gateway_settings,
    serving_doubles,
)
from .upstream import Served


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory(ISSUER, AUDIENCE)


@pytest.fixture
async def upstreams(tokens: TokenFactory) -> AsyncIterator[dict[str, Served]]:
    async with serving_doubles(tokens) as served:
        yield served


@pytest.fixture
async def redis_db() -> AsyncIterator[aioredis.Redis]:
    """DB 2, never emptied: tests keep apart by their own client addresses, user and session ids
    (another run of this suite may share the database at the same time)."""
    client = aioredis.Redis.from_url(REDIS_URL)
    # Auth writes it once every revocation marker is in Redis; without it tokens are refused.
    await client.set(EPOCH_KEY, b"1")
    yield client
    await client.aclose()


@pytest.fixture
async def make_gateway(
    upstreams: dict[str, Served], redis_db: aioredis.Redis
) -> AsyncIterator[GatewayFactory]:
    """Gateways under uvicorn on spare ports; each fetches the JWKS from the auth double."""
    started: list[tuple[Served, GatewayClient]] = []

    async def make(source: str | None = None, **overrides: Any) -> GatewayClient:
        app: FastAPI = create_app(gateway_settings(upstreams, **overrides))
        served = Served(app)
        await served.start()
        client = GatewayClient(served.url, source)
        started.append((served, client))
        return client

    yield make
    for _, client in started:
        await client.aclose()
    await asyncio.gather(*(served.stop() for served, _ in started))


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> GatewayClient:
    return await make_gateway()
