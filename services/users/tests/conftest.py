"""users on a fresh PostgreSQL database, tokens signed by a test key, events on an in-process
broker (the outbox rows themselves are checked in the database)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from common.db import Database
from common.inprocess_broker import InProcessBroker
from common.testing import AUDIENCE, ISSUER, MovableClock, TokenFactory, fresh_database
from common.tokens import JwksCache
from sqlalchemy import delete
from users.main import create_app
from users.models import OutboxEvent, User

from .auth_double import AuthDouble
from .support import MIGRATIONS, LinkEvents, UsersHarness, users_settings

INTERNAL_SECRET = "test-internal-client-secret-0123456789"


@pytest.fixture(scope="session")
async def users_database_url() -> AsyncIterator[str]:
    async with fresh_database("users", MIGRATIONS) as url:
        yield url


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory(ISSUER, AUDIENCE)


@pytest.fixture
async def users(users_database_url: str, tokens: TokenFactory) -> AsyncIterator[UsersHarness]:
    database = Database(users_database_url)
    async with database.sessionmaker() as db, db.begin():
        await db.execute(delete(OutboxEvent))
        await db.execute(delete(User))
    broker = InProcessBroker()
    clock = MovableClock()
    auth = AuthDouble(INTERNAL_SECRET)
    app = create_app(
        users_settings(users_database_url, internal_client_secret=INTERNAL_SECRET),
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


@pytest.fixture
async def links(users: UsersHarness) -> AsyncIterator[LinkEvents]:
    """Every link event users publishes from now on (reset and verification links)."""
    box = LinkEvents()
    consumer = users.broker.client()
    await consumer.start()
    await consumer.consume(
        "test.link-events",
        ["user.email_verification_requested", "user.password_reset_requested"],
        box.handle,
    )
    yield box
    await consumer.close()
