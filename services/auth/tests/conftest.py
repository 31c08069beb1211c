from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from auth.main import create_app
from auth.settings import AuthSettings
from common.broker import Broker
from common.testing import fresh_database, redis_url
from fastapi import FastAPI
from redis.asyncio import Redis

from .users_double import Account, UsersDouble, build_users_app

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
ISSUER = "http://gatehouse.test"
AUDIENCE = "gatehouse-api"
REDIS_URL = redis_url(1)
INTERNAL_SECRET = "test-internal-client-secret-0123456789"


class MovableClock:
    """Real time plus an offset the test controls."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def auth_settings(database_url: str, **overrides: Any) -> AuthSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "auth_database_url": database_url,
        "redis_url": REDIS_URL,
        "amqp_url": None,
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "users_url": "http://users.test",
        "rsa_key_bits": 2048,
        "key_refresh_seconds": 3600,  # the background task stays asleep during tests
        "internal_client_secret": INTERNAL_SECRET,
        **overrides,
    }
    return AuthSettings(**values)


@dataclass
class AuthHarness:
    app: FastAPI
    client: httpx.AsyncClient
    users: UsersDouble
    clock: MovableClock
    settings: AuthSettings
    redis: Redis

    async def login(self, account: Account) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/auth/login",
            data={"username": account.username, "password": account.password},
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def refresh(self, refresh_token: str) -> httpx.Response:
        return await self.client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})

    async def jwks(self) -> Mapping[str, Any]:
        document: Mapping[str, Any] = self.app.state.key_ring.jwks
        return document


@asynccontextmanager
async def running_auth(
    database_url: str, *, broker: Broker | None = None, **overrides: Any
) -> AsyncIterator[AuthHarness]:
    """auth on `database_url` with a users double behind an ASGI transport."""
    settings = auth_settings(database_url, **overrides)
    users = UsersDouble()
    clock = MovableClock()
    holder: dict[str, FastAPI] = {}

    async def jwks() -> Mapping[str, Any]:
        document: Mapping[str, Any] = holder["auth"].state.key_ring.jwks
        return document

    users_app = build_users_app(users, jwks, ISSUER)
    app = create_app(
        settings,
        users_transport=httpx.ASGITransport(app=users_app),
        clock=clock,
        broker=broker,
    )
    holder["auth"] = app
    redis = Redis.from_url(settings.redis_url or REDIS_URL)
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://auth.test") as client:
            yield AuthHarness(app, client, users, clock, settings, redis)
    await redis.aclose()


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    async with fresh_database("auth", MIGRATIONS) as url:
        yield url


@pytest.fixture(scope="session")
async def _session_harness(database_url: str) -> AsyncIterator[AuthHarness]:
    redis = Redis.from_url(REDIS_URL)
    await redis.flushdb()  # DB /1 belongs to auth's tests
    await redis.aclose()
    async with running_auth(database_url) as harness:
        yield harness


@pytest.fixture
def auth(_session_harness: AuthHarness) -> Iterator[AuthHarness]:
    """The shared auth app; each test makes its own accounts, and the clock is reset after."""
    yield _session_harness
    _session_harness.clock.offset = timedelta()
    _session_harness.users.down = False
    _session_harness.users.ignore_token_times = False


@pytest.fixture
def account(auth: AuthHarness) -> Account:
    return auth.users.add()


def unique() -> str:
    return uuid.uuid4().hex
