"""The deliveries table's batched statements, on PostgreSQL and on the embedded SQLite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from common.cli import migrate_database
from common.db import Database
from notifier.deliveries import repository
from notifier.deliveries.models import Delivery, DeliveryStatus
from notifier.deliveries.repository import ERROR_LENGTH, Claim, Outcome
from sqlalchemy import delete, select

from .support import MIGRATIONS


@pytest.fixture(params=["postgresql", "sqlite"])
async def store(
    request: pytest.FixtureRequest, notifier_database_url: str, tmp_path: Path
) -> AsyncIterator[Database]:
    if request.param == "postgresql":
        url = notifier_database_url
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'notifier.db'}"
        await migrate_database(url, MIGRATIONS)
    database = Database(url)
    async with database.sessionmaker() as db, db.begin():
        await db.execute(delete(Delivery))
    yield database
    await database.dispose()


async def records(database: Database) -> dict[uuid.UUID, Delivery]:
    async with database.sessionmaker() as db:
        return {row.event_id: row for row in await db.scalars(select(Delivery))}


async def test_claim_many_inserts_new_events_once(store: Database) -> None:
    old, new, twice = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with store.sessionmaker() as db, db.begin():
        claimed = await repository.claim_many(db, [Claim(old, "welcome", "old@example.com")])
        assert claimed == {old}
    claims = [
        Claim(old, "welcome", "other@example.com"),
        Claim(new, "welcome", "new@example.com"),
        Claim(twice, "welcome", "twice@example.com"),
        Claim(twice, "welcome", "twice@example.com"),
    ]
    async with store.sessionmaker() as db, db.begin():
        inserted = await repository.claim_many(db, claims)
    assert inserted == {new, twice}
    rows = await records(store)
    assert set(rows) == {old, new, twice}
    assert rows[old].recipient == "old@example.com"  # left alone
    assert all(row.status == DeliveryStatus.SENDING and row.attempts == 1 for row in rows.values())


async def test_record_outcomes_sets_status_error_and_sent_time(store: Database) -> None:
    sent, failed, rejected = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with store.sessionmaker() as db, db.begin():
        await repository.claim_many(
            db,
            [Claim(event_id, "welcome", "a@example.com") for event_id in (sent, failed, rejected)],
        )
    async with store.sessionmaker() as db, db.begin():
        await repository.record_outcomes(
            db,
            [
                Outcome(sent, DeliveryStatus.SENT),
                Outcome(failed, DeliveryStatus.FAILED, "451 try later"),
                Outcome(rejected, DeliveryStatus.REJECTED, "x" * (ERROR_LENGTH + 100)),
            ],
        )
    rows = await records(store)
    assert rows[sent].status == DeliveryStatus.SENT
    assert rows[sent].sent_at is not None
    assert rows[sent].last_error is None
    assert rows[failed].status == DeliveryStatus.FAILED
    assert rows[failed].last_error == "451 try later"
    assert rows[failed].sent_at is None
    assert rows[rejected].status == DeliveryStatus.REJECTED
    assert rows[rejected].last_error == "x" * ERROR_LENGTH
