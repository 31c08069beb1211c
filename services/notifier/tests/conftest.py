from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from common.db import Database
from common.testing import SmtpSink, fresh_database
from notifier.deliveries.models import Delivery
from sqlalchemy import delete

from .support import MIGRATIONS


@pytest.fixture(scope="session")
async def notifier_database_url() -> AsyncIterator[str]:
    async with fresh_database("notifier", MIGRATIONS) as url:
        yield url


@pytest.fixture
async def database(notifier_database_url: str) -> AsyncIterator[Database]:
    """The test database, emptied before each test (the notifier commits for real)."""
    database = Database(notifier_database_url)
    async with database.sessionmaker() as db, db.begin():
        await db.execute(delete(Delivery))
    yield database
    await database.dispose()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def smtp(smtp_server: SmtpSink) -> SmtpSink:
    smtp_server.reset()
    return smtp_server
