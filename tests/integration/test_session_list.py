"""The caller's sessions, end to end through the gateway (API.md §10): listed with the address
and User-Agent the gateway saw, ended one by one and all but the current one; an ended session's
access token is refused by the gateway on the very next request and its refresh token is dead."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import jwt
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from .platform import Platform
from .support import bearer, new_account, register, tokens_for

SESSIONS = "/api/v1/auth/sessions"


@asynccontextmanager
async def client_from(
    platform: Platform, source: str, agent: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the gateway whose connections come from loopback address `source`."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(
        base_url=platform.url("gateway"),
        transport=transport,
        headers={"User-Agent": agent},
        timeout=30.0,
    ) as client:
        yield client


def sid(pair: dict[str, Any]) -> str:
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    session_id: str = claims["sid"]
    return session_id


async def refresh(gateway: httpx.AsyncClient, pair: dict[str, Any]) -> httpx.Response:
    return await gateway.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})


async def test_sessions_listed_and_ended_through_the_gateway(platform: Platform) -> None:
    account = new_account()
    async with (
        client_from(platform, "127.0.0.2", "Gatehouse-Laptop/1.0") as laptop,
        client_from(platform, "127.0.0.3", "Gatehouse-Phone/2.0") as phone,
        client_from(platform, "127.0.0.4", "Gatehouse-Tablet/3.0") as tablet,
    ):
        await register(laptop, account)
        mine = await tokens_for(laptop, account)
        on_phone = await tokens_for(phone, account)
        on_tablet = await tokens_for(tablet, account)
        stranger = await tokens_for(laptop, await _registered(laptop))

        listed = await laptop.get(SESSIONS, headers=bearer(mine["access_token"]))
        assert listed.status_code == 200, listed.text
        sessions = listed.json()
        assert [s["id"] for s in sessions] == [sid(on_tablet), sid(on_phone), sid(mine)]
        assert [(s["ip"], s["user_agent"], s["current"]) for s in sessions] == [
            ("127.0.0.4", "Gatehouse-Tablet/3.0", False),
            ("127.0.0.3", "Gatehouse-Phone/2.0", False),
            ("127.0.0.2", "Gatehouse-Laptop/1.0", True),
        ]
        assert all(s["amr"] == ["pwd"] for s in sessions)

        # Someone else's session is a 404, and it goes on.
        foreign = await laptop.delete(
            f"{SESSIONS}/{sid(stranger)}", headers=bearer(mine["access_token"])
        )
        assert foreign.status_code == 404
        assert foreign.headers["content-type"] == "application/problem+json"
        assert (
            await laptop.get(SESSIONS, headers=bearer(stranger["access_token"]))
        ).status_code == 200

        # End the phone's session: its very next request is refused at the gateway.
        me_on_phone = await phone.get("/api/v1/users/me", headers=bearer(on_phone["access_token"]))
        assert me_on_phone.status_code == 200
        ended = await laptop.delete(
            f"{SESSIONS}/{sid(on_phone)}", headers=bearer(mine["access_token"])
        )
        assert ended.status_code == 204
        refused = await phone.get("/api/v1/users/me", headers=bearer(on_phone["access_token"]))
        assert refused.status_code == 401
        assert "invalid_token" in refused.headers["www-authenticate"]
        assert (await refresh(phone, on_phone)).status_code == 401
        after = await laptop.get(SESSIONS, headers=bearer(mine["access_token"]))
        assert [s["id"] for s in after.json()] == [sid(on_tablet), sid(mine)]

        # All but the current one: the tablet's session ends, the laptop's goes on.
        others = await laptop.delete(SESSIONS, headers=bearer(mine["access_token"]))
        assert others.status_code == 204
        tablet_me = await tablet.get("/api/v1/users/me", headers=bearer(on_tablet["access_token"]))
        assert tablet_me.status_code == 401
        assert (await refresh(tablet, on_tablet)).status_code == 401
        assert (
            await laptop.get("/api/v1/users/me", headers=bearer(mine["access_token"]))
        ).status_code == 200
        rotated = await refresh(laptop, mine)
        assert rotated.status_code == 200
        [left] = (await laptop.get(SESSIONS, headers=bearer(rotated.json()["access_token"]))).json()
        assert (left["id"], left["current"]) == (sid(mine), True)


async def _registered(gateway: httpx.AsyncClient) -> dict[str, str]:
    account = new_account()
    await register(gateway, account)
    return account


async def make_admin(platform: Platform, user_id: str) -> None:
    """Arrange an admin directly in users' database (the platform has no bootstrap admin)."""
    engine = create_async_engine(platform.env["USERS_DATABASE_URL"])
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("INSERT INTO user_roles (user_id, role_name) VALUES (:id, 'admin')"),
                {"id": uuid.UUID(user_id)},
            )
    finally:
        await engine.dispose()


