"""Redis restarting empty under the running platform (its own throwaway redis-server, never the
machine's): no ended session comes back at the gateway, and service resumes once auth has
restored the revocation markers from its database. Plus: a login right after a password change
gets a token that works."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from common.testing import SmtpSink, ThrowawayRedis

from .platform import running_platform
from .support import PASSWORD, bearer, login, new_account, register, tokens_for

pytestmark = pytest.mark.fault

RESTORE_DEADLINE_SECONDS = 15.0
SERVICES = ("auth", "users", "gateway")


@pytest.fixture(scope="module")
async def gateway_on_node(
    redis_node: ThrowawayRedis, smtp_sink: SmtpSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_platform(
            tmp_path_factory.mktemp("platform-redis"),
            services=SERVICES,
            redis_url=redis_node.url(),
            smtp_port=smtp_sink.port,
        ) as running,
        running.gateway_client() as client,
    ):
        yield client


async def me(gateway: httpx.AsyncClient, access_token: str) -> int:
    return (await gateway.get("/api/v1/users/me", headers=bearer(access_token))).status_code


async def test_no_ended_session_comes_back_after_redis_restarts_empty(
    gateway_on_node: httpx.AsyncClient, redis_node: ThrowawayRedis
) -> None:
    gateway = gateway_on_node
    alice, bob, carol = new_account(), new_account(), new_account()
    for account in (alice, bob, carol):
        await register(gateway, account)
    logged_out = await tokens_for(gateway, alice)
    revoked = await tokens_for(gateway, alice)
    changed = await tokens_for(gateway, bob)
    live = await tokens_for(gateway, carol)
    response = await gateway.post("/api/v1/auth/logout", headers=bearer(logged_out["access_token"]))
    assert response.status_code == 204, response.text
    response = await gateway.post("/api/v1/auth/revoke", data={"token": revoked["refresh_token"]})
    assert response.status_code == 200, response.text
    response = await gateway.put(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": "an entirely new passphrase 7"},
        headers=bearer(changed["access_token"]),
    )
    assert response.status_code == 204, response.text
    ended = [logged_out["access_token"], revoked["access_token"], changed["access_token"]]
    deadline = time.monotonic() + 5
    while {await me(gateway, token) for token in ended} != {401}:
        assert time.monotonic() < deadline, "the sessions did not end within 5 s"
        await asyncio.sleep(0.1)

    redis_node.restart()
    started = time.monotonic()
    while True:
        answers = [await me(gateway, token) for token in ended]
        assert 200 not in answers, f"an ended session came back: {answers}"
        assert set(answers) <= {401, 503}, answers
        if await me(gateway, live["access_token"]) == 200:
            break
        assert time.monotonic() - started < RESTORE_DEADLINE_SECONDS, "markers not restored"
        await asyncio.sleep(0.05)
    assert [await me(gateway, token) for token in ended] == [401, 401, 401]


async def test_login_right_after_a_password_change_works_at_the_gateway(
    gateway_on_node: httpx.AsyncClient,
) -> None:
    gateway = gateway_on_node
    account = new_account()
    await register(gateway, account)
    password = PASSWORD
    for attempt in range(5):
        pair = await tokens_for(gateway, {**account, "password": password})
        new_password = f"an entirely new passphrase {attempt}"
        response = await gateway.put(
            "/api/v1/users/me/password",
            json={"current_password": password, "new_password": new_password},
            headers=bearer(pair["access_token"]),
        )
        assert response.status_code == 204, response.text
        password = new_password
        fresh = await login(gateway, account["username"], password)
        assert fresh.status_code == 200, fresh.text
        deadline = time.monotonic() + 5
        while await me(gateway, pair["access_token"]) != 401:  # the change has been handled
            assert time.monotonic() < deadline, "the old session did not end within 5 s"
            await asyncio.sleep(0.1)
        assert await me(gateway, fresh.json()["access_token"]) == 200
