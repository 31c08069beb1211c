"""The MFA notices (API.md §9, §12): MFA on, MFA off, a recovery code used — each to the
account's address, once per event."""

from __future__ import annotations

import asyncio

import pytest
from common.broker import CONSUMER_QUEUES, MFA_NOTICES
from common.events import EventType
from common.inprocess_broker import InProcessBroker
from common.testing import SmtpSink

from .support import account_event, only_email, parts, wait_until


def test_the_notifier_subscribes_to_the_mfa_events() -> None:
    assert set(CONSUMER_QUEUES[MFA_NOTICES.queue]) == {
        "user.mfa_enabled",
        "user.mfa_disabled",
        "user.mfa_recovery_code_used",
    }


@pytest.mark.usefixtures("app")
@pytest.mark.parametrize(
    ("event_type", "subject", "says"),
    [
        ("user.mfa_enabled", "Two-step sign-in is on for your Gatehouse account", "turned on"),
        ("user.mfa_disabled", "Two-step sign-in is off for your Gatehouse account", "turned off"),
        (
            "user.mfa_recovery_code_used",
            "A recovery code was used to sign in to your Gatehouse account",
            "3 unused codes are left",
        ),
    ],
)
async def test_each_mfa_change_sends_one_notice(
    smtp: SmtpSink, broker: InProcessBroker, event_type: EventType, subject: str, says: str
) -> None:
    extra = {"recovery_codes_left": 3} if event_type == "user.mfa_recovery_code_used" else {}
    event = account_event(event_type, **extra)
    await broker.publish(event)
    await broker.publish(event)  # redelivered: still one email
    await wait_until(lambda: smtp.handler.messages)
    await asyncio.sleep(0.2)
    message = only_email(smtp, event.data["email"], subject)
    text, html = parts(message)
    for body in (text, html):
        assert says in body
        assert "ann_smith" in body
        assert "If it was not you" in body
    assert "Ann &lt;Smith&gt;" in html


@pytest.mark.usefixtures("app")
async def test_a_malformed_mfa_event_is_dead_lettered(
    smtp: SmtpSink, broker: InProcessBroker
) -> None:
    await broker.publish(account_event("user.mfa_enabled", email="not an address"))
    await wait_until(lambda: broker.dead_letters(MFA_NOTICES.queue))
    [dead] = broker.dead_letters(MFA_NOTICES.queue)
    assert "email" in dead.reason
    assert smtp.handler.messages == []
