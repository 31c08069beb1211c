from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from asgi_lifespan import LifespanManager
from common.db import Database
from common.inprocess_broker import InProcessBroker
from common.testing import SmtpSink, fresh_database
from fastapi import FastAPI
from notifier.deliveries.models import Delivery
from sqlalchemy import delete

from .support import FAST, MIGRATIONS, make_app


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


@pytest.fixture
def broker() -> InProcessBroker:
    """One consumer: events are handled in the order they are published."""
    return InProcessBroker(retry=FAST, concurrency=1)


@pytest.fixture
async def app(
    database: Database, smtp: SmtpSink, broker: InProcessBroker
) -> AsyncIterator[FastAPI]:
    """The notifier, running, consuming `broker` and sending to `smtp`."""
    app = make_app(database, smtp, broker)
    async with LifespanManager(app):
        yield app
