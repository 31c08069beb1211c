"""users on a fresh PostgreSQL database, tokens signed by a test key, events on an in-process
broker (the outbox rows themselves are checked in the database)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from common.testing import AUDIENCE, ISSUER, TokenFactory, fresh_database

from .support import MIGRATIONS, LinkEvents, UsersHarness, running_users


@pytest.fixture(scope="session")
async def users_database_url() -> AsyncIterator[str]:
    async with fresh_database("users", MIGRATIONS) as url:
        yield url


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory(ISSUER, AUDIENCE)


@pytest.fixture
async def users(users_database_url: str, tokens: TokenFactory) -> AsyncIterator[UsersHarness]:
    async with running_users(users_database_url, tokens) as harness:
        yield harness


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
