"""users while its PostgreSQL cannot be reached (API.md §3): 503 problem+json with `Retry-After`
on the hot `GET /me` and on FastAPI's routes, a 503 page on the account pages, and the same
answers as before once the database is back. The outage is a relay of the test's own between
users and the server, cut (or frozen) and restored."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from common.testing import TcpRelay, TokenFactory, assert_database_unavailable

from .support import PASSWORD, LinkEvents, UsersHarness, running_users

VERIFY_PAGE = "/account/verify-email"


@pytest.fixture
async def relay(users_database_url: str) -> AsyncIterator[TcpRelay]:
    async with TcpRelay(users_database_url) as relay:
        yield relay


@pytest.fixture
async def users(
    users_database_url: str, tokens: TokenFactory, relay: TcpRelay
) -> AsyncIterator[UsersHarness]:
    """users reaching its database through the relay (this module's `links` use it too)."""
    async with running_users(users_database_url, tokens, app_database_url=relay.url) as harness:
        yield harness


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


async def test_an_unreachable_database_is_503_until_it_is_back(
    users: UsersHarness, relay: TcpRelay
) -> None:
    user = await users.register()
    admin = await users.register()
    await users.make_admin(admin)
    newcomer = {
        "email": "newcomer@example.org",
        "username": "newcomer",
        "password": PASSWORD,
        "full_name": "New Comer",
    }

    await relay.cut()
    me = await users.client.get("/api/v1/users/me", headers=users.bearer(user))
    assert_database_unavailable(me, "/api/v1/users/me")
    registered = await users.client.post("/api/v1/users/", json=newcomer)
    assert_database_unavailable(registered, "/api/v1/users/")
    listed = await users.client.get("/api/v1/users/", headers=users.admin_bearer(admin))
    assert_database_unavailable(listed, "/api/v1/users/")

    await relay.restore()
    me = await users.client.get("/api/v1/users/me", headers=users.bearer(user))
    assert me.status_code == 200, me.text
    assert me.json() == user
    registered = await users.client.post("/api/v1/users/", json=newcomer)
    assert registered.status_code == 201, registered.text
    listed = await users.client.get("/api/v1/users/", headers=users.admin_bearer(admin))
    assert listed.status_code == 200, listed.text
    # A statement the database refuses is what it was: the address is taken, 409.
    again = await users.client.post("/api/v1/users/", json={**newcomer, "username": "other"})
    assert again.status_code == 409, again.text


async def test_a_database_that_stops_answering_is_503_after_the_statement_timeout(
    users: UsersHarness, relay: TcpRelay
) -> None:
    """The server stops answering on the connections users holds (stopped, partitioned): the
    hot `GET /me` and a registration answer 503 once the statement timeout has passed, not when
    the gateway gives up (30 s); the registration left nothing behind, and once the database
    answers, both succeed."""
    user = await users.register()
    newcomer = {
        "email": "frozen@example.org",
        "username": "frozen",
        "password": PASSWORD,
        "full_name": "Frozen Out",
    }
    relay.freeze()
    async with asyncio.timeout(20):  # 6 s each at most: the statement (or connect) timeout
        me = await users.client.get("/api/v1/users/me", headers=users.bearer(user))
        assert_database_unavailable(me, "/api/v1/users/me")
        registered = await users.client.post("/api/v1/users/", json=newcomer)
        assert_database_unavailable(registered, "/api/v1/users/")
    relay.thaw()
    me = await users.client.get("/api/v1/users/me", headers=users.bearer(user))
    assert me.status_code == 200, me.text
    assert me.json() == user
    registered = await users.client.post("/api/v1/users/", json=newcomer)
    assert registered.status_code == 201, registered.text


async def test_an_account_page_answers_a_503_page(
    users: UsersHarness, links: LinkEvents, relay: TcpRelay
) -> None:
    user = await users.register()
    token = await links.token_for(user["email"])
    page = await users.client.get(VERIFY_PAGE, params={"token": token})
    assert page.status_code == 200, page.text

    await relay.cut()
    for answer in (
        await users.client.get(VERIFY_PAGE, params={"token": token}),
        await users.client.post(VERIFY_PAGE, data={"csrf_token": csrf_of(page), "token": token}),
    ):
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert answer.headers["retry-after"] == "1"
        assert answer.headers["cache-control"] == "no-store"
        assert "The database is unavailable; retry later." in answer.text

    await relay.restore()
    done = await users.client.post(VERIFY_PAGE, data={"csrf_token": csrf_of(page), "token": token})
    assert done.status_code == 200, done.text
    assert "confirmed" in done.text
