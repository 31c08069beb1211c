"""A password change or a deactivation ends the user's other sessions at once, with RabbitMQ down
(issue 13 defect 4, issue 12 item 4): users tells auth on the request path, before it answers, so
neither the event backlog nor a dead broker leaves an ended session's tokens alive. The platform
here has AMQP_URL pointing at a port where no broker listens, so no account event ever arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from common.testing import SmtpSink, ThrowawayRedis, free_port

from .platform import running_platform
from .support import PASSWORD, bearer, new_account, register, tokens_for

pytestmark = pytest.mark.fault

SERVICES = ("auth", "users", "gateway")
NEW_PASSWORD = "an entirely new passphrase 7"


@pytest.fixture(scope="module")
async def gateway_without_broker(
    redis_node: ThrowawayRedis, smtp_sink: SmtpSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_platform(
            tmp_path_factory.mktemp("platform-no-broker"),
            services=SERVICES,
            redis_url=redis_node.url(),
            amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/",  # nothing listens there
            smtp_port=smtp_sink.port,
        ) as running,
        running.gateway_client() as client,
    ):
        yield client


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
