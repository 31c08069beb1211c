from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
from common.testing import fresh_database
from redis.asyncio import Redis

from .support import (
    MIGRATIONS,
    OIDC_ISSUER,
    REDIS_URL,
    AuthHarness,
    Browser,
    browser_of,
    running_auth,
)
from .users_double import Account


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


@pytest.fixture(scope="session")
async def _oidc_harness(
    _session_harness: AuthHarness, database_url: str
) -> AsyncIterator[AuthHarness]:
    async with running_auth(database_url, issuer=OIDC_ISSUER, base_url=OIDC_ISSUER) as harness:
        yield harness


@pytest.fixture
def oidc(_oidc_harness: AuthHarness) -> Iterator[AuthHarness]:
    """auth with an HTTPS issuer, for the OpenID Connect provider's tests (and pages)."""
    yield _oidc_harness
    _oidc_harness.clock.offset = timedelta()
    _oidc_harness.users.down = False


@pytest.fixture
def member(oidc: AuthHarness) -> Account:
    """An account of the OpenID Connect harness's users double."""
    return oidc.users.add()


@pytest.fixture
async def browser(oidc: AuthHarness) -> AsyncIterator[Browser]:
    async with browser_of(oidc) as opened:
        yield opened


@pytest.fixture
def auth(_session_harness: AuthHarness) -> Iterator[AuthHarness]:
    """The shared auth app; each test makes its own accounts, and the clock is reset after."""
    yield _session_harness
    _session_harness.clock.offset = timedelta()
    _session_harness.users.down = False
    _session_harness.users.busy = False
    _session_harness.users.ignore_token_times = False


@pytest.fixture
def account(auth: AuthHarness) -> Account:
    return auth.users.add()


def unique() -> str:
    return uuid.uuid4().hex
