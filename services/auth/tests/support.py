"""What the auth suite shares: its settings, the harness around a running auth app (a users double
behind an ASGI transport, a clock the test moves) and token helpers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import re
import secrets
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import jwt
import pyotp
import uvicorn
from asgi_lifespan import LifespanManager
from auth.events.handler import handle_user_event
from auth.main import create_app
from auth.settings import AuthSettings
from auth.state import AuthState
from common.broker import Broker
from common.events import Envelope
from common.revocation import EPOCH_KEY
from common.state import service_state
from common.testing import AUDIENCE, ISSUER, FormBrowser, MovableClock, free_port, redis_url
from fastapi import FastAPI
from redis.asyncio import Redis

from .passkey_authenticator import SoftAuthenticator
from .users_double import Account, UsersDouble, build_users_app

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
REDIS_URL = redis_url(1)
INTERNAL_SECRET = "test-internal-client-secret-0123456789"


def auth_settings(database_url: str, **overrides: Any) -> AuthSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "auth_database_url": database_url,
        "redis_url": REDIS_URL,
        "amqp_url": None,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "users_url": "http://users.test",
        "rsa_key_bits": 2048,
        "key_refresh_seconds": 3600,  # the background task stays asleep during tests
        "internal_client_secret": INTERNAL_SECRET,
        **overrides,
    }
    return AuthSettings(**values)


@dataclass
class AuthHarness:
    app: FastAPI
    client: httpx.AsyncClient
    users: UsersDouble
    clock: MovableClock
    settings: AuthSettings
    redis: Redis

    @property
    def state(self) -> AuthState:
        """What the running app's lifespan built."""
        return service_state(self.app, AuthState)

    async def login(self, account: Account) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/auth/login",
            data={"username": account.username, "password": account.password},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})

    async def jwks(self) -> Mapping[str, Any]:
        """The key set as the JWKS endpoint serves it (from memory: it must follow each reload)."""
        response = await self.client.get("/.well-known/jwks.json")
        assert response.status_code == 200, response.text
        document: Mapping[str, Any] = response.json()
        return document


