"""Redis restarting empty or going away, on a throwaway redis-server of the test's own: the
markers come back from auth's database, ending a session survives a quick restart, and without
Redis it answers 503 and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from common.events import Envelope
from common.revocation import is_revoked, user_key
from common.testing import ThrowawayRedis
from redis.asyncio import Redis

from .support import (
    AuthHarness,
    bearer,
    claims_of,
    handle,
    introspect_as_gateway,
    running_auth,
    wait_for_epoch,
)

pytestmark = pytest.mark.fault


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    redis_node = ThrowawayRedis(tmp_path)
    redis_node.start()
    yield redis_node
    redis_node.stop()


@pytest.fixture
async def auth_on_node(database_url: str, node: ThrowawayRedis) -> AsyncIterator[AuthHarness]:
    async with running_auth(database_url, redis_url=node.url()) as harness:
        yield harness


def fresh_client(node: ThrowawayRedis) -> Redis:
    """A client with no connection from before the restart (closed by `async with`)."""
    return Redis.from_url(node.url())


async def refused(redis: Redis, pair: dict[str, Any]) -> bool:
    claims = claims_of(pair["access_token"])
    return await is_revoked(redis, claims["sid"], claims["sub"], claims["iat"])


async def test_markers_come_back_after_redis_restarts_empty(
    auth_on_node: AuthHarness, node: ThrowawayRedis
) -> None:
    auth = auth_on_node
    first_epoch = await wait_for_epoch(auth.redis)
    alice, bob, carol = auth.users.add(), auth.users.add(), auth.users.add()
    logged_out = await auth.login(alice)
    revoked = await auth.login(alice)
    alice_live = await auth.login(alice)
    bob_sessions = [await auth.login(bob), await auth.login(bob)]
    carol_live = await auth.login(carol)
    response = await auth.client.post(
        "/api/v1/auth/logout", headers=bearer(logged_out["access_token"])
    )
    assert response.status_code == 204
    response = await auth.client.post(
        "/api/v1/auth/revoke", data={"token": revoked["refresh_token"]}
    )
    assert response.status_code == 200
    changed_at = auth.clock()
    await handle(
        auth,
        Envelope(
            type="user.password_changed", data={"user_id": bob.user_id}, occurred_at=changed_at
        ),
    )
    ended = [logged_out, revoked, *bob_sessions]
    for pair in ended:
        assert await refused(auth.redis, pair)

    node.restart()
    async with fresh_client(node) as redis:
        await wait_for_epoch(redis, first_epoch)
        for pair in ended:
            assert await refused(redis, pair)
        for pair in (alice_live, carol_live):
            assert not await refused(redis, pair)
        assert await redis.get(user_key(bob.user_id)) == str(int(changed_at.timestamp())).encode()
        assert 0 < await redis.ttl(user_key(bob.user_id)) <= auth.settings.max_access_token_lifetime


async def test_logout_right_after_a_quick_redis_restart_ends_the_session(
    auth_on_node: AuthHarness, node: ThrowawayRedis
) -> None:
    auth = auth_on_node
    account = auth.users.add()
    earlier, pair = await auth.login(account), await auth.login(account)
    # auth's pool now holds a connection from before the restart.
    await auth.client.post("/api/v1/auth/logout", headers=bearer(earlier["access_token"]))
    node.restart()
    response = await auth.client.post("/api/v1/auth/logout", headers=bearer(pair["access_token"]))
    assert response.status_code == 204
    assert (await auth.refresh(pair["refresh_token"])).status_code == 401
    async with fresh_client(node) as redis:
        assert await refused(redis, pair)


async def test_reused_refresh_token_right_after_a_quick_redis_restart_is_401(
    auth_on_node: AuthHarness, node: ThrowawayRedis
) -> None:
    auth = auth_on_node
    account = auth.users.add()
    earlier, pair = await auth.login(account), await auth.login(account)
    rotated = await auth.refresh(pair["refresh_token"])
    assert rotated.status_code == 200
    await auth.client.post("/api/v1/auth/logout", headers=bearer(earlier["access_token"]))
    node.restart()
    assert (await auth.refresh(pair["refresh_token"])).status_code == 401  # reuse
    assert (await auth.refresh(rotated.json()["refresh_token"])).status_code == 401
    async with fresh_client(node) as redis:
        assert await refused(redis, pair)


def assert_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0


async def test_without_redis_ending_a_session_is_503_and_changes_nothing(
    auth_on_node: AuthHarness, node: ThrowawayRedis
) -> None:
    auth = auth_on_node
    account = auth.users.add()
    logged_in, reused = await auth.login(account), await auth.login(account)
    rotated = await auth.refresh(reused["refresh_token"])
    assert rotated.status_code == 200
    node.stop()

    response = await auth.client.post(
        "/api/v1/auth/logout", headers=bearer(logged_in["access_token"])
    )
    assert_unavailable(response)
    assert_unavailable(
        await auth.client.post("/api/v1/auth/revoke", data={"token": logged_in["refresh_token"]})
    )
    assert_unavailable(await auth.refresh(reused["refresh_token"]))
    # What needs no marker goes on: a login, a refresh.
    during = await auth.login(account)
    refreshed = await auth.refresh(during["refresh_token"])
    assert refreshed.status_code == 200

    node.start()
    # Nothing was committed: the sessions are alive, their refresh tokens work once more.
    again = await auth.refresh(logged_in["refresh_token"])
    assert again.status_code == 200
    assert (await auth.refresh(rotated.json()["refresh_token"])).status_code == 200
    response = await auth.client.post(
        "/api/v1/auth/logout", headers=bearer(again.json()["access_token"])
    )
    assert response.status_code == 204
    assert (await auth.refresh(again.json()["refresh_token"])).status_code == 401


async def test_ready_is_degraded_not_503_without_redis(
    auth_on_node: AuthHarness, node: ThrowawayRedis
) -> None:
    auth = auth_on_node
    assert (await auth.client.get("/ready")).json()["status"] == "ready"
    node.stop()
    response = await auth.client.get("/ready")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis"] != "ok"
    assert body["checks"]["database"] == "ok"


async def test_introspection_answers_from_the_database_without_redis(
    auth_on_node: AuthHarness, node: ThrowawayRedis
) -> None:
    auth = auth_on_node
    alice, bob = auth.users.add(), auth.users.add()
    ended, live = await auth.login(alice), await auth.login(bob)
    response = await auth.client.post("/api/v1/auth/logout", headers=bearer(ended["access_token"]))
    assert response.status_code == 204
    changed = await auth.login(alice)
    await handle(auth, Envelope(type="user.password_changed", data={"user_id": alice.user_id}))
    node.stop()
    assert await introspect_as_gateway(auth, ended["access_token"]) == {"active": False}
    assert await introspect_as_gateway(auth, changed["access_token"]) == {"active": False}
    assert (await introspect_as_gateway(auth, live["access_token"]))["active"] is True


async def test_auth_starts_without_redis_and_writes_the_epoch_once_it_is_up(
    database_url: str, node: ThrowawayRedis
) -> None:
    node.stop()
    async with running_auth(database_url, redis_url=node.url()) as auth:
        assert (await auth.client.get("/ready")).status_code == 200
        await auth.login(auth.users.add())
        node.start()
        await wait_for_epoch(auth.redis)
