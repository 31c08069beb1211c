"""What the users suite shares: its settings and the harness around a running users app (test
tokens, an in-process broker, the outbox rows read back from the database)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from common.db import Database
from common.inprocess_broker import InProcessBroker
from common.testing import AUDIENCE, ISSUER, TokenFactory
from fastapi import FastAPI
from sqlalchemy import select, text
from users.models import OutboxEvent
from users.settings import UsersSettings

from .auth_double import AuthDouble

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


PASSWORD = "a sufficiently long passphrase"


TEST_ROUNDS = 4  # production is 12 (test_settings checks); bcrypt at 4 keeps the suite fast


def users_settings(database_url: str, **overrides: Any) -> UsersSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "users_database_url": database_url,
        "amqp_url": None,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "bcrypt_rounds": TEST_ROUNDS,
        **overrides,
    }
    return UsersSettings(**values)


class MovableClock:
    """Real time plus an offset the test controls."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class UsersHarness:
    app: FastAPI
    client: httpx.AsyncClient
    database: Database
    tokens: TokenFactory
    broker: InProcessBroker
    auth: AuthDouble
    clock: MovableClock = field(default_factory=MovableClock)

    async def register(self, **overrides: str) -> dict[str, Any]:
        tag = uuid.uuid4().hex[:10]
        body = {
            "email": f"user.{tag}@example.org",
            "username": f"user_{tag}",
            "password": PASSWORD,
            "full_name": "Test User",
            **overrides,
        }
        response = await self.client.post("/api/v1/users/", json=body)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def bearer(
        self,
        user: dict[str, Any],
        *,
        scope: str = "",
        roles: tuple[str, ...] = ("user",),
        logged_in_ago: int | None = 0,
        amr: tuple[str, ...] = ("pwd",),
    ) -> dict[str, str]:
        """A user token as auth issues it: by default from a password login just now; with
        `logged_in_ago`, from a session whose login was that many seconds ago (None: a token
        with no `auth_time` at all)."""
        claims: dict[str, Any] = {"amr": list(amr)}
        if logged_in_ago is not None:
            claims["auth_time"] = int(time.time()) - logged_in_ago
        token = self.tokens.access_token(str(user["id"]), scope=scope, roles=roles, **claims)
        return {"Authorization": f"Bearer {token}"}

    def admin_bearer(
        self, user: dict[str, Any], *, logged_in_ago: int | None = 0
    ) -> dict[str, str]:
        return self.bearer(
            user,
            scope="users:read users:manage",
            roles=("admin", "user"),
            logged_in_ago=logged_in_ago,
        )

    def service_bearer(self, scope: str) -> dict[str, str]:
        token = self.tokens.access_token("auth", session_id=None, scope=scope, audience="users")
        return {"Authorization": f"Bearer {token}"}

    async def make_admin(self, user: dict[str, Any]) -> None:
        async with self.database.sessionmaker() as db, db.begin():
            await db.execute(
                text("INSERT INTO user_roles (user_id, role_name) VALUES (:id, 'admin')"),
                {"id": uuid.UUID(str(user["id"]))},
            )

    async def outbox(self, user_id: str | None = None) -> list[OutboxEvent]:
        async with self.database.sessionmaker() as db:
            rows = (await db.scalars(select(OutboxEvent).order_by(OutboxEvent.seq))).all()
        if user_id is None:
            return list(rows)
        return [row for row in rows if row.payload["data"].get("user_id") == user_id]
