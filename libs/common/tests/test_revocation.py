"""Revocation markers on a real Redis (DB 6) and on the embedded substitute."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from common.redis import EmbeddedRedis
from common.revocation import (
    RESTORE_LOCK_KEY,
    begin_restore,
    complete_restore,
    is_revoked,
    mark_session_revoked,
    mark_user_tokens_before,
    markers_complete,
    restore_markers,
)
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


async def test_restore_writes_the_epoch_only_after_the_markers(redis: Redis) -> None:
    now = int(time.time())
    assert not await markers_complete(redis)
    assert await begin_restore(redis, "me", 30)
    assert not await begin_restore(redis, "another replica", 30)
    assert await restore_markers(redis, "me", 30, [("s1", 60)], [("u1", now, 60)])
    assert not await markers_complete(redis)
    assert await complete_restore(redis, "me", "restored")
    assert await markers_complete(redis)
    assert await is_revoked(redis, "s1", "u2", now)
    assert await is_revoked(redis, None, "u1", now - 1)
    assert not await is_revoked(redis, None, "u1", now)
    assert not await redis.exists(RESTORE_LOCK_KEY)


async def test_a_restore_that_lost_its_lock_writes_no_epoch(redis: Redis) -> None:
    """The lock vanishing means Redis restarted (or another restorer took over) meanwhile."""
    assert await begin_restore(redis, "me", 30)
    await redis.delete(RESTORE_LOCK_KEY)
    assert not await restore_markers(redis, "me", 30, [("s1", 60)], [])
    assert not await complete_restore(redis, "me", "restored")
    assert not await markers_complete(redis)


async def test_user_marker_floor_never_refuses_a_token_issued_after_the_change(
    redis: Redis,
) -> None:
    """The comparison rule of the module docstring: marker = floor(change time), refuse iat <."""
    changed_at = time.time()
    await mark_user_tokens_before(redis, "u1", int(changed_at))
    issued_after = int(changed_at + 0.001)
    assert not await is_revoked(redis, None, "u1", issued_after)
    assert await is_revoked(redis, None, "u1", int(changed_at) - 1)


async def test_restore_leaves_later_markers_alone(redis: Redis) -> None:
    """A marker raised live after the restore read the database stays as it is."""
    now = int(time.time())
    await mark_user_tokens_before(redis, "u1", now, ttl=600)
    await mark_session_revoked(redis, "s1", ttl=600)
    assert await begin_restore(redis, "me", 30)
    assert await restore_markers(redis, "me", 30, [("s1", 60)], [("u1", now - 100, 60)])
    assert await redis.get("revoked:user:u1") == str(now).encode()
    assert await redis.ttl("revoked:user:u1") > 60
    assert await redis.ttl("revoked:sid:s1") > 60
