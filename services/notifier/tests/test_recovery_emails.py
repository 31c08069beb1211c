"""The password reset link and the "your password was changed" notice (API.md §8, §12)."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from asgi_lifespan import LifespanManager
from common.broker import CONSUMER_QUEUES, RECOVERY_EMAILS, RetryPolicy
from common.db import Database
from common.events import Envelope, EventType
from common.inprocess_broker import InProcessBroker
from common.testing import SmtpSink
from fastapi import FastAPI
from notifier.deliveries.models import Delivery
from notifier.main import create_app
from notifier.settings import NotifierSettings
from sqlalchemy import select

FAST = RetryPolicy(delays=(0.02, 0.05, 0.1), max_attempts=3)


def account_event(event_type: EventType, **overrides: object) -> Envelope:
    data: dict[str, object] = {
        "user_id": str(uuid.uuid4()),
        "email": f"user-{uuid.uuid4().hex[:8]}@example.com",
        "username": "ann_smith",
        "full_name": "Ann <Smith>",
    }
    if event_type == "user.password_reset_requested":
        data["token"] = secrets.token_urlsafe(32)
        data["expires_at"] = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    data.update(overrides)
    return Envelope(type=event_type, data=data)


async def wait_until(condition: Callable[[], object], limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 - polling state owned by other tasks
            await asyncio.sleep(0.01)


@pytest.fixture
def broker() -> InProcessBroker:
    return InProcessBroker(retry=FAST, concurrency=1)


def make_app(
    database: Database, smtp: SmtpSink, broker: InProcessBroker, **values: object
) -> FastAPI:
    settings = NotifierSettings.model_validate(
        {
            "notifier_database_url": database.url,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "issuer": "https://id.example.org",
            **values,
        }
    )
    return create_app(settings, broker=broker.client())


@pytest.fixture
async def app(
    database: Database, smtp: SmtpSink, broker: InProcessBroker
) -> AsyncIterator[FastAPI]:
    app = make_app(database, smtp, broker)
    async with LifespanManager(app):
        yield app


def parts(message: EmailMessage) -> tuple[str, str]:
    text_part, html_part = message.get_body(("plain",)), message.get_body(("html",))
    assert text_part is not None
    assert html_part is not None
    return text_part.get_content(), html_part.get_content()


def test_the_notifier_subscribes_to_the_recovery_events() -> None:
    assert set(CONSUMER_QUEUES[RECOVERY_EMAILS.queue]) == {
        "user.password_reset_requested",
        "user.password_reset",
    }


@pytest.mark.usefixtures("app")
async def test_the_reset_email_carries_the_link_and_says_where_it_came_from(
    database: Database, smtp: SmtpSink, broker: InProcessBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    event = account_event("user.password_reset_requested")
    token = str(event.data["token"])
    await broker.publish(event)
    await wait_until(lambda: smtp.handler.messages)
    [message] = smtp.handler.messages
    assert message["To"].addresses[0].addr_spec == event.data["email"]
    assert message["Subject"] == "Reset your Gatehouse password"
    text, html = parts(message)
    link = f"https://id.example.org/account/reset-password?token={token}"
    assert link in text
    assert f'href="{link}"' in html
    # The token is in the link and nowhere else: not in a header, once per part.
    assert text.count(token) == 1
    assert html.count(token) == 1
    assert all(token not in str(value) for value in message.values())
    for body in (text, html):
        assert "Gatehouse" in body
        assert "30 minutes" in body
        assert "did not ask" in body
        assert "ann_smith" in body
    assert "Ann &lt;Smith&gt;" in html
    # Neither the delivery record nor a log line shows it.
    async with database.sessionmaker() as db:
        record = await db.scalar(select(Delivery).where(Delivery.event_id == event.id))
    assert record is not None
    assert record.kind == "password_reset"
    assert token not in repr(vars(record))
    assert all(token not in str(vars(r)) for r in caplog.records)


async def test_account_url_sets_where_the_link_leads(
    database: Database, smtp: SmtpSink, broker: InProcessBroker
) -> None:
    app = make_app(database, smtp, broker, account_url="https://app.example.com/me/")
    async with LifespanManager(app):
        event = account_event("user.password_reset_requested")
        await broker.publish(event)
        await wait_until(lambda: smtp.handler.messages)
    text, _ = parts(smtp.handler.messages[0])
    assert f"https://app.example.com/me/reset-password?token={event.data['token']}" in text


@pytest.mark.usefixtures("app")
async def test_a_reset_sends_a_password_changed_notice(
    smtp: SmtpSink, broker: InProcessBroker
) -> None:
    event = account_event("user.password_reset")
    await broker.publish(event)
    await broker.publish(event)  # redelivered: one email
    await wait_until(lambda: smtp.handler.messages)
    await asyncio.sleep(0.2)
    [message] = smtp.handler.messages
    assert message["To"].addresses[0].addr_spec == event.data["email"]
    assert message["Subject"] == "Your Gatehouse password was changed"
    text, html = parts(message)
    for body in (text, html):
        assert "signed out" in body
        assert "If it was not you" in body


@pytest.mark.usefixtures("app")
async def test_a_malformed_reset_event_is_dead_lettered_without_its_token(
    smtp: SmtpSink, broker: InProcessBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "a-malformed-but-secret-token-value"
    await broker.publish(account_event("user.password_reset_requested", token=secret))
    await wait_until(lambda: broker.dead_letters(RECOVERY_EMAILS.queue))
    [dead] = broker.dead_letters(RECOVERY_EMAILS.queue)
    assert re.search(r"token: string_pattern_mismatch", dead.reason)
    assert secret not in dead.reason
    assert all(secret not in str(vars(r)) for r in caplog.records)
    assert smtp.handler.messages == []
