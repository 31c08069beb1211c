"""The outbox relay on real PostgreSQL (and SQLite), with a test-only outbox table."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from common.broker import BrokerUnavailable
from common.db import Database, new_metadata
from common.events import Envelope, OutboxMixin, utcnow
from common.inprocess_broker import InProcessBroker
from common.outbox import OutboxRelay, add_outbox_event
from common.rabbitmq import RabbitBroker
from common.testing import admin_url, wait_until
from prometheus_client import REGISTRY
from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import DeclarativeBase

from .support import registered

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


class RelayTestBase(DeclarativeBase):
    metadata = new_metadata()


class RelayOutbox(OutboxMixin, RelayTestBase):
    """A test-only outbox table (the users service declares its own the same way)."""


@pytest.fixture(scope="module")
async def outbox_database() -> AsyncIterator[Database]:
    name = f"gatehouse_test_outbox_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(admin_url(), isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url()).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(RelayTestBase.metadata.create_all)
        yield database
    finally:
        await database.dispose()
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
async def store(outbox_database: Database) -> Database:
    async with outbox_database.sessionmaker() as db, db.begin():
        await db.execute(delete(RelayOutbox))
    return outbox_database


async def write_events(database: Database, envelopes: list[Envelope]) -> None:
    async with database.sessionmaker() as db, db.begin():
        for envelope in envelopes:
            await add_outbox_event(db, RelayOutbox, envelope)


async def unsent(database: Database) -> list[RelayOutbox]:
    async with database.sessionmaker() as db:
        statement = select(RelayOutbox).where(RelayOutbox.sent_at.is_(None))
        return list((await db.scalars(statement)).all())


def recording_broker(
    received: list[uuid.UUID], queues: dict[str, tuple[str, ...]] | None = None
) -> InProcessBroker:
    return InProcessBroker(queues=queues or {"test.all": ("#",)}, concurrency=1)


async def record_into(broker: InProcessBroker, received: list[uuid.UUID], queue: str) -> None:
    async def record(envelope: Envelope) -> None:
        received.append(envelope.id)

    await broker.consume(queue, ["#"], record)


async def test_pending_rows_are_published_in_order_and_marked_sent(store: Database) -> None:
    received: list[uuid.UUID] = []
    broker = recording_broker(received)
    await record_into(broker, received, "test.all")
    envelopes = [registered() for _ in range(50)]
    await write_events(store, envelopes)
    relay = OutboxRelay(store, RelayOutbox, broker, batch_size=20)

    published = [await relay.publish_pending() for _ in range(4)]

    assert published == [20, 20, 10, 0]
    await wait_until(lambda: len(received) == 50)
    await broker.close()
    assert received == [envelope.id for envelope in envelopes]
    assert await unsent(store) == []


async def test_several_relays_never_publish_the_same_row_twice(store: Database) -> None:
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    queue = "outbox-test"
    broker = RabbitBroker(AMQP_URL, prefix=prefix, queues={queue: ("user.registered",)})
    await broker.start()
    received: list[uuid.UUID] = []

    async def record(envelope: Envelope) -> None:
        received.append(envelope.id)

    await broker.consume(queue, ["user.registered"], record)
    envelopes = [registered() for _ in range(600)]
    await write_events(store, envelopes)
    relays = [OutboxRelay(store, RelayOutbox, broker, batch_size=25) for _ in range(3)]

    async def drain(relay: OutboxRelay) -> int:
        total = 0
        while published := await relay.publish_pending():
            total += published
        return total

    try:
        totals = await asyncio.gather(*(drain(relay) for relay in relays))
        await wait_until(lambda: len(received) >= 600)
        await asyncio.sleep(0.2)  # let any duplicate arrive before counting
    finally:
        await broker.delete_topology()
        await broker.close()
    assert sum(totals) == 600
    assert sorted(map(str, received)) == sorted(str(envelope.id) for envelope in envelopes)
    assert await unsent(store) == []


async def test_rows_stay_pending_while_the_broker_is_down(store: Database) -> None:
    down = RabbitBroker("amqp://guest:guest@127.0.0.1:1/", connect_timeout=0.1)
    await down.start()
    await write_events(store, [registered() for _ in range(3)])
    with pytest.raises(BrokerUnavailable):
        await OutboxRelay(store, RelayOutbox, down).publish_pending()
    await down.close()
    assert len(await unsent(store)) == 3

    received: list[uuid.UUID] = []
    up = recording_broker(received)
    assert await OutboxRelay(store, RelayOutbox, up).publish_pending() == 3
    assert await unsent(store) == []


async def test_relay_loop_retries_until_the_broker_is_back(store: Database) -> None:
    down = RabbitBroker("amqp://guest:guest@127.0.0.1:1/", connect_timeout=0.1)
    await down.start()
    relay = OutboxRelay(store, RelayOutbox, down, poll_interval=0.05, max_backoff=0.2)
    await write_events(store, [registered()])
    await relay.start()
    await asyncio.sleep(0.5)
    assert len(await unsent(store)) == 1
    received: list[uuid.UUID] = []
    relay.broker = recording_broker(received)
    pending: list[RelayOutbox] = [RelayOutbox()]

    async def refresh() -> None:
        pending[:] = await unsent(store)

    async with asyncio.timeout(10):
        while pending:
            await refresh()
            await asyncio.sleep(0.05)
    await relay.stop()
    await down.close()


async def test_notify_wakes_the_relay_without_waiting_for_the_poll(store: Database) -> None:
    received: list[uuid.UUID] = []
    broker = recording_broker(received)
    await record_into(broker, received, "test.all")
    relay = OutboxRelay(store, RelayOutbox, broker, poll_interval=60, listen_poll_interval=60)
    await relay.start()
    await wait_until(lambda: relay._listener is not None)
    await asyncio.sleep(0.1)  # the relay is asleep, waiting for the next poll in a minute
    event = registered()
    await write_events(store, [event])
    await wait_until(lambda: received == [event.id], limit=5)
    await relay.stop()
    await broker.close()


async def test_prune_deletes_only_sent_rows_older_than_the_retention(store: Database) -> None:
    old, recent, pending = registered(), registered(), registered()
    await write_events(store, [old, recent, pending])
    async with store.sessionmaker() as db, db.begin():
        await db.execute(
            update(RelayOutbox)
            .where(RelayOutbox.event_id == old.id)
            .values(sent_at=utcnow() - timedelta(days=8))
        )
        await db.execute(
            update(RelayOutbox)
            .where(RelayOutbox.event_id == recent.id)
            .values(sent_at=utcnow() - timedelta(days=1))
        )
    relay = OutboxRelay(store, RelayOutbox, InProcessBroker(), retention=timedelta(days=7))

    assert await relay.prune() == 1

    async with store.sessionmaker() as db:
        left = set((await db.scalars(select(RelayOutbox.event_id))).all())
    assert left == {recent.id, pending.id}


def reset_link() -> Envelope:
    return Envelope(
        type="user.password_reset_requested",
        data={"user_id": str(uuid.uuid4()), "token": "a-secret-link-token"},
    )


async def test_a_row_carrying_a_link_token_is_deleted_once_published(store: Database) -> None:
    received: list[uuid.UUID] = []
    broker = recording_broker(received)
    await record_into(broker, received, "test.all")
    link, other = reset_link(), registered()
    await write_events(store, [link, other])
    relay = OutboxRelay(store, RelayOutbox, broker)

    assert await relay.publish_pending() == 2

    await wait_until(lambda: len(received) == 2)
    await broker.close()
    async with store.sessionmaker() as db:
        rows = (await db.scalars(select(RelayOutbox))).all()
    assert [(row.event_id, row.sent_at is not None) for row in rows] == [(other.id, True)]


async def test_prune_deletes_link_tokens_that_could_not_be_published(store: Database) -> None:
    stale, fresh = reset_link(), reset_link()
    await write_events(store, [stale, fresh])
    async with store.sessionmaker() as db, db.begin():
        await db.execute(
            update(RelayOutbox)
            .where(RelayOutbox.event_id == stale.id)
            .values(created_at=utcnow() - timedelta(hours=2))
        )
    relay = OutboxRelay(store, RelayOutbox, InProcessBroker(), secret_retention=timedelta(hours=1))

    assert await relay.prune() == 1

    [left] = await unsent(store)
    assert left.event_id == fresh.id


async def test_pending_gauge_counts_unsent_rows(store: Database) -> None:
    await write_events(store, [registered() for _ in range(4)])
    relay = OutboxRelay(store, RelayOutbox, InProcessBroker())
    assert await relay.pending_count() == 4
    assert REGISTRY.get_sample_value("gatehouse_outbox_pending") == 4


async def test_unroutable_row_is_set_aside_and_the_others_flow(store: Database) -> None:
    received: list[uuid.UUID] = []
    broker = recording_broker(received, {"test.registered": ("user.registered",)})
    stray = Envelope(type="user.updated", data={"user_id": str(uuid.uuid4()), "changed": []})
    await write_events(store, [stray, registered(), registered()])
    relay = OutboxRelay(store, RelayOutbox, broker)

    assert await relay.publish_pending() == 2

    [left] = await unsent(store)
    assert left.event_id == stray.id
    assert left.attempts == 1


async def test_relay_works_on_sqlite(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
    async with database.engine.begin() as connection:
        await connection.run_sync(RelayTestBase.metadata.create_all)
    received: list[uuid.UUID] = []
    broker = recording_broker(received)
    await record_into(broker, received, "test.all")
    envelopes = [registered() for _ in range(5)]
    await write_events(database, envelopes)

    assert await OutboxRelay(database, RelayOutbox, broker).publish_pending() == 5

    await wait_until(lambda: len(received) == 5)
    await broker.close()
    assert received == [envelope.id for envelope in envelopes]
    assert await unsent(database) == []
    await database.dispose()
