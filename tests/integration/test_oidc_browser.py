"""The OpenID Connect sign-in in a real headless Chromium, through the gateway (API.md §13): two
small relying parties on loopback (authlib's OAuth2 client behind a Starlette page each), sign in
with a password, consent for the third-party one, single sign-on into the second without the
form, logout ending both; the same pages with JavaScript off; password then TOTP."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html import escape
from typing import Any

import httpx
import jwt
import pyotp
import pytest
import uvicorn
from authlib.integrations.httpx_client import AsyncOAuth2Client
from common.testing import free_port
from playwright.async_api import Browser, Page, async_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .platform import Platform
from .support import bearer, new_account, register, register_oidc_client, tokens_for

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which("chromium") is None, reason="Debian chromium missing: run make system-deps"
    ),
]


@dataclass
class RelyingParty:
    """A sample app: /login sends the browser to Gatehouse, /callback redeems the code with the
    stock client, /me asks UserInfo, /logout goes to end-session. One signed-in user at a time
    (a test app)."""

    name: str
    issuer: str
    port: int
    client_id: str = ""
    # Where the browser is sent to sign in, when not the issuer itself (the passkey test: a
    # WebAuthn relying party id is a domain, so its pages are opened at localhost).
    sign_in_origin: str | None = None
    pending: dict[str, tuple[str, str]] = field(default_factory=dict)
    tokens: dict[str, Any] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def oauth(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.client_id,
            redirect_uri=f"{self.origin}/callback",
            scope="openid profile email",
            code_challenge_method="S256",
        )

    def page(self, text: str) -> HTMLResponse:
        return HTMLResponse(
            f"<!doctype html><title>{self.name}</title><p id=who>{escape(text)}</p>"
        )

    async def login(self, request: Request) -> Response:
        verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(8)
        url, state = self.oauth().create_authorization_url(
            f"{self.sign_in_origin or self.issuer}/api/v1/auth/authorize",
            code_verifier=verifier,
            nonce=nonce,
        )
        self.pending[state] = (verifier, nonce)
        return RedirectResponse(url, status_code=302)

    async def callback(self, request: Request) -> Response:
        state = request.query_params.get("state", "")
        if state not in self.pending or request.query_params.get("iss") != self.issuer:
            return self.page("bad state or issuer")
        verifier, _nonce = self.pending.pop(state)
        if "error" in request.query_params:
            return self.page(f"refused: {request.query_params['error']}")
        async with self.oauth() as client:
            token = await client.fetch_token(
                f"{self.issuer}/api/v1/auth/token",
                authorization_response=str(request.url),
                code_verifier=verifier,
            )
        self.tokens = dict(token)
        return await self.me(request)

    async def me(self, request: Request) -> Response:
        if not self.tokens:
            return self.page("Signed out")
        async with httpx.AsyncClient() as http:
            info = await http.get(
                f"{self.issuer}/api/v1/auth/userinfo", headers=bearer(self.tokens["access_token"])
            )
        if info.status_code != 200:
            return self.page("Signed out")
        return self.page(f"Signed in as {info.json()['preferred_username']}")

    async def logout(self, request: Request) -> Response:
        query = httpx.QueryParams(
            {
                "id_token_hint": self.tokens["id_token"],
                "post_logout_redirect_uri": f"{self.origin}/bye",
                "state": "bye",
            }
        )
        return RedirectResponse(f"{self.issuer}/api/v1/auth/end-session?{query}", status_code=302)

    async def bye(self, request: Request) -> Response:
        return self.page(f"Goodbye ({request.query_params.get('state')})")

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/login", self.login),
                Route("/callback", self.callback),
                Route("/me", self.me),
                Route("/logout", self.logout),
                Route("/bye", self.bye),
            ]
        )


@asynccontextmanager
async def serving(party: RelyingParty) -> AsyncIterator[RelyingParty]:
    server = uvicorn.Server(
        uvicorn.Config(party.app(), host="127.0.0.1", port=party.port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task  # it could not start: say why
        await asyncio.sleep(0.02)
    try:
        yield party
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def two_apps(
    platform: Platform, sign_in_origin: str | None = None
) -> AsyncIterator[tuple[RelyingParty, RelyingParty]]:
    """A third-party app (consent asked) and a first-party one (no consent page)."""
    issuer = platform.url("gateway")
    third = RelyingParty("Photo app", issuer, free_port(), sign_in_origin=sign_in_origin)
    first = RelyingParty("Team wiki", issuer, free_port(), sign_in_origin=sign_in_origin)
    for party, options in ((third, []), (first, ["--first-party"])):
        created = register_oidc_client(
            platform,
            party.name,
            "--redirect-uri",
            f"{party.origin}/callback",
            "--post-logout-redirect-uri",
            f"{party.origin}/bye",
            *options,
        )
        party.client_id = created["client_id"]
    async with serving(third), serving(first):
        yield third, first


async def who(page: Page) -> str:
    return (await page.locator("#who").inner_text()).strip()


async def fill_sign_in(page: Page, account: dict[str, str]) -> None:
    await page.fill("#username", account["username"])
    await page.fill("#password", account["password"])
    await page.click("button[type=submit]")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
async def test_sign_in_consent_single_sign_on_and_logout_in_chromium(
    platform: Platform, gateway: httpx.AsyncClient, javascript: bool
) -> None:
    account = new_account()
    await register(gateway, account)
    async with two_apps(platform) as (third, first), chromium() as browser:
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
    async with two_apps(platform) as (_, first), chromium() as browser:
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
