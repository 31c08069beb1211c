"""Embedded mode: the same migrations and the atomic refresh claim work on SQLite (>= 3.35)."""

from __future__ import annotations

from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from auth.events.handler import handle_user_event
from auth.main import create_app
from auth.state import AuthState
from common.cli import migrate_database
from common.embedded import Embedded
from common.events import Envelope
from common.revocation import EPOCH_KEY, session_key, user_key
from common.state import service_state
from common.testing import ISSUER, FormBrowser
from fastapi import FastAPI

from .support import (
    CALLBACK,
    INTERNAL_SECRET,
    MIGRATIONS,
    auth_settings,
    authorize_url,
    bearer,
    claims_of,
    pkce_pair,
    query_of,
)
from .users_double import UsersDouble, build_users_app


async def test_login_refresh_and_reuse_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
    await migrate_database(url, MIGRATIONS)
    settings = auth_settings(url, redis_url=None)
    users = UsersDouble()
    holder: dict[str, FastAPI] = {}

    async def jwks() -> dict[str, object]:
        document: dict[str, object] = service_state(holder["app"], AuthState).key_ring.jwks
        return document

    users_app = build_users_app(users, jwks, ISSUER)
    app = create_app(
        settings, embedded=Embedded(), users_transport=httpx.ASGITransport(app=users_app)
    )
    holder["app"] = app
    account = users.add()
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as client,
    ):
        login = await client.post(
            "/api/v1/auth/login", data={"username": account.username, "password": account.password}
        )
        assert login.status_code == 200
        first = login.json()["refresh_token"]
        # Introspection's reads (`Database.read_rows`) on SQLite: a read session, same answers.
        for token, kind in ((login.json()["access_token"], "Bearer"), (first, "refresh_token")):
            answer = await client.post(
                "/internal/v1/introspect", data={"token": token}, auth=("gateway", INTERNAL_SECRET)
            )
            assert answer.json()["active"] is True, answer.text
            assert answer.json()["token_type"] == kind
        second = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
        assert second.status_code == 200
        reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
        assert reused.status_code == 401
        rotated = second.json()["refresh_token"]
        after = await client.post("/api/v1/auth/refresh", json={"refresh_token": rotated})
        assert after.status_code == 401
        ended = await client.post(
            "/internal/v1/introspect", data={"token": first}, auth=("gateway", INTERNAL_SECRET)
        )
        assert ended.json() == {"active": False}
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert set(ready.json()["checks"]) == {"database", "redis", "broker"}


async def test_embedded_restart_restores_markers_from_sqlite(tmp_path: Path) -> None:
    """Each embedded start has an empty in-process store: the markers come from the database,
    and the epoch is written before the first request."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
    await migrate_database(url, MIGRATIONS)
    settings = auth_settings(url, redis_url=None)
    users = UsersDouble()
    account = users.add()
    claims: dict[str, object] = {}
    for run in range(2):
        embedded = Embedded()
        holder: dict[str, FastAPI] = {}

        async def jwks(holder: dict[str, FastAPI] = holder) -> dict[str, object]:
            document: dict[str, object] = service_state(holder["app"], AuthState).key_ring.jwks
            return document

        users_app = build_users_app(users, jwks, ISSUER)
        app = create_app(
            settings, embedded=embedded, users_transport=httpx.ASGITransport(app=users_app)
        )
        holder["app"] = app
        async with (
            LifespanManager(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://a"
            ) as client,
        ):
            redis = embedded.redis.client()
            assert await redis.exists(EPOCH_KEY)
            if run == 0:
                login = await client.post(
                    "/api/v1/auth/login",
                    data={"username": account.username, "password": account.password},
                )
                token = login.json()["access_token"]
                claims = claims_of(token)
                logout = await client.post(
                    "/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}
                )
                assert logout.status_code == 204
                state = service_state(app, AuthState)
                await handle_user_event(
                    Envelope(type="user.password_changed", data={"user_id": account.user_id}),
                    database=state.db,
                    redis=state.redis,
                    settings=settings,
                    clock=state.clock,
                )
            assert await redis.exists(session_key(str(claims["sid"])))
            assert await redis.exists(user_key(account.user_id))


async def test_oidc_code_flow_on_sqlite(tmp_path: Path) -> None:
    """`make run`'s OpenID Connect path: a loopback http ISSUER (the development cookie), codes
    claimed with UPDATE … RETURNING on SQLite, a reused code revoking the first one's session."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
    await migrate_database(url, MIGRATIONS)
    issuer = "http://127.0.0.1:8000"
    settings = auth_settings(url, redis_url=None, issuer=issuer)
    users = UsersDouble()
    holder: dict[str, FastAPI] = {}

    async def jwks() -> dict[str, object]:
        document: dict[str, object] = service_state(holder["app"], AuthState).key_ring.jwks
        return document

    app = create_app(
        settings,
        embedded=Embedded(),
        users_transport=httpx.ASGITransport(app=build_users_app(users, jwks, issuer)),
    )
    holder["app"] = app
    admin, member = users.add(roles=("user", "admin")), users.add()
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=issuer) as client,
    ):
        login = await client.post(
            "/api/v1/auth/login", data={"username": admin.username, "password": admin.password}
        )
        created = await client.post(
            "/api/v1/auth/clients",
            json={
                "name": "App",
                "redirect_uris": [CALLBACK],
                "type": "public",
                "first_party": True,
            },
            headers=bearer(login.json()["access_token"]),
        )
        assert created.status_code == 201, created.text
        client_id = created.json()["client_id"]
        verifier, challenge = pkce_pair()
        browser = FormBrowser(client)
        page = await browser.open(authorize_url(client_id, challenge))
        answer = await browser.submit(
            page, {"username": member.username, "password": member.password}
        )
        assert answer.status_code == 303, answer.text
        assert any(c.startswith("gatehouse-sso=") for c in answer.headers.get_list("set-cookie"))
        code = query_of(answer.headers["location"])["code"]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier,
            "client_id": client_id,
        }
        first = await client.post("/api/v1/auth/token", data=form)
        assert first.status_code == 200, first.text
        assert (await client.post("/api/v1/auth/token", data=form)).status_code == 400
        refresh = await client.post(
            "/api/v1/auth/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": first.json()["refresh_token"],
                "client_id": client_id,
            },
        )
        assert refresh.status_code == 400  # the reuse revoked the session
