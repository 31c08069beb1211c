"""TOTP two-step sign-in end to end through the gateway (API.md §9, §11, §12): enrolment, the
two-step login, a replayed code and a used recovery code refused, the mfa_token refused as a
bearer token, the notice emails (auth's outbox → RabbitMQ → the notifier → SMTP), disabling
behind a recent login, and the login limits counting the second step by its account."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pyotp
from common.testing import SmtpSink

from .support import bearer, email_to, login, new_account, register, tokens_for

LOGIN_MFA = "/api/v1/auth/login/mfa"
# The platform's GATEWAY_LOGIN_RATE_LIMIT (conftest.py).
LOGIN_LIMIT = 50


def code_at(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30 * steps_ahead))


async def password_step(gateway: httpx.AsyncClient, account: dict[str, str]) -> str:
    response = await login(gateway, account["username"], account["password"])
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["type"].endswith("/mfa-required")
    assert problem["methods"] == ["totp", "recovery_code"]
    assert "access_token" not in problem
    token: str = problem["mfa_token"]
    return token


async def second_step(gateway: httpx.AsyncClient, mfa_token: str, code: str) -> httpx.Response:
    return await gateway.post(LOGIN_MFA, json={"mfa_token": mfa_token, "code": code})


async def test_enrol_and_sign_in_in_two_steps(
    gateway: httpx.AsyncClient, smtp_sink: SmtpSink
) -> None:
    account = new_account()
    user = await register(gateway, account)
    access = (await tokens_for(gateway, account))["access_token"]

    started = await gateway.post("/api/v1/auth/mfa/totp", headers=bearer(access))
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    assert started.json()["otpauth_uri"].startswith(
        f"otpauth://totp/Gatehouse:{account['username']}"
    )
    wrong = await gateway.post(
        "/api/v1/auth/mfa/totp/confirm",
        json={"code": code_at(secret, steps_ahead=10)},
        headers=bearer(access),
    )
    assert wrong.status_code == 422, wrong.text
    confirmed = await gateway.post(
        "/api/v1/auth/mfa/totp/confirm", json={"code": code_at(secret)}, headers=bearer(access)
    )
    assert confirmed.status_code == 200, confirmed.text
    recovery_codes = confirmed.json()["recovery_codes"]
    assert len(recovery_codes) == 10
    status = await gateway.get("/api/v1/auth/mfa", headers=bearer(access))
    assert status.json() == {"totp": True, "recovery_codes_left": 10}
    notice = await email_to(smtp_sink, account["email"], "Two-step sign-in is on")
    assert secret not in notice.as_string()

    # The password alone no longer signs in; its ticket is no bearer token.
    mfa_token = await password_step(gateway, account)
    assert mfa_token.startswith(user["id"] + ".")
    as_bearer = await gateway.get("/api/v1/users/me", headers=bearer(mfa_token))
    assert as_bearer.status_code == 401

    code = code_at(secret, steps_ahead=1)  # the confirming code's step is spent
    signed_in = await second_step(gateway, mfa_token, code)
    assert signed_in.status_code == 200, signed_in.text
    pair = signed_in.json()
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["auth_time"] >= int(time.time()) - 5
    me = await gateway.get("/api/v1/users/me", headers=bearer(pair["access_token"]))
    assert me.status_code == 200
    assert (await second_step(gateway, mfa_token, code)).status_code == 401  # ticket used

    replayed = await second_step(gateway, await password_step(gateway, account), code)
    assert replayed.status_code == 401

    # A recovery code, once; its notice says how many are left.
    recovered = await second_step(gateway, await password_step(gateway, account), recovery_codes[0])
    assert recovered.status_code == 200, recovered.text
    again = await second_step(gateway, await password_step(gateway, account), recovery_codes[0])
    assert again.status_code == 401
    used = await email_to(smtp_sink, account["email"], "A recovery code was used")
    assert "9 unused codes are left" in used.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    # Five wrong codes void a ticket.
    ticket = await password_step(gateway, account)
    for _ in range(5):
        assert (await second_step(gateway, ticket, "zzzz-zzzz-zzzz")).status_code == 401
    assert (await second_step(gateway, ticket, recovery_codes[1])).status_code == 401

    # Off, with a fresh login (a recovery code in place of the app): the password alone again.
    fresh = (
        await second_step(gateway, await password_step(gateway, account), recovery_codes[2])
    ).json()["access_token"]
    disabled = await gateway.delete("/api/v1/auth/mfa/totp", headers=bearer(fresh))
    assert disabled.status_code == 204, disabled.text
    await tokens_for(gateway, account)
    await email_to(smtp_sink, account["email"], "Two-step sign-in is off")


async def test_the_login_limit_counts_the_second_step_by_its_account(
    gateway: httpx.AsyncClient,
) -> None:
    """Tickets made up for one account (their random part unknown to auth) all count under
    that account's login limit; another account's are not refused for it."""
    victim, bystander = str(uuid.uuid4()), str(uuid.uuid4())
    statuses = [
        (await second_step(gateway, f"{victim}.{uuid.uuid4().hex}", "123456")).status_code
        for _ in range(LOGIN_LIMIT + 1)
    ]
    assert statuses[:LOGIN_LIMIT] == [401] * LOGIN_LIMIT
    assert statuses[LOGIN_LIMIT] == 429
    other = await second_step(gateway, f"{bystander}.{uuid.uuid4().hex}", "123456")
    assert other.status_code == 401
    # A body the gateway would read otherwise never reaches auth.
    doubled = await gateway.post(
        LOGIN_MFA,
        content=f'{{"mfa_token": "{bystander}.x", "mfa_token": "{victim}.y", "code": "1"}}',
        headers={"content-type": "application/json"},
    )
    assert doubled.status_code == 422
