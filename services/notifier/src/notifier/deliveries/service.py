"""The welcome email flow, idempotent on the event id.

Crash safety (at most once): the delivery record is committed as "sending" *before* the SMTP
send, and marked "sent" after it. A redelivery that finds "sent" does nothing; one that finds
"sending" means the process died (or lost its broker channel) between the commit and the final
update, i.e. possibly after the server accepted the mail, so it is not sent again: it is marked
"uncertain" and logged for an operator. We chose this over resending because a crash between
send and ack is the case the contract names ("a welcome email is sent once"); the price is that a
crash *before* the server accepted the mail loses that one email (visible as "uncertain").
A send that fails normally (4xx, connection refused) marks the record "failed" and raises, so the
broker's retry finds "failed" and tries again; a 5xx marks it "rejected" and dead-letters it.
"""

from __future__ import annotations

import logging

from common.broker import PermanentFailure
from common.events import Envelope
from common.inprocess_broker import describe
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notifier.deliveries.models import DeliveryStatus
from notifier.deliveries.repository import DeliveryRepository
from notifier.mail.messages import welcome_email
from notifier.mail.schemas import UserRegistered
from notifier.mail.transports import MailTransport
from notifier.metrics import EMAILS_FAILED, EMAILS_SENT

logger = logging.getLogger("gatehouse.notifier")
WELCOME = "welcome"


class WelcomeEmailService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        transport: MailTransport,
        sender: str,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.transport = transport
        self.sender = sender

    async def handle(self, envelope: Envelope) -> None:
        """Broker handler for `user.registered`."""
        if envelope.type != "user.registered":
            return
        try:
            event = UserRegistered.model_validate({**envelope.data, "event_id": envelope.id})
        except ValidationError as exc:
            raise PermanentFailure(f"invalid user.registered data: {describe(exc)}") from exc
        if not await self._claim(event):
            return
        message = welcome_email(event, self.sender)
        try:
            await self.transport.send(message)
        except PermanentFailure as exc:
            EMAILS_FAILED.labels(WELCOME, "permanent").inc()
            await self._finish(event, DeliveryStatus.REJECTED, describe(exc))
            raise
        except Exception as exc:
            EMAILS_FAILED.labels(WELCOME, "retryable").inc()
            await self._finish(event, DeliveryStatus.FAILED, describe(exc))
            raise
        await self._finish(event, DeliveryStatus.SENT)
        EMAILS_SENT.labels(WELCOME).inc()

    async def _claim(self, event: UserRegistered) -> bool:
        """Commit the "sending" record; False when this event needs nothing more."""
        async with self.sessionmaker() as session, session.begin():
            repository = DeliveryRepository(session)
            if await repository.claim(event.event_id, WELCOME, event.email):
                return True
            delivery = await repository.get_for_update(event.event_id)
            if delivery is None:  # pragma: no cover - the unique key said it exists
                raise RuntimeError("delivery record vanished")
            if delivery.status == DeliveryStatus.FAILED:
                delivery.status = DeliveryStatus.SENDING
                delivery.attempts += 1
                return True
            if delivery.status == DeliveryStatus.SENDING:
                delivery.status = DeliveryStatus.UNCERTAIN
                logger.warning(
                    "event %s redelivered while its email was being sent; not resending",
                    event.event_id,
                )
            return False

    async def _finish(
        self, event: UserRegistered, status: DeliveryStatus, error: str | None = None
    ) -> None:
        async with self.sessionmaker() as session, session.begin():
            await DeliveryRepository(session).set_status(event.event_id, status, error)
