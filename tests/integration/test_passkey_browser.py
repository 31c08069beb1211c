"""Passkeys on the hosted sign-in pages in a real headless Chromium, through the gateway (API.md
§13), with Chrome's virtual authenticator (CDP `WebAuthn`, a CTAP2 platform authenticator that
keeps discoverable credentials and verifies its user): the passkey registered through the API
from a page of the origin, then a relying party signed in with it as the second factor (after
the password, beside TOTP) and without a password, each id_token's `amr` as §13 says; with
JavaScript off the pages offer no passkey at all."""

from __future__ import annotations

from typing import Any

import httpx
import jwt
import pyotp
from common.testing import headless_chromium
from playwright.async_api import BrowserContext, CDPSession, Page

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

# The page of the origin the registration runs in: any page of the gateway at localhost.
REGISTER_PAGE = "/.well-known/openid-configuration"
# What a settings page of the app would run: options, the browser's create(), the answer.
REGISTER_SCRIPT = """async (access) => {
  const headers = {"Authorization": `Bearer ${access}`, "Content-Type": "application/json"};
  const base = "/api/v1/auth/mfa/webauthn";
  const options = await fetch(`${base}/register/options`, {method: "POST", headers});
  if (!options.ok) return `options: ${options.status} ${await options.text()}`;
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(
    (await options.json()).publicKey);
  const credential = await navigator.credentials.create({publicKey});
  const created = await fetch(`${base}/register`, {
    method: "POST",
    headers,
    body: JSON.stringify({credential: credential.toJSON(), name: "Laptop"}),
  });
  return `${created.status}`;
}"""


async def virtual_authenticator(context: BrowserContext, page: Page) -> CDPSession:
    """A platform authenticator for `page` (kept across its navigations)."""
    cdp = await context.new_cdp_session(page)
    await cdp.send("WebAuthn.enable")
    await cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return cdp


def amr_of(tokens: dict[str, Any]) -> list[str]:
    claims = jwt.decode(tokens["id_token"], options={"verify_signature": False})
    methods: list[str] = claims["amr"]
    return methods


async def test_passkey_as_second_factor_and_without_a_password_in_chromium(
    platform: Platform, gateway: httpx.AsyncClient
) -> None:
    account = new_account()
    await register(gateway, account)
    localhost = f"http://localhost:{platform.ports['gateway']}"
    async with (
        two_apps(platform, sign_in_origin=localhost) as (_, first),
        headless_chromium() as browser,
    ):
        context = await browser.new_context()
        page = await context.new_page()
        await virtual_authenticator(context, page)

        # Register a passkey (a recent login: step-up) from a page of the relying party origin.
        pair = await tokens_for(gateway, account)
        await page.goto(f"{localhost}{REGISTER_PAGE}")
        assert await page.evaluate(REGISTER_SCRIPT, pair["access_token"]) == "201"
        listed = await gateway.get(
            "/api/v1/auth/mfa/webauthn", headers=bearer(pair["access_token"])
        )
        assert [passkey["name"] for passkey in listed.json()] == ["Laptop"]

        # MFA on (TOTP): the second-factor page offers the passkey beside the code.
        started = await gateway.post("/api/v1/auth/mfa/totp", headers=bearer(pair["access_token"]))
        totp = pyotp.TOTP(started.json()["secret"])
        confirmed = await gateway.post(
            "/api/v1/auth/mfa/totp/confirm",
            json={"code": totp.now()},
            headers=bearer(pair["access_token"]),
        )
        assert confirmed.status_code == 200, confirmed.text

        await page.goto(f"{first.origin}/login")
        await page.wait_for_url(f"{localhost}/api/v1/auth/authorize*")
        await fill_sign_in(page, account)
        await page.wait_for_selector("text=Enter your code")
        await page.click("text=Use a passkey instead")  # shown by passkeys.js
        await page.wait_for_url(f"{first.origin}/callback*")
        assert await who(page) == f"Signed in as {account['username']}"
        assert amr_of(first.tokens) == ["pwd", "hwk", "user", "mfa"]

        # Signed out (the sign-on session ended), then back without a password at all.
        await page.goto(f"{first.origin}/logout")
        await page.wait_for_url(f"{first.origin}/bye*")
        await page.goto(f"{first.origin}/login")
        await page.wait_for_selector("text=Sign in with a passkey")
        await page.click("text=Sign in with a passkey")
        await page.wait_for_url(f"{first.origin}/callback*")
        assert await who(page) == f"Signed in as {account['username']}"
        assert amr_of(first.tokens) == ["hwk", "user", "mfa"]
        await context.close()

        # Without JavaScript: the password form alone, no passkey to press.
        context = await browser.new_context(java_script_enabled=False)
        page = await context.new_page()
        await page.goto(f"{first.origin}/login")
        await page.wait_for_url(f"{localhost}/api/v1/auth/authorize*")
        assert await page.locator("#password").is_visible()
        assert not await page.locator("text=Sign in with a passkey").is_visible()
        await context.close()
