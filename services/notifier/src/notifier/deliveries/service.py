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

Throughput: the records of events handled concurrently are written by group commit (one
transaction inserts the claims of every event that arrived meanwhile, one more records their
outcomes; under load a batch lingers a few milliseconds to gather more); each handler still waits
for its own claim to commit before sending and for its outcome to commit before returning (and so
before the broker acks the message).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from common.broker import PermanentFailure
from common.events import Envelope
from common.logs import describe
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notifier.deliveries.batching import GroupCommit
from notifier.deliveries.models import DeliveryStatus
from notifier.deliveries.repository import Claim, DeliveryRepository, Outcome
from notifier.mail.messages import MailSender, welcome_email
from notifier.mail.schemas import UserRegistered
from notifier.mail.transports import MailTransport
from notifier.metrics import EMAILS_FAILED, EMAILS_SENT

logger = logging.getLogger("gatehouse.notifier")
WELCOME = "welcome"
# Under load, how long a batch of delivery records waits for more (see GroupCommit): 5 ms twice
# per email is small beside SMTP and the broker, and lets one transaction carry tens of records.
BATCH_LINGER_SECONDS = 0.005


class WelcomeEmailService:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        transport: MailTransport,
        sender: str,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.transport = transport
        self.sender = MailSender.parse(sender)
        self._claims = GroupCommit(self._claim_many, linger=BATCH_LINGER_SECONDS)
        self._outcomes = GroupCommit(self._record_outcomes, linger=BATCH_LINGER_SECONDS)

    async def handle(self, envelope: Envelope) -> None:
        """Broker handler for `user.registered`."""
        if envelope.type != "user.registered":
            return
        try:
            event = UserRegistered.model_validate({**envelope.data, "event_id": envelope.id})
        except ValidationError as exc:
            raise PermanentFailure(f"invalid user.registered data: {describe(exc)}") from exc
        claimed = await self._claims.submit(Claim(event.event_id, WELCOME, event.email))
        if claimed is None:  # a record exists: a redelivery
            claimed = await self._claim_existing(event)
        if not claimed:
            return
        email = welcome_email(event, self.sender)
        try:
            await self.transport.send(email)
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

    async def _claim_many(self, claims: Sequence[Claim]) -> list[bool | None]:
        """Commit "sending" records: True for each claimed, None where a record already
        existed, False for a second copy of an event in the same batch (the first copy sends)."""
        async with self.sessionmaker() as session, session.begin():
            inserted = await DeliveryRepository(session).claim_many(claims)
        results: list[bool | None] = []
        first_copies = set(inserted)
        for claim in claims:
            if claim.event_id in first_copies:
                first_copies.discard(claim.event_id)
                results.append(True)
            else:
                results.append(False if claim.event_id in inserted else None)
        return results

    async def _claim_existing(self, event: UserRegistered) -> bool:
        """The event has a record: True when it should be (re)sent, i.e. the last attempt failed."""
        async with self.sessionmaker() as session, session.begin():
            repository = DeliveryRepository(session)
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
        await self._outcomes.submit(Outcome(event.event_id, status, error))

    async def _record_outcomes(self, outcomes: Sequence[Outcome]) -> list[None]:
        async with self.sessionmaker() as session, session.begin():
            await DeliveryRepository(session).record_outcomes(outcomes)
        return [None] * len(outcomes)
