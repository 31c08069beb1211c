"""A password change or a deactivation ends the user's other sessions at once, with RabbitMQ down
(issue 13 defect 4, issue 12 item 4): users tells auth on the request path, before it answers, so
neither the event backlog nor a dead broker leaves an ended session's tokens alive. The platform
here has AMQP_URL pointing at a port where no broker listens, so no account event ever arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from common.testing import SmtpSink, ThrowawayRedis, free_port, fresh_database

from .platform import ROOT, Platform, platform_env
from .support import PASSWORD, bearer, new_account, register, tokens_for

pytestmark = pytest.mark.fault

SERVICES = ("auth", "users", "gateway")
NEW_PASSWORD = "an entirely new passphrase 7"


@pytest.fixture(scope="module")
def redis_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThrowawayRedis]:
    node = ThrowawayRedis(tmp_path_factory.mktemp("redis"))
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="module")
async def gateway_without_broker(
    redis_node: ThrowawayRedis, smtp_sink: SmtpSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        fresh_database("it_auth", ROOT / "services/auth/migrations") as auth_db,
        fresh_database("it_users", ROOT / "services/users/migrations") as users_db,
    ):
        ports = {service: free_port() for service in (*SERVICES, "notifier")}
        env = platform_env(
            {"auth": auth_db, "users": users_db, "notifier": "unused"},
            ports,
            redis_url=redis_node.url(),
            amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/",  # nothing listens there
            smtp_port=smtp_sink.port,
            extra={
                "GATEWAY_RATE_LIMIT": "1000/second",
                "GATEWAY_LOGIN_RATE_LIMIT": "50/minute",
                "GATEWAY_LOGIN_IP_RATE_LIMIT": "1000/minute",  # every test is 127.0.0.1
            },
        )
        running = Platform(env, ports, tmp_path_factory.mktemp("platform-no-broker"))
        try:
            running.start(*SERVICES)
            async with httpx.AsyncClient(base_url=running.url("gateway"), timeout=30.0) as client:
                yield client
        finally:
            running.stop_all()


async def me(gateway: httpx.AsyncClient, pair: dict[str, Any]) -> int:
    response = await gateway.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
    return response.status_code


async def test_a_password_change_ends_the_other_sessions_at_once_without_the_broker(
    gateway_without_broker: httpx.AsyncClient,
) -> None:
    gateway = gateway_without_broker
    account = new_account()
    await register(gateway, account)
    laptop = await tokens_for(gateway, account)
    phone = await tokens_for(gateway, account)
    assert await me(gateway, phone) == 200
    changed = await gateway.put(
        "/api/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(laptop["access_token"]),
    )
    assert changed.status_code == 204, changed.text
    # The very next request: no waiting for an event that cannot come.
    assert await me(gateway, phone) == 401
    assert await me(gateway, laptop) == 401
    refresh = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]}
    )
    assert refresh.status_code == 401
    again = await tokens_for(gateway, {**account, "password": NEW_PASSWORD})
    assert await me(gateway, again) == 200


async def test_a_deactivation_ends_every_session_at_once_without_the_broker(
    gateway_without_broker: httpx.AsyncClient,
) -> None:
    gateway = gateway_without_broker
    account = new_account()
    user = await register(gateway, account)
    laptop = await tokens_for(gateway, account)
    phone = await tokens_for(gateway, account)
    gone = await gateway.delete(
        f"/api/v1/users/{user['id']}", headers=bearer(laptop["access_token"])
    )
    assert gone.status_code == 204, gone.text
    # users itself would still show the (deactivated) account to this token: the gateway refuses.
    own = await gateway.get(f"/api/v1/users/{user['id']}", headers=bearer(phone["access_token"]))
    assert own.status_code == 401
    refresh = await gateway.post(
        "/api/v1/auth/refresh", json={"refresh_token": phone["refresh_token"]}
    )
    assert refresh.status_code == 401
