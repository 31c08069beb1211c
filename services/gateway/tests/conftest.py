"""The gateway under uvicorn in front of echoing doubles of auth and users; real Redis (DB 2)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from common.revocation import EPOCH_KEY
from common.testing import TokenFactory, redis_url
from fastapi import FastAPI
from gateway.main import create_app
from gateway.settings import GatewaySettings

from .upstream import Served, echo_app

ISSUER = "http://gatehouse.test"
AUDIENCE = "gatehouse-api"
REDIS_URL = redis_url(2)


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory(ISSUER, AUDIENCE)


@asynccontextmanager
async def serving_doubles(tokens: TokenFactory) -> AsyncIterator[dict[str, Served]]:
    """Doubles of auth (serving the test key set as its JWKS) and users."""
    served = {"auth": Served(echo_app("auth", tokens.jwks())), "users": Served(echo_app("users"))}
    await asyncio.gather(*(server.start() for server in served.values()))
    try:
        yield served
    finally:
        await asyncio.gather(*(server.stop() for server in served.values()))


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


def unique_id() -> str:
    return str(uuid.uuid4())


def unique_ip(first: int = 100) -> str:
    """A random IPv4 address: one test's client address, so its rate-limit counters are its own."""
    octets = random.randbytes(3)
    return f"{first}.{64 + octets[0] % 64}.{octets[1]}.{max(octets[2], 1)}"


class GatewayClient(httpx.AsyncClient):
    """A client whose requests come from its own loopback address (`source`)."""

    def __init__(self, base_url: str, source: str | None = None) -> None:
        self.source = source or unique_ip(first=127)
        transport = httpx.AsyncHTTPTransport(local_address=self.source)
        super().__init__(base_url=base_url, timeout=10.0, transport=transport)


def gateway_settings(upstreams: dict[str, Served], **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "environment": "test",
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "redis_url": REDIS_URL,
        "auth_url": upstreams["auth"].url,
        "users_url": upstreams["users"].url,
        "gateway_rate_limit": "1000/second",
        "gateway_login_rate_limit": "1000/hour",
        "cors_origins": ["https://app.example"],
        **overrides,
    }
    return GatewaySettings(**values)


GatewayFactory = Callable[..., Awaitable[GatewayClient]]


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


def bearer(
    tokens: TokenFactory, subject: str = "0b6f7c4e-4c1e-4f53-9a38-6f0c5d0f0a11", **kw: Any
) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.access_token(subject, **kw)}"}
