"""The account emails (welcome, password reset link, password changed, the MFA notices, email
verification link, "your email is being changed", the lockout notice), idempotent on the event id.

An event makes at most two emails: an email change's verification event makes the link to the
new address and the notice to the old one. Each has its own delivery record, the notice's keyed
by an id derived from the event's (`uuid5`), so each is sent once whatever happens to the other.

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
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from common.broker import PermanentFailure
from common.events import Envelope
from common.logs import describe
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from notifier.deliveries import repository
from notifier.deliveries.batching import GroupCommit
from notifier.deliveries.models import DeliveryStatus
from notifier.deliveries.repository import Claim, Outcome
from notifier.mail import schemas
from notifier.mail.messages import (
    EMAIL_CHANGE_NOTICE,
    EMAIL_VERIFICATION,
    LOCKED_OUT,
    MFA_NOTICES,
    PASSWORD_CHANGED,
    PASSWORD_RESET,
    WELCOME,
    MailSender,
    OutgoingEmail,
    email_change_notice,
    locked_out_email,
    mfa_notice_email,
    password_changed_email,
    password_reset_email,
    verification_email,
    welcome_email,
)
from notifier.mail.transports import MailTransport
from notifier.metrics import EMAILS_FAILED, EMAILS_SENT

logger = logging.getLogger("gatehouse.notifier")
# Under load, how long a batch of delivery records waits for more (see GroupCommit): 5 ms twice
# per email is small beside SMTP and the broker, and lets one transaction carry tens of records.
BATCH_LINGER_SECONDS = 0.005
Event = TypeVar("Event", bound=schemas.AccountEvent)


@dataclass(frozen=True, slots=True)
class Prepared:
    """An event's email: its kind (the metric label), recipient and how to compose it."""

    event_id: uuid.UUID
    kind: str
    recipient: str
    compose: Callable[[], OutgoingEmail]


def invalid(event_type: str, exc: ValidationError) -> PermanentFailure:
    """Which fields were wrong and how, never their values (a reset event carries a token)."""
    fields = ", ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['type']}" for error in exc.errors()
    )
    return PermanentFailure(f"invalid {event_type} data ({fields})")


def parse(schema: type[Event], envelope: Envelope) -> Event:
    return schema.model_validate({**envelope.data, "event_id": envelope.id})


def one_email(
    schema: type[Event], kind: str, build: Callable[[Event], OutgoingEmail]
) -> Callable[[Envelope], list[Prepared]]:
    """The preparer of an event that makes one email, of `kind`, to the account's address."""

    def prepare(envelope: Envelope) -> list[Prepared]:
        event = parse(schema, envelope)
        return [Prepared(event.event_id, kind, event.email, partial(build, event))]

    return prepare


