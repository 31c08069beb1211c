"""Rate limits shared through Redis, revocation markers, and what happens when Redis is down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis
from common.revocation import EPOCH_KEY, mark_session_revoked, mark_user_tokens_before
from common.testing import ThrowawayRedis, TokenFactory

from .support import GatewayFactory, bearer, unique_id

ME = "/api/v1/users/me"


async def test_general_limit_per_client_ip_with_headers(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(gateway_rate_limit="5/hour")
    statuses = [(await gateway.post("/api/v1/users/", json={})).status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    limited = await gateway.post("/api/v1/users/", json={})
    assert limited.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(limited.headers["retry-after"]) <= 3600
    assert limited.headers["ratelimit-policy"] == '"general";q=5;w=3600'
    assert limited.headers["ratelimit"].startswith('"general";r=0;t=')


async def test_limits_are_per_user_when_a_token_is_presented(
    make_gateway: GatewayFactory, tokens: TokenFactory
) -> None:
    gateway = await make_gateway(gateway_rate_limit="3/hour")
    alice, bob = bearer(tokens, unique_id()), bearer(tokens, unique_id())
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
    first = await make_gateway(gateway_rate_limit="4/hour")
    second = await make_gateway(source=first.source, gateway_rate_limit="4/hour")
    statuses = []
    for replica in (first, second, first, second, first, second):
        statuses.append((await replica.post("/api/v1/users/", json={})).status_code)
    assert statuses == [200, 200, 200, 200, 429, 429]


async def test_login_limit_per_ip_and_username(make_gateway: GatewayFactory) -> None:
    gateway = await make_gateway(gateway_login_rate_limit="2/hour")

    async def login(username: str) -> int:
        response = await gateway.post(
            "/api/v1/auth/login", data={"username": username, "password": "x"}
        )
        return response.status_code

    assert [await login("ada") for _ in range(3)] == [200, 200, 429]
    assert await login("ADA") == 429  # the same name in another case
    assert await login("grace") == 200
    limited = await gateway.post("/api/v1/auth/login", data={"username": "ada", "password": "x"})
    assert limited.headers["ratelimit-policy"] == '"login";q=2;w=3600'
    # The login body still reaches auth intact.
    ok = await gateway.post("/api/v1/auth/login", data={"username": "linus", "password": "x"})
    assert ok.json()["username"] == "linus"


async def test_revoked_sessions_and_users_are_refused(
    gateway: httpx.AsyncClient, tokens: TokenFactory, redis_db: aioredis.Redis
) -> None:
    user, session_a, session_b = unique_id(), unique_id(), unique_id()
    token = bearer(tokens, user, session_id=session_a)
    assert (await gateway.get(ME, headers=token)).status_code == 200
    await mark_session_revoked(redis_db, session_a)
    refused = await gateway.get(ME, headers=token)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    other = bearer(tokens, user, session_id=session_b)
    assert (await gateway.get(ME, headers=other)).status_code == 200
    await mark_user_tokens_before(redis_db, user, int(time.time()) + 1)
    assert (await gateway.get(ME, headers=other)).status_code == 401
    later = bearer(tokens, user, session_id=unique_id(), iat=int(time.time()) + 2)
    assert (await gateway.get(ME, headers=later)).status_code == 200


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    node = ThrowawayRedis(tmp_path)
    node.start(epoch=True)
    yield node
    node.stop()


def fallbacks(metrics: str, rule: str) -> float:
    prefix = f'gatehouse_gateway_redis_fallbacks_total{{rule="{rule}"}} '
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


async def fallback_count(gateway: httpx.AsyncClient, rule: str) -> float:
    return fallbacks((await gateway.get("/metrics")).text, rule)


async def redis_gateway(make_gateway: GatewayFactory, node: ThrowawayRedis) -> httpx.AsyncClient:
    return await make_gateway(
        redis_url=node.url(), gateway_rate_limit="3/hour", gateway_login_rate_limit="2/hour"
    )


@pytest.mark.fault
async def test_redis_down_refuses_token_requests_with_503(
    make_gateway: GatewayFactory,
    tokens: TokenFactory,
    throwaway_redis: ThrowawayRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = await redis_gateway(make_gateway, throwaway_redis)
    assert (await gateway.get(ME, headers=bearer(tokens))).status_code == 200
    before = await fallback_count(gateway, "fail_closed")
    throwaway_redis.stop()
    # Revocation cannot be checked: refuse, never let a possibly revoked token through.
    for _ in range(2):
        closed = await gateway.get(ME, headers=bearer(tokens))
        assert closed.status_code == 503
        assert closed.headers["content-type"].startswith("application/problem+json")
        assert closed.headers["retry-after"] == "1"
    assert await fallback_count(gateway, "fail_closed") == before + 2
    assert "requests with a token are refused" in caplog.text
    ready = await gateway.get("/ready")  # public routes go on: stay in the load balancer
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["redis"] != "ok"


@pytest.mark.fault
async def test_redis_down_limits_public_requests_per_process(
    make_gateway: GatewayFactory, throwaway_redis: ThrowawayRedis, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await redis_gateway(make_gateway, throwaway_redis)
    before = await fallback_count(gateway, "general_local_limit")
    throwaway_redis.stop()
    public = [(await gateway.post("/api/v1/users/", json={})).status_code for _ in range(4)]
    assert public == [200, 200, 200, 429]  # never unlimited
    assert await fallback_count(gateway, "general_local_limit") == before + 4
    assert "the general rate limit is counted per process" in caplog.text


@pytest.mark.fault
async def test_redis_down_limits_logins_per_process(
    make_gateway: GatewayFactory, throwaway_redis: ThrowawayRedis, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await make_gateway(
        redis_url=throwaway_redis.url(),
        gateway_rate_limit="100/hour",
        gateway_login_rate_limit="2/hour",
    )
    before = await fallback_count(gateway, "login_local_limit")
    throwaway_redis.stop()

    async def login(username: str) -> httpx.Response:
        return await gateway.post(
            "/api/v1/auth/login", data={"username": username, "password": "y"}
        )

    assert [(await login("ada")).status_code for _ in range(3)] == [200, 200, 429]
    limited = await login("ada")
    assert limited.headers["ratelimit-policy"] == '"login";q=2;w=3600'
    assert (await login("grace")).status_code == 200  # still per IP + username
    assert await fallback_count(gateway, "login_local_limit") == before + 5
    assert "the login rate limit is counted per process" in caplog.text


@pytest.mark.fault
async def test_a_hung_redis_fails_closed_within_its_timeout(
    make_gateway: GatewayFactory, tokens: TokenFactory, throwaway_redis: ThrowawayRedis
) -> None:
    gateway = await redis_gateway(make_gateway, throwaway_redis)
    assert (await gateway.get(ME, headers=bearer(tokens))).status_code == 200
    throwaway_redis.freeze()
    try:
        started = time.monotonic()
        assert (await gateway.get(ME, headers=bearer(tokens))).status_code == 503
        assert time.monotonic() - started < 3.0
    finally:
        throwaway_redis.thaw()


@pytest.mark.fault
async def test_the_gateway_recovers_when_redis_returns(
    make_gateway: GatewayFactory, tokens: TokenFactory, throwaway_redis: ThrowawayRedis
) -> None:
    gateway = await redis_gateway(make_gateway, throwaway_redis)
    assert (await gateway.get(ME, headers=bearer(tokens))).status_code == 200
    throwaway_redis.stop()
    assert (await gateway.get(ME, headers=bearer(tokens))).status_code == 503
    throwaway_redis.start(epoch=True)  # back on the same port, empty: the script is loaded again
    for _ in range(50):
        if (await gateway.get(ME, headers=bearer(tokens))).status_code == 200:
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the gateway did not recover when Redis came back")
    # Shared counting resumes in Redis.
    raw = aioredis.Redis.from_url(throwaway_redis.url())
    try:
        assert await raw.keys("rl:*")
    finally:
        await raw.aclose()


@pytest.mark.fault
async def test_tokens_are_refused_while_revocation_markers_are_incomplete(
    make_gateway: GatewayFactory,
    tokens: TokenFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Redis that lost its markers (restarted empty) reads as "nothing is revoked": until auth
    has written them back and set the epoch, token requests fail closed."""
    node = ThrowawayRedis(tmp_path)
    node.start()
    try:
        gateway = await redis_gateway(make_gateway, node)
        before = await fallback_count(gateway, "revocation_incomplete")
        refused = await gateway.get(ME, headers=bearer(tokens))
        assert refused.status_code == 503
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.headers["retry-after"] == "1"
        assert await fallback_count(gateway, "revocation_incomplete") == before + 1
        assert "revocation markers are incomplete" in caplog.text
        assert (await gateway.post("/api/v1/users/", json={})).status_code == 200  # public
        raw = aioredis.Redis.from_url(node.url())
        try:
            await raw.set(EPOCH_KEY, b"1")  # auth has restored every marker
        finally:
            await raw.aclose()
        assert (await gateway.get(ME, headers=bearer(tokens))).status_code == 200
    finally:
        node.stop()
