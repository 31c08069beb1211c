"""The welcome email: consumed from `user.registered`, sent once, retried, dead-lettered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from common.broker import CONSUMER_QUEUES, WELCOME_EMAILS, PermanentFailure, RetryPolicy
from common.db import Database
from common.embedded import Embedded
from common.events import Envelope
from common.inprocess_broker import InProcessBroker
from common.testing import SmtpSink, free_port
from fastapi import FastAPI
from notifier.deliveries.models import Delivery, DeliveryStatus
from notifier.deliveries.service import AccountEmailService
from notifier.mail.transports import SmtpTransport
from notifier.main import create_app
from notifier.settings import NotifierSettings
from prometheus_client import REGISTRY

from .support import delivery, wait_until

QUEUE = WELCOME_EMAILS.queue
FAST = RetryPolicy(delays=(0.02, 0.05, 0.1), max_attempts=5)


def registration(**overrides: object) -> Envelope:
    data: dict[str, object] = {
        "user_id": str(uuid.uuid4()),
        "email": f"user-{uuid.uuid4().hex[:8]}@example.com",
        "username": "ann_smith",
        "full_name": "Ann Smith",
    }
    data.update(overrides)
    return Envelope(type="user.registered", data=data)


def settings_for(database_url: str, smtp: SmtpSink | None, **values: object) -> NotifierSettings:
    fields: dict[str, object] = {"notifier_database_url": database_url, **values}
    if smtp is not None:
        fields.update(smtp_host="127.0.0.1", smtp_port=smtp.port)
    return NotifierSettings.model_validate(fields)


@pytest.fixture
async def broker() -> InProcessBroker:
    return InProcessBroker(retry=FAST, concurrency=1)


@pytest.fixture
async def app(
    database: Database, smtp: SmtpSink, broker: InProcessBroker
) -> AsyncIterator[FastAPI]:
    app = create_app(settings_for(database.url, smtp), broker=broker.client())
    async with LifespanManager(app):
        yield app


async def settled(database: Database, event_id: uuid.UUID, status: DeliveryStatus) -> Delivery:
    """The delivery record once it reached `status` (bounded wait)."""
    async with asyncio.timeout(10):
        while True:
            record = await delivery(database, event_id)
            if record is not None and record.status == status:
                return record
            await asyncio.sleep(0.01)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.usefixtures("app")
async def test_welcome_email_is_sent_with_text_and_html_parts(
    database: Database, smtp: SmtpSink, broker: InProcessBroker
) -> None:
    sent_before = metric("gatehouse_emails_sent_total", kind="welcome")
    event = registration(full_name="<b>Ann</b> & Co")
    await broker.publish(event)
    await wait_until(lambda: smtp.handler.messages)

    [message] = smtp.handler.messages
    assert message["To"].addresses[0].addr_spec == event.data["email"]
    assert message["Subject"] == "Welcome to Gatehouse"
    text_part = message.get_body(("plain",))
    html_part = message.get_body(("html",))
    assert text_part is not None
    assert html_part is not None
    assert "ann_smith" in text_part.get_content()
    html = html_part.get_content()
    assert "&lt;b&gt;Ann&lt;/b&gt; &amp; Co" in html
    assert "<b>Ann</b>" not in html
    record = await settled(database, event.id, DeliveryStatus.SENT)
    assert record.sent_at is not None
    assert record.recipient == event.data["email"]
    assert metric("gatehouse_emails_sent_total", kind="welcome") == sent_before + 1


@pytest.mark.usefixtures("app")
async def test_redelivered_event_sends_nothing_twice(
    smtp: SmtpSink, broker: InProcessBroker
) -> None:
    event, later = registration(), registration()
    await broker.publish(event)
    await broker.publish(event)
    await broker.publish(later)  # one consumer: handled after both copies
    await wait_until(lambda: len(smtp.handler.messages) >= 2)
    await asyncio.sleep(0.1)
    assert sorted(smtp.handler.event_ids()) == sorted([str(event.id), str(later.id)])


@pytest.mark.usefixtures("app")
async def test_smtp_4xx_is_retried_until_the_server_accepts(
    database: Database, smtp: SmtpSink, broker: InProcessBroker
) -> None:
    failed_before = metric("gatehouse_emails_failed_total", kind="welcome", reason="retryable")
    smtp.handler.refusals = 2
    event = registration()
    await broker.publish(event)
    record = await settled(database, event.id, DeliveryStatus.SENT)
    assert record.attempts == 3
    assert smtp.handler.event_ids() == [str(event.id)]
    assert broker.dead_letters(QUEUE) == []
    failed = metric("gatehouse_emails_failed_total", kind="welcome", reason="retryable")
    assert failed == failed_before + 2


@pytest.mark.usefixtures("app")
async def test_smtp_5xx_is_dead_lettered_without_retrying(
    database: Database, smtp: SmtpSink, broker: InProcessBroker
) -> None:
    smtp.handler.refusal = "550 5.1.1 no such mailbox"
    smtp.handler.refusals = 100
    event = registration()
    await broker.publish(event)
    await wait_until(lambda: broker.dead_letters(QUEUE))
    [dead] = broker.dead_letters(QUEUE)
    assert dead.attempts == 1
    assert "550" in dead.reason
    record = await settled(database, event.id, DeliveryStatus.REJECTED)
    assert record.last_error is not None
    assert "550" in record.last_error
    assert smtp.handler.messages == []


@pytest.mark.usefixtures("app")
async def test_recipient_refused_with_5xx_is_dead_lettered_and_the_connection_reused(
    database: Database, smtp: SmtpSink, broker: InProcessBroker
) -> None:
    smtp.handler.recipient_refusals = 1
    refused, accepted = registration(), registration()
    await broker.publish(refused)
    await wait_until(lambda: broker.dead_letters(QUEUE))
    [dead] = broker.dead_letters(QUEUE)
    assert dead.attempts == 1
    assert "550" in dead.reason
    await settled(database, refused.id, DeliveryStatus.REJECTED)
    await broker.publish(accepted)
    await settled(database, accepted.id, DeliveryStatus.SENT)
    assert smtp.handler.event_ids() == [str(accepted.id)]


@pytest.mark.usefixtures("app")
async def test_recipient_refused_with_4xx_is_retried(
    database: Database, smtp: SmtpSink, broker: InProcessBroker
) -> None:
    smtp.handler.recipient_refusal = "450 4.2.0 mailbox busy"
    smtp.handler.recipient_refusals = 2
    event = registration()
    await broker.publish(event)
    record = await settled(database, event.id, DeliveryStatus.SENT)
    assert record.attempts == 3
    assert smtp.handler.event_ids() == [str(event.id)]


@pytest.mark.usefixtures("app")
async def test_internationalized_mailbox_without_smtputf8_is_dead_lettered(
    database: Database, smtp: SmtpSink, broker: InProcessBroker
) -> None:
    event = registration(email="zoë@exämple.com")
    await broker.publish(event)
    await wait_until(lambda: broker.dead_letters(QUEUE))
    record = await settled(database, event.id, DeliveryStatus.REJECTED)
    assert record.last_error is not None
    assert "SMTPUTF8" in record.last_error
    assert smtp.handler.messages == []


async def test_internationalized_mailbox_is_sent_with_smtputf8(
    database: Database, broker: InProcessBroker
) -> None:
    sink = SmtpSink(smtputf8=True)
    sink.start()
    try:
        app = create_app(settings_for(database.url, sink), broker=broker.client())
        async with LifespanManager(app):
            event = registration(email="zoë@exämple.com", full_name="Zoë")
            await broker.publish(event)
            await settled(database, event.id, DeliveryStatus.SENT)
        assert sink.handler.event_ids() == [str(event.id)]
    finally:
        sink.stop()


async def test_a_pooled_connection_the_server_closed_is_replaced_within_the_attempt(
    database: Database, broker: InProcessBroker
) -> None:
    sink = SmtpSink()
    sink.start()
    try:
        app = create_app(settings_for(database.url, sink), broker=broker.client())
        async with LifespanManager(app):
            first, second = registration(), registration()
            await broker.publish(first)
            await settled(database, first.id, DeliveryStatus.SENT)
            sink.stop()  # the idle pooled connection dies with the server
            sink.start()
            await broker.publish(second)
            record = await settled(database, second.id, DeliveryStatus.SENT)
        assert record.attempts == 1
        assert sink.handler.event_ids() == [str(first.id), str(second.id)]
    finally:
        sink.stop()


@pytest.mark.usefixtures("app")
@pytest.mark.parametrize(
    "data",
    [
        {"user_id": "not-a-uuid", "email": "a@example.com", "username": "a", "full_name": "A"},
        {"user_id": str(uuid.uuid4()), "email": "not an email", "username": "a", "full_name": "A"},
        {"user_id": str(uuid.uuid4())},
    ],
)
async def test_invalid_event_data_is_dead_lettered(
    smtp: SmtpSink, broker: InProcessBroker, data: dict[str, object]
) -> None:
    await broker.publish(Envelope(type="user.registered", data=data))
    await wait_until(lambda: broker.dead_letters(QUEUE))
    assert "invalid user.registered data" in broker.dead_letters(QUEUE)[0].reason
    assert smtp.handler.messages == []


async def test_redelivery_after_a_crash_mid_send_is_not_resent(
    database: Database, smtp: SmtpSink
) -> None:
    event = registration()
    async with database.sessionmaker() as db, db.begin():
        db.add(
            Delivery(
                event_id=event.id,
                kind="welcome",
                recipient=str(event.data["email"]),
                status=DeliveryStatus.SENDING,
                attempts=1,
            )
        )
    transport = SmtpTransport("127.0.0.1", smtp.port)
    service = AccountEmailService(database.sessionmaker, transport, "Gatehouse <a@b.c>")

    await service.handle(event)

    await transport.close()
    assert smtp.handler.messages == []
    record = await delivery(database, event.id)
    assert record is not None
    assert record.status == DeliveryStatus.UNCERTAIN


async def test_failed_delivery_is_sent_on_redelivery(database: Database, smtp: SmtpSink) -> None:
    event = registration()
    transport = SmtpTransport("127.0.0.1", smtp.port)
    service = AccountEmailService(database.sessionmaker, transport, "Gatehouse <a@b.c>")
    smtp.handler.refusals = 1
    with pytest.raises(Exception, match="451"):
        await service.handle(event)
    failed = await delivery(database, event.id)
    assert failed is not None
    assert failed.status == DeliveryStatus.FAILED

    await service.handle(event)
    await service.handle(event)

    await transport.close()
    assert smtp.handler.event_ids() == [str(event.id)]
    record = await delivery(database, event.id)
    assert record is not None
    assert record.status == DeliveryStatus.SENT


async def test_unreachable_smtp_server_is_a_retryable_failure(database: Database) -> None:
    transport = SmtpTransport("127.0.0.1", free_port(), timeout=1)
    service = AccountEmailService(database.sessionmaker, transport, "Gatehouse <a@b.c>")
    with pytest.raises(Exception, match="SMTP unavailable") as raised:
        await service.handle(registration())
    assert not isinstance(raised.value, PermanentFailure)


async def test_the_topology_binds_exactly_the_event_the_notifier_handles(
    database: Database, smtp: SmtpSink
) -> None:
    assert WELCOME_EMAILS.routing_keys == ("user.registered",)
    assert CONSUMER_QUEUES[QUEUE] == WELCOME_EMAILS.routing_keys
    broker = InProcessBroker(queues={})
    async with LifespanManager(
        create_app(settings_for(database.url, smtp), broker=broker.client())
    ):
        assert broker.bindings(QUEUE) == {"user.registered"}


async def test_other_event_types_are_ignored(database: Database, smtp: SmtpSink) -> None:
    transport = SmtpTransport("127.0.0.1", smtp.port)
    service = AccountEmailService(database.sessionmaker, transport, "Gatehouse <a@b.c>")
    await service.handle(Envelope(type="user.updated", data={"user_id": str(uuid.uuid4())}))
    assert smtp.handler.messages == []


async def test_ready_reports_database_broker_and_smtp(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as client:
        ready = await client.get("/ready")
        health = await client.get("/health")
        metrics = await client.get("/metrics")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "smtp": "ok"}
    assert health.json() == {"status": "ok"}
    assert "gatehouse_emails_sent_total" in metrics.text
    assert "gatehouse_emails_failed_total" in metrics.text


async def test_ready_fails_naming_smtp_when_the_server_is_down(database: Database) -> None:
    settings = settings_for(database.url, None, smtp_host="127.0.0.1", smtp_port=free_port())
    app = create_app(settings, broker=InProcessBroker().client())
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://notifier") as client:
            ready = await client.get("/ready")
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert ready.json()["checks"]["smtp"] != "ok"
    assert ready.json()["checks"]["database"] == "ok"


async def test_embedded_mode_writes_eml_files_and_migrates_sqlite(tmp_path: Path) -> None:
    from common.cli import migrate_database

    from .support import MIGRATIONS

    url = f"sqlite+aiosqlite:///{tmp_path / 'notifier.db'}"
    await migrate_database(url, MIGRATIONS)
    embedded = Embedded(broker=InProcessBroker(retry=FAST))
    app = create_app(settings_for(url, None, mail_dir=tmp_path / "mail"), embedded=embedded)
    event = registration()
    async with LifespanManager(app):
        await embedded.broker.client().publish(event)
        eml = tmp_path / "mail" / f"{event.id}.eml"
        await wait_until(eml.exists)
    content = eml.read_text()
    assert "Subject: Welcome to Gatehouse" in content
    assert str(event.data["email"]) in content


def test_production_refuses_embedded_backends() -> None:
    with pytest.raises(ValueError, match="NOTIFIER_DATABASE_URL") as raised:
        NotifierSettings(
            environment="production",
            internal_client_secret="a-real-secret-of-enough-length",
        )
    assert "AMQP_URL" in str(raised.value)
    assert "SMTP_HOST" in str(raised.value)


def test_production_refuses_a_missing_smtp_password() -> None:
    with pytest.raises(ValueError, match="SMTP_PASSWORD"):
        NotifierSettings(
            environment="production",
            internal_client_secret="a-real-secret-of-enough-length",
            notifier_database_url="postgresql+asyncpg://db/notifier",
            amqp_url="amqp://mq/",
            smtp_host="smtp.example.com",
            smtp_username="mailer",
        )
