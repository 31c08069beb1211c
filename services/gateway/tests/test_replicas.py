"""Two gateway processes (`python -m gateway serve`, configured by environment only) share their
rate-limit counters and revocation markers through Redis."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import httpx
import pytest
import redis.asyncio as aioredis
from common.revocation import mark_session_revoked
from common.testing import AUDIENCE, ISSUER, TokenFactory

from .gateway_process import GatewayProcess
from .support import REDIS_URL, GatewayClient, bearer, unique_id, unique_ip
from .upstream import Served, echo_app

pytestmark = pytest.mark.integration

ME = "/api/v1/users/me"


@pytest.fixture(scope="module")
async def replicas(tokens: TokenFactory) -> AsyncIterator[list[httpx.AsyncClient]]:
    """Started once for this module (a process takes seconds to start); tests use their own
    user ids, and `redis_db` empties the database before each."""
    auth, users = Served(echo_app("auth", tokens.jwks())), Served(echo_app("users"))
    await auth.start()
    await users.start()
    environment = {
        "ENVIRONMENT": "test",
        "ISSUER": ISSUER,
        "AUDIENCE": AUDIENCE,
        "REDIS_URL": REDIS_URL,
        "AUTH_URL": auth.url,
        "USERS_URL": users.url,
        "GATEWAY_RATE_LIMIT": "4/hour",
        "GATEWAY_LOGIN_RATE_LIMIT": "3/hour",
    }
    processes = [GatewayProcess(environment) for _ in range(2)]
    clients: list[httpx.AsyncClient] = []
    try:
        await asyncio.gather(*(process.start() for process in processes))
        source = unique_ip(first=127)  # one client talking to both replicas
        clients.extend(GatewayClient(p.url, source) for p in processes)
        yield clients
    finally:
        for client in clients:
            await client.aclose()
        codes = [await process.stop() for process in processes]
        await users.stop()
        await auth.stop()
        assert codes == [-signal.SIGTERM] * 2, [process.output() for process in processes]


async def test_limits_are_shared_by_two_gateway_processes(
    replicas: list[httpx.AsyncClient], tokens: TokenFactory, redis_db: aioredis.Redis
) -> None:
    first, second = replicas
    token, username = bearer(tokens, unique_id()), unique_id()
    statuses = [
        (await replica.get(ME, headers=token)).status_code
        for replica in (first, second, first, second, first, second)
    ]
    assert statuses == [200, 200, 200, 200, 429, 429]
    logins = [
        (
            await replica.post("/api/v1/auth/login", data={"username": username, "password": "x"})
        ).status_code
        for replica in (first, second, first, second)
    ]
    assert logins == [200, 200, 200, 429]


async def test_a_revoked_session_is_refused_by_every_process(
    replicas: list[httpx.AsyncClient], tokens: TokenFactory, redis_db: aioredis.Redis
) -> None:
    session = unique_id()
    token = bearer(tokens, unique_id(), session_id=session)
    assert [(await replica.get(ME, headers=token)).status_code for replica in replicas] == [
        200,
        200,
    ]
    await mark_session_revoked(redis_db, session)
    assert [(await replica.get(ME, headers=token)).status_code for replica in replicas] == [
        401,
        401,
    ]


async def test_a_served_gateway_has_no_server_banner(replicas: list[httpx.AsyncClient]) -> None:
    for path in ("/health", "/api/v1/users/", "/nothing"):
        response = await replicas[0].get(path)
        assert "server" not in response.headers, path
        assert response.headers["x-content-type-options"] == "nosniff"
