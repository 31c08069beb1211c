"""The caller's own account: GET and PATCH /users/me, and who gets in."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from common.hot import HotRoute
from common.testing import without_hot_routes
from sqlalchemy import update
from users.models import User

from .support import UsersHarness


async def test_me_returns_the_callers_account(users: UsersHarness) -> None:
    user = await users.register()
    response = await users.client.get("/api/v1/users/me", headers=users.bearer(user))
    assert response.status_code == 200
    assert response.json() == user


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not.a.token"},
        {"X-User-Id": "00000000-0000-0000-0000-000000000000"},
    ],
)
async def test_no_valid_token_is_401(users: UsersHarness, headers: dict[str, str]) -> None:
    response = await users.client.get("/api/v1/users/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_service_tokens_and_unknown_users_are_refused(users: UsersHarness) -> None:
    response = await users.client.get(
        "/api/v1/users/me", headers=users.service_bearer("users:authorization")
    )
    assert response.status_code == 401
    ghost = {"id": "00000000-0000-0000-0000-000000000001"}
    assert (
        await users.client.get("/api/v1/users/me", headers=users.bearer(ghost))
    ).status_code == 401


async def test_patch_changes_only_the_allowed_fields(users: UsersHarness) -> None:
    user = await users.register()
    response = await users.client.patch(
        "/api/v1/users/me",
        json={"full_name": "New Name", "username": "renamed_" + user["username"][-6:]},
        headers=users.bearer(user),
    )
    assert response.status_code == 200, response.text
    assert response.json()["full_name"] == "New Name"
    events = [row.event_type for row in await users.outbox(user["id"])]
    assert events == ["user.registered", "user.updated"]


@pytest.mark.parametrize(
    "body",
    [
        {"roles": ["admin"]},
        {"is_active": False},
        {"id": "00000000-0000-0000-0000-000000000001"},
        {"password_hash": "x"},
        {"full_name": "ok", "roles": ["admin"]},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"email": None},
        {"username": None},
        {"full_name": None},
        {"username": "ab"},
        {"email": "nope"},
        {"full_name": "\u0000"},
    ],
)
async def test_mass_assignment_is_refused_and_changes_nothing(
    users: UsersHarness, body: dict[str, Any]
) -> None:
    user = await users.register()
    response = await users.client.patch("/api/v1/users/me", json=body, headers=users.bearer(user))
    assert response.status_code == 422, response.text
    after = await users.client.get("/api/v1/users/me", headers=users.bearer(user))
    assert after.json() == user
    assert [row.event_type for row in await users.outbox(user["id"])] == ["user.registered"]


async def test_patch_to_a_taken_email_is_409(users: UsersHarness) -> None:
    first = await users.register()
    second = await users.register()
    response = await users.client.patch(
        "/api/v1/users/me", json={"email": first["email"].upper()}, headers=users.bearer(second)
    )
    assert response.status_code == 409
    # Keeping one's own email (in another case) is not a conflict.
    same = await users.client.patch(
        "/api/v1/users/me", json={"email": second["email"].upper()}, headers=users.bearer(second)
    )
    assert same.status_code == 200, same.text


async def test_empty_patch_changes_nothing(users: UsersHarness) -> None:
    user = await users.register()
    response = await users.client.patch("/api/v1/users/me", json={}, headers=users.bearer(user))
    assert response.status_code == 200
    assert [row.event_type for row in await users.outbox(user["id"])] == ["user.registered"]


async def test_the_plain_asgi_me_answers_as_the_fastapi_route(users: UsersHarness) -> None:
    """users.accounts.hot answers GET /me before FastAPI (a `common.hot.HotRoute`): the same
    status, body bytes and headers as the FastAPI route itself, for the account and for every
    refusal."""
    hot_paths = [m.kwargs["path"] for m in users.app.user_middleware if m.cls is HotRoute]  # type: ignore[comparison-overlap]
    assert hot_paths == ["/api/v1/users/me"]
    user = await users.register()
    deactivated = await users.register()
    async with users.database.sessionmaker() as db, db.begin():
        await db.execute(
            update(User).where(User.id == uuid.UUID(deactivated["id"])).values(is_active=False)
        )
    cases = [
        users.bearer(user),
        users.bearer(deactivated),
        users.bearer({"id": "00000000-0000-0000-0000-000000000001"}),
        users.service_bearer("users:authorization"),
        {},
        {"Authorization": "Bearer not.a.token"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ]
    transport = httpx.ASGITransport(app=without_hot_routes(users.app))
    async with httpx.AsyncClient(transport=transport, base_url="http://users.test") as plain:
        for index, case in enumerate(cases):
            headers = {**case, "X-Request-ID": f"same-{index}"}  # the one header that differs
            hot = await users.client.get("/api/v1/users/me", headers=headers)
            route = await plain.get("/api/v1/users/me", headers=headers)
            assert (hot.status_code, hot.content) == (route.status_code, route.content)
            assert hot.headers.multi_items() == route.headers.multi_items()
    assert hot.status_code == 401
