"""What the platform tests share: accounts made and logged in through the gateway."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from html import escape
from typing import Any

import httpx
import pytest
import uvicorn
from authlib.integrations.httpx_client import AsyncOAuth2Client
from common.testing import SmtpSink, free_port
from playwright.async_api import Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from .platform import Platform

PASSWORD = "correct horse battery staple 42"
# The platform's STEP_UP_MAX_AGE: short, so a test can outwait a login (test_step_up).
STEP_UP_MAX_AGE = 10
# Every browser test's marks: `-m browser` selects them, and they skip without Debian's chromium.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which("chromium") is None, reason="Debian chromium missing: run make system-deps"
    ),
]


def new_account() -> dict[str, str]:
    tag = uuid.uuid4().hex[:10]
    return {
        "email": f"ada.{tag}@example.org",
        "username": f"ada_{tag}",
        "password": PASSWORD,
        "full_name": "Ada Lovelace",
    }


async def register(gateway: httpx.AsyncClient, account: dict[str, str]) -> dict[str, Any]:
    response = await gateway.post("/api/v1/users/", json=account)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(gateway: httpx.AsyncClient, login: str, password: str) -> httpx.Response:
    return await gateway.post("/api/v1/auth/login", data={"username": login, "password": password})


async def tokens_for(gateway: httpx.AsyncClient, account: dict[str, str]) -> dict[str, Any]:
    response = await login(gateway, account["username"], account["password"])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_until_refused(gateway: httpx.AsyncClient, access_token: str) -> float:
    """Seconds until the gateway refuses `access_token` (at most 5, API.md §2)."""
    started = time.monotonic()
    while time.monotonic() - started < 5.0:
        response = await gateway.get("/api/v1/users/me", headers=bearer(access_token))
        if response.status_code == 401:
            return time.monotonic() - started
        assert response.status_code == 200, response.text
        await asyncio.sleep(0.1)
    pytest.fail("the access token was still accepted 5 seconds after its session ended")


async def email_to(smtp_sink: SmtpSink, address: str, subject_part: str) -> EmailMessage:
    """The first email to `address` whose subject contains `subject_part` (within 15 s)."""
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        for message in smtp_sink.handler.messages:
            if address in str(message["To"]) and subject_part in str(message["Subject"]):
                return message
        await asyncio.sleep(0.05)
    pytest.fail(f"no email '{subject_part}' to {address} within 15 seconds")


def plain_text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None, message
    content: str = part.get_content()
    return content


def link_token(message: EmailMessage, page: str, origin: str = "") -> str:
    """The token of the `/account/<page>?token=…` link in the plain text of `message`; with
    `origin`, the link must start with it (the platform's ISSUER)."""
    text = plain_text(message)
    found = re.search(re.escape(f"{origin}/account/{page}?token=") + r"([A-Za-z0-9_-]{43})", text)
    assert found is not None, text
    return found.group(1)


def register_oidc_client(platform: Platform, name: str, *options: str) -> dict[str, Any]:
    """Register an OpenID Connect client as an operator does: `python -m auth clients create`
    against the platform's auth database; its JSON answer (the secret, once)."""
    result = subprocess.run(
        [sys.executable, "-m", "auth", "clients", "create", "--name", name, *options],
        env=platform.env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    created: dict[str, Any] = json.loads(result.stdout)
    return created


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
