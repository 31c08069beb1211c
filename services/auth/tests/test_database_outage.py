"""auth while its PostgreSQL cannot be reached (API.md §3): 503 problem+json with `Retry-After`
on a FastAPI route (login) and the hot ones (refresh, introspection: the same bytes as their
FastAPI routes), a 503 page on the sign-in page (§13), and the same answers as before once the
database is back. The outage is a relay of the test's own between auth and the server, cut and
restored."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from common.testing import TcpRelay, assert_database_unavailable, without_hot_routes

from .support import (
    INTERNAL_SECRET,
    INTROSPECTION_URL,
    OIDC_ISSUER,
    AuthHarness,
    authorize_url,
    browser_of,
    pkce_pair,
    register_client,
    running_auth,
)

REFRESH_URL = "/api/v1/auth/refresh"


@pytest.fixture
async def relay(database_url: str) -> AsyncIterator[TcpRelay]:
    async with TcpRelay(database_url) as relay:
        yield relay


@pytest.fixture
async def relayed(relay: TcpRelay) -> AsyncIterator[AuthHarness]:
    """auth (with its pages: an HTTPS issuer) reaching its database through the relay."""
    async with running_auth(relay.url, issuer=OIDC_ISSUER, base_url=OIDC_ISSUER) as harness:
        yield harness


async def test_an_unreachable_database_is_503_until_it_is_back(
    relayed: AuthHarness, relay: TcpRelay
) -> None:
    auth = relayed
    account = auth.users.add()
    tokens = await auth.login(account)
    login = {"username": account.username, "password": account.password}
    introspection = {"token": tokens["access_token"]}
    gateway = ("gateway", INTERNAL_SECRET)
    refresh = {"refresh_token": tokens["refresh_token"]}
    transport = httpx.ASGITransport(app=without_hot_routes(auth.app))

    await relay.cut()
    logged_in = await auth.client.post("/api/v1/auth/login", data=login)
    assert_database_unavailable(logged_in, "/api/v1/auth/login")
    hot_refresh = await auth.client.post(REFRESH_URL, json=refresh)
    assert_database_unavailable(hot_refresh, REFRESH_URL)
    hot_introspection = await auth.client.post(INTROSPECTION_URL, data=introspection, auth=gateway)
    assert_database_unavailable(hot_introspection, INTROSPECTION_URL)
    async with httpx.AsyncClient(transport=transport, base_url=OIDC_ISSUER) as plain:
        assert (await plain.post(REFRESH_URL, json=refresh)).content == hot_refresh.content
        plain_introspection = await plain.post(INTROSPECTION_URL, data=introspection, auth=gateway)
        assert plain_introspection.content == hot_introspection.content

    await relay.restore()
    assert (await auth.client.post("/api/v1/auth/login", data=login)).status_code == 200
    refreshed = await auth.client.post(REFRESH_URL, json=refresh)
    assert refreshed.status_code == 200, refreshed.text
    introspected = await auth.client.post(INTROSPECTION_URL, data=introspection, auth=gateway)
    assert introspected.status_code == 200, introspected.text
    assert introspected.json()["active"] is True
    # A refusal is what it was: the refresh token was used once already.
    assert (await auth.client.post(REFRESH_URL, json=refresh)).status_code == 401


async def test_the_sign_in_page_answers_a_503_page(relayed: AuthHarness, relay: TcpRelay) -> None:
    client = await register_client(relayed)
    url = authorize_url(client["client_id"], pkce_pair()[1])
    async with browser_of(relayed) as browser:
        assert (await browser.open(url)).status_code == 200

        await relay.cut()
        page = await browser.open(url)
        assert page.status_code == 503, page.text
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["retry-after"] == "1"
        assert page.headers["cache-control"] == "no-store"
        assert "The database is unavailable; retry later." in page.text

        await relay.restore()
        assert (await browser.open(url)).status_code == 200
