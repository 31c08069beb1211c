"""The verification emails (API.md §8, §12): the welcome with its link, the link to a new or
unconfirmed address, and "your email is being changed" to the old address — each once."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from asgi_lifespan import LifespanManager
from common.broker import CONSUMER_QUEUES, VERIFICATION_EMAILS
from common.db import Database
from common.events import EventType
from common.inprocess_broker import InProcessBroker
from common.testing import SmtpSink
from notifier.deliveries.models import Delivery
from sqlalchemy import select

from .support import account_event, link_only, make_app, only_email, parts, wait_until

VERIFICATION: EventType = "user.email_verification_requested"


async def records(database: Database, *event_ids: uuid.UUID) -> list[Delivery]:
    async with database.sessionmaker() as session:
        rows = await session.scalars(select(Delivery).where(Delivery.event_id.in_(event_ids)))
        return list(rows.all())


def test_the_notifier_subscribes_to_verification_links() -> None:
    assert set(CONSUMER_QUEUES[VERIFICATION_EMAILS.queue]) == {VERIFICATION}


@pytest.mark.usefixtures("app")
async def test_the_welcome_of_a_registration_carries_the_verification_link(
    database: Database, smtp: SmtpSink, broker: InProcessBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    registered = account_event("user.registered", verification_follows=True)
    link_event = account_event(
        VERIFICATION,
        reason="registration",
        user_id=registered.data["user_id"],
        email=registered.data["email"],
    )
    token = str(link_event.data["token"])
    await broker.publish(registered)
    await broker.publish(link_event)
    await broker.publish(link_event)  # redelivered: still one email
    await wait_until(lambda: smtp.handler.messages)
    await asyncio.sleep(0.3)
    message = only_email(
        smtp, registered.data["email"], "Welcome to Gatehouse"
    )  # one welcome, not one per event
    link = f"https://id.example.org/account/verify-email?token={token}"
    text, html = link_only(message, link, token)
    for body in (text, html):
        assert "24 hours" in body
        assert "did not create this account" in body
        assert "ann_smith" in body
    [record] = await records(database, link_event.id)
    assert record.kind == "welcome"
    assert token not in repr(vars(record))
    assert await records(database, registered.id) == []
    assert all(token not in str(vars(r)) for r in caplog.records)


@pytest.mark.usefixtures("app")
async def test_a_registration_without_a_link_still_gets_the_plain_welcome(
    smtp: SmtpSink, broker: InProcessBroker
) -> None:
    """Events of a users that writes no verification link (no `verification_follows`)."""
    await broker.publish(account_event("user.registered"))
    await wait_until(lambda: smtp.handler.messages)
    [message] = smtp.handler.messages
    text, _ = parts(message)
    assert "verify-email" not in text


@pytest.mark.usefixtures("app")
async def test_a_resend_sends_the_link_alone(smtp: SmtpSink, broker: InProcessBroker) -> None:
    event = account_event(VERIFICATION)
    await broker.publish(event)
    await wait_until(lambda: smtp.handler.messages)
    await asyncio.sleep(0.2)
    [message] = smtp.handler.messages
    assert message["Subject"] == "Confirm your email address for Gatehouse"
    assert message["To"].addresses[0].addr_spec == event.data["email"]
    text, html = parts(message)
    for body in (text, html):
        assert f"verify-email?token={event.data['token']}" in body
        assert "24 hours" in body
        assert "did not ask" in body
        assert "nothing changes unless the link is used" in body


@pytest.mark.usefixtures("app")
async def test_an_email_change_sends_the_link_to_the_new_address_and_a_notice_to_the_old(
    database: Database, smtp: SmtpSink, broker: InProcessBroker
) -> None:
    event = account_event(VERIFICATION, reason="change", previous_email="old@example.com")
    token = str(event.data["token"])
    await broker.publish(event)
    await broker.publish(event)  # redelivered: neither email twice
    await wait_until(lambda: len(smtp.handler.messages) >= 2)
    await asyncio.sleep(0.3)
    by_recipient = {m["To"].addresses[0].addr_spec: m for m in smtp.handler.messages}
    assert len(smtp.handler.messages) == 2
    link_mail, notice = by_recipient[str(event.data["email"])], by_recipient["old@example.com"]
    assert link_mail["Subject"] == "Confirm your email address for Gatehouse"
    link_text, _ = parts(link_mail)
    assert f"verify-email?token={token}" in link_text
    assert "keeps its current address until you confirm" in link_text
    assert notice["Subject"] == "Your Gatehouse email is being changed"
    text, html = parts(notice)
    for body in (text, html):
        assert token not in body  # the old address never gets the link
        assert str(event.data["email"]) in body
        assert "If it was not you" in body
        assert "forgot my password" in body
    assert all(token not in str(value) for value in notice.values())
    kinds = sorted(
        r.kind
        for r in await records(database, event.id, uuid.uuid5(event.id, "email_change_notice"))
    )
    assert kinds == ["email_change_notice", "email_verification"]


async def test_account_url_sets_where_the_verification_link_leads(
    database: Database, smtp: SmtpSink, broker: InProcessBroker
) -> None:
    app = make_app(database, smtp, broker, account_url="https://app.example.com/me/")
    async with LifespanManager(app):
        event = account_event(VERIFICATION)
        await broker.publish(event)
        await wait_until(lambda: smtp.handler.messages)
    text, _ = parts(smtp.handler.messages[0])
    assert f"https://app.example.com/me/verify-email?token={event.data['token']}" in text


@pytest.mark.usefixtures("app")
@pytest.mark.parametrize(
    "overrides",
    [
        {"token": "not-a-token-but-a-secret-value"},
        {"reason": "because"},
        {"previous_email": "not an address"},
        {"email": None},
    ],
)
async def test_a_malformed_verification_event_is_dead_lettered_without_its_token(
    smtp: SmtpSink,
    broker: InProcessBroker,
    caplog: pytest.LogCaptureFixture,
    overrides: dict[str, object],
) -> None:
    caplog.set_level(logging.DEBUG)
    event = account_event(VERIFICATION, **overrides)
    token = str(event.data["token"])
    await broker.publish(event)
    await wait_until(lambda: broker.dead_letters(VERIFICATION_EMAILS.queue))
    [dead] = broker.dead_letters(VERIFICATION_EMAILS.queue)
    assert token not in dead.reason
    assert all(token not in str(vars(r)) for r in caplog.records)
    assert smtp.handler.messages == []
