"""Step-up (RFC 9470, API.md §9): an email change, a self-deactivation and an admin's role change
or deactivation of someone else need a login no older than STEP_UP_MAX_AGE; a stale one is a 401
challenge that changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from common.inprocess_broker import InProcessBroker
from common.tokens import JwksCache
from users.main import create_app

from .support import UsersHarness, users_settings

STALE = 301  # seconds since the login: past the default STEP_UP_MAX_AGE of 300
CHALLENGE = 'Bearer error="insufficient_user_authentication", max_age=300'


def assert_challenged(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == CHALLENGE
    assert response.headers["content-type"] == "application/problem+json"


async def an_admin(users: UsersHarness) -> dict[str, Any]:
    admin = await users.register()
    await users.make_admin(admin)
    return admin


async def events_of(users: UsersHarness, user: dict[str, Any]) -> list[str]:
    return [row.event_type for row in await users.outbox(user["id"])]


async def current(users: UsersHarness, user: dict[str, Any]) -> dict[str, Any]:
    admin = await an_admin(users)
    response = await users.client.get(
        f"/api/v1/users/{user['id']}", headers=users.admin_bearer(admin)
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


# --- PATCH /me ------------------------------------------------------------------------------------
async def test_an_email_change_with_a_fresh_login_works(users: UsersHarness) -> None:
    user = await users.register()
    response = await users.client.patch(
        "/api/v1/users/me",
        json={"email": "fresh." + user["email"]},
        headers=users.bearer(user, logged_in_ago=30),
    )
    assert response.status_code == 200, response.text
    # The change waits for the link sent to the new address (API.md §8).
    assert response.json()["email"] == user["email"]
    assert response.json()["pending_email"] == "fresh." + user["email"]


async def test_an_email_change_with_a_stale_login_is_challenged(users: UsersHarness) -> None:
    user = await users.register()
    for logged_in_ago in (STALE, None):
        response = await users.client.patch(
            "/api/v1/users/me",
            json={"email": "stale." + user["email"], "full_name": "Changed"},
            headers=users.bearer(user, logged_in_ago=logged_in_ago),
        )
        assert_challenged(response)
    assert await current(users, user) == user
    assert await events_of(users, user) == ["user.registered"]


async def test_a_full_name_change_needs_no_recent_login(users: UsersHarness) -> None:
    user = await users.register()
    response = await users.client.patch(
        "/api/v1/users/me",
        json={"full_name": "Only The Name"},
        headers=users.bearer(user, logged_in_ago=None),
    )
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "Only The Name"


# --- DELETE /{id} ---------------------------------------------------------------------------------
async def test_self_deactivation_needs_a_recent_login(users: UsersHarness) -> None:
    user = await users.register()
    stale = await users.client.delete(
        f"/api/v1/users/{user['id']}", headers=users.bearer(user, logged_in_ago=STALE)
    )
    assert_challenged(stale)
    assert (await current(users, user))["is_active"] is True
    assert await events_of(users, user) == ["user.registered"]
    fresh = await users.client.delete(
        f"/api/v1/users/{user['id']}", headers=users.bearer(user, logged_in_ago=10)
    )
    assert fresh.status_code == 204
    assert (await current(users, user))["is_active"] is False


async def test_deactivating_someone_else_needs_the_admins_recent_login(
    users: UsersHarness,
) -> None:
    admin = await an_admin(users)
    user = await users.register()
    stale = await users.client.delete(
        f"/api/v1/users/{user['id']}", headers=users.admin_bearer(admin, logged_in_ago=STALE)
    )
    assert_challenged(stale)
    assert (await current(users, user))["is_active"] is True
    fresh = await users.client.delete(
        f"/api/v1/users/{user['id']}", headers=users.admin_bearer(admin)
    )
    assert fresh.status_code == 204
    assert await events_of(users, user) == ["user.registered", "user.deactivated"]


# --- PUT /{id}/roles ------------------------------------------------------------------------------
async def test_a_role_change_needs_the_admins_recent_login(users: UsersHarness) -> None:
    admin = await an_admin(users)
    user = await users.register()
    path = f"/api/v1/users/{user['id']}/roles"
    for logged_in_ago in (STALE, None):
        stale = await users.client.put(
            path,
            json={"roles": ["user", "admin"]},
            headers=users.admin_bearer(admin, logged_in_ago=logged_in_ago),
        )
        assert_challenged(stale)
    assert (await current(users, user))["roles"] == ["user"]
    assert await events_of(users, user) == ["user.registered"]
    fresh = await users.client.put(
        path, json={"roles": ["user", "admin"]}, headers=users.admin_bearer(admin)
    )
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["roles"] == ["admin", "user"]


async def test_without_the_permission_a_role_change_is_403_however_recent(
    users: UsersHarness,
) -> None:
    user = await users.register()
    for logged_in_ago in (0, STALE):
        response = await users.client.put(
            f"/api/v1/users/{user['id']}/roles",
            json={"roles": ["admin"]},
            headers=users.bearer(user, logged_in_ago=logged_in_ago),
        )
        assert response.status_code == 403


# --- ADMIN_REQUIRES_MFA ---------------------------------------------------------------------------
@asynccontextmanager
async def users_requiring_mfa(users: UsersHarness) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        users_settings(users.database.url, admin_requires_mfa=True),
        broker=InProcessBroker().client(),
        jwks=JwksCache(users.tokens.fetcher()),
    )
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://users.test"
        ) as client,
    ):
        yield client


async def test_admin_requires_mfa_needs_a_second_factor_for_admin_routes(
    users: UsersHarness,
) -> None:
    admin = await an_admin(users)
    user = await users.register()
    path = f"/api/v1/users/{user['id']}/roles"
    password_only = users.admin_bearer(admin)
    with_otp = users.bearer(
        admin, scope="users:read users:manage", roles=("admin", "user"), amr=("pwd", "otp")
    )
    async with users_requiring_mfa(users) as client:
        refused = await client.put(path, json={"roles": ["admin", "user"]}, headers=password_only)
        listing = await client.get("/api/v1/users/", headers=password_only)
        other = await client.get(f"/api/v1/users/{user['id']}", headers=password_only)
        allowed = await client.put(path, json={"roles": ["admin", "user"]}, headers=with_otp)
    for response in (refused, listing):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == (
            'Bearer error="insufficient_user_authentication", acr_values="mfa"'
        )
    assert other.status_code == 404  # without the permission, another user's id is not found
    assert allowed.status_code == 200, allowed.text
