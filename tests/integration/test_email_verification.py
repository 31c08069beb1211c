"""Email verification end to end through the gateway and the real mail path (aiosmtpd): the
welcome email's link, an email change (notice to the old address, link to the new one), the 409
when the address is taken meanwhile, the resend, and the account pages without a browser
(API.md §8)."""

from __future__ import annotations

import re
from typing import Any

import httpx
from common.testing import SmtpSink

from .platform import Platform
from .support import (
    PASSWORD,
    bearer,
    email_to,
    link_token,
    login,
    new_account,
    plain_text,
    register,
    tokens_for,
)

VERIFY = "/api/v1/users/email/verify"
RESEND = "/api/v1/users/me/email/verification"


async def me(gateway: httpx.AsyncClient, access_token: str) -> dict[str, Any]:
    response = await gateway.get("/api/v1/users/me", headers=bearer(access_token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_the_welcome_emails_link_verifies_the_address(
    gateway: httpx.AsyncClient, smtp_sink: SmtpSink, platform: Platform
) -> None:
    account = new_account()
    created = await register(gateway, account)
    assert created["email_verified"] is False
    assert created["pending_email"] is None
    welcome = await email_to(smtp_sink, account["email"], "Welcome")
    token = link_token(welcome, "verify-email", platform.env["ISSUER"])
    verified = await gateway.post(VERIFY, json={"token": token})
    assert verified.status_code == 204, verified.text
    pair = await tokens_for(gateway, account)
    assert (await me(gateway, pair["access_token"]))["email_verified"] is True
    again = await gateway.post(VERIFY, json={"token": token})
    assert again.status_code == 400
    assert again.headers["content-type"].startswith("application/problem+json")
    mine = [m for m in smtp_sink.handler.messages if account["email"] in str(m["To"])]
    assert len(mine) == 1  # one welcome, carrying the link


async def test_an_email_change_is_confirmed_by_the_new_address(
    gateway: httpx.AsyncClient, smtp_sink: SmtpSink, platform: Platform
) -> None:
    account = new_account()
    await register(gateway, account)
    pair = await tokens_for(gateway, account)
    new = "moved." + account["email"]
    changed = await gateway.patch(
        "/api/v1/users/me", json={"email": new}, headers=bearer(pair["access_token"])
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["email"] == account["email"]
    assert changed.json()["pending_email"] == new

    notice = await email_to(smtp_sink, account["email"], "being changed")
    assert new in plain_text(notice)
    assert "verify-email" not in plain_text(notice)  # the old address never gets the link
    link_mail = await email_to(smtp_sink, new, "Confirm your email")
    token = link_token(link_mail, "verify-email", platform.env["ISSUER"])
    assert (await login(gateway, new, PASSWORD)).status_code == 401  # not yet the address

    assert (await gateway.post(VERIFY, json={"token": token})).status_code == 204
    after = await me(gateway, pair["access_token"])
    assert after["email"] == new
    assert after["pending_email"] is None
    assert after["email_verified"] is True
    assert (await login(gateway, new, PASSWORD)).status_code == 200
    assert (await login(gateway, account["email"], PASSWORD)).status_code == 401


async def test_an_address_taken_meanwhile_is_409(
    gateway: httpx.AsyncClient, smtp_sink: SmtpSink, platform: Platform
) -> None:
    account = new_account()
    await register(gateway, account)
    pair = await tokens_for(gateway, account)
    wanted = "wanted." + account["email"]
    await gateway.patch(
        "/api/v1/users/me", json={"email": wanted}, headers=bearer(pair["access_token"])
    )
    token = link_token(
        await email_to(smtp_sink, wanted, "Confirm"), "verify-email", platform.env["ISSUER"]
    )
    rival = {**new_account(), "email": wanted.upper()}
    await register(gateway, rival)
    taken = await gateway.post(VERIFY, json={"token": token})
    assert taken.status_code == 409, taken.text
    assert taken.headers["content-type"].startswith("application/problem+json")
    after = await me(gateway, pair["access_token"])
    assert after["email"] == account["email"]
    assert after["pending_email"] == wanted


async def test_a_resend_mails_a_new_link_and_kills_the_old(
    gateway: httpx.AsyncClient, smtp_sink: SmtpSink, platform: Platform
) -> None:
    account = new_account()
    await register(gateway, account)
    issuer = platform.env["ISSUER"]
    first = link_token(
        await email_to(smtp_sink, account["email"], "Welcome"), "verify-email", issuer
    )
    pair = await tokens_for(gateway, account)
    resent = await gateway.post(RESEND, headers=bearer(pair["access_token"]))
    assert resent.status_code == 202, resent.text
    second = link_token(
        await email_to(smtp_sink, account["email"], "Confirm"), "verify-email", issuer
    )
    assert second != first
    assert (await gateway.post(VERIFY, json={"token": first})).status_code == 400
    assert (await gateway.post(VERIFY, json={"token": second})).status_code == 204


async def test_the_pages_work_without_a_browser_through_the_gateway(
    gateway: httpx.AsyncClient, smtp_sink: SmtpSink, platform: Platform
) -> None:
    """What a browser with JavaScript off does: GET the link, POST the form with the cookie."""
    account = new_account()
    await register(gateway, account)
    issuer = platform.env["ISSUER"]
    token = link_token(
        await email_to(smtp_sink, account["email"], "Welcome"), "verify-email", issuer
    )
    page = await gateway.get("/account/verify-email", params={"token": token})
    assert page.status_code == 200, page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "form-action 'self'" in policy
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    sheet = re.search(r'href="(/account/static/pages\.css\?v=[0-9a-f]+)"', page.text)
    assert sheet is not None
    assert (await gateway.get(sheet.group(1))).headers["content-type"].startswith("text/css")
    forged = await gateway.post("/account/verify-email", data={"csrf_token": "x", "token": token})
    assert forged.status_code == 403
    done = await gateway.post(
        "/account/verify-email", data={"csrf_token": csrf.group(1), "token": token}
    )
    assert done.status_code == 200, done.text
    assert "confirmed" in done.text
    pair = await tokens_for(gateway, account)
    assert (await me(gateway, pair["access_token"]))["email_verified"] is True
