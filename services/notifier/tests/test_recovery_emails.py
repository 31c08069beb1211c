"""The password reset link and the "your password was changed" notice (API.md §8, §12)."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from asgi_lifespan import LifespanManager
from common.broker import CONSUMER_QUEUES, RECOVERY_EMAILS
from common.db import Database
from common.inprocess_broker import InProcessBroker
from common.testing import SmtpSink

from .support import account_event, delivery, link_only, make_app, only_email, parts, wait_until


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
    message = only_email(smtp, event.data["email"], "Reset your Gatehouse password")
    link = f"https://id.example.org/account/reset-password?token={token}"
    text, html = link_only(message, link, token)
    for body in (text, html):
        assert "Gatehouse" in body
        assert "30 minutes" in body
        assert "did not ask" in body
        assert "ann_smith" in body
    assert "Ann &lt;Smith&gt;" in html
    # Neither the delivery record nor a log line shows it.
    record = await delivery(database, event.id)
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
    message = only_email(smtp, event.data["email"], "Your Gatehouse password was changed")
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
    message = only_email(smtp, event.data["email"], "Sign-in to your Gatehouse account is locked")
    link = f"https://id.example.org/account/reset-password?token={token}"
    text, html = link_only(message, link, token)
    for body in (text, html):
        assert "2026-12-02 08:31 (UTC)" in body
        assert "ann_smith" in body
        assert "If it was not you" in body
        assert "ends the lock" in body
    assert "Ann &lt;Smith&gt;" in html
    record = await delivery(database, event.id)
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