async def test_an_admin_lists_and_ends_a_users_sessions(
    gateway: httpx.AsyncClient, platform: Platform
) -> None:
    admin_account, user_account = new_account(), new_account()
    admin = await register(gateway, admin_account)
    user = await register(gateway, user_account)
    await make_admin(platform, admin["id"])
    admin_pair = await tokens_for(gateway, admin_account)  # roles are read at login
    first, second = await tokens_for(gateway, user_account), await tokens_for(gateway, user_account)
    as_admin = bearer(admin_pair["access_token"])

    listed = await gateway.get(SESSIONS, headers=as_admin, params={"user_id": user["id"]})
    assert listed.status_code == 200, listed.text
    assert [s["id"] for s in listed.json()] == [sid(second), sid(first)]

    # A user naming someone is refused; the admin's id is not the user's.
    nosy = await gateway.get(
        SESSIONS, headers=bearer(first["access_token"]), params={"user_id": admin["id"]}
    )
    assert nosy.status_code == 403
    ended = await gateway.delete(
        f"{SESSIONS}/{sid(first)}", headers=as_admin, params={"user_id": user["id"]}
    )
    assert ended.status_code == 204
    assert (
        await gateway.get("/api/v1/users/me", headers=bearer(first["access_token"]))
    ).status_code == 401
    everything = await gateway.delete(SESSIONS, headers=as_admin, params={"user_id": user["id"]})
    assert everything.status_code == 204
    assert (
        await gateway.get("/api/v1/users/me", headers=bearer(second["access_token"]))
    ).status_code == 401
    assert (await refresh(gateway, second)).status_code == 401
    assert (await gateway.get("/api/v1/users/me", headers=as_admin)).status_code == 200


async def test_bad_input_on_the_session_routes_is_a_4xx_problem(
    gateway: httpx.AsyncClient,
) -> None:
    account = new_account()
    await register(gateway, account)
    pair = await tokens_for(gateway, account)
    headers = bearer(pair["access_token"])
    for method, path, params, status in (
        ("DELETE", f"{SESSIONS}/not-a-uuid", {}, 404),
        ("DELETE", f"{SESSIONS}/{uuid.uuid4()}", {}, 404),
        ("DELETE", f"{SESSIONS}/{'9' * 5000}", {}, 404),
        ("GET", SESSIONS, {"user_id": "x" * 3000}, 422),
        ("DELETE", SESSIONS, {"user_id": "nope"}, 422),
        ("POST", SESSIONS, {}, 405),
    ):
        response = await gateway.request(method, path, headers=headers, params=params)
        assert response.status_code == status, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    for method, path in (
        ("GET", SESSIONS),
        ("DELETE", SESSIONS),
        ("DELETE", f"{SESSIONS}/{sid(pair)}"),
    ):
        anonymous = await gateway.request(method, path)
        assert anonymous.status_code == 401
    assert (await gateway.get(SESSIONS, headers=headers)).status_code == 200