class AccountEmailService:
    """The broker consumer of the account events. Long-lived, unlike the request services (see
    docs/ARCHITECTURE.md §7): it is built once in `lifespan`, and its group commits gather the
    delivery records of every event in flight, so it owns a sessionmaker rather than one request's
    database session."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        transport: MailTransport,
        sender: str,
        account_url: str = "http://127.0.0.1:8000/account",
    ) -> None:
        self.sessionmaker = sessionmaker
        self.transport = transport
        self.sender = MailSender.parse(sender)
        self.account_url = account_url.rstrip("/")
        self._claims = GroupCommit(self._claim_many, linger=BATCH_LINGER_SECONDS)
        self._outcomes = GroupCommit(self._record_outcomes, linger=BATCH_LINGER_SECONDS)
        self._prepare: dict[str, Callable[[Envelope], list[Prepared]]] = {
            "user.registered": self._welcome,
            "user.password_reset_requested": one_email(
                schemas.PasswordResetRequested,
                PASSWORD_RESET.kind,
                lambda event: password_reset_email(event, self.sender, self.account_url),
            ),
            "user.password_reset": one_email(
                schemas.PasswordReset,
                PASSWORD_CHANGED.kind,
                lambda event: password_changed_email(event, self.sender),
            ),
            **{event_type: self._mfa_notice(event_type) for event_type in MFA_NOTICES},
            "user.email_verification_requested": self._verification,
            "user.locked_out": one_email(
                schemas.AccountLockedOut,
                LOCKED_OUT.kind,
                lambda event: locked_out_email(event, self.sender, self.account_url),
            ),
        }

    def _mfa_notice(self, event_type: str) -> Callable[[Envelope], list[Prepared]]:
        return one_email(
            schemas.MfaNotice,
            MFA_NOTICES[event_type].kind,
            lambda event: mfa_notice_email(event_type, event, self.sender),
        )

    def _welcome(self, envelope: Envelope) -> list[Prepared]:
        event = parse(schemas.UserRegistered, envelope)
        if event.verification_follows:
            return []  # the welcome comes with the registration's verification link
        compose = partial(welcome_email, event, self.sender)
        return [Prepared(event.event_id, WELCOME.kind, event.email, compose)]

    def _verification(self, envelope: Envelope) -> list[Prepared]:
        event = parse(schemas.EmailVerificationRequested, envelope)
        if event.reason == "registration":
            compose = partial(welcome_email, event, self.sender, self.account_url)
            return [Prepared(event.event_id, WELCOME.kind, event.email, compose)]
        emails = [
            Prepared(
                event.event_id,
                EMAIL_VERIFICATION.kind,
                event.email,
                lambda: verification_email(event, self.sender, self.account_url),
            )
        ]
        if event.reason == "change" and event.previous_email is not None:
            notice_id = uuid.uuid5(event.event_id, EMAIL_CHANGE_NOTICE.kind)
            emails.append(
                Prepared(
                    notice_id,
                    EMAIL_CHANGE_NOTICE.kind,
                    event.previous_email,
                    lambda: email_change_notice(event, self.sender, notice_id),
                )
            )
        return emails

    async def handle(self, envelope: Envelope) -> None:
        """Broker handler for the event types in `_prepare` (others are ignored). Each email of
        the event is delivered in turn; a failure raises after the others were tried, so the
        redelivery sends only what is not sent yet."""
        prepare = self._prepare.get(envelope.type)
        if prepare is None:
            return
        try:
            emails = prepare(envelope)
        except ValidationError as exc:
            raise invalid(envelope.type, exc) from exc
        failures: list[Exception] = []
        for prepared in emails:
            try:
                await self._deliver(prepared)
            except Exception as exc:
                failures.append(exc)
        # A retryable failure wins over a rejection: the retry resends only the failed email (a
        # rejected one's record says so, and is not sent again).
        retryable = [exc for exc in failures if not isinstance(exc, PermanentFailure)]
        if retryable or failures:
            raise (retryable or failures)[0]

    async def _deliver(self, prepared: Prepared) -> None:
        kind = prepared.kind
        claimed = await self._claims.submit(Claim(prepared.event_id, kind, prepared.recipient))
        if claimed is None:  # a record exists: a redelivery
            claimed = await self._claim_existing(prepared.event_id)
        if not claimed:
            return
        email = prepared.compose()
        try:
            await self.transport.send(email)
        except PermanentFailure as exc:
            EMAILS_FAILED.labels(kind, "permanent").inc()
            await self._finish(prepared.event_id, DeliveryStatus.REJECTED, describe(exc))
            raise
        except Exception as exc:
            EMAILS_FAILED.labels(kind, "retryable").inc()
            await self._finish(prepared.event_id, DeliveryStatus.FAILED, describe(exc))
            raise
        await self._finish(prepared.event_id, DeliveryStatus.SENT)
        EMAILS_SENT.labels(kind).inc()

    async def _claim_many(self, claims: Sequence[Claim]) -> list[bool | None]:
        """Commit "sending" records: True for each claimed, None where a record already
        existed, False for a second copy of an event in the same batch (the first copy sends)."""
        async with self.sessionmaker() as db, db.begin():
            inserted = await repository.claim_many(db, claims)
        results: list[bool | None] = []
        first_copies = set(inserted)
        for claim in claims:
            if claim.event_id in first_copies:
                first_copies.discard(claim.event_id)
                results.append(True)
            else:
                results.append(False if claim.event_id in inserted else None)
        return results

    async def _claim_existing(self, event_id: uuid.UUID) -> bool:
        """The event has a record: True when it should be (re)sent, i.e. the last attempt failed."""
        async with self.sessionmaker() as db, db.begin():
            delivery = await repository.get_for_update(db, event_id)
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
                    event_id,
                )
            return False

    async def _finish(
        self, event_id: uuid.UUID, status: DeliveryStatus, error: str | None = None
    ) -> None:
        await self._outcomes.submit(Outcome(event_id, status, error))

    async def _record_outcomes(self, outcomes: Sequence[Outcome]) -> list[None]:
        async with self.sessionmaker() as db, db.begin():
            await repository.record_outcomes(db, outcomes)
        return [None] * len(outcomes)
