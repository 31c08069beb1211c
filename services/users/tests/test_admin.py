"""Administration: the list, reading others, roles, deactivation, the CSV export — and everyone
who must be refused."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from common.errors import Conflict
from sqlalchemy import insert, text
from users.accounts import repository
from users.accounts.service import Accounts
from users.models import User, user_roles

from .support import UsersHarness


async def an_admin(users: UsersHarness) -> tuple[dict[str, Any], dict[str, str]]:
    admin = await users.register()
    await users.make_admin(admin)
    return admin, users.admin_bearer(admin)


# --- who gets in -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/users/me"),
        ("PATCH", "/api/v1/users/me"),
        ("PUT", "/api/v1/users/me/password"),
        ("GET", "/api/v1/users/"),
        ("GET", "/api/v1/users/{id}"),
        ("PUT", "/api/v1/users/{id}/roles"),
        ("DELETE", "/api/v1/users/{id}"),
        ("GET", "/api/v1/users/export.csv"),
    ],
)
async def test_every_protected_route_needs_a_valid_token(
    users: UsersHarness, method: str, path: str
) -> None:
    user = await users.register()
    url = path.format(id=user["id"])
    expired = users.tokens.access_token(
        str(user["id"]), scope="users:read users:manage", lifetime=-120
    )
    for headers in ({}, {"Authorization": f"Bearer {expired}"}):
        response = await users.client.request(method, url, json={}, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_reading_is_not_managing(users: UsersHarness) -> None:
    reader = await users.register()
    other = await users.register()
    headers = users.bearer(reader, scope="users:read")
    assert (
        await users.client.get(f"/api/v1/users/{other['id']}", headers=headers)
    ).status_code == 200
    response = await users.client.delete(f"/api/v1/users/{other['id']}", headers=headers)
    assert response.status_code == 404
    assert (await users.client.get(f"/api/v1/users/{other['id']}", headers=headers)).json()[
        "is_active"
    ] is True


# --- list -------------------------------------------------------------------------------------
async def test_listing_needs_users_read(users: UsersHarness) -> None:
    user = await users.register()
    assert (await users.client.get("/api/v1/users/", headers=users.bearer(user))).status_code == 403
    assert (await users.client.get("/api/v1/users/")).status_code == 401


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "offset=-1",
        "cursor=%%%",
        "cursor=bm9wZQ",
        "offset=0&cursor=abc",
        "is_active=maybe",
        "role=%00",
        "role=a%20b",
        "role=" + "r" * 65,
    ],
)
async def test_bad_list_queries_are_422(users: UsersHarness, query: str) -> None:
    _, headers = await an_admin(users)
    response = await users.client.get(f"/api/v1/users/?{query}", headers=headers)
    assert response.status_code == 422, response.text


async def test_offset_pages_and_filters(users: UsersHarness) -> None:
    admin, headers = await an_admin(users)
    others = [await users.register() for _ in range(4)]
    await users.client.delete(f"/api/v1/users/{others[0]['id']}", headers=headers)
    first = (await users.client.get("/api/v1/users/?limit=2", headers=headers)).json()
    second = (await users.client.get("/api/v1/users/?limit=2&offset=2", headers=headers)).json()
    assert first["total"] == second["total"] == 5
    ids = [u["id"] for u in first["items"] + second["items"]]
    assert len(set(ids)) == 4
    active = (await users.client.get("/api/v1/users/?is_active=false", headers=headers)).json()
    assert [u["id"] for u in active["items"]] == [others[0]["id"]]
    admins = (await users.client.get("/api/v1/users/?role=admin", headers=headers)).json()
    assert [u["id"] for u in admins["items"]] == [admin["id"]]
    nobody = (await users.client.get("/api/v1/users/?role=nonexistent", headers=headers)).json()
    assert nobody["items"] == []
    assert nobody["total"] == 0


async def test_cursor_pages_stay_stable_under_concurrent_inserts(users: UsersHarness) -> None:
    _, headers = await an_admin(users)
    for _ in range(6):
        await users.register()
    seen: list[str] = []
    page = (await users.client.get("/api/v1/users/?limit=3", headers=headers)).json()
    seen += [u["id"] for u in page["items"]]
    while page["next_cursor"]:
        # Others register between our pages; they sort after everything already listed.
        await asyncio.gather(users.register(), users.register())
        page = (
            await users.client.get(
                f"/api/v1/users/?limit=3&cursor={page['next_cursor']}", headers=headers
            )
        ).json()
        seen += [u["id"] for u in page["items"]]
        if len(seen) > 40:
            break
    assert len(seen) == len(set(seen)), "a user appeared twice"
    created = [u["created_at"] for u in page["items"]]
    assert created == sorted(created)


# --- read one -----------------------------------------------------------------------------------
async def test_reading_a_user(users: UsersHarness) -> None:
    me = await users.register()
    other = await users.register()
    _, admin = await an_admin(users)
    own = await users.client.get(f"/api/v1/users/{me['id']}", headers=users.bearer(me))
    assert own.status_code == 200
    # Someone else's id is a 404 (not 403): existence is not revealed.
    idor = await users.client.get(f"/api/v1/users/{other['id']}", headers=users.bearer(me))
    assert idor.status_code == 404
    missing = await users.client.get(f"/api/v1/users/{uuid.uuid4()}", headers=users.bearer(me))
    assert missing.json()["detail"] == idor.json()["detail"]
    assert (
        await users.client.get(f"/api/v1/users/{other['id']}", headers=admin)
    ).status_code == 200
    # Only a UUID names a user: any other path segment names nothing.
    bad = await users.client.get("/api/v1/users/not-a-uuid", headers=admin)
    assert bad.status_code == 404


# --- roles ----------------------------------------------------------------------------------------
async def test_changing_roles(users: UsersHarness) -> None:
    _, admin = await an_admin(users)
    user = await users.register()
    response = await users.client.put(
        f"/api/v1/users/{user['id']}/roles", json={"roles": ["user", "admin"]}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["admin", "user"]
    events = [row.event_type for row in await users.outbox(user["id"])]
    assert events == ["user.registered", "user.roles_changed"]
    same = await users.client.put(
        f"/api/v1/users/{user['id']}/roles", json={"roles": ["admin", "user"]}, headers=admin
    )
    assert same.status_code == 200
    assert len(await users.outbox(user["id"])) == 2  # no change, no event


@pytest.mark.parametrize(
    "body",
    [
        {"roles": ["superuser"]},
        {"roles": "admin"},
        {"roles": [""]},
        {},
        {"roles": [1]},
        {"roles": ["user"], "is_active": True},
        {"roles": ["user\u0000"]},
        {"roles": ["user"] * 21},
        {"roles": None},
    ],
)
async def test_bad_role_changes_are_422(users: UsersHarness, body: dict[str, Any]) -> None:
    _, admin = await an_admin(users)
    user = await users.register()
    response = await users.client.put(f"/api/v1/users/{user['id']}/roles", json=body, headers=admin)
    assert response.status_code == 422


async def test_roles_need_users_manage(users: UsersHarness) -> None:
    user = await users.register()
    reader = await users.register()
    for headers in (
        users.bearer(user),
        users.bearer(reader, scope="users:read", roles=("user",)),
    ):
        response = await users.client.put(
            f"/api/v1/users/{user['id']}/roles", json={"roles": ["admin"]}, headers=headers
        )
        assert response.status_code == 403


async def test_the_last_admin_keeps_the_role(users: UsersHarness) -> None:
    admin, headers = await an_admin(users)
    response = await users.client.put(
        f"/api/v1/users/{admin['id']}/roles", json={"roles": ["user"]}, headers=headers
    )
    assert response.status_code == 409
    second, _ = await an_admin(users)
    response = await users.client.put(
        f"/api/v1/users/{admin['id']}/roles", json={"roles": ["user"]}, headers=headers
    )
    assert response.status_code == 200
    last = await users.client.delete(f"/api/v1/users/{second['id']}", headers=headers)
    assert last.status_code == 409


async def test_two_admins_removing_each_other_at_once_leave_one(users: UsersHarness) -> None:
    """Each transaction holds its target's row when it checks for another admin: the check must
    serialise them without deadlocking (PostgreSQL would abort one with a 500)."""
    first, _ = await an_admin(users)
    second, _ = await an_admin(users)
    both_locked = asyncio.Barrier(2)

    async def remove(target: dict[str, Any], how: str) -> str:
        async with users.database.sessionmaker() as db:
            try:
                async with db.begin():
                    user = await repository.by_id(db, uuid.UUID(target["id"]), lock=True)
                    assert user is not None
                    await both_locked.wait()
                    state = users.state
                    accounts = Accounts(db, state.hasher, state.auth_sessions)
                    if how == "roles":
                        await accounts.set_roles(user, ["user"])
                    else:
                        await accounts.deactivate(user)
            except Conflict:
                return "refused"
        return "done"

    for how in ("roles", "deactivate"):
        outcomes = await asyncio.gather(remove(first, how), remove(second, how))
        assert sorted(outcomes) == ["done", "refused"], how
        restored = first if outcomes[0] == "done" else second
        async with users.database.sessionmaker() as db, db.begin():
            await db.execute(
                text("UPDATE users SET is_active = true WHERE id = :id"),
                {"id": uuid.UUID(restored["id"])},
            )
            await db.execute(
                text("INSERT INTO user_roles VALUES (:id, 'admin') ON CONFLICT DO NOTHING"),
                {"id": uuid.UUID(restored["id"])},
            )


# --- deactivation ---------------------------------------------------------------------------------
async def test_deactivation(users: UsersHarness) -> None:
    me = await users.register()
    other = await users.register()
    _, admin = await an_admin(users)
    assert (
        await users.client.delete(f"/api/v1/users/{other['id']}", headers=users.bearer(me))
    ).status_code == 404
    assert (
        await users.client.delete(f"/api/v1/users/{me['id']}", headers=users.bearer(me))
    ).status_code == 204
    assert (await users.client.get("/api/v1/users/me", headers=users.bearer(me))).status_code == 401
    assert (
        await users.client.delete(f"/api/v1/users/{other['id']}", headers=admin)
    ).status_code == 204
    again = await users.client.delete(f"/api/v1/users/{other['id']}", headers=admin)
    assert again.status_code == 204
    events = [row.event_type for row in await users.outbox(other["id"])]
    assert events == ["user.registered", "user.deactivated"]  # once, not twice


# --- export ------------------------------------------------------------------------------------
async def test_export_streams_ten_thousand_users(users: UsersHarness) -> None:
    _, admin = await an_admin(users)
    start = datetime.now(UTC)
    rows = [
        {
            "id": uuid.uuid4(),
            "email": f"bulk{i}@example.org",
            "email_canonical": f"bulk{i}@example.org",
            "username": f"bulk_{i}",
            "username_canonical": f"bulk_{i}",
            "full_name": '=HYPERLINK("http://evil")' if i == 7 else f"Bulk {i}",
            "password_hash": "x",
            "is_active": True,
            "created_at": start + timedelta(microseconds=i),
            "updated_at": start,
        }
        for i in range(10_000)
    ]
    async with users.database.sessionmaker() as db, db.begin():
        await db.execute(insert(User), rows)
        await db.execute(
            insert(user_roles), [{"user_id": r["id"], "role_name": "user"} for r in rows[:10]]
        )
    # Straight through ASGI (httpx's test transport buffers): count the body messages.
    messages: list[MutableMapping[str, Any]] = []

    requested = False
    finished = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await finished.wait()  # the client stays connected until the response ends
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            finished.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/v1/users/export.csv",
        "raw_path": b"/api/v1/users/export.csv",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"users.test"), (b"authorization", admin["Authorization"].encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("users.test", 80),
        "state": {},
    }
    await users.app(scope, receive, send)
    start_message = messages[0]
    assert start_message["status"] == 200
    assert dict(start_message["headers"])[b"content-type"].startswith(b"text/csv")
    bodies = [m["body"] for m in messages if m["type"] == "http.response.body"]
    assert len(bodies) > 10, "the export was not streamed"
    body = io.StringIO(b"".join(bodies).decode())
    table = list(csv.reader(body))
    assert table[0] == ["id", "email", "username", "full_name", "is_active", "created_at"]
    assert len(table) == 1 + 10_000 + 1  # header, the bulk users, the admin
    formulas = [row[3] for row in table[1:] if row[3].lstrip("'").startswith("=")]
    assert formulas == ['\'=HYPERLINK("http://evil")']
    async with users.database.sessionmaker() as db, db.begin():
        await db.execute(text("DELETE FROM users WHERE username LIKE 'bulk%'"))


async def test_export_needs_users_read(users: UsersHarness) -> None:
    user = await users.register()
    response = await users.client.get("/api/v1/users/export.csv", headers=users.bearer(user))
    assert response.status_code == 403
