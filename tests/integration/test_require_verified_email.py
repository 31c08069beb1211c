"""REQUIRE_VERIFIED_EMAIL=true through the gateway (API.md §8): the right password of an
unverified address is a 403 problem whose type ends in `/email-not-verified`, a wrong one the
usual 401 (the refusal tells nothing to who does not know the password); the welcome email's
link, or a password reset, lets the account in. A platform of its own (auth's setting differs)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from common.testing import SmtpSink, ThrowawayRedis

from .platform import running_platform
from .support import PASSWORD, email_to, link_token, login, new_account, register

NEW = "a verified new passphrase 2026"


@pytest.fixture(scope="module")
async def strict_gateway(
    redis_node: ThrowawayRedis, smtp_sink: SmtpSink, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_platform(
            tmp_path_factory.mktemp("platform-verified"),
            redis_url=redis_node.url(),
            smtp_port=smtp_sink.port,
            extra={
                "REQUIRE_VERIFIED_EMAIL": "true",
                "BCRYPT_ROUNDS": "4",  # not what this module is about
            },
        ) as running,
        running.gateway_client() as client,
    ):
        yield client


async def test_an_unverified_address_is_refused_only_after_the_right_password(
    strict_gateway: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    gateway = strict_gateway
    account = new_account()
    await register(gateway, account)
    wrong = await login(gateway, account["username"], "not the password at all")
    unknown = await login(gateway, "nobody-" + account["username"], PASSWORD)
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    refused = await login(gateway, account["username"], PASSWORD)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"].endswith("/email-not-verified")
    assert "access_token" not in refused.text

    welcome = await email_to(smtp_sink, account["email"], "Welcome")
    token = link_token(welcome, "verify-email")
    assert (
        await gateway.post("/api/v1/users/email/verify", json={"token": token})
    ).status_code == 204
    assert (await login(gateway, account["username"], PASSWORD)).status_code == 200


async def test_a_password_reset_lets_an_unverified_account_in(
    strict_gateway: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    """The way in when the welcome email is lost: resending needs a login, a reset does not."""
    gateway = strict_gateway
    account = new_account()
    await register(gateway, account)
    assert (await login(gateway, account["username"], PASSWORD)).status_code == 403
    forgot = await gateway.post("/api/v1/users/password/forgot", json={"email": account["email"]})
    assert forgot.status_code == 202
    token = link_token(await email_to(smtp_sink, account["email"], "Reset"), "reset-password")
    reset = await gateway.post(
        "/api/v1/users/password/reset", json={"token": token, "new_password": NEW}
    )
    assert reset.status_code == 204, reset.text
    assert (await login(gateway, account["username"], NEW)).status_code == 200