@asynccontextmanager
async def served_on_loopback(app: Any, *, keep_alive: int = 5) -> AsyncIterator[str]:
    """`app` under uvicorn on a spare loopback port, in the test's event loop; its URL.
    `keep_alive`: how long uvicorn keeps an idle connection open (its default, 5 s)."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        lifespan="off",
        timeout_keep_alive=keep_alive,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@asynccontextmanager
async def running_auth(
    database_url: str,
    *,
    broker: Broker | None = None,
    base_url: str = "http://auth.test",
    users_over_http: bool = False,
    users_keep_alive: int = 5,
    **overrides: Any,
) -> AsyncIterator[AuthHarness]:
    """auth on `database_url` with a users double behind an ASGI transport; with
    `users_over_http`, the double under uvicorn on loopback (`users_keep_alive`: its idle
    connections' timeout) and auth calling it as in production (aiohttp, no transport given)."""
    settings = auth_settings(database_url, **overrides)
    users = UsersDouble()
    clock = MovableClock()
    holder: dict[str, FastAPI] = {}

    async def jwks() -> Mapping[str, Any]:
        document: Mapping[str, Any] = service_state(holder["auth"], AuthState).key_ring.jwks
        return document

    users_app = build_users_app(users, jwks, settings.issuer)
    async with contextlib.AsyncExitStack() as stack:
        users_transport: httpx.AsyncBaseTransport | None = httpx.ASGITransport(app=users_app)
        if users_over_http:
            served = served_on_loopback(users_app, keep_alive=users_keep_alive)
            users_url = await stack.enter_async_context(served)
            settings = settings.model_copy(update={"users_url": users_url})
            users_transport = None
        app = create_app(settings, users_transport=users_transport, clock=clock, broker=broker)
        holder["auth"] = app
        redis = Redis.from_url(settings.redis_url or REDIS_URL)
        async with LifespanManager(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
                yield AuthHarness(app, client, users, clock, settings, redis)
        await redis.aclose()


def header_of(token: str) -> dict[str, Any]:
    return jwt.get_unverified_header(token)


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return decoded


INTROSPECTION_URL = "/internal/v1/introspect"


async def introspect_as_gateway(auth: AuthHarness, token: str, **extra: str) -> dict[str, Any]:
    response = await auth.client.post(
        INTROSPECTION_URL, data={"token": token, **extra}, auth=("gateway", INTERNAL_SECRET)
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


RESTORE_DEADLINE_SECONDS = 10.0


async def wait_for_epoch(redis: Redis, previous: bytes | None = None) -> bytes:
    deadline = time.monotonic() + RESTORE_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        value = await redis.get(EPOCH_KEY)
        if isinstance(value, bytes) and value != previous:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"{EPOCH_KEY} not (re)written within {RESTORE_DEADLINE_SECONDS} s")


async def handle(auth: AuthHarness, envelope: Envelope) -> None:
    state = auth.state
    await handle_user_event(
        envelope, database=state.db, redis=state.redis, settings=auth.settings, clock=auth.clock
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def admin_headers(auth: AuthHarness) -> dict[str, str]:
    """A bearer header of a fresh admin (who holds `clients:manage`)."""
    admin = auth.users.add(roles=("user", "admin"))
    return bearer((await auth.login(admin))["access_token"])


async def register_client(auth: AuthHarness, **fields: Any) -> dict[str, Any]:
    """Register an OpenID Connect client as a fresh admin; `fields` override a public client."""
    registration: dict[str, Any] = {
        "name": "Sample app",
        "redirect_uris": ["http://127.0.0.1:8765/callback"],
        "type": "public",
        **fields,
    }
    response = await auth.client.post(
        "/api/v1/auth/clients", json=registration, headers=await admin_headers(auth)
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


LOGIN_MFA_URL = "/api/v1/auth/login/mfa"


def totp_code(secret: str, at: datetime, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows at `at` (+ `steps_ahead` 30-second steps)."""
    return pyotp.TOTP(secret).at(at + timedelta(seconds=30 * steps_ahead))


@dataclass
class Enrolled:
    secret: str
    recovery_codes: list[str]


async def enrol(auth: AuthHarness, access_token: str) -> Enrolled:
    """Start and confirm a TOTP enrolment with the current code (its step is then spent)."""
    started = await auth.client.post("/api/v1/auth/mfa/totp", headers=bearer(access_token))
    assert started.status_code == 200, started.text
    secret = started.json()["secret"]
    confirmed = await auth.client.post(
        "/api/v1/auth/mfa/totp/confirm",
        json={"code": totp_code(secret, auth.clock())},
        headers=bearer(access_token),
    )
    assert confirmed.status_code == 200, confirmed.text
    return Enrolled(secret, confirmed.json()["recovery_codes"])


async def password_step(client: httpx.AsyncClient, account: Account) -> str:
    """The first step of a login with MFA on: the `mfa_token` of its 401 /mfa-required."""
    response = await client.post(
        "/api/v1/auth/login",
        data={"username": account.username, "password": account.password},
    )
    assert response.status_code == 401, response.text
    body: dict[str, Any] = response.json()
    assert body["type"].endswith("/mfa-required"), body
    token: str = body["mfa_token"]
    return token


# The OpenID Connect provider's tests run auth with an HTTPS issuer, as in production: the pages
# then set the `__Host-` sign-on cookie (Secure), which httpx sends back over https only.
OIDC_ISSUER = "https://gatehouse.test"
CALLBACK = "http://127.0.0.1:8765/callback"
AUTHORIZE = "/api/v1/auth/authorize"


Browser = FormBrowser


@asynccontextmanager
async def browser_of(auth: AuthHarness) -> AsyncIterator[Browser]:
    transport = httpx.ASGITransport(app=auth.app)
    async with httpx.AsyncClient(transport=transport, base_url=auth.settings.issuer) as client:
        yield Browser(client)


def query_of(location: str) -> dict[str, str]:
    parts = urlsplit(location)
    return dict(parse_qsl(parts.query, keep_blank_values=True))


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(client_id: str, challenge: str, **extra: str) -> str:
    parameters = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "scope": "openid profile email",
        "state": "st-" + secrets.token_hex(4),
        "nonce": "n-" + secrets.token_hex(4),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }
    return f"{AUTHORIZE}?{urlencode({k: v for k, v in parameters.items() if v is not None})}"


async def open_sign_in(
    auth: AuthHarness, browser: Browser, *, first_party: bool = False
) -> httpx.Response:
    """The sign-in page of an authorization request by a new client (first-party: no consent
    page after it)."""
    client = await register_client(auth, first_party=first_party)
    return await browser.open(authorize_url(client["client_id"], pkce_pair()[1]))


async def sign_in_for_code(
    auth: AuthHarness, browser: Browser, account: Account, url: str
) -> dict[str, str]:
    """Sign in on the page (and allow, if asked): the redirect's query parameters."""
    page = await browser.open(url)
    assert page.status_code == 200, page.text
    answer = await browser.submit(
        page, {"username": account.username, "password": account.password}
    )
    if answer.status_code == 200 and "Allow" in answer.text:
        answer = await browser.submit(answer, button="allow")
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith(CALLBACK + "?")
    return query_of(location)


async def redeem(
    auth: AuthHarness, client_id: str, code: str, verifier: str, **extra: str
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "code_verifier": verifier,
        "client_id": client_id,
        **extra,
    }
    return await auth.client.post("/api/v1/auth/token", data={k: v for k, v in data.items() if v})


async def refresh_as(auth: AuthHarness, client_id: str, refresh_token: str) -> httpx.Response:
    """A public client's refresh_token grant: no secret, the client_id names the client."""
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}
    return await auth.client.post("/api/v1/auth/token", data=data)


async def register_passkey(
    auth: AuthHarness, account: Account, origin: str, *, backed_up: bool = False
) -> SoftAuthenticator:
    """A passkey of `account`, registered through the API from a browser at `origin`."""
    access = (await auth.login(account))["access_token"]
    options = await auth.client.post(
        "/api/v1/auth/mfa/webauthn/register/options", headers=bearer(access)
    )
    authenticator = SoftAuthenticator(backed_up=backed_up)
    created = await auth.client.post(
        "/api/v1/auth/mfa/webauthn/register",
        json={"credential": authenticator.create(options.json(), origin)},
        headers=bearer(access),
    )
    assert created.status_code == 201, created.text
    return authenticator


SCRIPT_TAG = re.compile(r"<script\b[^>]*>")


def assert_page_headers(page: httpx.Response) -> None:
    """Strict: no script, or on a page that offers passkeys only the service's one file (no
    inline script, no eval, its content hash checked by the browser)."""
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe" not in policy
    tags = SCRIPT_TAG.findall(page.text)
    if "script-src" in policy:
        assert "script-src 'self';" in policy
        assert "data-passkey-options" in page.text
        [tag] = tags
        assert re.fullmatch(
            r'<script src="/api/v1/auth/static/passkeys\.js\?v=[0-9a-f]{12}" '
            r'integrity="sha256-[A-Za-z0-9+/]{43}=" defer>',
            tag,
        ), tag
        assert page.text.count("</script>") == 1
        assert f"{tag}</script>" in page.text  # nothing inline
    else:
        assert "<script" not in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
