"""What the notifier suite shares besides `common.testing`."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from common.broker import RetryPolicy
from common.db import Database
from common.events import Envelope, EventType
from common.inprocess_broker import InProcessBroker
from common.testing import SmtpSink
from fastapi import FastAPI
from notifier.deliveries.models import Delivery
from notifier.main import create_app
from notifier.settings import NotifierSettings
from sqlalchemy import select

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"

FAST = RetryPolicy(delays=(0.02, 0.05, 0.1), max_attempts=3)


def account_event(event_type: EventType, **overrides: object) -> Envelope:
    data: dict[str, object] = {
        "user_id": str(uuid.uuid4()),
        "email": f"user-{uuid.uuid4().hex[:8]}@example.com",
        "username": "ann_smith",
        "full_name": "Ann <Smith>",
    }
    if event_type in ("user.password_reset_requested", "user.locked_out"):
        data["token"] = secrets.token_urlsafe(32)
        data["expires_at"] = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    if event_type == "user.email_verification_requested":
        data["token"] = secrets.token_urlsafe(32)
        data["expires_at"] = (datetime.now(UTC) + timedelta(hours=24)).isoformat()
        data["reason"] = "resend"
        data["previous_email"] = None
    if event_type == "user.locked_out":
        data["locked_until"] = datetime(2026, 12, 2, 8, 31, 5, tzinfo=UTC).isoformat()
    data.update(overrides)
    return Envelope(type=event_type, data=data)


async def wait_until(condition: Callable[[], object], limit: float = 10.0) -> None:
    async with asyncio.timeout(limit):
        while not condition():  # noqa: ASYNC110 - polling state owned by other tasks
            await asyncio.sleep(0.01)


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


def parts(message: EmailMessage) -> tuple[str, str]:
    text_part, html_part = message.get_body(("plain",)), message.get_body(("html",))
    assert text_part is not None
    assert html_part is not None
    return text_part.get_content(), html_part.get_content()


def link_only(message: EmailMessage, link: str, token: str) -> tuple[str, str]:
    """The email's text and HTML, once checked that both carry `link` and that its token stands
    nowhere else: not in a header, once per part."""
    text, html = parts(message)
    assert link in text
    assert f'href="{link}"' in html
    assert text.count(token) == 1
    assert html.count(token) == 1
    assert all(token not in str(value) for value in message.values())
    return text, html


def only_email(smtp: SmtpSink, to: object, subject: str) -> EmailMessage:
    """The one email the sink holds, once checked that it went to `to` with `subject`."""
    [message] = smtp.handler.messages
    assert message["To"].addresses[0].addr_spec == to
    assert message["Subject"] == subject
    return message


async def delivery(database: Database, event_id: uuid.UUID) -> Delivery | None:
    async with database.sessionmaker() as db:
        return await db.scalar(select(Delivery).where(Delivery.event_id == event_id))
