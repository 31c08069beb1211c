"""The OpenID Connect sign-in in a real headless Chromium, through the gateway (API.md §13): two
small relying parties on loopback (authlib's OAuth2 client behind a Starlette page each), sign in
with a password, consent for the third-party one, single sign-on into the second without the
form, logout ending both; the same pages with JavaScript off; password then TOTP."""

from __future__ import annotations

import time

import httpx
import jwt
import pyotp
import pytest
from common.testing import headless_chromium

from .platform import Platform
from .support import (
    BROWSER_MARKS,
    bearer,
    fill_sign_in,
    new_account,
    register,
    tokens_for,
    two_apps,
    who,
)

pytestmark = BROWSER_MARKS


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
async def test_sign_in_consent_single_sign_on_and_logout_in_chromium(
    platform: Platform, gateway: httpx.AsyncClient, javascript: bool
) -> None:
    account = new_account()
    await register(gateway, account)
    async with two_apps(platform) as (third, first), headless_chromium() as browser:
        context = await browser.new_context(java_script_enabled=javascript)
        page = await context.new_page()
        await page.goto(f"{third.origin}/login")
        assert "Sign in" in await page.title()
        await fill_sign_in(page, account)
        await page.wait_for_selector("text=Allow Photo app?")
        await page.click("button[value=allow]")
        await page.wait_for_url(f"{third.origin}/callback*")
        assert await who(page) == f"Signed in as {account['username']}"

        # The second app: no form, no consent page (first-party), straight back signed in.
        await page.goto(f"{first.origin}/login")
        await page.wait_for_url(f"{first.origin}/callback*")
        assert await who(page) == f"Signed in as {account['username']}"

        # Logout from the first app ends the sign-on session and both apps' sessions.
        await page.goto(f"{first.origin}/logout")
        await page.wait_for_url(f"{first.origin}/bye*")
        assert await who(page) == "Goodbye (bye)"
        for party in (first, third):
            await page.goto(f"{party.origin}/me")
            assert await who(page) == "Signed out"
        await page.goto(f"{third.origin}/login")
        assert "Sign in" in await page.title()  # the form again
        await context.close()


async def test_password_then_totp_in_chromium(
    platform: Platform, gateway: httpx.AsyncClient
) -> None:
    account = new_account()
    await register(gateway, account)
    pair = await tokens_for(gateway, account)
    started = await gateway.post("/api/v1/auth/mfa/totp", headers=bearer(pair["access_token"]))
    assert started.status_code == 200, started.text
    totp = pyotp.TOTP(started.json()["secret"])
    confirmed = await gateway.post(
        "/api/v1/auth/mfa/totp/confirm",
        json={"code": totp.now()},
        headers=bearer(pair["access_token"]),
    )
    assert confirmed.status_code == 200, confirmed.text
    async with two_apps(platform) as (_, first), headless_chromium() as browser:
        context = await browser.new_context(java_script_enabled=False)
        page = await context.new_page()
        await page.goto(f"{first.origin}/login")
        await fill_sign_in(page, account)
        await page.wait_for_selector("text=Enter your code")
        await page.fill("#code", "000000")
        await page.click("button[type=submit]")
        await page.wait_for_selector("text=The code is wrong")
        # The enrolment spent the current step: the next one (within the accepted window).
        await page.fill("#code", totp.at(time.time() + 30))
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{first.origin}/callback*")
        assert await who(page) == f"Signed in as {account['username']}"
        assert first.tokens["id_token"]
        claims = jwt.decode(first.tokens["id_token"], options={"verify_signature": False})
        assert claims["amr"] == ["pwd", "otp"]
        await context.close()
