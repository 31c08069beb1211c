"""Fault tests: RabbitMQ stopped and restarted, SMTP refusing for a while, the notifier killed
between send and ack. Each uses its own throwaway RabbitMQ node / SMTP server on spare ports."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from asgi_lifespan import LifespanManager
from common.broker import RetryPolicy
from common.db import Database, new_metadata
from common.events import Envelope, OutboxMixin
from common.outbox import OutboxRelay, add_outbox_event
from common.rabbitmq import RabbitBroker
from common.testing import SmtpSink, free_port
from notifier.deliveries.models import Delivery, DeliveryStatus
from notifier.main import create_app
from notifier.settings import NotifierSettings
from sqlalchemy import select
from sqlalchemy.orm import DeclarativeBase

from .rabbit_node import ThrowawayRabbit, unavailable_reason

pytestmark = pytest.mark.fault

SHARED_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
PATIENT = RetryPolicy(delays=(0.1, 0.2, 0.5, 1.0), max_attempts=100)


class FaultTestBase(DeclarativeBase):
    metadata = new_metadata()


class FaultOutbox(OutboxMixin, FaultTestBase):
    """Stands in for the users service's outbox (test-only table)."""

    __tablename__ = "fault_outbox"


async def wait_until(condition: Callable[[], object], limit: float) -> None:
    """Wait for a condition that background tasks make true (bounded, not a speed test)."""
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 - polling state owned by other tasks/threads
            await asyncio.sleep(0.05)


def registration() -> Envelope:
    return Envelope(
        type="user.registered",
        data={
            "user_id": str(uuid.uuid4()),
            "email": f"user-{uuid.uuid4().hex[:8]}@example.com",
            "username": "someone",
            "full_name": "Some One",
        },
    )


def settings_for(database: Database, sink: SmtpSink) -> NotifierSettings:
    return NotifierSettings.model_validate(
        {
            "notifier_database_url": database.url,
            "smtp_host": "127.0.0.1",
            "smtp_port": sink.port,
        }
    )


@pytest.fixture(scope="module")
def rabbit() -> Iterator[ThrowawayRabbit]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    node = ThrowawayRabbit()
    try:
        node.start()
        yield node
    finally:
        node.remove()


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
async def outbox(database: Database) -> AsyncIterator[Database]:
    async with database.engine.begin() as connection:
        await connection.run_sync(FaultTestBase.metadata.create_all)
    yield database
    async with database.engine.begin() as connection:
        await connection.run_sync(FaultTestBase.metadata.drop_all)


async def register(database: Database, count: int) -> list[Envelope]:
    """`count` registrations, each its own transaction, as the users service writes them."""
    events = [registration() for _ in range(count)]
    for event in events:
        async with database.sessionmaker() as db, db.begin():
            await add_outbox_event(db, FaultOutbox, event)
    return events


async def test_rabbitmq_stopped_while_users_register_then_started(
    rabbit: ThrowawayRabbit, outbox: Database, sink: SmtpSink
) -> None:
    prefix = f"outage-{uuid.uuid4().hex[:6]}."
    consumer = RabbitBroker(rabbit.url, prefix=prefix, retry=PATIENT, publish_timeout=2.0)
    publisher = RabbitBroker(rabbit.url, prefix=prefix, retry=PATIENT, publish_timeout=2.0)
    app = create_app(settings_for(outbox, sink), broker=consumer)
    relay = OutboxRelay(outbox, FaultOutbox, publisher, max_backoff=1.0)
    async with LifespanManager(app, startup_timeout=60, shutdown_timeout=60):
        await publisher.start()
        await relay.start()
        try:
            before = await register(outbox, 20)
            await wait_until(lambda: len(sink.handler.messages) >= 20, limit=60)

            await asyncio.to_thread(rabbit.stop)
            during = await register(outbox, 200)
            await asyncio.sleep(1)
            await asyncio.to_thread(rabbit.start)

            expected = sorted(str(event.id) for event in before + during)
            await wait_until(lambda: len(set(sink.handler.event_ids())) >= 220, limit=180)
            await asyncio.sleep(2)  # a duplicate, if any, would arrive now
        finally:
            await relay.stop()
            await publisher.close()
    assert sorted(sink.handler.event_ids()) == expected


async def test_smtp_refusing_for_a_while_then_accepting(outbox: Database, sink: SmtpSink) -> None:
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    consumer = RabbitBroker(SHARED_AMQP_URL, prefix=prefix, retry=PATIENT)
    publisher = RabbitBroker(SHARED_AMQP_URL, prefix=prefix, retry=PATIENT)
    app = create_app(settings_for(outbox, sink), broker=consumer)
    async with LifespanManager(app, startup_timeout=30, shutdown_timeout=30):
        await publisher.start()
        try:
            sink.stop()  # connection refused
            events = [registration() for _ in range(30)]
            for event in events[:15]:
                await publisher.publish(event)
            sink.handler.refusals = 40  # back, but answering 451 for a while
            sink.start()
            for event in events[15:]:
                await publisher.publish(event)
            await wait_until(lambda: len(set(sink.handler.event_ids())) >= 30, limit=120)
            await asyncio.sleep(1)
        finally:
            await publisher.delete_topology()
            await publisher.close()
    assert sorted(sink.handler.event_ids()) == sorted(str(event.id) for event in events)


def start_notifier(
    rabbit: ThrowawayRabbit, database: Database, sink: SmtpSink
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "NOTIFIER_DATABASE_URL": database.url,
        "AMQP_URL": rabbit.url,
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(sink.port),
        "NOTIFIER_PORT": str(free_port()),
        "MIGRATE_ON_START": "false",
        "PYTHONPYCACHEPREFIX": "/tmp/gatehouse-pycache",
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return subprocess.Popen(
        [sys.executable, "-m", "notifier", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def status_of(database: Database, event_id: uuid.UUID) -> str | None:
    async with database.sessionmaker() as db:
        return await db.scalar(select(Delivery.status).where(Delivery.event_id == event_id))


async def wait_for_status(
    database: Database, event_id: uuid.UUID, status: DeliveryStatus, limit: float
) -> None:
    async with asyncio.timeout(limit):
        while True:
            if await status_of(database, event_id) == status:
                return
            await asyncio.sleep(0.1)


async def test_notifier_killed_between_send_and_ack_sends_no_duplicate(
    rabbit: ThrowawayRabbit, database: Database, sink: SmtpSink
) -> None:
    publisher = RabbitBroker(rabbit.url)  # the notifier process uses the default names
    await publisher.start()
    sink.handler.hold = threading.Event()
    sink.handler.hold.set()  # accept the mail but hold the 250 back: the notifier is mid-send
    notifier = start_notifier(rabbit, database, sink)
    restarted: subprocess.Popen[bytes] | None = None
    try:
        event = registration()
        await publisher.publish(event)
        await wait_until(lambda: sink.handler.messages, limit=120)
        notifier.send_signal(signal.SIGKILL)
        await asyncio.to_thread(notifier.wait)
        sink.handler.hold.clear()

        restarted = start_notifier(rabbit, database, sink)
        await wait_for_status(database, event.id, DeliveryStatus.UNCERTAIN, limit=120)
        later = registration()
        await publisher.publish(later)
        await wait_until(lambda: len(sink.handler.messages) >= 2, limit=60)
        await asyncio.sleep(1)
    finally:
        for process in (notifier, restarted):
            if process is not None and process.poll() is None:
                process.terminate()
                await asyncio.to_thread(process.wait)
        await publisher.close()
    assert sink.handler.event_ids() == [str(event.id), str(later.id)]
