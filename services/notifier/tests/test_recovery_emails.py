"""The password reset link and the "your password was changed" notice (API.md §8, §12)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator

import pytest
from asgi_lifespan import LifespanManager
from common.broker import CONSUMER_QUEUES, RECOVERY_EMAILS
from common.db import Database
from common.inprocess_broker import InProcessBroker
from common.testing import SmtpSink
from fastapi import FastAPI
from notifier.deliveries.models import Delivery
from sqlalchemy import select

from .support import FAST, account_event, make_app, parts, wait_until


@pytest.fixture
def broker() -> InProcessBroker:
    return InProcessBroker(retry=FAST, concurrency=1)


@pytest.fixture
async def app(
    database: Database, smtp: SmtpSink, broker: InProcessBroker
) -> AsyncIterator[FastAPI]:
    app = make_app(database, smtp, broker)
    async with LifespanManager(app):
        yield app


def test_the_notifier_subscribes_to_the_recovery_events() -> None:
    assert set(CONSUMER_QUEUES[RECOVERY_EMAILS.queue]) == {
        "user.password_reset_requested",
        "user.password_reset",
        "user.locked_out",
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


@pytest.mark.usefixtures("app")
async def test_the_lockout_notice_says_until_when_and_carries_a_reset_link(
    database: Database, smtp: SmtpSink, broker: InProcessBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    event = account_event("user.locked_out")
    token = str(event.data["token"])
    await broker.publish(event)
    await broker.publish(event)  # redelivered: one email
    await wait_until(lambda: smtp.handler.messages)
    await asyncio.sleep(0.2)
    [message] = smtp.handler.messages
    assert message["To"].addresses[0].addr_spec == event.data["email"]
    assert message["Subject"] == "Sign-in to your Gatehouse account is locked"
    text, html = parts(message)
    link = f"https://id.example.org/account/reset-password?token={token}"
    assert link in text
    assert f'href="{link}"' in html
    assert text.count(token) == 1
    assert html.count(token) == 1
    assert all(token not in str(value) for value in message.values())
    for body in (text, html):
        assert "2026-12-02 08:31 (UTC)" in body
        assert "ann_smith" in body
        assert "If it was not you" in body
        assert "ends the lock" in body
    assert "Ann &lt;Smith&gt;" in html
    async with database.sessionmaker() as db:
        record = await db.scalar(select(Delivery).where(Delivery.event_id == event.id))
    assert record is not None
    assert record.kind == "locked_out"
    assert all(token not in str(vars(r)) for r in caplog.records)


@pytest.mark.usefixtures("app")
@pytest.mark.parametrize(
    "override",
    [{"token": "short"}, {"locked_until": "tomorrow"}, {"email": "not an address"}],
)
async def test_a_malformed_lockout_event_is_dead_lettered(
    smtp: SmtpSink, broker: InProcessBroker, override: dict[str, str]
) -> None:
    await broker.publish(account_event("user.locked_out", **override))
    await wait_until(lambda: broker.dead_letters(RECOVERY_EMAILS.queue))
    [dead] = broker.dead_letters(RECOVERY_EMAILS.queue)
    assert next(iter(override)) in dead.reason
    assert "short" not in dead.reason
    assert smtp.handler.messages == []
