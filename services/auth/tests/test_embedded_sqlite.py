"""Embedded mode: the same migrations and the atomic refresh claim work on SQLite (>= 3.35)."""

from __future__ import annotations

from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from auth.main import create_app
from common.cli import migrate_database
from common.embedded import Embedded
from fastapi import FastAPI

from .conftest import ISSUER, MIGRATIONS, auth_settings
from .users_double import UsersDouble, build_users_app


async def test_login_refresh_and_reuse_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}"
    await migrate_database(url, MIGRATIONS)
    settings = auth_settings(url, redis_url=None)
    users = UsersDouble()
    holder: dict[str, FastAPI] = {}

    async def jwks() -> dict[str, object]:
        document: dict[str, object] = holder["app"].state.key_ring.jwks
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
        second = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
        assert second.status_code == 200
        reused = await client.post("/api/v1/auth/refresh", json={"refresh_token": first})
        assert reused.status_code == 401
        rotated = second.json()["refresh_token"]
        after = await client.post("/api/v1/auth/refresh", json={"refresh_token": rotated})
        assert after.status_code == 401
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert set(ready.json()["checks"]) == {"database", "redis", "broker"}
