"""What the gateway suite shares: doubles of auth and users serving the test key set, gateways on
spare ports with clients from their own loopback addresses, and token headers."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from common.testing import AUDIENCE, ISSUER, TokenFactory, redis_url
from gateway.settings import GatewaySettings

from .upstream import Served, echo_app

REDIS_URL = redis_url(2)


@asynccontextmanager
async def serving_doubles(tokens: TokenFactory) -> AsyncIterator[dict[str, Served]]:
    """Doubles of auth (serving the test key set as its JWKS) and users."""
    served = {"auth": Served(echo_app("auth", tokens.jwks())), "users": Served(echo_app("users"))}
    await asyncio.gather(*(server.start() for server in served.values()))
    try:
        yield served
    finally:
        await asyncio.gather(*(server.stop() for server in served.values()))


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


def bearer(
    tokens: TokenFactory, subject: str = "0b6f7c4e-4c1e-4f53-9a38-6f0c5d0f0a11", **kw: Any
) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens.access_token(subject, **kw)}"}


async def assert_refused_unforwarded(
    gateway: httpx.AsyncClient,
    upstream: Served,
    path: str,
    content: bytes,
    content_type: str | None,
    status: int,
) -> None:
    """`content` posted to `path` as `content_type` (no header when None) is answered `status`
    with a problem by the gateway itself: `upstream` never sees it."""
    before = upstream.app.state.calls
    headers = {"content-type": content_type} if content_type else {}
    response = await gateway.post(path, content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert upstream.app.state.calls == before
