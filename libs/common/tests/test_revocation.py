"""Revocation markers on a real Redis (DB 6) and on the embedded substitute."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from common.redis import EmbeddedRedis
from common.revocation import is_revoked, mark_session_revoked, mark_user_tokens_before
from common.testing import redis_url
from redis.asyncio import Redis


@pytest.fixture(params=["redis", "embedded"])
async def redis(request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    client = (
        Redis.from_url(redis_url(6)) if request.param == "redis" else (EmbeddedRedis().client())
    )
    await client.flushdb()
    yield client
    await client.flushdb()
    await client.aclose()


async def test_revoked_session_is_refused_others_are_not(redis: Redis) -> None:
    now = int(time.time())
    await mark_session_revoked(redis, "s1")
    assert await is_revoked(redis, "s1", "u1", now)
    assert not await is_revoked(redis, "s2", "u1", now)
    assert await redis.ttl("revoked:sid:s1") > 0


async def test_user_marker_refuses_only_older_tokens(redis: Redis) -> None:
    now = int(time.time())
    await mark_user_tokens_before(redis, "u1", now)
    assert await is_revoked(redis, "s1", "u1", now - 1)
    assert not await is_revoked(redis, "s1", "u1", now)
    assert not await is_revoked(redis, None, "u2", now - 1)


async def test_user_marker_never_moves_back(redis: Redis) -> None:
    now = int(time.time())
    await mark_user_tokens_before(redis, "u1", now)
    await mark_user_tokens_before(redis, "u1", now - 100)
    assert await is_revoked(redis, "s1", "u1", now - 50)
