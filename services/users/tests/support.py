"""What the users suite shares: its settings and the harness around a running users app (test
tokens, an in-process broker, the outbox rows read back from the database)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from common.db import Database
from common.events import SECRET_EVENT_TYPES, Envelope
from common.inprocess_broker import InProcessBroker
from common.state import keep_state, service_state
from common.testing import AUDIENCE, ISSUER, MovableClock, TokenFactory
from common.tokens import JwksCache
from fastapi import FastAPI
from sqlalchemy import delete, select, text
from users.main import create_app
from users.models import OutboxEvent, User
from users.settings import UsersSettings
from users.state import UsersState

from .auth_double import AuthDouble

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
INTERNAL_SECRET = "test-internal-client-secret-0123456789"


PASSWORD = "a sufficiently long passphrase"
VERIFICATION_REQUESTED = "user.email_verification_requested"


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


@dataclass
class UsersHarness:
    app: FastAPI
    client: httpx.AsyncClient
    database: Database
    tokens: TokenFactory
    broker: InProcessBroker
    auth: AuthDouble
    clock: MovableClock = field(default_factory=MovableClock)

    @property
    def state(self) -> UsersState:
        """What the running app's lifespan built."""
        return service_state(self.app, UsersState)

    def replace_state(self, **pieces: Any) -> None:
        """The running app goes on with `pieces` in its state (a test's own hasher or policy)."""
        keep_state(self.app, dataclasses.replace(self.state, **pieces))

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

    async def change_password(
        self, user: dict[str, Any], new: str, *, current: str = PASSWORD
    ) -> httpx.Response:
        """The owner's PUT /users/me/password, with a token from a login just now."""
        return await self.client.put(
            "/api/v1/users/me/password",
            json={"current_password": current, "new_password": new},
            headers=self.bearer(user),
        )

    async def check_credentials(self, login: str, password: str) -> httpx.Response:
        """The credentials check as auth makes it at every login."""
        return await self.client.post(
            "/internal/v1/credentials/verify",
            json={"login": login, "password": password},
            headers=self.service_bearer("credentials:verify"),
        )

    async def outbox(
        self, user_id: str | None = None, *, with_links: bool = False
    ) -> list[OutboxEvent]:
        """The outbox rows (of `user_id`), in order. Rows carrying a link token
        (`SECRET_EVENT_TYPES`: every registration writes one) are deleted as soon as the relay
        has published them, so whether one is still there is a race: they are left out unless
        `with_links`."""
        async with self.database.sessionmaker() as db:
            rows = (await db.scalars(select(OutboxEvent).order_by(OutboxEvent.seq))).all()
        kept = [row for row in rows if with_links or row.event_type not in SECRET_EVENT_TYPES]
        if user_id is None:
            return kept
        return [row for row in kept if row.payload["data"].get("user_id") == user_id]

    async def settled_outbox_kinds(self, user_id: str, expected: list[str]) -> list[str]:
        """The event types of the user's outbox rows, links included, once they are `expected`
        or after 5 s: the relay deletes a link's row once it has published it, a moment later."""
        for _ in range(100):
            kinds = [row.event_type for row in await self.outbox(user_id, with_links=True)]
            if kinds == expected:
                break
            await asyncio.sleep(0.05)
        return kinds


class LinkEvents:
    """The link events users publishes (what the notifier receives), caught on the in-process
    broker: the only place a link's clear token exists besides the email."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []

    async def handle(self, envelope: Envelope) -> None:
        self.events.append(envelope)

    async def next_for(self, email: str, event_type: str = VERIFICATION_REQUESTED) -> Envelope:
        """The oldest unread `event_type` event to `email` (waits for the relay, bounded)."""
        for _ in range(200):
            for envelope in self.events:
                if envelope.type == event_type and envelope.data["email"] == email:
                    self.events.remove(envelope)
                    return envelope
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {event_type} event for {email}")

    async def token_for(self, email: str, event_type: str = VERIFICATION_REQUESTED) -> str:
        token: str = (await self.next_for(email, event_type)).data["token"]
        return token

    async def none_for(self, email: str, settle: float = 0.5) -> bool:
        """True when no verification event to `email` arrives within `settle` seconds."""
        await asyncio.sleep(settle)
        return not any(
            e.type == VERIFICATION_REQUESTED and e.data["email"] == email for e in self.events
        )


@asynccontextmanager
async def running_users(
    database_url: str, tokens: TokenFactory, *, app_database_url: str | None = None
) -> AsyncIterator[UsersHarness]:
    """users on an emptied `database_url`; with `app_database_url`, the app reaches that
    database another way (through a test's relay), the harness's own `database` directly."""
    database = Database(database_url)
    async with database.sessionmaker() as db, db.begin():
        await db.execute(delete(OutboxEvent))
        await db.execute(delete(User))
    broker = InProcessBroker()
    clock = MovableClock()
    auth = AuthDouble(INTERNAL_SECRET)
    app = create_app(
        users_settings(app_database_url or database_url, internal_client_secret=INTERNAL_SECRET),
        broker=broker.client(),
        jwks=JwksCache(tokens.fetcher()),
        clock=clock,
        auth_transport=httpx.ASGITransport(app=auth.app()),
    )
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://users.test"
        ) as client,
    ):
        yield UsersHarness(app, client, database, tokens, broker, auth, clock)
    await database.dispose()
