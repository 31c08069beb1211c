"""Rate limits shared through Redis, revocation markers, and what happens when Redis is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from common.revocation import mark_session_revoked, mark_user_tokens_before
from common.testing import TokenFactory

from .conftest import GatewayFactory, bearer
from .redis_node import ThrowawayRedis

ME = "/api/v1/users/me"
USER = "0b6f7c4e-4c1e-4f53-9a38-6f0c5d0f0a11"


async def test_general_limit_per_client_ip_with_headers(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(gateway_rate_limit="5/minute")
    statuses = [(await gateway.post("/api/v1/users/", json={})).status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    limited = await gateway.post("/api/v1/users/", json={})
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["ratelimit-policy"] == '"general";q=5;w=60'
    assert limited.headers["ratelimit"].startswith('"general";r=0;t=')


async def test_limits_are_per_user_when_a_token_is_presented(
    make_gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    gateway = await make_gateway(gateway_rate_limit="3/minute")
    alice, bob = bearer(tokens, USER), bearer(tokens, "1c0ffee0-0000-4000-8000-000000000000")
    assert [(await gateway.get(ME, headers=alice)).status_code for _ in range(4)] == [
        200,
        200,
        200,
        429,
    ]
    ok = await gateway.get(ME, headers=bob)
    assert ok.status_code == 200
    assert ok.headers["ratelimit"] == '"general";r=2;t=' + ok.headers["ratelimit"].split("t=")[1]


async def test_limits_are_shared_across_gateway_replicas(
    make_gateway: GatewayFactory,
) -> None:
    first = await make_gateway(gateway_rate_limit="4/minute")
    second = await make_gateway(gateway_rate_limit="4/minute")
    statuses = []
    for replica in (first, second, first, second, first, second):
        statuses.append((await replica.post("/api/v1/users/", json={})).status_code)
    assert statuses == [200, 200, 200, 200, 429, 429]


async def test_login_limit_per_ip_and_username(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(gateway_login_rate_limit="2/minute")

    async def login(username: str) -> int:
        response = await gateway.post(
            "/api/v1/auth/login", data={"username": username, "password": "x"}
        )
        return response.status_code

    assert [await login("ada") for _ in range(3)] == [200, 200, 429]
    assert await login("ADA") == 429  # the same name in another case
    assert await login("grace") == 200
    limited = await gateway.post("/api/v1/auth/login", data={"username": "ada", "password": "x"})
    assert limited.headers["ratelimit-policy"] == '"login";q=2;w=60'
    # The login body still reaches auth intact.
    ok = await gateway.post("/api/v1/auth/login", data={"username": "linus", "password": "x"})
    assert ok.json()["username"] == "linus"


async def test_revoked_sessions_and_users_are_refused(
    gateway: httpx.AsyncClient, tokens: TokenFactory, redis_db: aioredis.Redis
) -> None:
    token = bearer(tokens, USER, session_id="session-a")
    assert (await gateway.get(ME, headers=token)).status_code == 200
    await mark_session_revoked(redis_db, "session-a")
    refused = await gateway.get(ME, headers=token)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    other = bearer(tokens, USER, session_id="session-b")
    assert (await gateway.get(ME, headers=other)).status_code == 200
    await mark_user_tokens_before(redis_db, USER, int(time.time()) + 1)
    assert (await gateway.get(ME, headers=other)).status_code == 401
    later = bearer(tokens, USER, session_id="session-c", iat=int(time.time()) + 2)
    assert (await gateway.get(ME, headers=later)).status_code == 200


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    node = ThrowawayRedis(tmp_path)
    node.start()
    yield node
    node.stop()


@pytest.mark.fault
async def test_redis_down_fails_closed_for_tokens_and_limits_locally(
    make_gateway: GatewayFactory, tokens: TokenFactory, throwaway_redis: ThrowawayRedis
) -> None:
    gateway = await make_gateway(
        redis_url=throwaway_redis.url,
        gateway_rate_limit="3/minute",
        gateway_login_rate_limit="2/minute",
    )
    assert (await gateway.get(ME, headers=bearer(tokens))).status_code == 200
    throwaway_redis.stop()
    # Revocation cannot be checked: refuse (503), never let a possibly revoked token through.
    closed = await gateway.get(ME, headers=bearer(tokens))
    assert closed.status_code == 503
    assert closed.headers["content-type"].startswith("application/problem+json")
    # Public routes go on, under a per-process limit (never none).
    public = [(await gateway.post("/api/v1/users/", json={})).status_code for _ in range(4)]
    assert public == [200, 200, 200, 429]
    logins = [
        (
            await gateway.post("/api/v1/auth/login", data={"username": "x", "password": "y"})
        ).status_code
        for _ in range(3)
    ]
    assert 429 in logins
    metrics = await gateway.get("/metrics")
    assert 'gatehouse_gateway_redis_fallbacks_total{rule="fail_closed"}' in metrics.text
    throwaway_redis.start()  # back on the same port: the gateway recovers by itself
    for _ in range(50):
        if (await gateway.get(ME, headers=bearer(tokens))).status_code == 200:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the gateway did not recover when Redis came back")
